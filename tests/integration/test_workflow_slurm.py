"""The campaign DAG through `snakemake --executor slurm` on the suite's one-node SLURM cluster.

calibrate is submitted as a SLURM job; the sync rules (resume_fetch, snapshot, sync_*) are
localrules and run on the submitting host, as on clusters whose compute nodes have no network.
"""

from __future__ import annotations

import json
import subprocess

import pytest

import test_workflow as wf

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

SLURM_ARGS = (
    "--profile", str(wf.REPO / "workflow/profiles/slurm"),
    "--jobs", "2",
    "--latency-wait", "5",
    "--slurm-status-command", "squeue",          # no accounting on the test cluster
    "--slurm-init-seconds-before-status-checks", "1",
    "--slurm-no-account",
    "--default-resources", "runtime=5", "mem_mb=200",
)


@pytest.mark.timeout(300)
def test_campaign_dag_under_slurm(tmp_path, base_env, sshd, s3, slurm):
    env = wf.merged_env(base_env, sshd, s3, slurm)
    c = wf.Campaign(tmp_path, env, s3, s3.make_bucket())
    try:
        proc = c.snakemake(*SLURM_ARGS, timeout=240)
    except subprocess.TimeoutExpired:
        slurm.cancel_all()
        raise
    wf.check_full_dag(c, proc)
    out = proc.stdout + proc.stderr
    # exactly one job went through sbatch, and it is calibrate; the sync rules ran locally
    submitted = [line for line in out.splitlines() if "submitted with SLURM jobid" in line]
    assert len(submitted) == 1 and "rule_calibrate" in submitted[0], wf.show(proc)
    cal = c.receipt("calibrate")
    assert cal["slurm_job_id"] and f"SLURM jobid {cal['slurm_job_id']} " in submitted[0], (cal, submitted)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["slurm_job_id"] == cal["slurm_job_id"]  # the stand-in itself ran inside the job

    # nothing to do the second time, still through the SLURM executor
    again = c.snakemake(*SLURM_ARGS, timeout=120)
    assert again.returncode == 0 and wf.ran_rules(again) == set(), wf.show(again)
