"""Deletion guards, end to end with real rsync and a real S3 server (moto):

- --delete never mirrors an empty source: a mistyped or empty source would wipe the target;
- a protocol's ``delete`` is written for its configured pairing of source and target: a run that
  -s/-t moved off it (a replaced end, or an append to one end only) deletes nothing unless
  --delete is given, and says so in one note; a part of the source mirrored into the same part
  of the target (``-s '+ sub/' -t '+ sub/'``) keeps the protocol's ``delete``.
  The rule and its table: tests/unit/test_plan.py (``DELETE_RULE``).
"""

from __future__ import annotations

import json

import pytest

from helpers import write_config
from trees import tree, write_tree

pytestmark = pytest.mark.integration


def test_rsync_delete_from_empty_source_is_refused(tmp_path, run_cli):
    (tmp_path / "empty").mkdir()
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "keep.csv").write_text("precious")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{tmp_path}/empty/",
                                                  "target": f"{dst}/", "delete": True}})
    done = run_cli(["sync", cfg])
    assert done.returncode == 1, done.stderr
    assert "holds no files" in done.stderr and "Traceback" not in done.stderr
    assert (dst / "keep.csv").read_text() == "precious"


def test_s3_delete_from_mistyped_prefix_is_refused(tmp_path, run_cli, s3):
    bucket = s3.make_bucket()
    s3.client.put_object(Bucket=bucket, Key="runs/r1/keep.csv", Body=b"precious")
    target = tmp_path / "local"
    target.mkdir()
    (target / "mine.csv").write_text("mine")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/runz/r1/",
                                                  "target": f"{target}/", "delete": True}})
    done = run_cli(["sync", cfg], env=s3.env)
    assert done.returncode == 1, done.stderr
    assert "holds no files" in done.stderr
    assert (target / "mine.csv").read_text() == "mine"


# -- the protocol's delete and a replaced target ------------------------------------------------------
SRC = {"a.csv": b"new", "sub/b.csv": b"new below"}
DST = {"old.csv": b"stale at the configured target", "sub/old.csv": b"stale below it"}
OTHER = {"mine.txt": b"unrelated, never synced here"}

# backend: the kind of the protocol's (source, target); a replacement is of the kind of the end it replaces
BACKENDS = {"rsync": ("local", "local"), "s3-upload": ("local", "s3"), "s3-download": ("s3", "local")}

# args ({other}: the other place), the protocol's delete, the files of each place the run writes to
# after it (every other place stays as it was), what the dry run lists as "would delete" (relative to
# the destination), the options the note names (None: no note)
REPLACED = [
    # a replaced target keeps its files, and the configured target is not touched
    (["-t", "{other}"], True, {"other": {"mine.txt", "a.csv", "sub/b.csv"}}, set(), "-t/--target"),
    # ... unless --delete asks, there
    (["-t", "{other}", "--delete"], True, {"other": {"a.csv", "sub/b.csv"}}, {"mine.txt"}, None),
    # an append to the target alone copies the whole source into sub/: the protocol's pairing is
    # not this one, and sub/old.csv (which the configured run keeps) is not deleted
    (["-t", "+ sub"], True, {"dst": {"old.csv", "sub/old.csv", "sub/a.csv", "sub/sub/b.csv"}}, set(),
     "-t/--target"),
    # a part of the source into the same part of the target: the protocol's delete applies there only
    (["-s", "+ sub/", "-t", "+ sub/"], True, {"dst": {"old.csv", "sub/b.csv"}}, {"old.csv"}, None),
    # --reverse: the configured source is written to, and -s replaces it
    (["--reverse", "-s", "{other}"], "both", {"other": {"mine.txt", "old.csv", "sub/old.csv"}}, set(),
     "-s/--source"),
    (["--reverse", "-s", "{other}", "--delete"], "both", {"other": {"old.csv", "sub/old.csv"}}, {"mine.txt"}, None),
    # --reverse with -t replaced: another place copied onto the configured source, which keeps its files
    (["--reverse", "-t", "{other}"], "both", {"src": {"a.csv", "sub/b.csv", "mine.txt"}}, set(), "-t/--target"),
]


class Places:
    """The protocol's source and target and one other place, each a local directory or an S3 prefix."""

    def __init__(self, tmp_path, s3):
        self.tmp, self.s3, self.bucket = tmp_path, s3, s3.make_bucket()

    def end(self, name, kind):
        return f"s3://{self.bucket}/{name}/" if kind == "s3" else f"{self.tmp / name}/"

    def write(self, name, kind, files):
        if kind == "s3":
            for rel, data in files.items():
                self.s3.put(self.bucket, f"{name}/{rel}", data)
        else:
            write_tree(self.tmp / name, files)

    def read(self, name, kind):
        if kind == "s3":
            return {k[len(name) + 1:]: self.s3.get(self.bucket, k) for k in self.s3.list(self.bucket, f"{name}/")}
        return tree(self.tmp / name)


@pytest.mark.parametrize("args, delete, after, would_delete, noted", REPLACED,
                         ids=[" ".join(a) for a, *_ in REPLACED])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_the_protocols_delete_spares_what_it_never_paired(tmp_path, run_cli, moto, backend, args, delete, after,
                                                       would_delete, noted):
    places = Places(tmp_path, moto)
    source_kind, target_kind = BACKENDS[backend]
    kinds = {"src": source_kind, "dst": target_kind}
    # the other place is of the kind of the end the option replaces (-s: the source's)
    kinds["other"] = kinds["src" if "-s" in args else "dst"]
    for name, files in (("src", SRC), ("dst", DST), ("other", OTHER)):
        places.write(name, kinds[name], files)
    before = {name: places.read(name, kind) for name, kind in kinds.items()}
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync" if "s3" in backend else "rsync",
                                                  "source": places.end("src", kinds["src"]),
                                                  "target": places.end("dst", kinds["dst"]), "delete": delete}})
    argv = [a.format(other=places.end("other", kinds["other"])) for a in args]

    dry = run_cli(["sync", "-n", "--json", *argv, cfg], env=moto.env)
    assert dry.returncode == 0, dry.stderr
    assert set(json.loads(dry.stdout)["would_delete"]) == would_delete
    assert json.loads(dry.stdout)["delete"] is bool(would_delete)
    assert {name: places.read(name, kind) for name, kind in kinds.items()} == before, "the dry run changed a place"
    real = run_cli(["sync", "--json", *argv, cfg], env=moto.env)
    assert real.returncode == 0, real.stderr
    assert sorted(json.loads(real.stdout).get("deleted", [])) == sorted(would_delete)
    for name, kind in kinds.items():
        files = places.read(name, kind)
        if name in after:
            assert set(files) == after[name], (name, sorted(files))
            assert all(files[rel] == data for rel, data in before[name].items() if rel in files)
        else:
            assert files == before[name], f"{name} was not written to, yet it changed"
    for done in (dry, real):
        lines = done.stderr.splitlines()
        notes = [line for line in lines if line.startswith("note: ")]
        assert not [line for line in lines if line.startswith("warning: ")], done.stderr
        if noted:
            assert len(notes) == 1, done.stderr
            assert f"is not applied: with {noted} " in notes[0], notes[0]
            assert notes[0].endswith("nothing is deleted there; --delete asks for it")
        else:
            assert notes == [], done.stderr
