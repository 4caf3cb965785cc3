"""Where the merged branches meet: the same user scenario through every engine/backend.

Each table row is a scenario a user runs with the real CLI against the suite's real servers.
"""

from __future__ import annotations

import shutil
import socket
import time

import pytest


from helpers import write_config
from trees import list_files, write_tree

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
    src = write_tree(tmp_path / "src", {"a/x.csv": b"1"})
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


# A relative source in a working directory with glob characters, delete: true in the config:
# the upload lands, a dry run right after says nothing would move, and --reverse (which
# delete: true does not cover) brings files back without deleting the local-only one.
@pytest.mark.parametrize("engine", ["aws", "rclone"])
def test_delete_true_reverse_and_dry_run_after_sync_in_a_glob_cwd(s3, run_cli, tmp_path, engine):
    if engine == "rclone" and not shutil.which("rclone"):
        pytest.skip("rclone not installed")
    bucket = s3.make_bucket()
    cwd = tmp_path / "runs [1]*"
    write_tree(cwd / "out", {"a/x.csv": b"1", "b?.txt": b"22"})
    cfg = write_config(tmp_path / "c.yml", {"up": {"type": "s3sync", "source": "out", "target": f"s3://{bucket}/p/",
                                                   "endpoint_url": s3.endpoint, "delete": True}})
    done = run_cli(["sync", "--engine", engine, str(cfg)], env=s3.env, cwd=str(cwd))
    assert done.returncode == 0, done.stderr
    assert sorted(s3.list(bucket, "p/")) == ["p/out/a/x.csv", "p/out/b?.txt"]
    again = run_cli(["sync", "--engine", engine, "-n", str(cfg)], env=s3.env, cwd=str(cwd))
    assert again.returncode == 0, again.stderr
    assert "would transfer 0 (0 B), delete 0" in again.stdout, again.stdout
    (cwd / "out" / "local-only.txt").write_text("keep")
    back = run_cli(["sync", "--engine", engine, "--reverse", str(cfg)], env=s3.env, cwd=str(cwd))
    assert back.returncode == 0, back.stderr
    assert (cwd / "out" / "local-only.txt").read_text() == "keep"


# --delete: the dry run's "would delete" list is exactly what the real run deletes, with a filter
# (a selected stale file goes, an unselected one stays), for local rsync and both S3 directions.
@pytest.mark.parametrize("kind", ["rsync", "s3up-aws", "s3up-rclone", "s3down-aws", "s3down-rclone"])
def test_delete_dry_run_names_exactly_what_the_run_deletes(s3, run_cli, tmp_path, kind):
    import json

    engine = kind.split("-")[1] if "-" in kind else "aws"
    if engine == "rclone" and not shutil.which("rclone"):
        pytest.skip("rclone not installed")
    files = {"keep/a.csv": b"1", "keep/b.csv": b"2"}
    stale = {"keep/old.csv": b"s", "keep/[x]*.csv": b"g", "other.txt": b"unselected"}
    filters = ["keep/**"]
    src = write_tree(tmp_path / "src", files)
    if kind == "rsync":
        dst = write_tree(tmp_path / "dst" / "src", {**files, **stale})
        proto = {"type": "rsync", "source": str(src), "target": str(tmp_path / "dst"), "filters": filters}
        remaining = lambda: sorted(list_files(dst))  # noqa: E731
    elif kind.startswith("s3up"):
        bucket = s3.make_bucket()
        for rel, data in {**files, **stale}.items():
            s3.put(bucket, f"p/src/{rel}", data)
        proto = {"type": "s3sync", "source": str(src), "target": f"s3://{bucket}/p/", "filters": filters,
                 "endpoint_url": s3.endpoint}
        remaining = lambda: sorted(k[len("p/src/"):] for k in s3.list(bucket, "p/src/"))  # noqa: E731
    else:
        bucket = s3.make_bucket()
        for rel, data in files.items():
            s3.put(bucket, f"p/{rel}", data)
        dst = write_tree(tmp_path / "dst", {**files, **stale})
        proto = {"type": "s3sync", "source": f"s3://{bucket}/p/", "target": str(dst), "filters": filters,
                 "endpoint_url": s3.endpoint}
        remaining = lambda: sorted(list_files(dst))  # noqa: E731
    cfg = write_config(tmp_path / "c.yml", {"p": proto})
    before = set(remaining())
    dry = run_cli(["sync", "--engine", engine, "--delete", "-n", str(cfg)], env=s3.env)
    assert dry.returncode == 0, dry.stderr
    would = sorted(line.split("would delete: ", 1)[1] for line in dry.stdout.splitlines()
                   if line.startswith("would delete: "))
    real = run_cli(["sync", "--engine", engine, "--delete", "--json", str(cfg)], env=s3.env)
    assert real.returncode == 0, real.stderr
    gone = sorted(before - set(remaining()))
    assert would == gone == ["keep/[x]*.csv", "keep/old.csv"], (would, gone, dry.stdout)
    assert sorted(json.loads(real.stdout)["deleted"]) == gone
