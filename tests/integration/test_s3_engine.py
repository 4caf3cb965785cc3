"""The fast S3 engine (rclone) against the suite's real S3 server: the same files, the same sync
semantics and the same outputs as the aws engine, the same credentials and endpoints.

Most tests run a scenario twice, once per engine, and compare what landed and what was said.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import write_config
from trees import list_files, random_trees, tree, write_tree

from flepimop_sync.filters import build_rules

pytestmark = pytest.mark.integration

ENGINES = ("aws", "rclone")
FILES = {
    "model_output/USA/20240501_120000/hnpi/global/final/000000001.20240501_120000.hnpi.parquet": b"hnpi1",
    "model_output/USA/20240501_120000/hnpi/global/intermediate/000000001.000000001.000000001.20240501_120000.hnpi.parquet": b"hnpi-int",
    "model_output/USA/20240501_120000/snpi/global/final/000000001.20240501_120000.snpi.parquet": b"snpi1",
    "model_output/USA/20240501_120000/seed/global/final/000000001.20240501_120000.seed.csv": b"seed1",
    "model_output/USA/20240501_120000/llik/global/final/000000001.20240501_120000.llik.parquet": b"llik" * 50,
    "model_output/USA/manifest.json": b"{}",
    "odd/a [1]/x*y?.csv": b"odd",
    "odd/é b/#c.txt": b"odd2",
}
RESUME = ["*hnpi*", "*snpi*", "*seed*", "- *"]


@pytest.fixture(autouse=True)
def _need_rclone():
    if not shutil.which("rclone"):
        pytest.skip("rclone not installed (pip install 'flepimop-sync[fast]')")


def make_tree(root: Path, files=FILES) -> Path:
    return write_tree(root, files)


def s3_tree(s3, bucket: str, prefix: str) -> dict[str, bytes]:
    out = {}
    for key in s3.list(bucket, prefix):
        out[key[len(prefix):]] = s3.client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return out


def sync(run_cli, s3, cfg, engine, *args, env=None, cwd=None):
    done = run_cli(["sync", "--engine", engine, *args, cfg], env=env or s3.env, cwd=cwd)
    return done


def _json(done) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- the same files, the same placement --------------------------------------------------
# (source, target, filters, extra options); {src} is a local tree, {s3} an uploaded copy of it
SCENARIOS = [
    ("upload, filters", "{src}/model_output", "{s3}/up", ["- llik/"], []),
    ("upload, slash", "{src}/model_output/", "{s3}/up/", RESUME, []),
    ("upload, odd names", "{src}/", "{s3}/up", ["+ odd/**", "- *"], []),
    ("upload, append", "{src}/model_output/", "{s3}/runs/", ["+ *.json", "- *"], ["-t", "+ 20240501_120000"]),
    # two missing levels: --mkpath, as plain rsync needs it (issue 12: only the last level is created)
    ("download, resume", "{s3}/full/", "{dst}/model_output", RESUME, ["--mkpath"]),
    ("download, no slash", "{s3}/full/model_output", "{dst}", ["- llik/"], ["--mkpath"]),
    ("download, everything", "{s3}/full/", "{dst}/", [], []),
    ("reverse", "{dst}/model_output", "{s3}/full", ["+ *.csv", "- *"], ["--reverse", "--mkpath"]),
    ("s3 to s3", "{s3}/full/", "{s3}/copy/", ["s /final/"], []),
    ("single file", "{src}/model_output/USA/manifest.json", "{s3}/one/", [], []),
]


@pytest.mark.parametrize("name,source,target,filters,extra", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_same_files_and_output_as_aws(s3, run_cli, tmp_path, name, source, target, filters, extra):
    src = make_tree(tmp_path / "src")
    outcome = {}
    for engine in ENGINES:
        bucket = s3.make_bucket()
        # Seeded, not PUT: right after a PUT the rclone test server's HEAD can name the second
        # before, an S3->S3 copy is stamped with it and the re-sync copies it again (the server's
        # quirk, measured, is described once: tests/testbed.py, S3Server).
        s3.seed(bucket, [("full", src, FILES)])
        dst = tmp_path / f"dst-{engine}"
        fmt = {"src": src, "s3": f"s3://{bucket}", "dst": dst}
        proto = {"type": "s3sync", "source": source.format(**fmt), "target": target.format(**fmt)}
        if filters:
            proto["filters"] = filters
        cfg = write_config(tmp_path / f"{engine}.yml", {"p": proto})
        dry = _json(sync(run_cli, s3, cfg, engine, "-n", "--json", *extra))
        result = _json(sync(run_cli, s3, cfg, engine, "--json", *extra))
        again = _json(sync(run_cli, s3, cfg, engine, "--json", *extra))
        outcome[engine] = {
            "s3": {k: v for k, v in s3_tree(s3, bucket, "").items() if not k.startswith("full/")},
            "local": tree(dst) if dst.exists() else {},
            "selection": dry["selection"], "selected": dry["selected"],
            "transferred": result["transferred"],
            "again": again["transferred"]["files"],
            "destination": result["destination"].replace(bucket, "B").replace(str(dst), "D"),
            "keys": sorted(set(result) - {"engine_version", "mechanism"}),
        }
        assert result["engine"] == engine
        assert dry["would_transfer"] == result["transferred"]  # the dry run's counts are the real run's
        if engine == "rclone":
            assert result["engine_version"].startswith("rclone v"), result
            assert result["mechanism"].startswith("rclone")
    aws, fast = outcome["aws"], outcome["rclone"]
    keys_aws, keys_fast = set(aws.pop("keys")), set(fast.pop("keys"))
    assert keys_aws - {"commands"} <= keys_fast, keys_aws - keys_fast  # the same result document
    assert fast == aws
    assert aws["again"] == (1 if name == "single file" else 0) and aws["transferred"]  # aws s3 cp always copies


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_delete_removes_only_selected_missing_files(s3, run_cli, tmp_path, direction):
    outcome = {}
    for engine in ENGINES:
        bucket = s3.make_bucket()
        local = make_tree(tmp_path / f"l-{engine}")
        for rel, data in FILES.items():
            s3.client.put_object(Bucket=bucket, Key=f"x/{rel}", Body=data)
        # the source lacks two files; only the selected one may go
        gone = ["model_output/USA/manifest.json", "odd/é b/#c.txt"]
        if direction == "upload":
            for rel in gone:
                (local / rel).unlink()
            proto = {"type": "s3sync", "source": f"{local}/", "target": f"s3://{bucket}/x/"}
        else:
            for rel in gone:
                s3.client.delete_object(Bucket=bucket, Key=f"x/{rel}")
            proto = {"type": "s3sync", "source": f"s3://{bucket}/x/", "target": f"{local}/"}
        proto.update(filters=["- odd/", "+ **"], delete=True)
        cfg = write_config(tmp_path / f"{engine}.yml", {"p": proto})
        dry = _json(sync(run_cli, s3, cfg, engine, "-n", "--json"))
        _json(sync(run_cli, s3, cfg, engine, "--json"))
        outcome[engine] = (dry["would_delete"], s3_tree(s3, bucket, "x/"), tree(local))
    assert outcome["rclone"] == outcome["aws"]
    assert outcome["aws"][0] == ["model_output/USA/manifest.json"]


def test_empty_source_with_delete_is_refused(s3, run_cli, tmp_path):
    bucket = s3.make_bucket()
    s3.client.put_object(Bucket=bucket, Key="x/keep.txt", Body=b"k")
    (tmp_path / "empty").mkdir()
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{tmp_path}/empty/",
                                                  "target": f"s3://{bucket}/x/", "delete": True}})
    done = sync(run_cli, s3, cfg, "rclone")
    assert done.returncode == 1 and "holds no files" in done.stderr, done.stderr
    assert list(s3.list(bucket)) == ["x/keep.txt"]


# -- the dry run shows what the real run does ------------------------------------------------
MANY = {f"model_output/USA/r1/hnpi/{i:09d}.hnpi.parquet": b"h%d" % i for i in range(30)}
# (direction, source files, --delete?, does the copy HEAD each file (--no-traverse)?)
DRY_COMMANDS = [
    ("upload", FILES, True, True),      # a local source: a stat per file
    ("download", FILES, True, True),    # 8 files in 7 directories: 8 HEADs beat 12 listings
    ("download", MANY, False, False),   # 30 files in one directory: its 6 listings beat 30 HEADs
]


@pytest.mark.parametrize("direction,files,delete,heads", DRY_COMMANDS,
                         ids=["upload", "download, few a directory", "download, many a directory"])
def test_dry_run_verbose_prints_the_commands_the_real_run_executes(s3, run_cli, tmp_path, direction, files, delete,
                                                                   heads):
    """-n -v names the real run's rclone commands, argv for argv; only the explicit lists, temporary
    files in the real run, are a placeholder naming how many files they hold."""
    import shlex

    bucket = s3.make_bucket()
    local = tmp_path / "local"
    if direction == "upload":
        make_tree(local, files)
        s3.client.put_object(Bucket=bucket, Key="x/stale.txt", Body=b"selected, missing at the source")
        proto = {"type": "s3sync", "source": f"{local}/", "target": f"s3://{bucket}/x/"}
    else:
        make_tree(local, {"stale.txt": b"selected, missing at the source"})
        for rel, data in files.items():
            s3.client.put_object(Bucket=bucket, Key=f"x/{rel}", Body=data)
        proto = {"type": "s3sync", "source": f"s3://{bucket}/x/", "target": f"{local}/"}
    proto.update(filters=["- llik/"], delete=delete)
    cfg = write_config(tmp_path / "c.yml", {"p": proto})
    dry = sync(run_cli, s3, cfg, "rclone", "-n", "-v")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    at = lines.index("commands a real run would execute:")
    shown = [shlex.split(line) for line in lines[at + 1:] if line.startswith("  rclone ")]
    real = _json(sync(run_cli, s3, cfg, "rclone", "--json"))
    moved = len([p for p in files if "llik" not in p])
    counts = [moved] + ([1] if delete else [])
    assert real["transferred"]["files"] == moved and real.get("deleted", []) == (["stale.txt"] if delete else [])
    assert len(shown) == len(real["commands"]) == len(counts)
    for dry_argv, real_argv, count, verb in zip(shown, real["commands"], counts,
                                                ("transfer", "delete")[:len(counts)], strict=True):
        listed = [a for a in real_argv if a.startswith("--files-from-raw=")]
        assert len(listed) == 1
        expected = [f"--files-from-raw=<list of the {count} file(s) to {verb}>" if a in listed else a
                    for a in real_argv]
        assert dry_argv == expected
    assert ("--no-traverse" in real["commands"][0]) is heads


# Issue 12 point 5 on this engine: the dry run warns (stderr) about an include rule that matches
# nothing at the source, as the aws path does.  (filters, the rule texts the warnings name)
UNMATCHED = [
    (["+ *hnpi*", "+ 20240502_000000/", "- *"], ["+ 20240502_000000/"]),
    (["+ *.csv", "s no-such-text"], ["s no-such-text"]),
    (["- llik/", "- no-such-dir/"], []),
]


@pytest.mark.parametrize("direction", ["upload", "download"])
@pytest.mark.parametrize("filters,named", UNMATCHED)
def test_dry_run_warns_about_includes_that_match_nothing(s3, run_cli, tmp_path, direction, filters, named):
    warned = {}
    bucket = s3.make_bucket()
    src = make_tree(tmp_path / "src")
    for rel, data in FILES.items():
        s3.client.put_object(Bucket=bucket, Key=f"full/{rel}", Body=data)
    for engine in ENGINES:
        if direction == "upload":
            proto = {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/{engine}/"}
        else:
            proto = {"type": "s3sync", "source": f"s3://{bucket}/full/", "target": f"{tmp_path}/{engine}/"}
        cfg = write_config(tmp_path / f"{engine}.yml", {"p": {**proto, "filters": filters}})
        done = sync(run_cli, s3, cfg, engine, "-n")
        assert done.returncode == 0, done.stderr
        warned[engine] = [line.split("'")[1] for line in done.stderr.splitlines()
                          if "matches no file or directory" in line]
        assert "matches no file" not in done.stdout and not (tmp_path / engine).exists()
    assert warned == {"aws": named, "rclone": named}
    assert set(s3.list(bucket)) == {f"full/{rel}" for rel in FILES}  # nothing written


# -- what counts as changed: aws' rules (size, then modification time) -------------------
def _set_mtime(path: Path, when: float) -> None:
    os.utime(path, (when, when))


# (direction, what is done to the local copy after a first sync, is it transferred again?)
CHANGES = [
    ("upload", "same size, newer", True),
    ("upload", "same size, older", False),
    ("upload", "other size, older", True),
    ("download", "same size, newer", True),   # aws re-downloads when the LOCAL file is newer
    ("download", "same size, older", False),
    ("download", "other size, older", True),
]


@pytest.mark.parametrize("direction,change,moves", CHANGES, ids=[f"{d}: {c}" for d, c, _ in CHANGES])
def test_what_counts_as_changed_is_aws(s3, run_cli, tmp_path, direction, change, moves):
    got = {}
    for engine in ENGINES:
        bucket = s3.make_bucket()
        local = tmp_path / engine
        local.mkdir()
        (local / "f.txt").write_bytes(b"0123456789")
        if direction == "upload":
            proto = {"type": "s3sync", "source": f"{local}/", "target": f"s3://{bucket}/x/"}
        else:
            s3.client.put_object(Bucket=bucket, Key="x/f.txt", Body=b"0123456789")
            proto = {"type": "s3sync", "source": f"s3://{bucket}/x/", "target": f"{local}/"}
        cfg = write_config(tmp_path / f"{engine}.yml", {"p": proto})
        _json(sync(run_cli, s3, cfg, engine, "--json"))
        path = local / "f.txt"
        if "other size" in change:
            path.write_bytes(b"0123456789abc")
        stamp = path.stat().st_mtime + (3600 if "newer" in change else -3600)
        _set_mtime(path, stamp)
        got[engine] = _json(sync(run_cli, s3, cfg, engine, "--json"))["transferred"]["files"]
    assert got == {"aws": int(moves), "rclone": int(moves)}


def test_downloads_keep_the_s3_time_and_resync_across_engines_is_a_no_op(s3, run_cli, tmp_path):
    bucket = s3.make_bucket()
    src = make_tree(tmp_path / "src")
    up = write_config(tmp_path / "up.yml", {"p": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/x/"}})
    assert _json(sync(run_cli, s3, up, "aws", "--json"))["transferred"]["files"] == len(FILES)
    assert _json(sync(run_cli, s3, up, "rclone", "--json"))["transferred"]["files"] == 0
    mtimes = {}
    for engine in ENGINES:
        dst = tmp_path / f"d-{engine}"
        down = write_config(tmp_path / f"{engine}.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/x/",
                                                               "target": f"{dst}/"}})
        assert _json(sync(run_cli, s3, down, engine, "--json"))["transferred"]["files"] == len(FILES)
        other = "aws" if engine == "rclone" else "rclone"
        assert _json(sync(run_cli, s3, down, other, "--json"))["transferred"]["files"] == 0
        mtimes[engine] = {rel: (dst / rel).stat().st_mtime for rel in FILES}
    # The object's listed LastModified cut to the second, as aws sets it (the test server's HEAD
    # can disagree with its listing by a second: the listed time is the one both engines keep).
    listed = {o["Key"][len("x/"):]: int(o["LastModified"].timestamp())
              for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="x/")
              for o in page["Contents"]}
    assert mtimes["aws"] == mtimes["rclone"] == {rel: listed[rel] for rel in FILES}


#: rclone, except that just before a copy starts (after our listing) the file named in
#: $VANISH_LOCAL, or the object named in $VANISH_S3, is removed: a real race, made certain.
VANISHING_RCLONE = """#!/bin/sh
if [ "$1" = copy ]; then
  if [ -n "$VANISH_LOCAL" ]; then rm -f -- "$VANISH_LOCAL"; fi
  if [ -n "$VANISH_S3" ]; then "$REAL_RCLONE" deletefile --config= "$VANISH_S3" || exit 99; fi
fi
exec "$REAL_RCLONE" "$@"
"""


@pytest.mark.parametrize("direction", ["upload", "download", "S3 to S3"])
def test_a_file_vanishing_before_the_copy_fails_the_sync(s3, run_cli, tmp_path, direction):
    """rclone skips a file that vanished between our listing and its copy silently, with exit 0:
    the sync fails naming it (as rsync fails, exit 24) instead of counting it as transferred."""
    shim = tmp_path / "bin" / "rclone"
    shim.parent.mkdir()
    shim.write_text(VANISHING_RCLONE)
    shim.chmod(0o755)
    env = dict(s3.env, PATH=f"{shim.parent}{os.pathsep}{s3.env.get('PATH', os.environ['PATH'])}",
               REAL_RCLONE=shutil.which("rclone"))
    bucket = s3.make_bucket()
    src = make_tree(tmp_path / "src")
    gone = sorted(FILES)[0]
    dst = tmp_path / "dst"
    if direction == "upload":
        proto = {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/x/"}
        vanish = {"VANISH_LOCAL": str(src / gone)}
    else:
        # Seeded, not PUT: right after a PUT the rclone test server's HEAD can name the second
        # before, an S3->S3 copy is stamped with it and the rerun below would copy it again (the
        # server's quirk, measured, is described once: tests/testbed.py, S3Server).
        s3.seed(bucket, [("x", src, FILES)])
        target = f"{dst}/" if direction == "download" else f"s3://{bucket}/copy/"
        proto = {"type": "s3sync", "source": f"s3://{bucket}/x/", "target": target}
        vanish = {"VANISH_S3": f":s3:{bucket}/x/{gone}"}
    cfg = write_config(tmp_path / "c.yml", {"p": proto})
    control = run_cli(["sync", "--engine", "rclone", "-n", cfg], env=env)  # the shim alone changes nothing
    assert control.returncode == 0, control.stderr
    done = run_cli(["sync", "--engine", "rclone", cfg], env=dict(env, **vanish))
    assert done.returncode == 1, done.stderr
    assert "1 selected file(s) vanished or changed" in done.stderr and repr(gone) in done.stderr, done.stderr
    arrived = {"upload": lambda: set(s3.list(bucket, "x/")),
               "download": lambda: {f"x/{p}" for p in list_files(dst)},
               "S3 to S3": lambda: {"x/" + key[len("copy/"):] for key in s3.list(bucket, "copy/")}}[direction]()
    assert arrived == {f"x/{p}" for p in FILES if p != gone}
    again = run_cli(["sync", "--engine", "rclone", "--json", cfg], env=env)  # the rerun: in sync, nothing lost
    assert json.loads(again.stdout)["transferred"]["files"] == 0, again.stderr


def test_interrupted_upload_resumes(s3, run_cli, tmp_path):
    bucket = s3.make_bucket()
    src = tmp_path / "src"
    files = {f"d{i % 10}/f{i}.bin": os.urandom(64 * 1024) for i in range(400)}
    make_tree(src, files)
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/x/"}})
    env = dict(s3.env, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "flepimop_sync", "sync", "--engine", "rclone", str(cfg)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not s3.list(bucket) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    _already = {k[2:] for k in s3.list(bucket, "x/")}
    if proc.returncode == 130:
        assert len(s3.list(bucket)) < len(files)  # it was stopped midway
    done = _json(sync(run_cli, s3, cfg, "rclone", "--json"))
    assert s3_tree(s3, bucket, "x/") == files
    assert done["transferred"]["files"] == len(files) - len(set(files) & set(_already))
    assert _json(sync(run_cli, s3, cfg, "rclone", "--json"))["transferred"]["files"] == 0


# -- choosing the engine ----------------------------------------------------------------
def test_engine_key_in_the_config_and_option_override(s3, run_cli, tmp_path):
    bucket = s3.make_bucket()
    src = make_tree(tmp_path / "src")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/x/",
                                                  "engine": "rclone"}})
    done = run_cli(["sync", "--json", cfg], env=s3.env)
    assert _json(done)["engine"] == "rclone"
    plan = json.loads(run_cli(["sync", "--plan", "--engine", "aws", cfg], env=s3.env).stdout)
    assert plan["engine"] == "aws"


ENGINE_ERRORS = [
    # (what, config extra, options, env change, exit code, fragment)
    ("not installed", {}, ["--engine", "rclone"], {"PATH": "/nonexistent"}, 2, "engine 'rclone' is not installed"),
    ("unknown engine key", {"engine": "s5"}, [], {}, 2, "engine"),
    ("unknown engine option", {}, ["--engine", "s5"], {}, 2, "Invalid value for '--engine'"),
    ("engine on rsync", {"type": "rsync"}, ["--engine", "rclone"], {}, 2, "s3sync protocols only"),
    ("missing bucket", {"target": "s3://no-such-bucket-flepimop/x/"}, ["--engine", "rclone"], {}, 1, "rclone exit"),
    ("refused credentials", {}, ["--engine", "rclone"], {"AWS_SECRET_ACCESS_KEY": "wrong-secret-key"}, 1,
     "rclone exit"),
]


@pytest.mark.parametrize("what,extra,options,env_change,code,fragment", ENGINE_ERRORS, ids=[e[0] for e in ENGINE_ERRORS])
def test_engine_errors_are_one_line(s3, run_cli, tmp_path, what, extra, options, env_change, code, fragment):
    bucket = s3.make_bucket()
    src = make_tree(tmp_path / "src")
    proto = {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/x/", **extra}
    if proto["type"] == "rsync":
        proto["target"] = str(tmp_path / "t")
    cfg = write_config(tmp_path / "c.yml", {"p": proto})
    env = dict(s3.env, **env_change)
    if "PATH" in env_change:  # python itself is still found: run it by its full path
        env["PATH"] = env_change["PATH"]
    done = run_cli(["sync", *options, cfg], env=env, timeout=180)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert fragment in done.stderr and "Traceback" not in done.stderr, done.stderr
    if "Invalid value" not in fragment:  # click's own usage errors add a usage line
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert s3.list(bucket) == {}


def test_secrets_never_printed(s3, run_cli, tmp_path):
    bucket = s3.make_bucket()
    src = make_tree(tmp_path / "src")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/x/",
                                                  "filters": ["+ *hnpi*"], "delete": True}})
    env = dict(s3.env, AWS_SESSION_TOKEN="TOKEN-SECRET-1234567890")
    for args in (["-vvv"], ["-vvv", "--json"], ["-n", "-vvv", "--json"], ["--plan"]):
        done = run_cli(["sync", "--engine", "rclone", *args, cfg], env=env)
        text = done.stdout + done.stderr
        assert env["AWS_SECRET_ACCESS_KEY"] not in text and "TOKEN-SECRET-1234567890" not in text


# -- credentials and endpoints as users have them -----------------------------------------
def _creds_files(tmp_path: Path, s3, *, endpoint_in_profile: bool = False) -> dict[str, str]:
    config = tmp_path / "aws_config"
    creds = tmp_path / "aws_credentials"
    key, secret = s3.env["AWS_ACCESS_KEY_ID"], s3.env["AWS_SECRET_ACCESS_KEY"]
    config.write_text("[profile lab]\nregion = us-east-1\n"
                      + (f"endpoint_url = {s3.endpoint}\n" if endpoint_in_profile else ""))
    creds.write_text(f"[lab]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    return {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(creds)}


def _without(env, *names):
    return {k: v for k, v in env.items() if k not in names}


CREDENTIALS = [
    # (how, protocol keys, environment)
    ("AWS_* environment", {}, lambda s3, tmp: dict(s3.env)),
    ("AWS_PROFILE", {}, lambda s3, tmp: dict(_without(s3.env, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
                                             AWS_PROFILE="lab", **_creds_files(tmp, s3))),
    ("profile key", {"profile": "lab"}, lambda s3, tmp: dict(
        _without(s3.env, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), **_creds_files(tmp, s3))),
    ("endpoint_url and region keys", {"endpoint_url": "{endpoint}", "region": "eu-west-3"}, lambda s3, tmp: dict(
        _without(s3.env, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"))),
    ("endpoint in the profile", {}, lambda s3, tmp: dict(
        _without(s3.env, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        AWS_PROFILE="lab", **_creds_files(tmp, s3, endpoint_in_profile=True))),
]


@pytest.mark.parametrize("how,keys,make_env", CREDENTIALS, ids=[c[0] for c in CREDENTIALS])
def test_credentials_and_endpoints(s3, run_cli, tmp_path, how, keys, make_env):
    env = make_env(s3, tmp_path)
    src = make_tree(tmp_path / "src")
    for engine in ENGINES:
        bucket = s3.make_bucket()
        proto = {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/x/",
                 **{k: v.format(endpoint=s3.endpoint) for k, v in keys.items()}}
        cfg = write_config(tmp_path / f"{engine}.yml", {"p": proto})
        done = run_cli(["sync", "--engine", engine, cfg], env=env, timeout=180)
        assert done.returncode == 0, (engine, done.stderr)
        assert len(s3.list(bucket)) == len(FILES), engine


# -- the differential suite on the fast engine ----------------------------------------------
N_TREES, LISTS_PER_TREE, DELETE_EVERY = 10, 20, 4


def _sync_in_process(s3, env, source: str, target: str, texts, *, delete: bool = False) -> dict:
    from flepimop_sync.config import Protocol  # noqa: F401  (the real loader below)
    from flepimop_sync.execute import sync as run_sync
    from flepimop_sync.options import SyncOptions
    from flepimop_sync.report import Reporter
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp) / "c.yml", {"p": {"type": "s3sync", "source": source, "target": target}})
        options = SyncOptions(filters=tuple(texts), engine="rclone", delete=delete)
        if not texts:
            options = SyncOptions(no_filter=True, engine="rclone", delete=delete)
        reporter = Reporter(verbosity=0, json_mode=True, stream=io.StringIO(), out=io.StringIO())
        return run_sync([str(cfg)], options, reporter, env=env)


def test_rclone_random_lists_up_and_down(s3, tmp_path):
    """200 random lists over 10 random trees, uploaded and downloaded by the fast engine (every 4th
    with --delete against a target holding more than the source): 0 mismatches with the evaluator."""
    env = dict(s3.env)
    bucket = s3.make_bucket()
    jobs, seeds = [], []
    for t, (seed, root, paths, lists) in enumerate(random_trees(tmp_path, N_TREES, LISTS_PER_TREE)):
        seeds.append((f"tree{t}", root, paths))
        for k, texts in enumerate(lists):
            jobs.append((seed, t, k, root, paths, texts))
            if k % DELETE_EVERY == 0:  # --delete's target starts with the whole tree
                seeds.append((f"del{t}_{k}", root, paths))
    s3.seed(bucket, seeds)

    def run(job):
        seed, t, k, root, paths, texts = job
        rules = build_rules(None, override=list(texts))
        expected = {p for p, _ in rules.select_local(root)}
        found = {}
        if k % DELETE_EVERY == 0:
            # --delete: the target holds the whole tree (seeded), the source only half of it
            rng = random.Random(seed * 100 + k)
            half = set(rng.sample(paths, len(paths) // 2))
            src = tmp_path / f"half{t}_{k}"
            for p in half:
                (src / p).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / p, src / p)
            keep = set(paths) - {p for p in set(paths) - half if rules.selects(p)}
            _sync_in_process(s3, env, f"{src}/", f"s3://{bucket}/del{t}_{k}/", texts, delete=True)
            found["delete-up"] = (set(s3.list(bucket, f"del{t}_{k}/")), {f"del{t}_{k}/{p}" for p in keep})
            down = tmp_path / f"deldown{t}_{k}"
            shutil.copytree(root, down)
            _sync_in_process(s3, env, f"s3://{bucket}/del{t}_{k}/", f"{down}/", texts, delete=True)
            kept_s3 = {p for p in keep}
            want = set(paths) - {p for p in set(paths) - kept_s3 if rules.selects(p)}
            found["delete-down"] = (list_files(down), want)
            shutil.rmtree(src)
            shutil.rmtree(down)
        up = _sync_in_process(s3, env, f"{root}/", f"s3://{bucket}/up{t}_{k}/", texts)
        got_up = {key[len(f"up{t}_{k}/"):] for key in s3.list(bucket, f"up{t}_{k}/")}
        found["upload"] = (got_up, expected)
        dl = tmp_path / f"dl{t}_{k}"
        down = _sync_in_process(s3, env, f"s3://{bucket}/tree{t}/", f"{dl}/", texts)
        found["download"] = (list_files(dl) if dl.exists() else set(), expected)
        found["counts"] = ((up["transferred"]["files"], down["transferred"]["files"]), (len(expected),) * 2)
        shutil.rmtree(dl, ignore_errors=True)
        return job, found

    checked = 0
    with ThreadPoolExecutor(3) as ex:
        for (seed, _t, k, _root, _paths, texts), found in ex.map(run, jobs):
            for what, (got, want) in found.items():
                assert got == want, (
                    f"seed={seed} list#{k} {texts} {what}: rclone-only={sorted(got - want)[:5] if isinstance(got, set) else got} "
                    f"evaluator-only={sorted(want - got)[:5] if isinstance(got, set) else want}")
            checked += 1
    assert checked >= 200


def test_links_are_skipped_and_named_never_followed(s3, run_cli, tmp_path):
    """S3 stores regular files only: selected links are left out and named, never followed."""
    bucket = s3.make_bucket()
    src = make_tree(tmp_path / "src", {"a/real.txt": b"r"})
    outside = make_tree(tmp_path / "outside", {"secret.txt": b"s"})
    (src / "a" / "to-file.txt").symlink_to(outside / "secret.txt")
    (src / "to-dir").symlink_to(outside)
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/x/"}})
    result = _json(sync(run_cli, s3, cfg, "rclone", "--json"))
    assert list(s3.list(bucket)) == ["x/a/real.txt"]
    assert sorted(result["skipped"]) == ["a/to-file.txt", "to-dir"]
