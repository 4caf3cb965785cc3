"""The fast S3 engine's pure parts: argv, environment, listings, and aws' change rule, as tables."""

from __future__ import annotations

import pytest

from flepimop_sync import s3engine
from flepimop_sync.config import S3Settings
from flepimop_sync.endpoints import parse_end

S = 1_000_000  # microseconds

# (direction, source (size, time), target (size, time) or None, transferred?)
CHANGES = [
    ("upload", (10, 5 * S), None, True),
    ("upload", (10, 5 * S), (11, 9 * S), True),           # size differs
    ("upload", (10, 5 * S), (10, 4 * S), True),           # the local file is newer
    ("upload", (10, 5 * S), (10, 5 * S), False),
    ("upload", (10, 5 * S + 400), (10, 5 * S), False),    # within S3's millisecond
    ("upload", (10, 5 * S), (10, 9 * S), False),          # the object is newer
    ("download", (10, 5 * S), (10, 9 * S), True),         # aws: the LOCAL file is newer -> fetch
    ("download", (10, 9 * S), (10, 5 * S), False),        # the object is newer, same size -> kept
    ("download", (10, 5 * S), (10, 5 * S), False),        # aws stamps downloads with the object's time
    ("download", (10, 5 * S), (12, 1 * S), True),
    ("copy", (10, 5 * S + 900_000), (10, 5 * S), False),  # S3->S3: whole seconds
    ("copy", (10, 6 * S), (10, 5 * S), True),
]


@pytest.mark.parametrize("direction,src,dst,moves", CHANGES)
def test_changed_is_aws_rule(direction, src, dst, moves):
    target = {} if dst is None else {"f": dst}
    assert s3engine.changed({"f": src}, target, direction) == (["f"] if moves else [])


# (source, destination) -> the direction: it picks aws' change rule above
DIRECTIONS = [
    ("/data/x/", "s3://b/p/", s3engine.Direction.UPLOAD),
    ("s3://b/p/", "/data/x/", s3engine.Direction.DOWNLOAD),
    ("s3://b/p/", "s3://c/q/", s3engine.Direction.COPY),
]


@pytest.mark.parametrize("source,destination,direction", DIRECTIONS)
def test_the_direction_of_a_sync(source, destination, direction):
    got = s3engine.Direction.of(parse_end(source), parse_end(destination))
    assert got is direction and f"{got}" == direction.value  # (the -vv lines say it as aws does: "upload: ...")


class P:
    def __init__(self, **keys):
        self.settings = S3Settings(**keys)


CONFIG = "[default]\nregion = eu-west-1\n[profile lab]\nregion = ca-central-1\nendpoint_url = http://127.0.0.1:9000\n"
SETTINGS = [
    # (protocol keys, environment, expected profile / endpoint / region)
    ({}, {}, ("", "", "eu-west-1")),
    ({}, {"AWS_PROFILE": "lab"}, ("lab", "http://127.0.0.1:9000", "ca-central-1")),
    ({"profile": "lab", "region": "us-west-2"}, {"AWS_PROFILE": "x"}, ("lab", "http://127.0.0.1:9000", "us-west-2")),
    ({}, {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "http://s3:2", "AWS_REGION": "r1",
          "AWS_DEFAULT_REGION": "r2"}, ("", "http://s3:2", "r1")),
    ({"endpoint_url": "http://p:3"}, {"AWS_ENDPOINT_URL": "http://a:1", "AWS_DEFAULT_REGION": "r2"},
     ("", "http://p:3", "r2")),
]


@pytest.mark.parametrize("keys,env,expected", SETTINGS)
def test_aws_settings_resolve_as_the_aws_cli(keys, env, expected):
    got = s3engine.aws_settings(P(**keys), env, CONFIG)
    assert (got["profile"], got["endpoint"], got["region"]) == expected


def test_rclone_env_carries_no_secret_and_argv_names_no_config():
    env = s3engine.rclone_env({"profile": "lab", "endpoint": "http://127.0.0.1:9", "region": "r"})
    assert env == {"RCLONE_S3_ENV_AUTH": "true", "RCLONE_S3_REGION": "r", "RCLONE_S3_PROVIDER": "Other",
                   "RCLONE_S3_ENDPOINT": "http://127.0.0.1:9", "RCLONE_S3_FORCE_PATH_STYLE": "true",
                   "RCLONE_S3_PROFILE": "lab"}
    argv = s3engine.copy_argv(parse_end("/data/x/"), parse_end("s3://b/p/"), "/tmp/list")
    assert argv[:2] == ("rclone", "copy") and "--config=" in argv and "--copy-links" not in argv  # links never followed
    assert "--files-from-raw=/tmp/list" in argv and "--no-traverse" in argv and "--no-check-dest" in argv
    assert argv[-2:] == ("/data/x", ":s3:b/p")


ENDS = [("s3://b/p/", ":s3:b/p"), ("s3://b", ":s3:b"), ("/abs/d/", "/abs/d")]


@pytest.mark.parametrize("text,expected", ENDS)
def test_rclone_path(text, expected):
    assert s3engine.rclone_path(parse_end(text)) == expected


def test_relative_local_path_with_colon_stays_local():
    assert s3engine.rclone_path(parse_end("a b:c")).startswith("/")


def test_parse_lsjson_times_to_microseconds():
    text = '[{"Path":"a/b","Size":3,"ModTime":"1970-01-01T00:00:01.123456789Z","IsDir":false},' \
           '{"Path":"a","Size":-1,"ModTime":"1970-01-01T00:00:00Z","IsDir":true}]'
    assert s3engine.parse_lsjson(text) == {"a/b": (3, 1_123_456)}


# (files to copy, objects listed at the source, list their directories rather than HEAD each file?)
FIND = [
    ([f"d{i % 20}/f{i}" for i in range(2000)], 2000, True),     # 21 listings (+4 pages) << 2,000 HEADs
    ([f"a/b/c/f{i}" for i in range(5)], 5, True),               # 4 listings < 5 HEADs
    ([f"a/b/c/f{i}" for i in range(4)], 4, False),              # 4 listings = 4 HEADs: keep the HEADs
    ([f"d{i}/f" for i in range(50)], 100, False),               # one file a directory: 51 listings > 50 HEADs
    ([f"run/f{i}" for i in range(5)], 1_000_000, False),        # 5 files in a huge source: 5 HEADs
    ([f"run/f{i}" for i in range(5000)], 1_000_000, True),      # 2 + 2,000 pages < 5,000 HEADs
    ([], 10, False),
]


@pytest.mark.parametrize("todo,listed,lists", FIND)
def test_lists_cheaper_counts_requests(todo, listed, lists):
    assert s3engine.lists_cheaper(todo, listed) is lists


def test_copy_argv_finds_files_by_listing_or_by_head():
    args = (parse_end("s3://b/p/"), parse_end("/data/x/"), "/tmp/list")
    head = s3engine.copy_argv(*args)
    listing = s3engine.copy_argv(*args, traverse=True)
    assert "--no-traverse" in head and "--no-traverse" not in listing
    assert set(head) - set(listing) == {"--no-traverse"}
    assert "--no-check-dest" in listing and "--files-from-raw=/tmp/list" in listing and "--fast-list" not in listing


LOG = ('2026/12/01 19:21:35 DEBUG : Setting --s3-region "us-east-1" from environment variable\n'
       '2026/12/01 19:21:35 DEBUG : rclone: Version "v1.75.2" starting with parameters ["rclone" "lsjson"]\n'
       '2026/12/01 19:21:36 ERROR : : error listing: directory not found\n'
       '2026/12/01 19:21:36 DEBUG : 5 go routines active\n'
       '2026/12/01 19:21:36 Failed to lsjson: directory not found\n')


def test_the_listing_log_names_the_version_and_errors_survive_without_debug():
    assert "--log-level=DEBUG" in s3engine.lsjson_argv(parse_end("s3://b/p/"))
    assert "--log-level=NOTICE" not in s3engine.lsjson_argv(parse_end("s3://b/p/"))
    assert s3engine.version_from_log(LOG) == "rclone v1.75.2"
    assert s3engine.version_from_log("") == ""
    assert s3engine.without_debug(LOG) == ("2026/12/01 19:21:36 ERROR : : error listing: directory not found\n"
                                           "2026/12/01 19:21:36 Failed to lsjson: directory not found\n")
