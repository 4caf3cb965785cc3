"""The lines ``aws s3 sync``/``cp`` print for each file, read back into (source, destination):
either side may contain " to ", so the split is the one whose sides name one file below the
step's operands (local paths as aws prints them: relative to its working directory)."""

from __future__ import annotations

import pytest

from flepimop_sync.execute import aws_line_ends

CWD = "/w/run"
SYNC = ("aws", "s3", "sync")

# (id, action, what aws printed after "<action>: ", the step's operands, expected (source, destination))
ROWS = [
    ("download, key with ' to '", "download", "s3://b/p/b to c.txt to dl/b to c.txt", ("s3://b/p/", "/w/run/dl/"),
     ("s3://b/p/b to c.txt", "dl/b to c.txt")),
    ("download, key ending in ' to x'", "download", "s3://b/p/x to x to dl/x to x", ("s3://b/p/", "dl/"),
     ("s3://b/p/x to x", "dl/x to x")),
    ("download, a directory named ' to '", "download", "s3://b/p/ to /a to dl/ to /a", ("s3://b/p/", "dl/"),
     ("s3://b/p/ to /a", "dl/ to /a")),
    ("download outside the working directory", "download", "s3://b/k to y.txt to ../../o/k to y.txt",
     ("s3://b/", "/o/"), ("s3://b/k to y.txt", "../../o/k to y.txt")),
    ("download, relative operand with ./", "download", "s3://b/p/a.txt to -d/a.txt", ("s3://b/p/", "./-d/"),
     ("s3://b/p/a.txt", "-d/a.txt")),
    ("upload, file with ' to '", "upload", "src/b to c.txt to s3://b/up/b to c.txt", ("/w/run/src/", "s3://b/up/"),
     ("src/b to c.txt", "s3://b/up/b to c.txt")),
    ("upload, directory 'd to s3:'", "upload", "src/d to s3:/k.txt to s3://b/up/d to s3:/k.txt",
     ("src/", "s3://b/up/"), ("src/d to s3:/k.txt", "s3://b/up/d to s3:/k.txt")),
    ("copy, key with ' to '", "copy", "s3://a/p/b to c.txt to s3://c/q/b to c.txt", ("s3://a/p/", "s3://c/q/"),
     ("s3://a/p/b to c.txt", "s3://c/q/b to c.txt")),
    ("copy, key ' to s3://c/q/x'", "copy", "s3://a/p/y to s3://c/q/x to s3://c/q/y to s3://c/q/x",
     ("s3://a/p/", "s3://c/q/"), ("s3://a/p/y to s3://c/q/x", "s3://c/q/y to s3://c/q/x")),
    ("not a file of this step", "download", "s3://other/k to dl/k", ("s3://b/p/", "dl/"), None),
]


@pytest.mark.parametrize("action,rest,operands,expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_sync_lines(action, rest, operands, expected):
    argv = (*SYNC, *operands, "--no-progress")
    assert aws_line_ends(action, rest, argv, CWD) == expected
    assert aws_line_ends(action, rest, (*argv, "--dryrun"), CWD) == expected  # (the dry run's lines: the same)


@pytest.mark.parametrize("rest,source,target,expected", [
    ("f to g.txt to s3://b/one/f to g.txt", "/w/run/f to g.txt", "s3://b/one/", ("f to g.txt", "s3://b/one/f to g.txt")),
    ("../f to g.txt to s3://b/k to k", "../f to g.txt", "s3://b/k to k", ("../f to g.txt", "s3://b/k to k")),
], ids=["into a prefix", "onto a key"])
def test_single_file_upload(rest, source, target, expected):
    assert aws_line_ends("upload", rest, ("aws", "s3", "cp", source, target, "--no-progress"), CWD) == expected
