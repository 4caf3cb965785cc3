"""The whole DAG (real snakemake) with the real flepiMoP client, snapshot to the suite's S3.

- calibrate.mode command: the real `flepimop simulate` (blocking) on the vendored tutorial config;
  the workflow's run name reaches gempyor as FLEPI_RUN_INDEX, so its outputs, the receipts and the
  snapshot all name the same run; an earlier run in model_output/ is not pushed.
- calibrate.mode batch-calibrate: the real `flepimop batch-calibrate --slurm` on the test bed's
  SLURM; without the R inference the jobs fail, so the DAG fails and the snapshot never runs;
  with a stand-in inference the DAG succeeds after the jobs ended and the snapshot holds exactly
  that run (gempyor's job name, read from batch-calibrate's log).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import show
from test_gempyor_calibrate import STANDIN
from trees import list_files

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
RUN = "campaign_w48"
EARLIER = "campaign_w47"


def _git_commit(repo: Path) -> None:
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)


class Project:
    def __init__(self, root: Path, examples: Path, client, s3, env: dict, calibrate: dict):
        self.root, self.s3 = root, s3
        shutil.copytree(examples / "tutorials", root)
        self.bucket = s3.make_bucket()
        # an earlier run's outputs and report, which the snapshot must leave alone
        earlier = root / "model_output" / "sample_2pop_Ro_all_test_limits" / EARLIER / "hosp"
        earlier.mkdir(parents=True)
        (earlier / f"000000001.{EARLIER}.hosp.parquet").write_text("earlier")
        (root / f"{EARLIER}_fit.pdf").write_text("earlier")
        (root / "flepimop_sync.yml").write_text(yaml.safe_dump({"sync": {"snapshot": {
            "type": "s3sync", "source": "model_output/", "target": f"s3://{self.bucket}/runs/",
            "endpoint_url": s3.endpoint}}}))
        self.config = {"sync_configs": ["flepimop_sync.yml"], "runs": [{"name": RUN}],
                       "resume_fetch": {"enabled": False}, "calibrate": calibrate}
        (root / "config.yaml").write_text(yaml.safe_dump(self.config))
        self.env = dict(env)
        self.env["PATH"] = f"{client.bin}{os.pathsep}{self.env['PATH']}"
        self.env["PYTHONPATH"] = str(REPO / "src")

    def snakemake(self, *args, timeout=900):
        return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(self.root),
                               "--configfile", str(self.root / "config.yaml"), "--cores", "1", *args],
                              env=self.env, cwd=self.root, text=True, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def receipt(self, name):
        return json.loads((self.root / "results" / RUN / "receipts" / f"{name}.json").read_text())

    def pushed(self) -> set[str]:
        return set(self.s3.list(self.bucket))


def test_blocking_simulate_names_the_run_and_snapshot_is_that_run(tmp_path, gempyor_client, gempyor_examples,
                                                                  base_env, s3):
    p = Project(tmp_path / "project", gempyor_examples, gempyor_client, s3, {**base_env, **s3.env},
                {"mode": "command", "command": "flepimop simulate {model_config}",
                 "outputs": "model_output"})
    p.config["model_config"] = "config_sample_2pop_modifiers.yml"
    (p.root / "config.yaml").write_text(yaml.safe_dump(p.config))
    # gempyor's own code, files and names, with numba's documented switch to run it interpreted:
    # JIT-compiling the rk4 step took ~27 s of CPU per scenario (60 s for this config), the
    # interpreted run of this small model ~1 s; nothing this test checks depends on compiled code
    p.env["NUMBA_DISABLE_JIT"] = "1"
    proc = p.snakemake()
    assert proc.returncode == 0, show(proc) + (p.root / "results" / RUN / "logs" / "calibrate.log").read_text()
    cal = p.receipt("calibrate")
    assert cal["run"] == cal["flepimop_run_id"] == RUN and cal["mode"] == "command"
    written = {w for w in list_files(p.root / "model_output") if EARLIER not in w}
    assert written and all(f"/{RUN}/" in w and f".{RUN}." in w for w in written), sorted(written)
    # the snapshot: exactly that run (no earlier run, no other pdf), under runs/<run>/
    assert p.pushed() == {f"runs/{RUN}/{w}" for w in written}
    snap = p.receipt("snapshot")
    assert snap["flepimop_run_id"] == RUN and snap["status"] == "ok"


def batch_calibrate_config(flepi: Path, gempyor_client) -> dict:
    return {"mode": "batch-calibrate",
            "batch_calibrate": {"flepimop": str(gempyor_client.flepimop), "flepi_path": str(flepi),
                                "project_path": ".", "chains": 2, "nodes": 2, "cpus": 1, "memory": "500MB",
                                "cluster": "testbed", "skip_checkout": True, "time_limit": "5min"},
            "wait": {"poll_seconds": 1}}


@pytest.fixture()
def flepi(tmp_path):
    flepi = tmp_path / "flepi"
    (flepi / "info" / "cluster").mkdir(parents=True)
    (flepi / "info" / "cluster" / "testbed.yml").write_text("name: testbed\nmodules: []\n")
    _git_commit(flepi)
    return flepi


@pytest.mark.parametrize("standin", [False, True], ids=["inference-missing", "inference-standin"])
def test_batch_calibrate_dag(standin, tmp_path, gempyor_client, gempyor_examples, base_env, s3, slurm, flepi):
    p = Project(tmp_path / "project", gempyor_examples, gempyor_client, s3, {**base_env, **s3.env, **slurm.env},
                batch_calibrate_config(flepi, gempyor_client))
    p.config["model_config"] = "config_sample_2pop_inference.yml"
    (p.root / "config.yaml").write_text(yaml.safe_dump(p.config))
    _git_commit(p.root)
    if standin:
        bin_dir = tmp_path / "standin"
        bin_dir.mkdir()
        (bin_dir / "flepimop-inference-slot").write_text(
            STANDIN.format(sleep=3) + 'printf pdf > "${run}_fit.pdf"\n')
        (bin_dir / "flepimop-inference-slot").chmod(0o755)
        p.env["PATH"] = f"{bin_dir}{os.pathsep}{p.env['PATH']}"
    proc = p.snakemake()
    receipts = p.root / "results" / RUN / "receipts"
    if not standin:
        assert proc.returncode != 0, show(proc)
        assert not (receipts / "calibrate.json").exists() and not (receipts / "snapshot.json").exists()
        failed = json.loads((receipts / "calibrate.json.failed").read_text())
        (job,) = failed["jobs"]
        assert job["state"] == "FAILED" and set(job["tasks"].values()) == {"FAILED 127:0"}
        assert p.pushed() == set()
        return
    assert proc.returncode == 0, show(proc) + (p.root / "results" / RUN / "logs" / "calibrate.log").read_text()
    cal = p.receipt("calibrate")
    run_id = cal["flepimop_run_id"]
    assert cal["run"] == RUN and run_id.startswith("sample_2pop-") and [j["state"] for j in cal["jobs"]] == ["COMPLETED"]
    assert max(float((p.root / f"done.{s}").read_text()) for s in (1, 2)) <= (receipts / "calibrate.json").stat().st_mtime
    scen = f"{run_id}_Ro_all_test_limits"
    expected = {f"runs/{run_id}/sample_2pop_Ro_all_test_limits/{scen}/{f}/global/final/00000000{s}.{scen}.{f}.parquet"
                for f in ("hnpi", "snpi", "hosp", "llik") for s in (1, 2)}
    expected |= {f"runs/{run_id}/{scen}_fit.pdf", f"runs/{run_id}/manifest.json"}
    assert p.pushed() == expected
    assert json.loads(p.s3.get(p.bucket, f"runs/{run_id}/manifest.json"))  # batch-calibrate's own manifest
