"""Concurrency: two runs writing to one target never interleave.

The first run holds a lock on its destination (``$FLEPIMOP_SYNC_LOCK_DIR``) while its steps run;
a second run of the same protocol -- or of another protocol, or another spelling of the same
place -- refuses at once with exit 1 and a message naming the lock, and writes nothing.  The
first run then completes normally, and the lock is free again afterwards (also after a run was
killed: flock locks die with their process).
"""

from __future__ import annotations

import hashlib
import os

import pytest

from reliability_helpers import (
    MARK_VAR,
    aws_throttle_config,
    kill_marked,
    marked_pids,
    new_mark,
    wait_gone,
    make_big_tree,
    received_bytes,
    start_cli,
    throttled_rsh,
    tree_digest,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration


def _refused(done, lock_dir):
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: another flepimop sync is writing to"), line
    assert f"lock {lock_dir}" in line and ".lock is held" in line, line
    assert "pid " in line, line  # names the holder
    return line


@pytest.fixture
def slow_pull(sshd, tmp_path):
    """A slow rsync pull from hpc into tmp/local (20 x 256 KiB through a 2 MB/s relay)."""
    remote = tmp_path / "remote"
    digests = make_big_tree(remote, count=20, size=256 * 1024)
    local = tmp_path / "local"
    local.mkdir()
    lock_dir = tmp_path / "locks"
    env = dict(sshd.env)
    env["FLEPIMOP_SYNC_LOCK_DIR"] = str(lock_dir)
    slow_env = dict(env)
    slow_env["RSYNC_RSH"] = throttled_rsh(tmp_path, sshd.rsh, rate=2_000_000)
    return remote, local, digests, lock_dir, env, slow_env


def test_second_run_of_same_protocol_refuses_naming_the_lock(slow_pull, sshd, run_cli, tmp_path):
    remote, local, digests, lock_dir, env, slow_env = slow_pull
    cfg = write_config(tmp_path / "c.yml", {"pull": {"type": "rsync", "source": f"{sshd.alias}:{remote}/",
                                                     "target": f"{local}/"}})
    first = start_cli(["sync", cfg], slow_env)
    try:
        wait_until(lambda: first.poll() is not None or received_bytes(local) > 300_000, 30, "the first run")
        assert first.poll() is None, first.communicate()
        before = tree_digest(local)
        second = run_cli(["sync", cfg], env=env)
        _refused(second, lock_dir)
        # a dry run writes nothing, so it does not need the lock
        dry = run_cli(["sync", "-n", cfg], env=env)
        assert dry.returncode == 0, dry.stderr
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert tree_digest(local) == digests
    assert set(before) <= set(digests) | {p for p in before if "/." in "/" + p}
    # the lock is free again
    third = run_cli(["sync", cfg], env=env)
    assert third.returncode == 0, third.stderr


def test_other_spelling_or_protocol_for_the_same_target_refuses(slow_pull, sshd, run_cli, tmp_path):
    remote, local, digests, lock_dir, env, slow_env = slow_pull
    other_src = tmp_path / "other"
    (other_src / "data").mkdir(parents=True)
    (other_src / "data" / "part000.bin").write_bytes(b"would clobber the first run's file")
    cfg = write_config(tmp_path / "c.yml", {
        "pull": {"type": "rsync", "source": f"{sshd.alias}:{remote}/", "target": "local"},
        "same_place": {"type": "rsync", "source": f"{other_src}/", "target": f"{tmp_path}/x/../local/"},
    })
    first = start_cli(["sync", cfg], slow_env, cwd=tmp_path)
    try:
        wait_until(lambda: first.poll() is not None or received_bytes(local) > 300_000, 30, "the first run")
        assert first.poll() is None, first.communicate()
        (tmp_path / "x").mkdir()
        second = run_cli(["sync", "-p", "same_place", cfg], env=env, cwd=tmp_path)
        _refused(second, lock_dir)
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert tree_digest(local) == digests


def test_s3_target_lock_outlives_a_killed_run_while_its_writer_lives(s3, run_cli, tmp_path):
    """SIGKILL of flepimop-sync (no handler runs) orphans its aws child, which keeps uploading.

    The lock is inherited by the child, so a second run still refuses while that writer lives;
    once it is gone the lock is free and the same command completes.
    """
    src = tmp_path / "src"
    digests = make_big_tree(src, count=6, size=1024 * 1024)
    bucket = s3.make_bucket()
    lock_dir = tmp_path / "locks"
    cfg = write_config(tmp_path / "c.yml", {
        "up": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/run"},
        "up2": {"type": "s3sync", "source": str(src) + "/", "target": f"s3://{bucket}/run/"},
    })
    env = dict(s3.env)
    env["FLEPIMOP_SYNC_LOCK_DIR"] = str(lock_dir)
    marker = new_mark()
    slow = dict(env)
    slow["AWS_CONFIG_FILE"] = str(aws_throttle_config(tmp_path, "1MB/s"))
    slow[MARK_VAR] = marker
    first = start_cli(["sync", cfg], slow)
    try:
        wait_until(lambda: first.poll() is not None or any(
            "aws" in c for c in marked_pids(marker, exclude=[first.pid]).values()), 30, "aws to start")
        second = run_cli(["sync", "-p", "up2", cfg], env=env)  # another protocol, same prefix
        _refused(second, lock_dir)
        first.kill()  # SIGKILL: no handler runs, the aws child is orphaned and keeps writing
        first.wait()
        orphans = marked_pids(marker)
        assert orphans, "expected the aws child to outlive a SIGKILLed parent"
        third = run_cli(["sync", cfg], env=env)
        _refused(third, lock_dir)  # the orphaned writer still holds the lock
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        kill_marked(marker)
    assert not wait_gone(marker, timeout=10)
    again = run_cli(["sync", cfg], env=env)
    assert again.returncode == 0, again.stderr
    got = {k[len("run/"):]: hashlib.sha256(s3.get(bucket, k)).hexdigest() for k in s3.list(bucket, "run/")}
    assert got == digests


def _held(lock_dir) -> bool:
    import fcntl

    for path in lock_dir.glob("*.lock"):
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return False
