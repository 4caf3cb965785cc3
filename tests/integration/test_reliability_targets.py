"""Target trouble: a read-only target, a full filesystem, a missing parent without --mkpath.

Each gives exit 1 and a one-line message that says what is wrong (and, for the missing parent,
what to do), and the source is byte-for-byte unchanged.  A full target never holds a file
truncated under its final name.

Read-only targets are read-only bind mounts (root ignores a mode of 0555); the full filesystem
is a 2 MiB tmpfs.  Both are unmounted by a finalizer.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from helpers import assert_no_truncated_final, make_big_tree, put_random_objects, tree_digest, write_config
from trees import write_tree

pytestmark = pytest.mark.integration


def _mount(argv):
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({' '.join(argv)}): {done.stderr.strip()}")


@pytest.fixture
def mounts():
    mounted: list[Path] = []

    def readonly(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        _mount(["mount", "--bind", str(path), str(path)])
        mounted.append(path)
        _mount(["mount", "-o", "remount,ro,bind", str(path)])
        return path

    def tmpfs(path: Path, size: str = "2m") -> Path:
        path.mkdir(parents=True, exist_ok=True)
        _mount(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
        mounted.append(path)
        return path

    yield readonly, tmpfs
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _small_tree(root: Path) -> dict[str, str]:
    files = {"a/one.csv": b"1,2,3\n", "a/b/two.parquet": os.urandom(3000), "three.txt": b"three\n"}
    write_tree(root, files)
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}


def _failure_line(done, tool: str | None = None) -> str:
    """A runtime failure (exit 1) without a traceback: its error line, which says that ``tool``
    (the step) failed when one is named."""
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert lines, done
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    if tool:
        assert lines[-1].startswith(f"error: protocol 'p': {tool} failed"), lines[-1]
    return lines[-1]


# -- read-only targets -----------------------------------------------------------------------------
def test_readonly_local_target_rsync(tmp_path, run_cli, mounts):
    readonly, _ = mounts
    src = tmp_path / "src"
    digests = _small_tree(src)
    target = readonly(tmp_path / "ro")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{target}/"}})
    done = run_cli(["sync", cfg])
    line = _failure_line(done, "rsync")
    assert "Read-only file system" in line or "read-only" in line, line
    assert tree_digest(src) == digests
    assert tree_digest(target) == {}


def test_readonly_remote_target_rsync_over_ssh(tmp_path, run_cli, mounts, sshd):
    readonly, _ = mounts
    src = tmp_path / "src"
    digests = _small_tree(src)
    target = readonly(tmp_path / "ro")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{src}/",
                                                  "target": f"{sshd.alias}:{target}/"}})
    done = run_cli(["sync", cfg], env=sshd.env)
    line = _failure_line(done, "rsync")
    assert "Read-only file system" in line or "read-only" in line, line
    assert tree_digest(src) == digests


def test_readonly_local_target_s3_download(tmp_path, run_cli, mounts, s3):
    readonly, _ = mounts
    bucket = s3.make_bucket()
    s3.put(bucket, "run/a.csv", b"a")
    s3.put(bucket, "run/sub/b.csv", b"b")
    target = readonly(tmp_path / "ro")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/run/",
                                                  "target": f"{target}/"}})
    done = run_cli(["sync", cfg], env=s3.env)
    line = _failure_line(done, "aws s3 sync")
    assert "read-only" in line.lower(), line
    assert s3.list(bucket) == {"run/a.csv": 1, "run/sub/b.csv": 1}


# -- full filesystem ---------------------------------------------------------------------------------
def test_full_filesystem_rsync(tmp_path, run_cli, mounts):
    _, tmpfs = mounts
    src = tmp_path / "src"
    digests = make_big_tree(src, count=5, size=700 * 1024)
    target = tmpfs(tmp_path / "small")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{target}/"}})
    done = run_cli(["sync", cfg])
    line = _failure_line(done, "rsync")
    assert "No space left on device" in line or "full" in line, line
    assert tree_digest(src) == digests
    assert_no_truncated_final(target, digests)
    assert set(tree_digest(target)) <= set(digests), sorted(tree_digest(target))  # no temp debris


def test_full_filesystem_s3_download(tmp_path, run_cli, mounts, s3):
    _, tmpfs = mounts
    bucket = s3.make_bucket()
    digests = put_random_objects(s3, bucket, "run/", count=5, size=700 * 1024)
    target = tmpfs(tmp_path / "small")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/run/",
                                                  "target": f"{target}/"}})
    done = run_cli(["sync", cfg], env=s3.env)
    line = _failure_line(done, "aws s3 sync")
    assert "full" in line or "No space left" in line, line
    assert_no_truncated_final(target, digests)
    assert set(tree_digest(target)) <= set(digests), sorted(tree_digest(target))  # no temp debris
    assert len(s3.list(bucket)) == 5


# -- missing parents -----------------------------------------------------------------------------------
def test_missing_remote_parent_without_mkpath(tmp_path, run_cli, sshd):
    src = tmp_path / "src"
    digests = _small_tree(src)
    target = tmp_path / "remote" / "missing" / "deeper"
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{src}/",
                                                  "target": f"{sshd.alias}:{target}/"}})
    done = run_cli(["sync", cfg], env=sshd.env)
    line = _failure_line(done, "rsync")
    assert "--mkpath" in line, line
    assert not (tmp_path / "remote").exists()
    assert tree_digest(src) == digests
    # the hint works
    done = run_cli(["sync", "--mkpath", cfg], env=sshd.env)
    assert done.returncode == 0, done.stderr
    assert tree_digest(target) == digests


def test_missing_local_parent_without_mkpath(tmp_path, run_cli):
    src = tmp_path / "src"
    digests = _small_tree(src)
    target = tmp_path / "missing" / "deeper"
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{target}/"}})
    done = run_cli(["sync", cfg])
    line = _failure_line(done)
    assert "--mkpath" in line, line
    assert not (tmp_path / "missing").exists()
    done = run_cli(["sync", cfg, "--mkpath"])
    assert done.returncode == 0, done.stderr
    assert tree_digest(target) == digests == tree_digest(src)


def test_missing_bucket(tmp_path, run_cli, s3):
    src = tmp_path / "src"
    digests = _small_tree(src)
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{src}/",
                                                  "target": "s3://no-such-bucket-reliability/run/"}})
    done = run_cli(["sync", cfg], env=s3.env)
    line = _failure_line(done)
    assert "aws s3 sync failed" in line and "bucket does not exist" in line, line
    assert tree_digest(src) == digests
