"""Faults mid-transfer: the server dies while data flows.

- sshd is killed (listener and every live connection) during a large rsync, push and pull;
- the S3 server is killed during a large upload (one object big enough for multipart) and
  during a download.

Each time: exit 1 with a one-line message naming the protocol and the failed step; no file at
the target is truncated under its final name (whatever landed is whole); once the server is back,
the same command completes and every file's checksum equals the source.

The transfers are rate-limited (a relay around the test bed's ssh; the aws CLI's own
``s3.max_bandwidth``) so the kill always lands half-way.  With the moto backend (in-memory) the
bucket is lost on restart, so the test recreates it before the rerun; the rclone backend keeps
its data, which is the stronger check (partially uploaded objects would still be there).
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from helpers import (
    assert_no_truncated_final,
    aws_throttle_config,
    cli_running,
    make_big_tree,
    put_random_objects,
    received_bytes,
    s3_digests,
    throttled_rsh,
    tree_digest,
    write_config,
)

pytestmark = pytest.mark.integration


def _kill_when(args, env, started, server):
    """Run the CLI, stop ``server`` once ``started()`` holds; (exit code, stdout, stderr)."""
    with cli_running(args, env, started, what="data to reach the target") as proc:
        server.stop()
        out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_sshd_killed_during_rsync(sshd, run_cli, tmp_path, direction):
    local = tmp_path / "local"
    remote = tmp_path / "remote"
    if direction == "push":
        digests = make_big_tree(local, count=20, size=512 * 1024)
        remote.mkdir()
        source, target, receiving = f"{local}/", f"{sshd.alias}:{remote}/", remote
    else:
        digests = make_big_tree(remote, count=20, size=512 * 1024)
        local.mkdir()
        source, target, receiving = f"{sshd.alias}:{remote}/", f"{local}/", local
    source_root = local if direction == "push" else remote
    cfg = write_config(tmp_path / "c.yml", {"big": {"type": "rsync", "source": source, "target": target}})
    env = dict(sshd.env)
    env["RSYNC_RSH"] = throttled_rsh(tmp_path, sshd.rsh, rate=2_000_000)
    code, out, err = _kill_when(["sync", cfg], env, lambda: received_bytes(receiving) > 1_000_000, sshd)
    assert code == 1, (code, out, err)
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: protocol 'big': rsync failed (rsync exit"), err
    assert "Traceback" not in err
    got = tree_digest(receiving)
    assert 0 < len([p for p in got if p in digests]) < len(digests) or len(got) < len(digests), got
    assert_no_truncated_final(receiving, digests)
    sshd.start()
    if direction == "pull":
        assert tree_digest(remote) == digests, "the source changed"
    again = run_cli(["sync", cfg], env=sshd.env)
    assert again.returncode == 0, again.stderr
    assert tree_digest(receiving) == digests
    assert tree_digest(source_root) == digests


def test_s3_server_killed_during_upload(s3, run_cli, tmp_path):
    src = tmp_path / "src"
    digests = make_big_tree(src, count=4, size=1024 * 1024)
    big = os.urandom(12 * 1024 * 1024)  # above the 8 MB threshold: a multipart upload
    (src / "data/big.bin").write_bytes(big)
    digests["data/big.bin"] = hashlib.sha256(big).hexdigest()
    bucket = s3.make_bucket()
    cfg = write_config(tmp_path / "c.yml", {"up": {"type": "s3sync", "source": f"{src}/",
                                                   "target": f"s3://{bucket}/run/"}})
    env = dict(s3.env)
    env["AWS_CONFIG_FILE"] = str(aws_throttle_config(tmp_path, "4MB/s", multipart_threshold="8MB"))
    env["AWS_MAX_ATTEMPTS"] = "2"  # fail fast once the server is gone
    t0 = time.monotonic()
    code, out, err = _kill_when(["sync", cfg], env, lambda: time.monotonic() - t0 > 2.5, s3)
    assert code == 1, (code, out, err)
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: protocol 'up': aws s3 sync failed (aws exit"), err
    assert "endpoint" in line or "connect" in line.lower(), line
    s3.start()
    if not s3.persistent:
        s3.client.create_bucket(Bucket=bucket)  # moto is in-memory: the bucket died with it
    landed = s3_digests(s3, bucket, "run/")
    assert len(landed) < len(digests), "the upload finished before the fault"
    for rel, digest in landed.items():
        assert digests.get(rel) == digest, f"{rel} is truncated or corrupt under its final key"
    again = run_cli(["sync", cfg], env=s3.env)
    assert again.returncode == 0, again.stderr
    assert s3_digests(s3, bucket, "run/") == digests
    assert tree_digest(src) == digests


@pytest.mark.skipif(os.environ.get("FLEPIMOP_TEST_S3") == "moto", reason="moto loses the source bucket on restart")
def test_s3_server_killed_during_download(s3, run_cli, tmp_path):
    if not s3.persistent:
        pytest.skip("the S3 backend loses its data on restart")
    bucket = s3.make_bucket()
    digests = put_random_objects(s3, bucket, "run/", count=8, size=3 * 1024 * 1024)
    local = tmp_path / "local"
    local.mkdir()
    cfg = write_config(tmp_path / "c.yml", {"down": {"type": "s3sync", "source": f"s3://{bucket}/run/",
                                                     "target": f"{local}/"}})
    env = dict(s3.env)
    env["AWS_CONFIG_FILE"] = str(aws_throttle_config(tmp_path, "3MB/s", concurrency=2))
    env["AWS_MAX_ATTEMPTS"] = "2"  # fail fast once the server is gone
    code, out, err = _kill_when(["sync", cfg], env, lambda: received_bytes(local) > 1_000_000, s3)
    assert code == 1, (code, out, err)
    assert "error: protocol 'down': aws s3 sync failed (aws exit" in err, err
    assert_no_truncated_final(local, digests)
    assert set(tree_digest(local)) <= set(digests), sorted(tree_digest(local))  # no temp debris
    s3.start()
    again = run_cli(["sync", cfg], env=s3.env)
    assert again.returncode == 0, again.stderr
    assert tree_digest(local) == digests
