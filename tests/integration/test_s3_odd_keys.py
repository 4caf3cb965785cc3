"""S3 keys and prefixes that mean something else to a file system, or to rclone: refused before
anything moves, on every engine, instead of syncing the wrong place or deleting the wrong file.

The moto server (conftest's ``moto``): it stores keys exactly as written (``rclone serve s3``, the suite's
default server, maps '..' and '//' onto its own directory tree and cannot hold them).
"""

from __future__ import annotations

import pytest

from helpers import write_config

pytestmark = pytest.mark.integration



# an S3 end spelt with '..', '.' or '//': where aws, rclone and a path comparison put it differ
ODD_ENDS = [
    ("dotdot-source", "s3://{b}/d/x/../run/", "s3://{b}/d/x/", []),
    ("dotdot-by-option", "s3://{b}/d/run/", "s3://{b}/d/x/", ["-s", "s3://{b}/d/x/../run/"]),
    ("dot-target", "s3://{b}/d/run/", "s3://{b}/d/./x/", []),
    ("double-slash-target", "s3://{b}/d/run/", "s3://{b}/d//x/", []),
]


@pytest.mark.parametrize("engine", ["aws", "rclone"])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize("name,source,target,extra", ODD_ENDS, ids=[c[0] for c in ODD_ENDS])
def test_s3_end_with_dot_or_empty_parts_is_refused(moto, run_cli, tmp_path, engine, dry, name, source, target,
                                                   extra):
    bucket = moto.make_bucket()
    keys = {"d/x/../run/f1.txt": "only copy 1", "d/x/../run/f2.txt": "only copy 2", "d/run/g.txt": "g"}
    for key, body in keys.items():
        moto.put(bucket, key, body)
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": source.format(b=bucket),
                                                  "target": target.format(b=bucket)}})
    args = ["sync", "--engine", engine, "--delete", *(["-n"] if dry else []), *[a.format(b=bucket) for a in extra]]
    done = run_cli([*args, str(cfg)], env=moto.env)
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr.strip().splitlines()
    assert len(message) == 1 and "'.' or '..' part" in message[0] and "protocol 'p'" in message[0], done.stderr
    assert set(moto.list(bucket)) == set(keys)  # nothing deleted, nothing written


# keys below the S3 end that no local path can name: 'd//e.txt' lands as 'd/e.txt', which every
# later comparison then calls "not at the source" (--delete removed it after each download)
ODD_KEYS = ["p/d//e.txt", "p/x/../y.txt", "p/./z.txt"]


@pytest.mark.parametrize("engine", ["aws", "rclone"])
@pytest.mark.parametrize("options", [["--delete"], ["--delete", "-n"], ["-n"]], ids=["delete", "delete-dry", "dry"])
@pytest.mark.parametrize("key", ODD_KEYS)
def test_download_of_keys_no_local_path_can_name_is_refused(moto, run_cli, tmp_path, engine, options, key):
    bucket = moto.make_bucket()
    moto.put(bucket, key, "E")
    moto.put(bucket, "p/f.txt", "F")
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (out / "d" / "e.txt").write_text("E")  # what an earlier download of 'p/d//e.txt' left
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/p/",
                                                  "target": str(out)}})
    done = run_cli(["sync", "--engine", engine, *options, str(cfg)], env=moto.env)
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr.strip().splitlines()
    assert len(message) == 1 and "no local path can name" in message[0] and repr(key[2:]) in message[0], done.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["d/e.txt"]  # nothing moved


# (the aws path lists an S3 target only for its explicit mechanism: 'aws s3 sync --delete' itself
# removes 'd//e.txt' and uploads 'd/e.txt', a mirror of the source; the rclone engine lists it)
@pytest.mark.parametrize("engine", ["rclone"])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_upload_delete_onto_keys_no_local_path_can_name_is_refused(moto, run_cli, tmp_path, engine, dry):
    bucket = moto.make_bucket()
    moto.put(bucket, "p/d//e.txt", "E")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "e.txt").write_text("E")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{src}/",
                                                  "target": f"s3://{bucket}/p/"}})
    done = run_cli(["sync", "--engine", engine, "--delete", *(["-n"] if dry else []), str(cfg)], env=moto.env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no local path can name" in done.stderr and "'d//e.txt'" in done.stderr, done.stderr
    assert set(moto.list(bucket)) == {"p/d//e.txt"}


# an object named as the prefix ('run1' beside 'run1/a.txt'): rclone, which names the prefix
# without its '/', took the object for the end (downloaded it; an upload's --delete planned its removal)
SHADOWED = [
    ("download", "s3://{b}/run1/", "{local}"),
    ("download-dry", "s3://{b}/run1/", "{local}"),
    ("upload-delete", "{local}/", "s3://{b}/run1/"),
    ("upload-delete-dry", "{local}/", "s3://{b}/run1/"),
    ("s3-to-s3", "s3://{b}/run1/", "s3://{b}/copy/"),
    ("s3-to-s3-target", "s3://{b}/copy/", "s3://{b}/run1/"),
]


@pytest.mark.parametrize("name,source,target", SHADOWED, ids=[c[0] for c in SHADOWED])
def test_rclone_engine_refuses_a_prefix_shadowed_by_an_object(moto, run_cli, tmp_path, name, source, target):
    bucket = moto.make_bucket()
    keys = {"run1": "an object beside the prefix", "run1/a.txt": "a", "run1/b.txt": "b", "copy/c.txt": "c"}
    for key, body in keys.items():
        moto.put(bucket, key, body)
    local = tmp_path / "local"
    local.mkdir()
    (local / "a.txt").write_text("a")
    ends = {k: v.format(b=bucket, local=local) for k, v in (("source", source), ("target", target))}
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", **ends}})
    options = (["--delete"] if "delete" in name else []) + (["-n"] if name.endswith("dry") else [])
    done = run_cli(["sync", "--engine", "rclone", *options, str(cfg)], env=moto.env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "shadowed by an object of the same name; use --engine aws" in done.stderr, done.stderr
    assert moto.list(bucket) == {k: len(v) for k, v in keys.items()}
    assert [p.name for p in local.iterdir()] == ["a.txt"]


def test_rclone_engine_syncs_a_key_named_as_its_prefix_below_it(moto, run_cli, tmp_path):
    # 'run1/run1' lists as 'run1' too: no object 'run1', so the prefix is synced
    bucket = moto.make_bucket()
    moto.put(bucket, "run1/run1", "x")
    moto.put(bucket, "run1/a.txt", "a")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/run1/",
                                                  "target": str(tmp_path / "out")}})
    done = run_cli(["sync", "--engine", "rclone", str(cfg)], env=moto.env)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "run1"]


# U+201B is rclone's escape character: a name holding it was counted as copied, exit 0, and
# never arrived (rclone reads its explicit list in its own encoding); refused, naming the file
QUOTED = ["\u201bnotes.txt", "sub/it\u201bs.txt"]


@pytest.mark.parametrize("direction", ["upload", "download"])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize("name", QUOTED)
def test_rclone_engine_refuses_names_with_its_escape_character(moto, run_cli, tmp_path, direction, dry, name):
    bucket = moto.make_bucket()
    local = tmp_path / "local"
    if direction == "upload":
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_text("q")
        (local / "plain.txt").write_text("p")
        ends = {"source": f"{local}/", "target": f"s3://{bucket}/p/"}
    else:
        moto.put(bucket, f"p/{name}", "q")
        moto.put(bucket, "p/plain.txt", "p")
        ends = {"source": f"s3://{bucket}/p/", "target": str(local)}
    before = moto.list(bucket)
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", **ends}})
    done = run_cli(["sync", "--engine", "rclone", *(["-n"] if dry else []), str(cfg)], env=moto.env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "rclone's escape character" in done.stderr and "--engine aws" in done.stderr, done.stderr
    assert moto.list(bucket) == before
    if direction == "download":  # nothing moved (plain.txt neither)
        assert not [p for p in local.rglob("*") if p.is_file()]


# rclone says 'directory not found' for an empty prefix and a missing bucket alike: the dry run
# into a missing bucket said 'would transfer', exit 0, where the real run failed
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_rclone_engine_fails_alike_dry_and_real_into_a_missing_bucket(moto, run_cli, tmp_path, dry):
    local = tmp_path / "local"
    local.mkdir()
    (local / "a.txt").write_text("a")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"{local}/",
                                                  "target": "s3://no-such-bucket-zz/p/"}})
    done = run_cli(["sync", "--engine", "rclone", *(["-n"] if dry else []), str(cfg)], env=moto.env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bucket does not exist" in done.stderr, done.stderr
