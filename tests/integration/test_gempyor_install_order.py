"""Both flepimop-sync and flepiMoP's gempyor install a `flepimop` script: what the user gets.

Each order is installed into its own venv (wheels built once; dependencies come from this
environment and the cached gempyor venv, so nothing is fetched per test):

| installed last | `flepimop` | `flepimop sync` | `flepimop batch-calibrate` | `flepimop-sync` |
|---|---|---|---|---|
| flepimop-sync | ours: lists our `sync` and flepiMoP's commands | ours | forwarded to gempyor | ours |
| gempyor | gempyor's | gempyor's own sync | gempyor's | ours |
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gempyor_fixtures import gempyor_wheel
from helpers import build_once

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def wheels(tmp_path_factory, gempyor_client):
    """Both wheels: gempyor's built once per sdist and cached (gempyor_wheel), ours once per run
    (under xdist the workers share the base temp directory's parent; the first to take the lock
    builds it)."""
    def build(shared: Path) -> None:
        ours = shared / "flepimop-sync-src"  # a copy: building in-tree writes build/
        shutil.rmtree(ours, ignore_errors=True)
        ours.mkdir()
        for item in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / item, ours / item)
        shutil.copytree(REPO / "src", ours / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(shared / "out"),
                        str(ours)], check=True, capture_output=True, text=True, timeout=900)

    shared = build_once(tmp_path_factory.getbasetemp().parent / "install-order-wheel", build)
    return {"flepimop-sync": next((shared / "out").glob("flepimop_sync-*.whl")),
            "gempyor": gempyor_wheel(gempyor_client.sdist)}


def _venv(path: Path, gempyor_client) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(path)], check=True)
    site = next(path.glob("lib/python*/site-packages"))
    deps = next(gempyor_client.venv.glob("lib/python*/site-packages"))
    # the dependencies (click, pandas, ...) of both, without their flepimop/gempyor packages
    (site / "deps.pth").write_text(f"{deps}\n")
    return path


@pytest.mark.parametrize("order", [("gempyor", "flepimop-sync"), ("flepimop-sync", "gempyor")],
                         ids=["flepimop-sync-last", "gempyor-last"])
def test_install_order(order, wheels, gempyor_client, tmp_path):
    venv = _venv(tmp_path / "venv", gempyor_client)
    for name in order:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--force-reinstall",
                        "--no-deps", "--no-index", str(wheels[name])], check=True, capture_output=True, text=True,
                       timeout=600)

    def run(*argv):
        return subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=300,
                              env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)})

    ours_sync = run("flepimop-sync", "--help")
    assert ours_sync.returncode == 0 and "--fprefix" in ours_sync.stdout and "--snakemake-rules" in ours_sync.stdout
    top = run("flepimop", "--help")
    sync = run("flepimop", "sync", "--help")
    batch = run("flepimop", "batch-calibrate", "--help")
    assert top.returncode == sync.returncode == batch.returncode == 0, (top.stderr, sync.stderr, batch.stderr)
    assert "--flepi-path" in batch.stdout  # gempyor's batch-calibrate either way
    if order[-1] == "flepimop-sync":
        assert "provided by flepimop-sync" in top.stdout
        commands = {line.split()[0] for line in top.stdout.split("Commands:")[1].splitlines() if line.strip()}
        assert {"sync", "batch-calibrate", "simulate", "compartments", "modifiers", "patch"} <= commands
        assert "--snakemake-rules" in sync.stdout  # ours
    else:
        assert "Flexible Epidemic Modeling Platform" in top.stdout and "provided by flepimop-sync" not in top.stdout
        assert "--snakemake-rules" not in sync.stdout  # gempyor's own sync
