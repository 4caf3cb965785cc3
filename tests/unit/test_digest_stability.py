"""A rerun digest is a promise to a campaign: Snakemake reruns a sync rule, and everything
downstream of it, when its digest changes.  Refactoring flepimop-sync must not change one, so
the records (``api.meaning``) and digests of a few protocols are pinned here, as computed by the
code of round 17 (22d808d).  A deliberate change of what a digest means changes this table in
the same commit, and says so."""

from __future__ import annotations

import pytest

from flepimop_sync import api
from flepimop_sync.options import SyncOptions

CONFIG = """sync:
  up: {type: rsync, source: a/, target: 'hpc:/scratch/b/', filters: ['x.csv', '- llik/'], delete: both, rsh: 'ssh -F cfg'}
  snap: {type: s3sync, source: a, target: 's3://bucket/p/', endpoint_url: 'http://127.0.0.1:9', engine: rclone, mkpath: true}
  code: {type: git, mode: push, branch: main}
"""

# (protocol, options, its record, its digest)
PINNED = [
    ("up", {}, {"type": "rsync", "tool": "rsync", "source": "a/", "target": "hpc:/scratch/b/",
                "destination": "hpc:/scratch/b/", "filters": ["+ x.csv", "- llik/"],
                "options": {"mkpath": False, "delete": True}, "where": {"rsh": "ssh -F cfg"}},
     "87957f5421517aee"),
    ("up", {"reverse": True}, {"type": "rsync", "tool": "rsync", "source": "hpc:/scratch/b/", "target": "a/",
                               "destination": "a/", "filters": ["+ x.csv", "- llik/"],
                               "options": {"mkpath": False, "delete": True}, "where": {"rsh": "ssh -F cfg"}},
     "c9b32c0591d3b1f8"),
    ("snap", {"fprefix": ("- *.tmp",)},
     {"type": "s3sync", "tool": "rclone", "source": "a", "target": "s3://bucket/p/", "destination": "s3://bucket/p/a",
      "filters": ["- *.tmp"], "options": {"mkpath": True, "delete": False},
      "where": {"endpoint_url": "http://127.0.0.1:9"}},
     "7fe39b9b47bbff83"),
    ("code", {}, {"type": "git", "tool": "git", "mode": "push", "remote": None, "branch": "main", "path": None},
     "e717ed77933240e5"),
    ("code", {"reverse": True}, {"type": "git", "tool": "git", "mode": "pull", "remote": None, "branch": "main",
                                 "path": None},
     "b011224a47c0a968"),
]


@pytest.mark.parametrize("name,options,record,digest", PINNED,
                         ids=[f"{name}-{'-'.join(options) or 'forward'}" for name, options, _, _ in PINNED])
def test_a_protocols_digest_does_not_move(tmp_path, monkeypatch, name, options, record, digest):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.csv").write_text("x")
    (tmp_path / "c.yml").write_text(CONFIG)
    chosen = SyncOptions(protocol=name, **options)
    assert api.meaning(["c.yml"], chosen) == record
    assert api.resolved_digest(["c.yml"], chosen) == digest
