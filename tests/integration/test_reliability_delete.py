"""Deletion: nothing at a target is deleted unless the user asks (``--delete`` or the protocol's
``delete: true``); then only target files missing from the source AND selected by the filters are
deleted (FILTERS.md section 4), on every backend and mechanism; ``--dry-run`` lists exactly those
("would delete: <path>") and deletes nothing.

Backends: rsync local, rsync push over ssh, rsync pull over ssh, aws upload, aws download.
Filters: an exact native aws translation (``- llik/``), the aws *explicit* mechanism
(``*hnpi*``: no exact fnmatch form), and a substring rule (``s hosp``).  Expected deletions are
written out by hand, not computed by the evaluator under test.
"""

from __future__ import annotations

import json

import pytest

from helpers import write_config
from trees import tree, write_tree

pytestmark = pytest.mark.integration

SOURCE = {
    "r1/hnpi/a.hnpi.parquet": b"src hnpi",
    "r1/snpi/a.snpi.parquet": b"src snpi",
    "r1/llik/a.llik.parquet": b"src llik",
    "r1/hosp/a.hosp.parquet": b"src hosp",
    "top.csv": b"src top",
}
TARGET_ONLY = {
    "r1/hnpi/old.hnpi.parquet": b"old hnpi",
    # in a directory named hnpi but without hnpi in its name: '*hnpi*.*' does not select it (the
    # directory name has no '.'), while aws' fnmatch '*hnpi*.*' (where '*' crosses '/') would --
    # this forces the explicit mechanism
    "r1/hnpi/readme.txt": b"readme",
    "r1/llik/old.llik.parquet": b"old llik",
    "r1/hosp/old.hosp.parquet": b"old hosp",
    "r2/hnpi/gone.hnpi.parquet": b"gone hnpi",  # a directory the source does not have
    "r2/llik/gone.llik.parquet": b"gone llik",
    "r2/notes.txt": b"notes",
    "extra.txt": b"extra",
}
# a file both ends have, different at the target: unselected by every case below, so it must
# survive untouched (neither overwritten nor deleted)
TARGET_VERSION = {"r1/llik/a.llik.parquet": b"TARGET VERSION of llik"}

CASES = {
    "explicit": (["*hnpi*.*", "*snpi*.*", "- *"],
                 {"r1/hnpi/old.hnpi.parquet", "r2/hnpi/gone.hnpi.parquet"}),
    "native": (["- llik/"],
               {"r1/hnpi/old.hnpi.parquet", "r1/hnpi/readme.txt", "r1/hosp/old.hosp.parquet",
                "r2/hnpi/gone.hnpi.parquet",
                "r2/notes.txt", "extra.txt"}),
    "substring": (["s hosp"], {"r1/hosp/old.hosp.parquet"}),
}
SELECTED_FROM_SOURCE = {
    "explicit": {"r1/hnpi/a.hnpi.parquet", "r1/snpi/a.snpi.parquet"},
    "native": {"r1/hnpi/a.hnpi.parquet", "r1/snpi/a.snpi.parquet", "r1/hosp/a.hosp.parquet", "top.csv"},
    "substring": {"r1/hosp/a.hosp.parquet"},
}
BACKENDS = ["rsync-local", "rsync-push", "rsync-pull", "s3-upload", "s3-download"]


class World:
    """A source and a target (local dir, remote dir on hpc, or an S3 prefix) with the files above."""

    def __init__(self, backend, tmp_path, sshd=None, s3=None):
        self.backend, self.tmp, self.s3 = backend, tmp_path, s3
        self.env = None
        src_dir, dst_dir = tmp_path / "src", tmp_path / "dst"
        write_tree(src_dir, SOURCE)
        write_tree(dst_dir, {**TARGET_ONLY, **TARGET_VERSION})
        self.src_dir, self.dst_dir = src_dir, dst_dir
        if backend == "rsync-local":
            self.ptype, self.source, self.target = "rsync", f"{src_dir}/", f"{dst_dir}/"
        elif backend == "rsync-push":
            self.ptype, self.source, self.target = "rsync", f"{src_dir}/", f"{sshd.alias}:{dst_dir}/"
            self.env = sshd.env
        elif backend == "rsync-pull":
            self.ptype, self.source, self.target = "rsync", f"{sshd.alias}:{src_dir}/", f"{dst_dir}/"
            self.env = sshd.env
        elif backend == "s3-upload":
            self.bucket = s3.make_bucket()
            for rel, data in {**TARGET_ONLY, **TARGET_VERSION}.items():
                s3.put(self.bucket, f"run/{rel}", data)
            self.ptype, self.source, self.target = "s3sync", f"{src_dir}/", f"s3://{self.bucket}/run/"
            self.env = s3.env
        elif backend == "s3-download":
            self.bucket = s3.make_bucket()
            for rel, data in SOURCE.items():
                s3.put(self.bucket, f"run/{rel}", data)
            self.ptype, self.source, self.target = "s3sync", f"s3://{self.bucket}/run/", f"{dst_dir}/"
            self.env = s3.env

    def config(self, filters=None, delete=None):
        body = {"type": self.ptype, "source": self.source, "target": self.target}
        if filters is not None:
            body["filters"] = filters
        if delete is not None:
            body["delete"] = delete
        return write_config(self.tmp / "c.yml", {"p": body})

    def target_files(self) -> dict[str, bytes]:
        if self.backend == "s3-upload":
            return {k[len("run/"):]: self.s3.get(self.bucket, k) for k in self.s3.list(self.bucket, "run/")}
        return tree(self.dst_dir)

    def source_files(self) -> dict[str, bytes]:
        if self.backend == "s3-download":
            return {k[len("run/"):]: self.s3.get(self.bucket, k) for k in self.s3.list(self.bucket, "run/")}
        return tree(self.src_dir)


@pytest.fixture
def world(request, tmp_path):
    backend = request.param
    sshd = request.getfixturevalue("sshd") if "rsync-p" in backend else None
    s3 = request.getfixturevalue("s3") if backend.startswith("s3") else None
    return World(backend, tmp_path, sshd=sshd, s3=s3)


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_nothing_is_deleted_unless_asked(world, run_cli):
    before = world.target_files()
    for filters in (None, CASES["explicit"][0]):
        cfg = world.config(filters=filters)
        done = run_cli(["sync", "--json", cfg], env=world.env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["delete"] is False
        after = world.target_files()
        for rel, data in before.items():
            if rel not in SOURCE:
                assert after.get(rel) == data, f"{rel} was deleted or changed without --delete"
    # explicit false in the protocol is the same as not asking
    cfg = world.config(delete=False)
    assert run_cli(["sync", cfg], env=world.env).returncode == 0
    assert set(world.target_files()) == set(TARGET_ONLY) | set(SOURCE)
    assert world.source_files() == SOURCE


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_delete_removes_only_selected_files_and_dry_run_lists_them(world, case, run_cli):
    filters, expected = CASES[case]
    before = world.target_files()
    # The protocol's 'delete: true' for one case, the --delete option for the others.
    use_key = case == "substring"
    cfg = world.config(filters=filters, delete=True if use_key else None)
    flag = [] if use_key else ["--delete"]

    dry = run_cli(["sync", "-n", "--json", *flag, cfg], env=world.env)
    assert dry.returncode == 0, dry.stderr
    listed = {line[len("would delete: "):] for line in dry.stderr.splitlines() if line.startswith("would delete: ")}
    assert listed == expected, (case, world.backend, dry.stderr)
    assert set(json.loads(dry.stdout)["would_delete"]) == expected
    if world.backend.startswith("s3") and case == "explicit":
        assert json.loads(dry.stdout)["mechanism"].startswith("aws explicit selection"), dry.stdout
    assert world.target_files() == before, "a dry run changed the target"

    done = run_cli(["sync", "--json", *flag, cfg], env=world.env)
    assert done.returncode == 0, done.stderr
    after = world.target_files()
    gone = set(before) - set(after)
    assert gone == expected, (case, world.backend, sorted(gone), json.loads(done.stdout).get("commands"))
    for rel in set(before) - expected - set(SELECTED_FROM_SOURCE[case]):
        assert after[rel] == before[rel], f"{rel} is not selected but was changed"
    for rel in SELECTED_FROM_SOURCE[case]:
        assert after[rel] == SOURCE[rel]
    assert world.source_files() == SOURCE, "the source changed"
