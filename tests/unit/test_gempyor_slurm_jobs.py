"""workflow/scripts/slurm_jobs.py: job ids from batch-calibrate's log, and how a job's end is read.

Scripted squeue/sacct/scontrol answers (argv-level); the real SLURM is exercised by
tests/integration/test_gempyor_calibrate.py and test_gempyor_slurm_wait.py.
"""

import subprocess

import pytest

import slurm_jobs

# What gempyor 2.1's `flepimop batch-calibrate --slurm -vv` prints for an array and its sync job.
LOG = """\
2026-12-01 15:43:26,700:INFO:gempyor.batch._cli> Assigning job name of 'sample_2pop-20261201T154326'.
2026-12-01 15:43:27,010:INFO:gempyor.batch.systems> Executing script with: /usr/bin/sbatch /p/tmpa.sbatch.
2026-12-01 15:43:27,100:INFO:gempyor.batch.systems> Extracted job ID of: 41.
2026-12-01 15:43:27,200:INFO:gempyor.batch.systems> Executing script with: /usr/bin/sbatch /p/sync_tmpb.sbatch.
2026-12-01 15:43:27,300:INFO:gempyor.batch.systems> Extracted job ID of: 42.
"""


@pytest.mark.parametrize("text, ids, calls, failures, name", [
    (LOG, ["41", "42"], 2, [], "sample_2pop-20261201T154326"),
    (LOG.split("\n", 3)[0] + "\n" + LOG.split("\n")[1], [], 1, [], "sample_2pop-20261201T154326"),
    ("x> Executing script with: /usr/bin/sbatch s.sbatch.\n"
     "x> Received non-zero exit code, 1, from executed script.\n", [], 1, ["1"], None),
    ("", [], 0, [], None),
])
def test_parse_batch_calibrate_log(text, ids, calls, failures, name):
    sub = slurm_jobs.parse_batch_calibrate_log(text)
    assert (sub.job_ids, sub.sbatch_calls, sub.sbatch_failures, sub.job_name) == (ids, calls, failures, name)


class Fake:
    """Answers argv by first word from a list of (stdout, stderr, rc) per call."""

    def __init__(self, answers):
        self.answers = {k: list(v) for k, v in answers.items()}
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        out, err, rc = self.answers[argv[0]].pop(0) if len(self.answers[argv[0]]) > 1 else self.answers[argv[0]][0]
        return subprocess.CompletedProcess(argv, rc, out, err)


def slurm(answers, sacct=True):
    have = {"squeue", "scontrol", "scancel"} | ({"sacct"} if sacct else set())
    return slurm_jobs.Slurm(run=Fake(answers), which=lambda c: f"/usr/bin/{c}" if c in have else None)


NO_ACCOUNTING = ("", "sacct: error: Slurm accounting storage is disabled\n", 1)
GONE = ("", "slurm_load_jobs error: Invalid job id specified\n", 1)


@pytest.mark.parametrize("answers, sacct, expected", [
    # accounting works: sacct gives the final state
    ({"squeue": [("", "", 0)], "sacct": [("41|COMPLETED|0:0\n", "", 0)]}, True, ("COMPLETED", "0:0", "sacct", True)),
    ({"squeue": [GONE], "sacct": [("41|FAILED|127:0\n", "", 0)]}, True, ("FAILED", "127:0", "sacct", False)),
    # no accounting (the test bed): scontrol, while slurmctld keeps the job (MinJobAge)
    ({"squeue": [("", "", 0)], "sacct": [NO_ACCOUNTING],
      "scontrol": [("JobId=41 JobName=x JobState=COMPLETED Reason=None ExitCode=0:0\n", "", 0)]},
     True, ("COMPLETED", "0:0", "scontrol", True)),
    ({"squeue": [("", "", 0)],
      "scontrol": [("JobId=41 JobState=CANCELLED Reason=None ExitCode=0:15\n", "", 0)]},
     False, ("CANCELLED", "0:15", "scontrol", False)),
    # purged from slurmctld and no accounting: nobody can vouch for it -> UNKNOWN, a failure
    ({"squeue": [GONE], "sacct": [NO_ACCOUNTING], "scontrol": [GONE]}, True, ("UNKNOWN", None, "none", False)),
])
def test_final_state_sources(answers, sacct, expected):
    (end,) = slurm_jobs.wait_for(["41"], poll=1, slurm=slurm(answers, sacct), sleep=lambda s: None, log=lambda m: None)
    assert (end.state, end.exit_code, end.source, end.ok) == expected


def test_array_tasks_each_count():
    answers = {"squeue": [("", "", 0)], "sacct": [NO_ACCOUNTING], "scontrol": [(
        "JobId=42 ArrayJobId=41 ArrayTaskId=1 JobState=COMPLETED ExitCode=0:0\n"
        "JobId=41 ArrayJobId=41 ArrayTaskId=2 JobState=FAILED ExitCode=127:0\n", "", 0)]}
    (end,) = slurm_jobs.wait_for(["41"], slurm=slurm(answers), sleep=lambda s: None, log=lambda m: None)
    assert end.state == "FAILED" and not end.ok
    assert end.tasks == {"41_1": "COMPLETED 0:0", "41_2": "FAILED 127:0"}


def test_waits_while_active_then_reads_the_end():
    answers = {"squeue": [("41_1|RUNNING|None\n41_2|PENDING|Resources\n", "", 0), ("41_2|RUNNING|None\n", "", 0),
                          ("", "", 0)],
               "sacct": [("41_1|COMPLETED|0:0\n41_2|COMPLETED|0:0\n", "", 0)]}
    sleeps = []
    s = slurm(answers)
    (end,) = slurm_jobs.wait_for(["41"], poll=500, slurm=s, sleep=sleeps.append, log=lambda m: None)
    assert end.ok and end.tasks == {"41_1": "COMPLETED 0:0", "41_2": "COMPLETED 0:0"}
    assert sleeps == [slurm_jobs.POLL_MAX, slurm_jobs.POLL_MAX]  # the poll interval is bounded
    assert s.run.calls[0] == ["squeue", "-h", "-r", "--states=all", "-j", "41", "-o", "%i|%T|%r"]


def test_dependent_job_that_can_never_run_is_cancelled():
    answers = {"squeue": [("42|PENDING|DependencyNeverSatisfied\n", "", 0)],
               "sacct": [("41|FAILED|1:0\n", "", 0)], "scancel": [("", "", 0)]}
    s = slurm(answers)
    ends = slurm_jobs.wait_for(["41", "42"], slurm=s, sleep=lambda x: None, log=lambda m: None)
    assert [(e.job_id, e.state) for e in ends] == [("41", "FAILED"), ("42", "CANCELLED")]
    assert "DependencyNeverSatisfied" in ends[1].note and ["scancel", "42"] in s.run.calls


def test_scheduler_that_cannot_be_asked_is_a_clear_error():
    s = slurm({"squeue": [("", "slurm_load_jobs error: Unable to contact slurm controller\n", 1)]})
    with pytest.raises(slurm_jobs.SchedulerError, match="squeue failed .*Unable to contact slurm controller.*"
                       "5 polls in a row.*41"):
        slurm_jobs.wait_for(["41"], slurm=s, sleep=lambda x: None, log=lambda m: None)


def test_missing_slurm_commands_are_named():
    with pytest.raises(slurm_jobs.SchedulerError, match="squeue, scontrol not on PATH"):
        slurm_jobs.Slurm(which=lambda c: None)


def test_timeout_leaves_jobs_running_and_fails():
    clock = iter([0, 10, 20, 30, 40])
    s = slurm({"squeue": [("41|RUNNING|None\n", "", 0)]})
    (end,) = slurm_jobs.wait_for(["41"], timeout=15, slurm=s, sleep=lambda x: None, log=lambda m: None,
                                 clock=lambda: next(clock))
    assert end.state == "TIMEOUT_WAITING" and not end.ok
