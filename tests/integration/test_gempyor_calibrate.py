"""The calibrate step with the real `flepimop batch-calibrate --slurm` on the test bed's SLURM.

batch-calibrate submits a job array running `flepimop-inference-slot` (flepiMoP's R inference,
absent here) and returns at once. workflow/scripts/calibrate.py must then wait for every job it
submitted: without the inference script the jobs exit 127 and the step fails, naming each job
and its final state; with a small stand-in on PATH that writes what the R script writes and
sleeps, the step succeeds only after the jobs ended.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "workflow" / "scripts" / "calibrate.py"

STANDIN = """#!/bin/sh
# stand-in for flepiMoP's R inference: writes the files one slot writes, after a while
set -e
while [ $# -gt 0 ]; do
  case "$1" in
    --run_id) run="$2"; shift 2;;
    --this_slot) slot="$2"; shift 2;;
    --seir_modifiers_scenarios) seir="$2"; shift 2;;
    --outcome_modifiers_scenarios) outcome="$2"; shift 2;;
    *) shift;;
  esac
done
sleep {sleep}
for ftype in hnpi snpi hosp llik; do
  d="model_output/sample_2pop_${{seir}}_${{outcome}}/$run/$ftype/global/final"
  mkdir -p "$d"
  printf '%s\\n' "$ftype" > "$d/$(printf %09d "$slot").$run.$ftype.parquet"
done
date +%s.%N > "done.$slot"
"""


@pytest.fixture()
def project(gempyor_examples, tmp_path):
    proj = tmp_path / "project"
    shutil.copytree(gempyor_examples / "tutorials", proj)
    flepi = tmp_path / "flepi"
    (flepi / "info" / "cluster").mkdir(parents=True)
    (flepi / "info" / "cluster" / "testbed.yml").write_text("name: testbed\nmodules: []\n")
    for repo in (proj, flepi):  # batch-calibrate's manifest records both commits
        git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return proj, flepi


def run_calibrate(gempyor_client, slurm, proj, flepi, tmp_path, extra_path=None):
    cfg = {"mode": "batch-calibrate",
           "batch_calibrate": {"flepimop": str(gempyor_client.flepimop), "flepi_path": str(flepi),
                               "project_path": str(proj), "chains": 2, "nodes": 2, "cpus": 1, "memory": "500MB",
                               "cluster": "testbed", "skip_checkout": True, "time_limit": "5min"},
           "wait": {"poll_seconds": 1}}
    env = dict(slurm.env)
    env["PATH"] = os.pathsep.join([*(extra_path or []), env["PATH"]])
    receipt = tmp_path / "results" / "calibrate.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--run", "campaign1", "--model-config",
                           "config_sample_2pop_inference.yml", "--calibrate-config", json.dumps(cfg),
                           "--receipt", str(receipt), "--log", str(tmp_path / "calibrate.log")],
                          cwd=proj, env=env, capture_output=True, text=True, timeout=900)
    return done, receipt


def test_failed_jobs_fail_the_step(gempyor_client, slurm, project, tmp_path):
    proj, flepi = project
    done, receipt = run_calibrate(gempyor_client, slurm, proj, flepi, tmp_path)
    log = (tmp_path / "calibrate.log").read_text()
    assert done.returncode == 1, done.stderr + log
    assert not receipt.exists()
    failed = json.loads(Path(f"{receipt}.failed").read_text())
    assert failed["status"] == "failed" and len(failed["job_ids"]) == 1, failed
    (job,) = failed["jobs"]
    assert job["state"] == "FAILED" and set(job["tasks"]) == {f"{job['job_id']}_1", f"{job['job_id']}_2"}
    assert all(v == "FAILED 127:0" for v in job["tasks"].values()), job
    assert f"job {job['job_id']} FAILED" in failed["error"]
    assert failed["flepimop_run_id"].startswith("sample_2pop-")  # gempyor's job name, from its log


def test_step_succeeds_only_after_the_jobs_ended(gempyor_client, slurm, project, tmp_path):
    proj, flepi = project
    bin_dir = tmp_path / "standin"
    bin_dir.mkdir()
    (bin_dir / "flepimop-inference-slot").write_text(STANDIN.format(sleep=4))
    (bin_dir / "flepimop-inference-slot").chmod(0o755)
    done, receipt = run_calibrate(gempyor_client, slurm, proj, flepi, tmp_path, extra_path=[str(bin_dir)])
    log = (tmp_path / "calibrate.log").read_text()
    assert done.returncode == 0, done.stderr + log
    body = json.loads(receipt.read_text())
    assert body["status"] == "ok" and [j["state"] for j in body["jobs"]] == ["COMPLETED"]
    # both array tasks had finished (their marker files exist) before the receipt was written
    ends = [float((proj / f"done.{slot}").read_text()) for slot in (1, 2)]
    assert max(ends) <= receipt.stat().st_mtime
    run_id = body["flepimop_run_id"]
    scenario = "Ro_all_test_limits"  # <seir>_<outcome> scenarios of the tutorial config
    assert run_id.startswith("sample_2pop-")
    written = {p.relative_to(proj / "model_output").as_posix() for p in (proj / "model_output").rglob("*.parquet")}
    assert written == {f"sample_2pop_{scenario}/{run_id}_{scenario}/{f}/global/final/00000000{s}.{run_id}_{scenario}.{f}.parquet"
                       for f in ("hnpi", "snpi", "hosp", "llik") for s in (1, 2)}
    assert (proj / "manifest.json").exists()
