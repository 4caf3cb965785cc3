"""The calibrate rule: run the configured command, write a receipt on success.

The command is the config's `calibrate.command` (default
`flepimop batch-calibrate -c {model_config}`) with the placeholders {model_config},
{run}, {outputs}, {resume_dir} and {python} (this Python) replaced by shell-quoted values. It also sees
FLEPIMOP_RUN_ID, FLEPIMOP_MODEL_CONFIG, FLEPIMOP_OUTPUTS and FLEPIMOP_RESUME_DIR.
A non-zero exit fails the job (no receipt, so no snapshot); `<receipt>.failed` and the
log say why.
"""

import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def main(smk):
    p = smk.params
    values = {"model_config": p.model_config, "run": p.run, "outputs": p.outputs, "resume_dir": p.resume_dir,
              "python": sys.executable}
    command = p.command.format(**{k: shlex.quote(str(v)) for k, v in values.items()})
    env = dict(os.environ)
    env.update({"FLEPIMOP_RUN_ID": str(p.run), "FLEPIMOP_MODEL_CONFIG": str(p.model_config),
                "FLEPIMOP_OUTPUTS": str(p.outputs), "FLEPIMOP_RESUME_DIR": str(p.resume_dir)})
    env.update({str(k): str(v) for k, v in dict(p.env).items()})
    receipt = Path(smk.output[0])
    receipt.parent.mkdir(parents=True, exist_ok=True)
    log = Path(smk.log[0])
    log.parent.mkdir(parents=True, exist_ok=True)
    body = {"step": "calibrate", "command": command, "run": p.run, "model_config": p.model_config,
            "outputs": p.outputs, "started": now(), "host": os.uname().nodename,
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {command}\n")
        handle.flush()
        code = subprocess.run(command, shell=True, env=env, stdout=handle, stderr=subprocess.STDOUT,  # noqa: S602
                              stdin=subprocess.DEVNULL, check=False).returncode
    body.update(finished=now(), exit_code=code, status="ok" if code == 0 else "failed")
    if code != 0:
        Path(f"{receipt}.failed").write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        sys.exit(f"calibrate: command failed with exit {code}: {command} (see {log})")
    stale = Path(f"{receipt}.failed")
    if stale.exists():
        stale.unlink()
    receipt.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


main(snakemake)  # noqa: F821 - injected by Snakemake
