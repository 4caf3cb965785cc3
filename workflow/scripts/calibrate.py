"""The calibrate rule: run the calibration, and write a receipt only once it is done.

Two modes (config key `calibrate.mode`):

- ``command``: a *blocking* shell command (`calibrate.command`) runs inside the rule. Under the
  SLURM profile Snakemake's executor plugin submits this rule as a job and watches it; nothing
  here keeps job bookkeeping. Placeholders (shell-quoted): {model_config}, {run}, {outputs},
  {resume_dir}, {python}.
- ``batch-calibrate``: `flepimop batch-calibrate` with its options from
  `calibrate.batch_calibrate` (see config/README.md). batch-calibrate only submits (sbatch) the
  calibration array and, with a sync protocol, its dependent sync job, then returns. The job
  ids are read from its own log lines (run with -vv: "Executing script with: .../sbatch ..."
  and "Extracted job ID of: N", gempyor/batch/systems.py) and every one is waited for
  (slurm_jobs.py). The calibration is done when every job ended COMPLETED with exit 0.

Either way the command sees FLEPI_RUN_INDEX=<run> (gempyor's run id: `--in-id/--out-id`
default to it) and FLEPIMOP_RUN_ID, FLEPIMOP_MODEL_CONFIG, FLEPIMOP_OUTPUTS,
FLEPIMOP_RESUME_DIR. gempyor 2.1's batch-calibrate ignores FLEPI_RUN_INDEX for the jobs it
submits: it names that run `<config name>-<UTC timestamp>` (its "job name", passed to the
inference as --run_id and used by its sync job); the receipt records it as `flepimop_run_id`
next to the workflow's `run`, so the snapshot can select exactly that run.

On failure (non-zero exit, a job that failed, was cancelled, timed out, or whose end nobody
can vouch for) there is no receipt, `<receipt>.failed` names every job and its final state,
and the rule fails, so nothing downstream runs. Receipts are written by flepimop-sync's one
receipt writer (``api.write_receipt``), and the command's line in the log and the failure's
message are masked as every step's (``report.redact``): a password in the command never shows
there, nor in what batch-calibrate printed (copied to the log once it ended). The blocking
command's own output goes to the log as it prints it.

The workflow runs it through wrappers/flepimop-calibrate (``run_job``). Also runnable outside
Snakemake, e.g. from a `shell:` rule:

    python calibrate.py --run RUN --model-config FILE --calibrate-config JSON
                        --receipt PATH --log PATH

JSON is the workflow config's `calibrate:` mapping (a file path or the JSON text).
"""


import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

# Snakemake runs a copy of this script from .snakemake/scripts: find slurm_jobs.py by scriptdir.
sys.path.insert(0, globals()["snakemake"].scriptdir if "snakemake" in globals() else str(Path(__file__).resolve().parent))
import slurm_jobs  # noqa: E402

from flepimop_sync.api import write_receipt  # noqa: E402  (receipts, logs and messages masked as every step's)
from flepimop_sync.report import redact  # noqa: E402

BATCH_DEFAULTS = {
    "flepimop": "flepimop", "flepi_path": None, "project_path": ".", "conda_env": None,
    "blocks": 1, "chains": 1, "samples": 1, "simulations": 1, "time_limit": "1hr",
    "batch_system": "slurm", "cluster": None, "nodes": 1, "cpus": 1, "memory": "1GB",
    "sync_protocol": None, "extra": [], "skip_checkout": False, "skip_manifest": False, "args": [],
}
WAIT_DEFAULTS = {"poll_seconds": 30, "timeout_hours": None}


class CalibrateError(Exception):
    pass


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def calibrate_mode(cfg: dict) -> str:
    """The mode of a `calibrate:` section: `mode`, else `command` when a command is set, else
    `batch-calibrate` (the DAG's checks in rules/common.smk ask here too)."""
    return cfg.get("mode") or ("command" if cfg.get("command") else "batch-calibrate")


def batch_calibrate_argv(cfg: dict, model_config: str, env: dict) -> list[str]:
    """`flepimop batch-calibrate ...` from `calibrate.batch_calibrate` (every required option)."""
    b = {**BATCH_DEFAULTS, **(cfg.get("batch_calibrate") or {})}
    flepi_path = b["flepi_path"] or env.get("FLEPI_PATH")
    if not flepi_path:
        raise CalibrateError("config key 'calibrate.batch_calibrate.flepi_path' is not set and $FLEPI_PATH is "
                             "empty: batch-calibrate needs the flepiMoP checkout (--flepi-path)")
    # gempyor looks up info/cluster/<name>.yml under $FLEPI_PATH (not --flepi-path): keep them equal
    env["FLEPI_PATH"] = str(flepi_path)
    if b["batch_system"] != "slurm":
        raise CalibrateError(f"config key 'calibrate.batch_calibrate.batch_system': {b['batch_system']!r} is not "
                             "supported for waiting on jobs (only 'slurm'); use calibrate.mode: command for a "
                             "blocking run")
    argv = shlex.split(b["flepimop"]) + [
        "batch-calibrate", "--flepi-path", str(flepi_path), "--project-path", str(b["project_path"]),
        "--blocks", str(b["blocks"]), "--chains", str(b["chains"]), "--samples", str(b["samples"]),
        "--simulations", str(b["simulations"]), "--time-limit", str(b["time_limit"]),
        "--batch-system", "slurm", "--nodes", str(b["nodes"]), "--cpus", str(b["cpus"]),
        "--memory", str(b["memory"])]
    for key, flag in (("conda_env", "--conda-env"), ("cluster", "--cluster"), ("sync_protocol", "--sync-protocol")):
        if b[key]:
            argv += [flag, str(b[key])]
    for item in b["extra"] or []:
        argv += ["--extra", str(item)]
    if b["skip_checkout"]:
        argv.append("--skip-checkout")
    if b["skip_manifest"]:
        argv.append("--skip-manifest")
    argv += [str(a) for a in b["args"] or []]
    return argv + ["-vv", str(model_config)]  # -vv: INFO, where gempyor logs the job ids


def calibrate(run: str, model_config: str, cfg: dict, receipt: Path, log: Path, outputs: str | None = None,
              resume_dir: str | None = None) -> int:
    mode = calibrate_mode(cfg)
    outputs = outputs or cfg.get("outputs", "model_output")
    resume_dir = resume_dir or cfg.get("resume_dir") or outputs
    env = dict(os.environ)
    env.update({"FLEPIMOP_RUN_ID": str(run), "FLEPIMOP_MODEL_CONFIG": str(model_config),
                "FLEPIMOP_OUTPUTS": str(outputs), "FLEPIMOP_RESUME_DIR": str(resume_dir)})
    env.update({str(k): str(v) for k, v in dict(cfg.get("env") or {}).items()})
    env["FLEPI_RUN_INDEX"] = str(run)  # last: the run gempyor writes is the workflow's, whatever env says
    receipt.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    failed = Path(f"{receipt}.failed")
    body = {"step": "calibrate", "mode": mode, "run": run, "flepimop_run_id": run, "model_config": model_config,
            "outputs": outputs, "started": now(), "host": os.uname().nodename,
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}

    def fail(message: str) -> int:
        body.update(finished=now(), status="failed", error=message)
        write_receipt(failed, body, env)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"calibrate: {redact(message, env)}\n")
        print(f"calibrate: {redact(message, env)} (see {log}, {failed})", file=sys.stderr)
        return 1

    with open(log, "a", encoding="utf-8") as handle:
        try:
            if mode == "command":
                values = {"model_config": model_config, "run": run, "outputs": outputs, "resume_dir": resume_dir,
                          "python": sys.executable}
                run_command(cfg, values, env, handle, body)
            elif mode == "batch-calibrate":
                run_batch_calibrate(cfg, model_config, env, handle, body)
            else:
                raise CalibrateError(f"config key 'calibrate.mode': unknown mode {mode!r} (command or batch-calibrate)")
        except CalibrateError as error:
            return fail(str(error))
    body.update(finished=now(), status="ok")
    if failed.exists():
        failed.unlink()
    write_receipt(receipt, body, env)  # masked: the command may hold a secret (a password in a URL)
    return 0


def run_command(cfg: dict, values: dict, env: dict, handle, body: dict) -> None:
    """Mode ``command``: the blocking shell command, placeholders filled shell-quoted."""
    if not cfg.get("command"):
        raise CalibrateError("config key 'calibrate.command' is not set (needed with calibrate.mode: command)")
    command = cfg["command"].format(**{k: shlex.quote(str(v)) for k, v in values.items()})
    body["command"] = command
    handle.write(f"$ {redact(command, env)}\n")
    handle.flush()
    code = subprocess.run(command, shell=True, env=env, stdout=handle, stderr=subprocess.STDOUT,  # noqa: S602
                          stdin=subprocess.DEVNULL, check=False).returncode
    body["exit_code"] = code
    if code != 0:
        raise CalibrateError(f"command failed with exit {code}: {command}")


def run_batch_calibrate(cfg: dict, model_config: str, env: dict, handle, body: dict) -> None:
    """Mode ``batch-calibrate``: submit, read the job ids from its log, wait for every job."""
    argv = batch_calibrate_argv(cfg, model_config, env)
    body["command"] = shlex.join(argv)
    handle.write(f"$ {redact(shlex.join(argv), env)}\n")
    handle.flush()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False)
    except OSError as error:
        raise CalibrateError(f"cannot run {argv[0]!r}: {error}") from None
    handle.write(redact(done.stdout + done.stderr, env))  # read unmasked below: only the log is masked
    handle.flush()
    sub = slurm_jobs.parse_batch_calibrate_log(done.stdout + "\n" + done.stderr)
    body.update(exit_code=done.returncode, job_ids=sub.job_ids)
    if sub.job_name:
        body["flepimop_run_id"] = sub.job_name
    check_submission(done.returncode, sub)
    wait_for_jobs(cfg, sub.job_ids, handle, body)


def check_submission(returncode: int, sub) -> None:
    """batch-calibrate exited 0 and every sbatch it ran reported a job id."""
    if returncode != 0 or sub.sbatch_failures or len(sub.job_ids) != sub.sbatch_calls:
        why = (f"exit {returncode}" if returncode else
               f"{sub.sbatch_calls} sbatch run(s) but {len(sub.job_ids)} job id(s) reported")
        submitted = f"; submitted and left as they are: {', '.join(sub.job_ids)}" if sub.job_ids else ""
        raise CalibrateError(f"batch-calibrate failed ({why}){submitted}")
    if not sub.job_ids:
        raise CalibrateError("batch-calibrate submitted no job (no 'Extracted job ID of: N' in its -vv log)")


def wait_for_jobs(cfg: dict, job_ids: list, handle, body: dict) -> None:
    """Wait until every job has ended (their ends in ``body["jobs"]``); CalibrateError unless all completed."""
    wait = {**WAIT_DEFAULTS, **(cfg.get("wait") or {})}
    timeout = None if wait["timeout_hours"] is None else float(wait["timeout_hours"]) * 3600

    def note(message: str) -> None:
        handle.write(f"{now()} {message}\n")
        handle.flush()

    note(f"waiting for SLURM job(s) {', '.join(job_ids)} (poll every {wait['poll_seconds']} s)")
    try:
        ends = slurm_jobs.wait_for(job_ids, poll=float(wait["poll_seconds"]), timeout=timeout, log=note)
    except slurm_jobs.SchedulerError as error:
        raise CalibrateError(f"{error}") from None
    body["jobs"] = [e.as_dict() for e in ends]
    bad = [e for e in ends if not e.ok]
    if bad:
        raise CalibrateError("calibration jobs did not all complete: " + "; ".join(
            f"job {e.job_id} {e.state}" + (f" exit {e.exit_code}" if e.exit_code else "")
            + (f" tasks {e.tasks}" if e.tasks else "") + (f" ({e.note})" if e.note else "") for e in ends))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--model-config", required=True)
    ap.add_argument("--calibrate-config", required=True, help="the calibrate: mapping, JSON text or a JSON file")
    ap.add_argument("--receipt", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args(argv)
    text = args.calibrate_config
    cfg = json.loads(Path(text).read_text() if not text.lstrip().startswith("{") else text)
    return calibrate(args.run, args.model_config, cfg, Path(args.receipt), Path(args.log))


def run_job(smk) -> int:
    """The calibrate_run job: ``smk`` is the ``snakemake`` object of wrappers/flepimop-calibrate."""
    p = smk.params
    return calibrate(str(p.run), str(p.model_config), dict(p.calibrate), Path(smk.output[0]), Path(smk.log[0]),
                     outputs=str(p.outputs), resume_dir=str(p.resume_dir))


if __name__ == "__main__":
    sys.exit(main())
