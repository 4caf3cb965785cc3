"""Without the vendored flepiMoP client the real-client tests are skipped with a reason naming what
is missing (shown in the summary by -ra); under CI=true that skip is a failure."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = '''
def test_needs_gempyor(gempyor_client):
    pass
'''


@pytest.mark.parametrize("ci, outcome", [("", "1 skipped"), ("true", "1 error")])
def test_missing_client_skips_or_fails_under_ci(tmp_path, ci, outcome):
    probe = ROOT / "tests" / "unit" / f"_probe_gempyor_{os.getpid()}_{ci or 'local'}_test.py"
    probe.write_text(PROBE)
    try:
        env = dict(os.environ, FLEPIMOP_GEMPYOR_SRC=str(tmp_path / "nowhere"), CI=ci)
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-n", "0", "-p", "no:cacheprovider",
                               str(probe)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    finally:
        probe.unlink()
    out = done.stdout + done.stderr
    assert outcome in out, out
    assert f"FLEPIMOP_GEMPYOR_SRC={tmp_path / 'nowhere'}: no gempyor-*.tar.gz there" in out, out
    if ci:
        assert "CI=true and a real-client test cannot run" in out and done.returncode != 0
    else:
        assert "SKIPPED" in out and done.returncode == 0
