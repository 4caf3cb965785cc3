"""The campaign through the SLURM profile, exactly as the README gives it
(`snakemake --workflow-profile workflow/profiles/slurm`, no other flag), on the suite's one-node
SLURM cluster, which has no accounting (sacct fails there).

Each run's calibrate is submitted as a SLURM job; the sync steps (resume_fetch, snapshot,
sync_*) are localrules and run on the submitting host, as on clusters whose compute nodes have
no network.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime

import pytest

import test_workflow as wf

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

PROFILE = ("--workflow-profile", "workflow/profiles/slurm")


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


@pytest.mark.timeout(600)
def test_campaign_under_the_slurm_profile_as_written(tmp_path, base_env, sshd, s3, slurm):
    env = wf.merged_env(base_env, sshd, s3, slurm)
    c = wf.Campaign(tmp_path, env, s3, s3.make_bucket())
    try:
        proc = c.snakemake(*PROFILE, cores=False, timeout=420)
        ended = time.time()
    except subprocess.TimeoutExpired:
        slurm.cancel_all()
        raise
    wf.check_full_dag(c, proc, slurm_job=True)
    out = proc.stdout + proc.stderr
    # one sbatch per run, all of them calibrate; the sync steps ran locally
    submitted = [line for line in out.splitlines() if "submitted with SLURM jobid" in line]
    assert len(submitted) == len(wf.RUNS), wf.show(proc)
    assert all("rule_calibrate_run" in line for line in submitted), submitted
    for run in wf.RUNS:
        cal = c.receipt("calibrate", run)
        assert cal["slurm_job_id"] and any(f"SLURM jobid {cal['slurm_job_id']} " in line for line in submitted)
        manifest = json.loads((tmp_path / "manifests" / f"{run}.json").read_text())
        assert manifest["slurm_job_id"] == cal["slurm_job_id"]  # the stand-in itself ran inside the job
        # the run noticed each job's end within seconds (no 40 s first check, no growing waits)
        gap = _seconds(c.receipt("snapshot", run)["started"]) - _seconds(cal["finished"])
        assert gap <= 20, (run, gap)
    last = max(_seconds(c.receipt("snapshot", run)["finished"]) for run in wf.RUNS)
    assert ended - last <= 20, ended - last

    # nothing to do the second time, still through the SLURM profile
    again = c.snakemake(*PROFILE, cores=False, timeout=120)
    assert again.returncode == 0 and wf.ran_rules(again) == set(), wf.show(again)


@pytest.mark.timeout(300)
def test_unreachable_scheduler_fails_loudly_in_bounded_time(tmp_path, base_env, sshd, s3, slurm):
    """sbatch works, but squeue cannot reach the controller: the run stops with an error
    naming the command after `slurm_status_timeout` seconds instead of waiting forever."""
    env = wf.merged_env(base_env, sshd, s3, slurm)
    broken = tmp_path / "broken-bin"
    broken.mkdir()
    squeue = broken / "squeue"
    squeue.write_text("#!/bin/sh\necho 'squeue: error: Unable to contact slurm controller (connect failure)' >&2\n"
                      "exit 1\n")
    squeue.chmod(0o755)
    env["PATH"] = f"{broken}{os.pathsep}{env['PATH']}"
    c = wf.Campaign(tmp_path, env, s3, "unused")
    c.config["runs"] = [c.config["runs"][2]]  # r3: nothing to fetch, calibrate is submitted at once
    c.config["slurm_status_timeout"] = 5
    c.write_config()
    start = time.monotonic()
    try:
        proc = c.snakemake(*PROFILE, "results/r3/receipts/calibrate.json", cores=False, timeout=240)
    finally:
        slurm.cancel_all()
    elapsed = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, wf.show(proc)
    assert "could not ask the scheduler" in out and "Unable to contact slurm controller" in out, wf.show(proc)
    assert elapsed < 120, elapsed
