"""listing.py parsers: exact names from rsync's itemized output and the S3 API's JSON."""

from __future__ import annotations

import json

import pytest

from flepimop_sync.listing import LocalTree, links_on_the_way, parse_rsync_listing, parse_s3_objects

# one itemized line ('%i %l %n' under LC_ALL=C) -> the entry (None: not an entry)
RSYNC_LINES = [
    (">f+++++++++ 5  lead", (" lead", 5)),
    (">f+++++++++ 6 trail ", ("trail ", 6)),
    (">f+++++++++ 8 new\\#012line", ("new\nline", 8)),
    (">f+++++++++ 5 \\#377\\#376bad", (b"\xff\xfebad".decode("utf-8", "surrogateescape"), 5)),
    (">f+++++++++ 6 caf\\#303\\#251", ("caf\u00e9", 6)),
    (">f+++++++++ 14 back\\#134#012slash", ("back\\#012slash", 14)),
    (">f+++++++++ 10 arrow -> x", ("arrow -> x", 10)),
    ("cL+++++++++ 11 link -> out", ("link -> out", 0)),
    ("cS+++++++++ 0 fifo", ("fifo", 0)),
    ("cd+++++++++ 4096 sub/", None),
    ('skipping non-regular file "fifo"', None),
]


@pytest.mark.parametrize("line,entry", RSYNC_LINES)
def test_rsync_itemized_line(line, entry):
    assert parse_rsync_listing(line + "\n") == ([entry] if entry else [])


def test_s3_json_keys_are_exact():
    doc = {"Contents": [{"Key": "p/ lead.csv", "Size": 3}, {"Key": "p/new\nline", "Size": 1},
                        {"Key": "p/dir/", "Size": 0}, {"Key": "p/a b/c", "Size": 2}]}
    assert parse_s3_objects(json.dumps(doc), "p/") == [(" lead.csv", 3, ""), ("a b/c", 2, ""), ("new\nline", 1, "")]
    assert parse_s3_objects("", "p/") == []


# an s3api object -> (path, size, ETag) as the receipts' audit list records it (None: not a file)
S3_OBJECTS = [
    ({"Key": "p/a.csv", "Size": 3, "ETag": '"9e1d"'}, ("a.csv", 3, "9e1d")),
    ({"Key": "p/multi.parquet", "Size": 9, "ETag": '"ab12-2"'}, ("multi.parquet", 9, "ab12-2")),
    ({"Key": "p/no-etag", "Size": 1}, ("no-etag", 1, "")),
    ({"Key": "p/null-etag", "Size": 1, "ETag": None}, ("null-etag", 1, "")),
    ({"Key": "p/dir/", "Size": 0, "ETag": '"d41d"'}, None),
    ({"Key": "other/x", "Size": 1, "ETag": '"x"'}, None),
]


@pytest.mark.parametrize("obj,entry", S3_OBJECTS, ids=[o["Key"] for o, _ in S3_OBJECTS])
def test_s3_objects_with_etags(obj, entry):
    assert parse_s3_objects(json.dumps({"Contents": [obj]}), "p/") == ([entry] if entry else [])


def test_links_on_the_way():
    tree = LocalTree(files=(), links=(("d", True), ("f.csv", False)), others=())
    assert links_on_the_way(tree, ["d/x.csv", "d", "f.csv", "e/d/x", "f.csv/x"]) == {"d/x.csv": "d"}
