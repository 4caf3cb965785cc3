"""Ends: override/append (the README table), reverse, classification."""

from __future__ import annotations

import pytest

from flepimop_sync.endpoints import apply_option, parse_end, reverse_ends
from flepimop_sync.errors import UsageError

# configured, option, result  (the table in the README / issue)
OVERRIDE_TABLE = [
    ("/a/b/c", "/g/h/i", "/g/h/i"),
    ("/a/b/c/", "/g/h/i", "/g/h/i"),
    ("/a/b/c", "+ g/h/i", "/a/b/c/g/h/i"),
    ("/a/b/c", "+ g/h/i/", "/a/b/c/g/h/i"),
    ("/a/b/c/", "+ g/h/i", "/a/b/c/g/h/i/"),
    ("/a/b/c/", "+ g/h/i/", "/a/b/c/g/h/i/"),
    ("/d/e/f", "+ j/k/l", "/d/e/f/j/k/l"),
    ("/d/e/f/", "+ j/k/l", "/d/e/f/j/k/l/"),
    ("s3://bucket/project", "+ 20240501_120000", "s3://bucket/project/20240501_120000"),
    ("s3://bucket/project/", "+ 20240501_120000", "s3://bucket/project/20240501_120000/"),
    ("hpc:/scratch/run", "+ out", "hpc:/scratch/run/out"),
    ("hpc:", "+ out", "hpc:out"),
    ("/a/b/c", None, "/a/b/c"),
    ("/a/b/c", "+x", "+x"),  # no space: a literal path, not an append
]


@pytest.mark.parametrize("configured,option,result", OVERRIDE_TABLE)
def test_override_and_append(configured, option, result):
    assert apply_option(configured, option, what="source") == result


@pytest.mark.parametrize("option", ["+ ", "+ /", "+ //", "", "+  x",
                                    # an append may not climb out of the configured end (issue 15.1)
                                    "+ ..", "+ ../x", "+ a/../../x", "+ a/..", "+ /x/", "+ /etc"])
def test_bad_append_is_a_usage_error(option):
    with pytest.raises(UsageError):
        apply_option("/a", option, what="target")


# text, kind, host, path
CLASSIFY = [
    ("model_output", "local", "", "model_output"),
    ("/abs/path/", "local", "", "/abs/path/"),
    ("./odd:name", "local", "", "./odd:name"),
    ("a/b:c", "local", "", "a/b:c"),
    ("hpc:/scratch", "remote", "hpc", "/scratch"),
    ("user@hpc:runs/x", "remote", "user@hpc", "runs/x"),
    ("hpc:", "remote", "hpc", ""),
    ("s3://bucket/prefix/", "s3", "", "bucket/prefix/"),
]


@pytest.mark.parametrize("text,kind,host,path", CLASSIFY)
def test_classify(text, kind, host, path):
    end = parse_end(text)
    assert (end.kind, end.host, end.path) == (kind, host, path)


# source, target -> reversed source, reversed target: files go back where they came from
REVERSE = [
    ("model_output", "s3://b/p", "s3://b/p/model_output/", "model_output/"),
    ("model_output/", "s3://b/p/", "s3://b/p/", "model_output/"),
    ("model_output/", "s3://b/p", "s3://b/p/", "model_output/"),
    ("/data/run", "hpc:/scratch", "hpc:/scratch/run/", "/data/run/"),
    ("hpc:/scratch/run/", "local/", "local/", "hpc:/scratch/run/"),
]


@pytest.mark.parametrize("source,target,rsource,rtarget", REVERSE)
def test_reverse(source, target, rsource, rtarget):
    assert reverse_ends(source, target) == (rsource, rtarget)


# rsync --list-only escapes -> the real name
UNESCAPE = [
    ("plain/name.csv", "plain/name.csv"),
    (r"\#303\#274n\#303\#257/f\#303\#251.csv", "ünï/fé.csv"),
    (r"a\#012b", "a\nb"),
    ("ünï", "ünï"),
]


@pytest.mark.parametrize("listed,name", UNESCAPE)
def test_rsync_list_only_unescape(listed, name):
    from flepimop_sync.execute import rsync_unescape

    assert rsync_unescape(listed) == name
