"""Wait for SLURM jobs that someone else submitted, and say honestly how each one ended.

Used by the calibrate rule (workflow/scripts/calibrate.py) after `flepimop batch-calibrate`
returns: batch-calibrate only *submits* (sbatch) the calibration array and its dependent sync
job; the calibration is done only when every one of those jobs has ended, each COMPLETED with
exit 0.

How a job's state is read (in this order, every poll):

1. ``squeue -h -r -j IDS --states=all -o %i|%T|%r``: while slurmctld knows a job (pending,
   running, and for MinJobAge seconds after it ends) it is listed, one line per array task.
2. A job no longer active is finished; its final state comes from ``sacct`` when accounting
   works (``sacct -n -P -X -j ID -o JobID,State,ExitCode``), else from
   ``scontrol show job -o ID`` (slurmctld keeps finished jobs for MinJobAge, 300 s by default;
   the poll interval is bounded well below that), else it is UNKNOWN.
3. UNKNOWN is a failure, never a success: a job whose end nobody can vouch for does not
   complete a calibration. The error names the job and says why.

A job pending with reason DependencyNeverSatisfied (the dependent sync job after a failed
array, `afterok`) can never run: it is cancelled (scancel) and reported as such.

No module here imports anything beyond the standard library; processes are started with argv
lists only.
"""

from __future__ import annotations  # imported by calibrate.py, never run by Snakemake

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
          "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
OK = "COMPLETED"
POLL_MIN, POLL_MAX = 1.0, 120.0  # MinJobAge defaults to 300 s: poll well within it

# What `flepimop batch-calibrate -vv` logs for each sbatch it runs (gempyor/batch/systems.py,
# _submit_via_subprocess): "Executing script with: <sbatch> ... <script>" then, when sbatch
# printed "Submitted batch job N", "Extracted job ID of: N".
_EXECUTING = re.compile(r"Executing script with: (\S*sbatch)\b")
_EXTRACTED = re.compile(r"Extracted job ID of: (\d+)")
_NONZERO = re.compile(r"Received non-zero exit code, (\d+), from executed script")
_JOB_NAME = re.compile(r"Assigning job name of '([^']+)'")


class SchedulerError(RuntimeError):
    """SLURM could not be asked (command missing, or failing repeatedly)."""


@dataclass
class Submission:
    """What batch-calibrate's log says it submitted."""

    job_ids: list[str]
    sbatch_calls: int
    sbatch_failures: list[str]
    job_name: str | None


def parse_batch_calibrate_log(text: str) -> Submission:
    """Job ids (in submission order), how many sbatch runs were made, and gempyor's job name."""
    name = _JOB_NAME.search(text)
    return Submission(job_ids=_EXTRACTED.findall(text), sbatch_calls=len(_EXECUTING.findall(text)),
                      sbatch_failures=_NONZERO.findall(text), job_name=name.group(1) if name else None)


@dataclass
class JobEnd:
    job_id: str
    state: str                         # final state; UNKNOWN when no source could tell
    exit_code: str | None = None
    source: str = ""                   # squeue / sacct / scontrol / none
    tasks: dict[str, str] = field(default_factory=dict)  # array task -> "STATE exit"
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.state == OK and all(v.split()[0] == OK and v.endswith(" 0:0") for v in self.tasks.values()) \
            and (self.exit_code in (None, "0:0"))

    def as_dict(self) -> dict:
        return {"job_id": self.job_id, "state": self.state, "exit_code": self.exit_code, "source": self.source,
                "tasks": self.tasks, "note": self.note}


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)


def _base(job: str) -> str:
    return job.split("_", 1)[0].split(".", 1)[0]


class Slurm:
    """Queries against one SLURM (commands from PATH; SLURM_CONF from the environment)."""

    def __init__(self, run: Runner = _run, which: Callable[[str], str | None] = shutil.which):
        self.run = run
        missing = [c for c in ("squeue", "scontrol") if which(c) is None]
        if missing:
            raise SchedulerError(f"cannot ask SLURM about the submitted jobs: {', '.join(missing)} not on PATH")
        self.has_sacct = which("sacct") is not None
        self._sacct_works: bool | None = None

    def active(self, job_ids: Iterable[str]) -> dict[str, list[tuple[str, str, str]]]:
        """job id -> [(task id, state, reason)] of the jobs slurmctld still lists as active."""
        ids = list(job_ids)
        done = self.run(["squeue", "-h", "-r", "--states=all", "-j", ",".join(ids), "-o", "%i|%T|%r"])
        if done.returncode != 0:
            if "Invalid job id" in done.stderr:  # every id purged from slurmctld already
                return {}
            raise SchedulerError(f"squeue failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        out: dict[str, list[tuple[str, str, str]]] = {}
        for line in done.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) < 2:
                continue
            task, state = parts[0], parts[1].split()[0]
            if state in ACTIVE:
                out.setdefault(_base(task), []).append((task, state, parts[2] if len(parts) > 2 else ""))
        return out

    def final(self, job_id: str) -> JobEnd:
        end = self._sacct(job_id) if self.has_sacct and self._sacct_works is not False else None
        if end is None:
            end = self._scontrol(job_id)
        return end or JobEnd(job_id, "UNKNOWN", source="none",
                             note="not listed by squeue, no accounting (sacct), and purged from slurmctld "
                                  "(MinJobAge): nothing can vouch that it completed")

    def _sacct(self, job_id: str) -> JobEnd | None:
        done = self.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State,ExitCode"])
        if done.returncode != 0:
            self._sacct_works = False  # accounting disabled: "Slurm accounting storage is disabled"
            return None
        self._sacct_works = True
        tasks = {}
        for line in done.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 3 and _base(parts[0]) == job_id:
                tasks[parts[0]] = f"{parts[1].split()[0]} {parts[2]}"
        return _combine(job_id, tasks, "sacct") if tasks else None

    def _scontrol(self, job_id: str) -> JobEnd | None:
        done = self.run(["scontrol", "show", "job", "-o", job_id])
        if done.returncode != 0:
            return None
        tasks = {}
        for line in done.stdout.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "JobState" not in fields:
                continue
            task = fields.get("JobId", job_id)
            if fields.get("ArrayTaskId"):
                task = f"{fields.get('ArrayJobId', job_id)}_{fields['ArrayTaskId']}"
            tasks[task] = f"{fields['JobState']} {fields.get('ExitCode', '?')}"
        return _combine(job_id, tasks, "scontrol") if tasks else None

    def cancel(self, job_id: str) -> None:
        self.run(["scancel", job_id])


def _combine(job_id: str, tasks: dict[str, str], source: str) -> JobEnd:
    states = {v.split()[0] for v in tasks.values()}
    bad = sorted(s for s in states if s != OK)
    state = bad[0] if bad else OK
    if len(tasks) == 1:
        only = next(iter(tasks.values()))
        return JobEnd(job_id, only.split()[0], only.split()[1] if " " in only else None, source)
    return JobEnd(job_id, state, None, source, tasks=tasks)


def wait_for(job_ids: Sequence[str], *, poll: float = 30.0, timeout: float | None = None,
             slurm: Slurm | None = None, log: Callable[[str], None] = print,
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
             max_query_failures: int = 5) -> list[JobEnd]:
    """Block until every job has ended; return each job's end (in the order given).

    A job pending with DependencyNeverSatisfied is cancelled and reported CANCELLED.
    squeue failing ``max_query_failures`` polls in a row raises SchedulerError.
    """
    slurm = slurm or Slurm()
    poll = min(max(float(poll), POLL_MIN), POLL_MAX)
    pending = list(job_ids)
    ends: dict[str, JobEnd] = {}
    failures = 0
    started = clock()
    last_status = ""
    while pending:
        try:
            active = slurm.active(pending)
            failures = 0
        except SchedulerError as error:
            failures += 1
            if failures >= max_query_failures:
                raise SchedulerError(f"{error} ({failures} polls in a row; jobs still unaccounted for: "
                                     f"{', '.join(pending)})") from None
            log(f"warning: {error}; retrying in {poll:.0f} s")
            sleep(poll)
            continue
        for job in list(pending):
            if job in active:
                reasons = {r for _, s, r in active[job] if s == "PENDING"}
                if "DependencyNeverSatisfied" in reasons:
                    slurm.cancel(job)
                    ends[job] = JobEnd(job, "CANCELLED", source="squeue",
                                       note="pending with DependencyNeverSatisfied (a job it depends on "
                                            "failed): it could never run, so it was cancelled")
                    pending.remove(job)
                continue
            ends[job] = slurm.final(job)
            pending.remove(job)
            log(f"job {job}: {ends[job].state}" + (f" exit {ends[job].exit_code}" if ends[job].exit_code else "")
                + (f" ({ends[job].source})" if ends[job].source else ""))
        if not pending:
            break
        status = ", ".join(f"{j}: {'/'.join(sorted({s for _, s, _ in active.get(j, [])}))}" for j in pending)
        if status != last_status:
            log(f"waiting for {status}")
            last_status = status
        if timeout is not None and clock() - started > timeout:
            for job in pending:
                ends[job] = JobEnd(job, "TIMEOUT_WAITING", source="squeue",
                                   note=f"still active after waiting {timeout:.0f} s (left running)")
            break
        sleep(poll)
    return [ends[j] for j in job_ids]
