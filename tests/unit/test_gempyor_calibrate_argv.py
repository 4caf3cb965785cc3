"""workflow/scripts/calibrate.py: the batch-calibrate argv built from `calibrate.batch_calibrate`."""

import importlib.util
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"
_spec = importlib.util.spec_from_file_location("calibrate_script", SCRIPTS / "calibrate.py")
calibrate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(calibrate)

BASE = ["flepimop", "batch-calibrate", "--flepi-path", "/opt/flepiMoP", "--project-path", ".", "--blocks", "1",
        "--chains", "1", "--samples", "1", "--simulations", "1", "--time-limit", "1hr", "--batch-system", "slurm",
        "--nodes", "1", "--cpus", "1", "--memory", "1GB"]


@pytest.mark.parametrize("options, env, expected", [
    ({}, {"FLEPI_PATH": "/opt/flepiMoP"}, BASE + ["-vv", "m.yml"]),
    ({"flepi_path": "/opt/flepiMoP", "chains": 50, "nodes": 50, "memory": "4GB", "cluster": "longleaf",
      "conda_env": "flepimop-env", "sync_protocol": "s3push", "extra": ["partition=normal"], "skip_checkout": True,
      "args": ["--debug"]}, {},
     [*BASE[:8], "--chains", "50", *BASE[10:16], "--batch-system", "slurm", "--nodes", "50", "--cpus", "1",
      "--memory", "4GB", "--conda-env", "flepimop-env", "--cluster", "longleaf", "--sync-protocol", "s3push",
      "--extra", "partition=normal", "--skip-checkout", "--debug", "-vv", "m.yml"]),
    ({"flepimop": "python -m flepimop_sync"}, {"FLEPI_PATH": "/opt/flepiMoP"},
     ["python", "-m", "flepimop_sync", *BASE[1:], "-vv", "m.yml"]),
])
def test_batch_calibrate_argv(options, env, expected):
    env = dict(env)
    assert calibrate.batch_calibrate_argv({"batch_calibrate": options}, "m.yml", env) == expected
    assert env["FLEPI_PATH"] == "/opt/flepiMoP"  # gempyor reads info/cluster/ under $FLEPI_PATH


@pytest.mark.parametrize("options, env, message", [
    ({}, {}, "config key 'calibrate.batch_calibrate.flepi_path' is not set and $FLEPI_PATH is empty"),
    ({"batch_system": "local"}, {"FLEPI_PATH": "/x"}, "config key 'calibrate.batch_calibrate.batch_system': 'local'"),
])
def test_batch_calibrate_config_errors(options, env, message):
    with pytest.raises(calibrate.CalibrateError, match=message.replace("$", r"\$").replace(".", r"\.")):
        calibrate.batch_calibrate_argv({"batch_calibrate": options}, "m.yml", dict(env))


def test_failure_writes_failed_receipt_and_no_receipt(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEPI_PATH", raising=False)
    receipt = tmp_path / "r" / "calibrate.json"
    code = calibrate.calibrate("run1", "m.yml", {"mode": "batch-calibrate", "batch_calibrate": {}}, receipt,
                               tmp_path / "calibrate.log")
    assert code == 1 and not receipt.exists()
    failed = (tmp_path / "r" / "calibrate.json.failed").read_text()
    assert "flepi_path" in failed and '"run": "run1"' in failed
