"""A receipt names the version of the program that moved the files, and only that one.

Asking ``aws --version`` starts the whole aws CLI (about a second of CPU): a campaign's rsync and
git rules must not pay it for a line their receipts do not need.  Each row runs a real rule
(``api.run_rule``) with the real tool against the suite's servers.
"""

from __future__ import annotations

import json

import pytest

from flepimop_sync import api
from helpers import write_config
from trees import write_tree

pytestmark = pytest.mark.integration

FILES = {"model_output/r1/hnpi/a.parquet": b"hnpi", "model_output/r1/llik/b.parquet": b"llik"}


@pytest.mark.parametrize(("kind", "engine", "version_prefix"), [
    ("rsync", None, "rsync  version"),
    ("s3sync", "aws", "aws-cli/"),
    ("s3sync", "rclone", "rclone v"),
])
def test_receipt_names_the_tool_that_moved_the_files(kind, engine, version_prefix, s3, tmp_path):
    src = write_tree(tmp_path / "src", FILES)
    if kind == "rsync":
        target = f"{tmp_path / 'dst'}/"
        env = None
    else:
        target = f"s3://{s3.make_bucket()}/x/"
        env = dict(s3.env)
    protocol = {"type": kind, "source": f"{src}/", "target": target, **({"engine": engine} if engine else {})}
    cfg = write_config(tmp_path / "c.yml", {"p": protocol})
    receipt = tmp_path / "receipt.json"
    api.run_rule(api.rule_params(str(cfg), protocol="p"), receipt=receipt, env=env)
    versions = json.loads(receipt.read_text())["tool_versions"]
    tool = engine or kind
    assert set(versions) == {"flepimop-sync", "python", tool}, versions
    assert versions[tool].startswith(version_prefix), versions


@pytest.mark.parametrize(("protocol", "tools"), [
    # a tool ran and failed: the failure receipt names that tool's version, and only that one
    ({"type": "rsync", "source": "{tmp}/src/", "target": "{tmp}/missing/deeper/"}, {"rsync"}),
    ({"type": "s3sync", "source": "{tmp}/src/", "target": "s3://{missing_bucket}/x/"}, {"aws"}),
    ({"type": "s3sync", "source": "{tmp}/src/", "target": "s3://{missing_bucket}/x/", "engine": "rclone"}, {"rclone"}),
    # refused before any tool ran (exit 2): no tool is asked
    ({"type": "rsync", "source": "{tmp}/src/", "target": "{tmp}/dst/", "filters": ["+ [unclosed"]}, set()),
], ids=["rsync failed", "aws failed", "rclone failed", "refused"])
def test_failure_receipt_names_only_the_tool_that_ran(protocol, tools, s3, tmp_path):
    from flepimop_sync.errors import SyncError

    write_tree(tmp_path / "src", FILES)
    fill = {"tmp": tmp_path, "missing_bucket": f"{s3.make_bucket()}-missing"}
    protocol = {k: [r.format(**fill) for r in v] if isinstance(v, list) else v.format(**fill)
                for k, v in protocol.items()}
    cfg = write_config(tmp_path / "c.yml", {"p": protocol})
    receipt = tmp_path / "receipt.json"
    with pytest.raises(SyncError):  # params as a rule holds them (rule_params would refuse the filter)
        api.run_rule({"config_files": [str(cfg)], "protocol": "p"}, receipt=receipt, env=dict(s3.env))
    assert not receipt.exists()
    failed = json.loads(receipt.with_name("receipt.json.failed").read_text())
    assert set(failed["tool_versions"]) == {"flepimop-sync", "python", *tools}, failed


@pytest.mark.parametrize(("result", "tools"), [
    ({"type": "rsync"}, ("rsync",)),
    ({"type": "git"}, ("git",)),
    ({"type": "s3sync", "engine": "aws"}, ("aws",)),
    ({"type": "s3sync", "engine": "rclone"}, ("rclone",)),
    ({"type": "s3sync"}, ("aws",)),
    ({}, ("rsync", "aws", "git")),  # a run that failed before its type was known
])
def test_tools_of(result, tools):
    assert api.tools_of(result) == tools


def test_a_failed_audit_listing_is_one_line_naming_the_protocol(s3, tmp_path):
    """The receipt's audit list reads S3 through the listing every run uses, so its failure is
    worded (and its secrets masked) as every tool failure is: one line, the protocol, a hint."""
    from flepimop_sync.errors import StepFailed
    from flepimop_sync.options import SyncOptions

    src = write_tree(tmp_path / "src", FILES)
    missing = f"{s3.make_bucket()}-missing"
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{missing}/x/"}})
    env = dict(s3.env)
    with pytest.raises(StepFailed) as caught:
        api.destination_files([str(cfg)], SyncOptions(protocol="p"), env)
    message = str(caught.value)
    assert message.startswith("protocol 'p': listing the S3 end failed (aws exit "), message
    assert "the bucket does not exist" in message and "\n" not in message, message
    assert env["AWS_SECRET_ACCESS_KEY"] not in message


# filters -> the files they select; does the run itself list the S3 source (before the copy)?
DOWNLOAD_FILTERS = [
    # native: aws selects; the receipt's selection count lists the source, the audit reuses it
    (["+ r1/hnpi/**"], ["r1/hnpi/a.parquet"], False),
    # aws cannot say it alone: the run lists the source to verify, the receipt reuses that listing
    (["+ */hnpi/*.parquet", "+ */llik/*"], ["r1/hnpi/a.parquet", "r1/llik/b.parquet"], True),
]


@pytest.mark.parametrize(("filters", "want", "run_lists"), DOWNLOAD_FILTERS, ids=["native", "listed by the run"])
def test_a_download_rule_lists_its_s3_source_once(filters, want, run_lists, s3, tmp_path):
    """The audit list's ETags are the source's, and a download rule lists its S3 source once:
    the run's listing (what the files were copied from), or the one that counted the selection,
    serves the receipt's ETags too."""
    import os
    import shutil

    bucket = s3.make_bucket()
    for path, body in FILES.items():
        s3.put(bucket, f"src/{path}", body)
    calls = tmp_path / "aws-calls.txt"
    shim = tmp_path / "bin" / "aws"  # the real aws, each call's argv noted first
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{calls}"\nexec "{shutil.which("aws", path=s3.env["PATH"])}" "$@"\n')
    shim.chmod(0o755)
    env = dict(s3.env, PATH=f"{shim.parent}{os.pathsep}{s3.env['PATH']}")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/src/model_output/",
                                                  "target": f"{tmp_path / 'dst'}/", "filters": filters}})
    receipt = tmp_path / "receipt.json"
    api.run_rule(api.rule_params(str(cfg), protocol="p"), receipt=receipt, env=env)
    body = json.loads(receipt.read_text())
    objects = {key[len("src/model_output/"):]: s3.client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
               for key in s3.list(bucket, "src/")}
    assert [(f["path"], f["etag"]) for f in body["files"]] == [(p, objects[p]) for p in want]
    lines = calls.read_text().splitlines()
    source_listings = [line for line in lines if line.startswith(f"s3api list-objects-v2 --bucket={bucket} ")]
    assert len(source_listings) == 1, lines
    assert body["selected"] == {"files": len(want), "bytes": sum(len(FILES[f"model_output/{p}"]) for p in want)}
    synced = next(i for i, line in enumerate(lines) if line.startswith("s3 sync "))
    assert (lines.index(source_listings[0]) < synced) == run_lists, lines
