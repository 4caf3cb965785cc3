"""The s3sync protocol end to end through the CLI, against the suite's real S3 server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import dry_summary, write_config
from trees import RUN_FILES, tree, write_tree

pytestmark = pytest.mark.integration


RESUME = ["*hnpi*", "*snpi*", "*seed*", "- *"]


@pytest.fixture
def local_tree(tmp_path):
    return write_tree(tmp_path / "src", RUN_FILES)


def upload_all(s3, run_cli, tmp_path, local_tree, bucket, prefix="project/"):
    cfg = write_config(tmp_path / "up.yml", {"up": {"type": "s3sync", "source": f"{local_tree}/",
                                                    "target": f"s3://{bucket}/{prefix}"}})
    done = run_cli(["sync", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr


def test_upload_with_filters_and_summary(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    cfg = write_config(tmp_path / "c.yml", {"snap": {"type": "s3sync", "source": f"{local_tree}/model_output",
                                                     "target": f"s3://{bucket}/project", "filters": ["- llik/"]}})
    done = run_cli(["sync", "--json", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    expected = {f"project/{k}" for k in RUN_FILES if "/llik/" not in k}
    assert set(s3.list(bucket)) == expected
    result = json.loads(done.stdout)
    assert result["transferred"]["files"] == len(expected)
    assert result["mechanism"].startswith("aws native")
    # re-sync moves nothing
    again = run_cli(["sync", "--json", cfg], env=s3.env)
    assert json.loads(again.stdout)["transferred"]["files"] == 0


def test_resume_example_fetches_exactly_hnpi_snpi_seed(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    upload_all(s3, run_cli, tmp_path, local_tree, bucket)
    cfg = write_config(tmp_path / "c.yml", {"resume": {"type": "s3sync", "source": f"s3://{bucket}/project/",
                                                       "target": "model_output", "filters": RESUME}})
    out = tmp_path / "work"
    out.mkdir()
    done = run_cli(["sync", "-v", cfg], env=s3.env, cwd=out)
    assert done.returncode == 0, done.stderr
    got = sorted(tree(out / "model_output"))
    assert got == sorted(k for k in RUN_FILES if any(t in k.rsplit("/", 1)[1] for t in ("hnpi", "snpi", "seed")))
    assert "aws" in done.stderr  # -v shows the command and the mechanism
    assert "[aws" in done.stdout


# source (relative form), expected keys prefix / local landing
def test_trailing_slash_table(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    cases = [
        (f"{local_tree}/model_output", f"s3://{bucket}/a", "a/model_output/USA/manifest.json"),
        (f"{local_tree}/model_output/", f"s3://{bucket}/b", "b/USA/manifest.json"),
        (f"{local_tree}/model_output/", f"s3://{bucket}/c/", "c/USA/manifest.json"),
    ]
    for i, (source, target, key) in enumerate(cases):
        cfg = write_config(tmp_path / f"t{i}.yml", {"p": {"type": "s3sync", "source": source, "target": target}})
        done = run_cli(["sync", cfg], env=s3.env)
        assert done.returncode == 0, done.stderr
        assert key in s3.list(bucket), (source, target, sorted(s3.list(bucket))[:5])
    # downloads: s3://b/a/model_output (no slash) lands at target/model_output; with slash, in target
    for i, (source, landing) in enumerate([(f"s3://{bucket}/a/model_output", "d1/model_output/USA/manifest.json"),
                                           (f"s3://{bucket}/a/model_output/", "d2/USA/manifest.json")]):
        target = tmp_path / landing.split("/")[0]
        cfg = write_config(tmp_path / f"d{i}.yml", {"p": {"type": "s3sync", "source": source, "target": str(target)}})
        done = run_cli(["sync", "--mkpath", cfg], env=s3.env)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / landing).is_file(), sorted(tree(target))


def test_reverse_and_s3_to_s3(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/model_output",
                                                  "target": f"s3://{bucket}/proj", "filters": ["+ *.csv", "- *"]}})
    assert run_cli(["sync", cfg], env=s3.env).returncode == 0
    assert list(s3.list(bucket)) == ["proj/model_output/USA/20240501_120000/seed/global/final/"
                                     "000000001.20240501_120000.seed.csv"]
    # reverse into a fresh local copy
    back = tmp_path / "back"
    cfg2 = write_config(tmp_path / "c2.yml", {"p": {"type": "s3sync", "source": f"{back}/model_output",
                                                    "target": f"s3://{bucket}/proj"}})
    done = run_cli(["sync", "--reverse", "--mkpath", cfg2], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert sorted(tree(back)) == ["model_output/USA/20240501_120000/seed/global/final/000000001.20240501_120000.seed.csv"]
    # S3 to S3
    cfg3 = write_config(tmp_path / "c3.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/proj/",
                                                    "target": f"s3://{bucket}/copy/"}})
    done = run_cli(["sync", cfg3], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert any(k.startswith("copy/model_output/") for k in s3.list(bucket))


def test_single_file_source(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/model_output",
                                                  "target": f"s3://{bucket}/runs/"}})
    done = run_cli(["sync", "--source", f"{local_tree}/model_output/USA/manifest.json", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert list(s3.list(bucket)) == ["runs/manifest.json"]


def test_dry_run_moves_nothing(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/",
                                                  "target": f"s3://{bucket}/x/", "filters": ["s hnpi"]}})
    done = run_cli(["sync", "-n", "-v", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert "selected 2 file(s)" in done.stdout and "would transfer 2 " in done.stdout
    assert s3.list(bucket) == {}


def test_inexact_rule_uses_exact_mechanism(s3, run_cli, tmp_path, local_tree):
    """'+ *hnpi*.parquet' has no exact fnmatch form (a '*' inside a component): fnmatch's '*'
    crosses '/', so a directory named *hnpi* would drag in its other parquet files."""
    bucket = s3.make_bucket()
    extra = local_tree / "model_output/USA/20240501_120000/hnpi/global/final/notes.parquet"
    extra.write_text("not an hnpi file name")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/",
                                                  "target": f"s3://{bucket}/x/", "filters": ["+ *hnpi*.parquet"]}})
    done = run_cli(["sync", "--json", "-v", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert set(s3.list(bucket)) == {f"x/{k}" for k in RUN_FILES
                                    if "hnpi" in k.rsplit("/", 1)[1] and k.endswith(".parquet")}
    assert "listing" in json.loads(done.stdout)["mechanism"]


ERRORS = [
    ("missing bucket", "s3://no-such-bucket-flepimop/x/", None, "bucket does not exist"),
    ("refused credentials", "s3://{bucket}/x/", {"AWS_SECRET_ACCESS_KEY": "wrong-secret-key"}, "aws exit"),
    ("endpoint unreachable", "s3://{bucket}/x/", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                                                  "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}, "unreachable"),
]


@pytest.mark.parametrize("name,target,env_extra,fragment", ERRORS, ids=[e[0] for e in ERRORS])
def test_s3_errors_exit_1_with_clear_message(s3, run_cli, tmp_path, local_tree, name, target, env_extra, fragment):
    bucket = s3.make_bucket()
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/",
                                                  "target": target.format(bucket=bucket)}})
    env = dict(s3.env, **(env_extra or {}))
    done = run_cli(["sync", cfg], env=env, timeout=180)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert fragment in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_aws_cli_missing_is_explained(s3, run_cli, tmp_path, local_tree):
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/",
                                                  "target": "s3://b/x/"}})
    env = dict(s3.env, PATH="/nonexistent")
    done = run_cli(["sync", cfg], env=env)
    assert done.returncode == 1
    assert "aws: command not found" in done.stderr and "pip install awscli" in done.stderr


def test_secrets_never_printed(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/",
                                                  "target": f"s3://{bucket}/x/", "filters": ["+ *hnpi*.*"]}})
    env = dict(s3.env, AWS_SESSION_TOKEN="TOKEN-SECRET-1234567890")
    for args in (["-vvv"], ["-vvv", "--json"], ["-n", "-vvv", "--json"], ["--plan"]):
        done = run_cli(["sync", *args, cfg], env=env)
        text = done.stdout + done.stderr
        assert env["AWS_SECRET_ACCESS_KEY"] not in text
        assert "TOKEN-SECRET-1234567890" not in text


def test_endpoint_url_protocol_key(s3, run_cli, tmp_path, local_tree):
    """A non-AWS store named in the protocol itself, with no AWS_ENDPOINT_URL in the environment."""
    bucket = s3.make_bucket()
    env = {k: v for k, v in s3.env.items() if not k.startswith("AWS_ENDPOINT_URL")}
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/",
                                                  "target": f"s3://{bucket}/x/", "endpoint_url": s3.endpoint,
                                                  "region": "us-east-1", "filters": ["+ *.csv", "- *"]}})
    done = run_cli(["sync", "-v", cfg], env=env)
    assert done.returncode == 0, done.stderr
    assert f"--endpoint-url={s3.endpoint}" in done.stderr
    assert list(s3.list(bucket)) == ["x/model_output/USA/20240501_120000/seed/global/final/"
                                     "000000001.20240501_120000.seed.csv"]


def test_missing_credentials_are_explained(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    env = {k: v for k, v in s3.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                         "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/",
                                                  "target": f"s3://{bucket}/x/"}})
    done = run_cli(["sync", cfg], env=env, timeout=180)
    assert done.returncode == 1, done.stderr
    assert "credentials" in done.stderr and "Traceback" not in done.stderr
    assert s3.list(bucket) == {}


def test_append_to_s3_target(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    cfg = write_config(tmp_path / "c.yml", {"snap": {"type": "s3sync", "source": f"{local_tree}/model_output/",
                                                     "target": f"s3://{bucket}/runs/"}})
    done = run_cli(["sync", "-t", "+ 20240501_120000", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert "runs/20240501_120000/USA/manifest.json" in s3.list(bucket)


def test_split_explicit_selection_moves_exactly_the_selection(s3, run_cli, tmp_path):
    """A large explicit selection is split into several aws runs (forced here on a small tree);
    the real aws CLI then moves exactly the evaluator's selection, up and down."""
    root = tmp_path / "tree"
    # a differently named stray file in each *hnpi* directory: no correction generalises
    rels = [f"model_output/run{d % 2}/hnpi{d}/{name}" for d in range(6)
            for name in ("000000001.hnpi.parquet", "000000002.hnpi.parquet", f"notes{d}.txt")]
    write_tree(root, {**{rel: rel for rel in rels}, "top.hnpi.csv": "top"})
    expected = {rel for rel in rels if "hnpi" in rel.rsplit("/", 1)[1]} | {"top.hnpi.csv"}
    bucket = s3.make_bucket()
    env = dict(s3.env, FLEPIMOP_SYNC_AWS_PROCESS_COST="1")
    up = write_config(tmp_path / "up.yml", {"p": {"type": "s3sync", "source": f"{root}/", "target": f"s3://{bucket}/x/",
                                                  "filters": ["+ *hnpi*.*"]}})
    done = run_cli(["sync", "--json", "-v", up], env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "split into" in result["mechanism"] and len(result["commands"]) > 1, result["mechanism"]
    assert set(s3.list(bucket)) == {f"x/{p}" for p in expected}
    # download the whole tree back through the same rule, split again
    upload_all(s3, run_cli, tmp_path, root, bucket, prefix="all/")
    down = write_config(tmp_path / "down.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/all/",
                                                      "target": f"{tmp_path}/back/", "filters": ["+ *hnpi*.*"]}})
    done = run_cli(["sync", "--json", "--mkpath", down], env=env)
    assert done.returncode == 0, done.stderr
    assert "split into" in json.loads(done.stdout)["mechanism"]
    assert set(tree(tmp_path / "back")) == expected


def test_large_explicit_upload_is_staged_as_links(s3, run_cli, tmp_path):
    """Above the cost threshold (forced to 0 here), an explicit upload links exactly the selected
    files into a stage directory and syncs that with no filter: same files, no aws filtering."""
    root = tmp_path / "tree"
    rels = [f"run/hnpi{d}/{name}" for d in range(4) for name in (f"{d}.hnpi.parquet", f"stray{d}.txt")]
    write_tree(root, {rel: rel for rel in rels})
    expected = {rel for rel in rels if "hnpi" in rel.rsplit("/", 1)[1]}
    bucket = s3.make_bucket()
    env = dict(s3.env, FLEPIMOP_SYNC_AWS_STAGE_ABOVE="0")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{root}/", "target": f"s3://{bucket}/x/",
                                                  "filters": ["+ *hnpi*.*"]}})
    done = run_cli(["sync", "--json", "-vv", cfg], env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "staged as links" in result["mechanism"]
    assert result["transferred"] == {"files": len(expected), "bytes": sum(len(p) for p in expected)}
    assert set(s3.list(bucket)) == {f"x/{p}" for p in expected}
    assert s3.get(bucket, "x/run/hnpi0/0.hnpi.parquet") == b"run/hnpi0/0.hnpi.parquet"
    stage = result["commands"][0][3]
    assert "flepimop-sync-stage-" in stage and not Path(stage).exists()  # cleaned up
    again = run_cli(["sync", "--json", cfg], env=env)
    assert json.loads(again.stdout)["transferred"]["files"] == 0  # links carry the files' size and mtime


# -- issue 12: honest dry runs, empty sources, glob characters anywhere ---------------------------
def test_dry_run_after_a_complete_sync_says_zero_up_and_down(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    up = write_config(tmp_path / "up.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/",
                                                  "target": f"s3://{bucket}/x/", "filters": RESUME}})
    before = run_cli(["sync", "-n", "--json", up], env=s3.env)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["would_transfer"]["files"] == 4  # hnpi (2), snpi, seed
    assert s3.list(bucket) == {}
    assert run_cli(["sync", up], env=s3.env).returncode == 0
    after = run_cli(["sync", "-n", up], env=s3.env)
    assert after.returncode == 0, after.stderr
    assert "would transfer 0 (0 B), delete 0" in dry_summary(after)
    assert "selected 4 file(s)" in dry_summary(after)
    # one changed file: exactly that one, with its size
    changed = local_tree / "model_output/USA/20240501_120000/seed/global/final/000000001.20240501_120000.seed.csv"
    changed.write_bytes(b"seed-changed")
    again = run_cli(["sync", "-n", "--json", up], env=s3.env)
    assert json.loads(again.stdout)["would_transfer"] == {"files": 1, "bytes": len(b"seed-changed")}
    changed.write_bytes(b"seed1")
    assert run_cli(["sync", up], env=s3.env).returncode == 0
    # down: into an empty local directory, then again after the sync
    down = write_config(tmp_path / "down.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/x/",
                                                      "target": f"{tmp_path}/back/"}})
    first = run_cli(["sync", "-n", "--json", down], env=s3.env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["would_transfer"]["files"] == 4
    assert not (tmp_path / "back").exists()
    assert run_cli(["sync", down], env=s3.env).returncode == 0
    second = run_cli(["sync", "-n", down], env=s3.env)
    assert "would transfer 0 (0 B), delete 0" in dry_summary(second), second.stdout


def test_dry_run_reports_deletions_from_aws_itself(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    upload_all(s3, run_cli, tmp_path, local_tree, bucket, prefix="x/")
    s3.put(bucket, "x/stale.csv", "old")
    s3.put(bucket, "x/stale.txt", "kept: not selected")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local_tree}/",
                                                  "target": f"s3://{bucket}/x/", "filters": ["+ *.csv", "- *"]}})
    done = run_cli(["sync", "-n", "--delete", "--json", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["would_delete"] == ["stale.csv"] and result["would_transfer"]["files"] == 0
    assert "x/stale.csv" in s3.list(bucket)  # nothing was changed


# (source, target below tmp_path, options, what the one-line error says); nothing is created
EMPTY_OR_MISSING_SOURCE = [
    ("s3://{bucket}/projcet/", "back/", [], ["s3://{bucket}/projcet/", "holds no objects"]),
    ("s3://{bucket}/projcet/", "back/a/b/", ["--mkpath"], ["s3://{bucket}/projcet/", "holds no objects"]),
    ("s3://no-such-bucket-flepimop/x/", "back/a/", ["--mkpath"], ["bucket does not exist"]),
]


@pytest.mark.parametrize("source,target,options,fragments", EMPTY_OR_MISSING_SOURCE,
                         ids=["empty prefix", "empty prefix, --mkpath", "missing bucket, --mkpath"])
@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_empty_s3_source_prefix_is_an_error(s3, run_cli, tmp_path, local_tree, dry, source, target, options,
                                            fragments):
    """A download from an empty prefix or a missing bucket fails in one line and leaves no trace:
    the directories the run would have created are not there afterwards."""
    bucket = s3.make_bucket()
    upload_all(s3, run_cli, tmp_path, local_tree, bucket, prefix="project/")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": source.format(bucket=bucket),
                                                  "target": f"{tmp_path}/{target}"}})
    done = run_cli(["sync", *(["-n"] if dry else []), *options, cfg], env=s3.env, timeout=180)
    assert done.returncode == 1, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    for fragment in fragments:
        assert fragment.format(bucket=bucket) in errors[0], done.stderr
    assert not (tmp_path / "back").exists()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == sorted([*before, Path("c.yml")])


def test_dry_run_fails_where_the_real_run_fails(s3, run_cli, tmp_path, local_tree):
    cases = [
        ({"source": f"{local_tree}/", "target": "s3://no-such-bucket-flepimop/x/"}, "bucket does not exist"),
        ({"source": "s3://no-such-bucket-flepimop/x/", "target": f"{tmp_path}/d/"}, "bucket does not exist"),
        ({"source": f"{tmp_path}/missing/", "target": "s3://b/x/"}, "does not exist"),
    ]
    for i, (ends, fragment) in enumerate(cases):
        cfg = write_config(tmp_path / f"c{i}.yml", {"p": {"type": "s3sync", **ends}})
        for args in (["-n"], []):
            done = run_cli(["sync", *args, cfg], env=s3.env, timeout=180)
            assert done.returncode in (1, 2), (ends, done.stderr)
            assert fragment in done.stderr, (ends, args, done.stderr)
    # a local target whose parent is missing: the real run refuses (aws would create every level)
    bucket = s3.make_bucket()
    upload_all(s3, run_cli, tmp_path, local_tree, bucket, prefix="x/")
    cfg = write_config(tmp_path / "deep.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/x/",
                                                     "target": f"{tmp_path}/a/b/c"}})
    for args in (["-n"], []):
        done = run_cli(["sync", *args, cfg], env=s3.env)
        assert done.returncode == 1 and "--mkpath" in done.stderr, done.stderr
        assert not (tmp_path / "a").exists()
    done = run_cli(["sync", "--mkpath", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert set(tree(tmp_path / "a/b/c")) == set(RUN_FILES)


GLOB_DIRS = ["w[1]", "w*x", "w?y", "w]z", "w o", "a[b]*?c ]"]
# every file name below also carries glob characters
GLOB_FILES = {
    "keep[1].csv": b"1", "keep*.csv": b"22", "keep?.csv": b"333", "sub dir/keep].csv": b"4",
    "drop[1].txt": b"x", "keep1.csv.txt": b"y", "sub dir/drop*.txt": b"z",
}
GLOB_SELECTED = {k for k in GLOB_FILES if k.endswith(".csv")}


def _glob_tree(root: Path) -> Path:
    return write_tree(root, GLOB_FILES)


@pytest.mark.parametrize("name", GLOB_DIRS)
def test_glob_characters_in_the_working_directory_and_local_end(s3, run_cli, tmp_path, name):
    """DATA LOSS before: aws joins every pattern to the absolute local root; with '[' or '*' in
    it (the working directory included) an upload sent excluded files and a download with delete
    removed files the rules exclude.  Now exact, with --delete, up and down."""
    work = tmp_path / name
    _glob_tree(work / name / "out")
    temp = tmp_path / "temp"  # the runs' glob-free links go here: checked empty at the end
    temp.mkdir()
    env = dict(s3.env, TMPDIR=str(temp))
    bucket = s3.make_bucket()
    s3.put(bucket, "x/stale.csv", "selected at the target, missing at the source: deleted")
    s3.put(bucket, "x/other.txt", "not selected: never deleted")
    write_config(work / "c.yml", {"p": {"type": "s3sync", "source": f"{name}/out/",
                                        "target": f"s3://{bucket}/x/", "filters": ["+ *.csv", "- *"]}})
    done = run_cli(["sync", "--delete", "-v", "c.yml"], env=env, cwd=work)
    assert done.returncode == 0, done.stderr
    assert set(s3.list(bucket)) == {f"x/{k}" for k in GLOB_SELECTED} | {"x/other.txt"}
    again = run_cli(["sync", "-n", "--delete", "c.yml"], env=env, cwd=work)
    assert "would transfer 0 (0 B), delete 0" in dry_summary(again), again.stdout + again.stderr
    # download with --delete into a local end that also holds unselected files
    s3.put(bucket, "x/drop[2].txt", "not selected: never downloaded")
    back = work / name / "back"
    back.mkdir()
    (back / "local[1].txt").write_text("not selected: must survive --delete")
    (back / "gone[1].csv").write_text("selected, missing at the source: deleted")
    write_config(work / "d.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/x/",
                                        "target": f"{name}/back/", "filters": ["+ *.csv", "- *"]}})
    done = run_cli(["sync", "--delete", "d.yml"], env=env, cwd=work)
    assert done.returncode == 0, done.stderr
    assert set(tree(back)) == GLOB_SELECTED | {"local[1].txt"}
    assert not list(temp.iterdir())  # the links are cleaned up


@pytest.mark.parametrize("prefix,ok", [("p?q", True), ("p]q", True), ("p q", True), ("p[1]", False),
                                       ("p*q", False)])
def test_glob_characters_in_the_bucket_prefix(s3, run_cli, tmp_path, prefix, ok):
    src = _glob_tree(tmp_path / "src")
    bucket = s3.make_bucket()
    s3.put(bucket, f"{prefix}/other.txt", "not selected")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{src}/",
                                                  "target": f"s3://{bucket}/{prefix}/", "filters": ["+ *.csv", "- *"]}})
    done = run_cli(["sync", "--delete", cfg], env=s3.env)
    if not ok:
        assert done.returncode == 2 and "glob characters" in done.stderr, done.stderr
        assert set(s3.list(bucket)) == {f"{prefix}/other.txt"}
        return
    assert done.returncode == 0, done.stderr
    assert set(s3.list(bucket)) == {f"{prefix}/{k}" for k in GLOB_SELECTED} | {f"{prefix}/other.txt"}
    down = write_config(tmp_path / "d.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/{prefix}/",
                                                   "target": f"{tmp_path}/back/", "filters": ["+ *.csv", "- *"]}})
    done = run_cli(["sync", down], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert set(tree(tmp_path / "back")) == GLOB_SELECTED


def test_missing_local_target_level_is_created_like_rsync(s3, run_cli, tmp_path, local_tree):
    bucket = s3.make_bucket()
    upload_all(s3, run_cli, tmp_path, local_tree, bucket, prefix="x/model_output/")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/x/model_output",
                                                  "target": f"{tmp_path}/new"}})
    done = run_cli(["sync", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert set(tree(tmp_path / "new/model_output")) == set(RUN_FILES)


def test_a_local_end_named_with_glob_characters_is_refused_with_filters(s3, run_cli, tmp_path):
    """Its own name would be in every aws pattern and no glob-free path reaches it: exit 2 with
    filters, nothing moved; without filters there is no pattern, and it syncs."""
    src = _glob_tree(tmp_path / "runs[1]")
    bucket = s3.make_bucket()
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{src}/",
                                                  "target": f"s3://{bucket}/x/", "filters": ["+ *.csv", "- *"]}})
    for args in (["-n"], []):
        done = run_cli(["sync", *args, cfg], env=s3.env)
        assert done.returncode == 2 and "glob characters" in done.stderr, done.stderr
    assert s3.list(bucket) == {}
    done = run_cli(["sync", "--no-filter", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert set(s3.list(bucket)) == {f"x/{k}" for k in GLOB_FILES}
