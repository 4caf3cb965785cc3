"""Smoke run of the benchmarks: every figure executes (its numbers are not asserted).

``python benchmarks/run.py --quick`` brings up its own loopback sshd and S3 server (tests/testbed.py)
and runs each figure with small trees and 2 pairs (``--pairs 2``: the alternation of ours and
the baseline, with each side's reset between pairs, needs two).  Timing budgets are for docs/performance.md,
not for CI: this only checks that the benchmark command works and reports every figure, so it
skips the untimed warm-up pair (``--no-warmup``: a quarter of the runs, and no number is asserted).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "benchmarks" / "run.py"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
PAIRS = 2  # alternation (each side reset between pairs) needs two; no number is asserted


def _figures() -> list[str]:
    done = subprocess.run([sys.executable, str(RUN), "--list"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def test_quick_benchmark_runs_every_figure(tmp_path):
    for tool in ("rsync", "ssh", "/usr/sbin/sshd", "aws"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed (scripts/setup.sh)")
    figures = _figures()
    assert {"help", "dryrun", "first", "noop", "s3", "s3exact", "snakemake"} <= set(figures)
    out = tmp_path / "results.json"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--no-warmup", "--pairs", str(PAIRS), "--json", str(out),
                           "--workdir", str(tmp_path / "w")],
                          capture_output=True, text=True, timeout=540, env=env, cwd=tmp_path)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    table = done.stdout
    for name in figures:
        assert any(line.startswith(f"{name}:") for line in table.splitlines()), (name, table)
    results = json.loads(out.read_text())
    assert [r["name"] for r in results["results"]] == figures
    for r in results["results"]:
        assert r["status"] in ("pass", "miss", "skipped"), r  # "error" means the figure could not run
        if r["status"] != "skipped":
            assert len(r["ours_s"]) == len(r["baseline_s"]) == PAIRS
            assert r["ratio"] is not None
    assert results["machine"]["nproc"]
    # nothing left running: the servers were stopped by PID
    assert not list((tmp_path / "w").glob("sshd/sshd.pid")) or not _alive_pidfile(tmp_path / "w" / "sshd" / "sshd.pid")


def _alive_pidfile(path: Path) -> bool:
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def test_quick_s3_engine_benchmark_runs_every_figure(tmp_path):
    """benchmarks/s3_engine.py --quick: every figure of the fast engine runs and checks its files."""
    for tool in ("aws", "rclone"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed")
    out = tmp_path / "s3engine.json"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "s3_engine.py"), "--quick", "--pairs", "1",
                           "--json", str(out), "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=540, env=env, cwd=tmp_path)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    results = json.loads(out.read_text())
    assert [r["name"] for r in results["results"]] == ["up-1k", "down-1k", "up-5m", "down-5m", "noop-20k",
                                                       "explicit-100k"]
    assert all(r["ratio"] is not None and len(r["ours_s"]) == len(r["baseline_s"]) == 1 for r in results["results"])
