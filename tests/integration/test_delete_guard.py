"""--delete never mirrors an empty source: a mistyped or empty source would wipe the target."""

from __future__ import annotations


import pytest

from helpers import write_config

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
