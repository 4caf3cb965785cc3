"""Where the merged branches meet: the same user scenario through every engine/backend.

Each table row is a scenario a user runs with the real CLI against the suite's real servers.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_s3_engine import make_tree, write_config  # noqa: E402

pytestmark = pytest.mark.integration

SECRET = "p@ss/w0rd"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# An unreachable endpoint (a typo in endpoint_url, a server that is down) is a prompt one-line
# runtime error for both engines: rclone's default of 10 low-level retries with backoff made the
# first listing hang for many minutes.  The endpoint's password never shows.
@pytest.mark.parametrize("engine, seconds", [("aws", 90), ("rclone", 90)])
def test_unreachable_endpoint_fails_promptly_without_secrets(s3, run_cli, tmp_path, engine, seconds):
    if engine == "rclone" and not shutil.which("rclone"):
        pytest.skip("rclone not installed")
    src = make_tree(tmp_path / "src", {"a/x.csv": b"1"})
    endpoint = f"http://user:{SECRET}@127.0.0.1:{closed_port()}"
    cfg = write_config(tmp_path / "c.yml", {"up": {"type": "s3sync", "source": str(src),
                                                   "target": "s3://bucket/p/", "endpoint_url": endpoint}})
    start = time.monotonic()
    done = run_cli(["sync", "--engine", engine, "-v", str(cfg)], env=s3.env, timeout=seconds + 60)
    took = time.monotonic() - start
    assert done.returncode == 1, done.stderr
    assert took < seconds, f"{engine} took {took:.0f}s"
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "w0rd" not in done.stdout + done.stderr
