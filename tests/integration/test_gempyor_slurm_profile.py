"""calibrate.mode command under the SLURM profile: Snakemake's executor plugin submits the rule and
watches it; a calibration that fails inside its SLURM job fails the DAG and nothing is pushed
(the success path: test_workflow_slurm.py)."""

import json
import subprocess

import pytest

import test_workflow as wf
from test_workflow_slurm import PROFILE

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


@pytest.mark.timeout(300)
def test_failing_blocking_calibration_under_slurm_fails_the_dag(tmp_path, base_env, sshd, s3, slurm):
    env = wf.merged_env(base_env, sshd, s3, slurm)
    c = wf.Campaign(tmp_path, env, s3, s3.make_bucket(), fail=True)
    c.config["runs"] = [c.config["runs"][2]]  # r3: no resume files, its calibrate is submitted at once
    c.config["sync_in_all"] = []
    c.config["calibrate"]["mode"] = "command"
    c.write_config()
    try:
        proc = c.snakemake(*PROFILE, cores=False, timeout=240)
    except subprocess.TimeoutExpired:
        slurm.cancel_all()
        raise
    assert proc.returncode != 0, wf.show(proc)
    assert "snapshot_run" not in wf.ran_rules(proc)
    assert any("submitted with SLURM jobid" in line and "rule_calibrate_run" in line
               for line in (proc.stdout + proc.stderr).splitlines()), wf.show(proc)
    receipts = tmp_path / "results" / "r3" / "receipts"
    assert not (receipts / "calibrate.json").exists() and not (receipts / "snapshot.json").exists()
    failed = json.loads((receipts / "calibrate.json.failed").read_text())
    assert failed["exit_code"] == 7 and failed["slurm_job_id"]  # it failed inside its SLURM job
    assert wf.s3_objects(c, "runs/") == {} and not (c.hpc / "runs").exists()  # nothing pushed
