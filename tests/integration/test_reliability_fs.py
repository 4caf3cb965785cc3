"""Nothing outside the configured target is written or deleted; links are never followed; the
listings are exact for any legal name; --delete removes selected files only (issue 15).

Every case runs the real CLI against real rsync (locally and over the test sshd) and the real
aws CLI against the test S3 server.  Tables: appends that climb out, the ``delete`` key with
--reverse, links on every S3 mechanism, hostile names, deletion around links and directories,
a full disk.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import write_config
from trees import tree

pytestmark = pytest.mark.integration


def selection_of(stdout: str) -> set[str]:
    return set(json.loads(stdout)["selection"])


# -- appends never climb out of the configured end (15.1) ------------------------------------------
APPENDS = [
    ("-t", "+ ../escape"),
    ("-t", "+ a/../../escape"),
    ("-t", "+ .."),
    ("-t", "+ /etc"),
    ("-s", "+ ../outside"),
    ("-s", "+ x/../../outside/"),
]


@pytest.mark.parametrize("flag,value", APPENDS)
def test_append_climbing_out_is_refused(tmp_path, run_cli, flag, value):
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "escape"
    (src / "x").mkdir(parents=True)
    (src / "x" / "f.csv").write_text("f")
    dst.mkdir()
    (dst / "keep.csv").write_text("keep")
    outside.mkdir()
    (outside / "o.csv").write_text("outside")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{src}/", "target": f"{dst}/"}})
    done = run_cli(["sync", "--delete", flag, value, cfg])
    assert done.returncode == 2, done.stderr
    assert ("--target" if flag == "-t" else "--source") in done.stderr and "Traceback" not in done.stderr
    assert tree(dst, links=False) == {"keep.csv": b"keep"} and tree(outside, links=False) == {"o.csv": b"outside"}


# -- delete and --reverse (15.1) -----------------------------------------------------------------------
# config 'delete' value, --reverse, --delete option -> is the reverse-only local file deleted?
REVERSE_DELETE = [
    (True, True, False, False),
    (True, False, False, True),
    (True, True, True, True),
    ("both", True, False, True),
    ("reverse", True, False, True),
    ("reverse", False, False, False),
    (False, True, False, False),
]


@pytest.mark.parametrize("delete,reverse,option,deletes", REVERSE_DELETE)
def test_delete_key_and_reverse(tmp_path, run_cli, delete, reverse, option, deletes):
    local, remote = tmp_path / "local", tmp_path / "remote"
    for root in (local, remote):
        root.mkdir()
        (root / "both.csv").write_text("both")
    (local / "only_local.csv").write_text("never pushed")
    (remote / "only_remote.csv").write_text("only remote")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{local}/", "target": f"{remote}/",
                                                  "delete": delete}})
    args = ["sync", *(["--reverse"] if reverse else []), *(["--delete"] if option else []), cfg]
    dry = run_cli([*args[:1], "-n", "--json", *args[1:]])
    assert dry.returncode == 0, dry.stderr
    victim = "only_local.csv" if reverse else "only_remote.csv"
    assert json.loads(dry.stdout).get("would_delete", []) == ([victim] if deletes else [])
    done = run_cli(args)
    assert done.returncode == 0, done.stderr
    target = local if reverse else remote
    assert (target / victim).exists() is not deletes


# -- symlinks at a local source of an S3 upload (15.2) ----------------------------------------------------
def link_tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    src, outside = tmp_path / "src", tmp_path / "outside"
    (src / "d" / "sub").mkdir(parents=True)
    (outside / "od").mkdir(parents=True)
    (outside / "secret.csv").write_text("outside file")
    (outside / "od" / "deep.csv").write_text("outside dir")
    regular = {"a.csv": b"a", "d/b.csv": b"b", "d/sub/c.csv": b"c", "d/hnpi_x.csv": b"h"}
    for rel, data in regular.items():
        (src / rel).write_bytes(data)
    os.symlink(outside / "secret.csv", src / "flink.csv")
    os.symlink(outside / "od", src / "dlink")
    os.symlink("..", src / "d" / "sub" / "loop")  # a loop: d/sub/loop/sub/loop/...
    os.symlink(src / "d", src / "inner")  # a link inside the tree: still a link, not a copy
    return src, regular


# mechanism name (for the id), filters, extra environment
UPLOAD_MECHANISMS = [
    ("none", None, {}),
    ("native", ["+ *.csv", "- *"], {}),
    ("explicit", ["+ *hnpi*", "+ *.csv", "- *"], {}),
    ("staged", ["+ *hnpi*", "+ *.csv", "- *"], {"FLEPIMOP_SYNC_AWS_STAGE_ABOVE": "0"}),
]


@pytest.mark.parametrize("name,filters,extra", UPLOAD_MECHANISMS, ids=[m[0] for m in UPLOAD_MECHANISMS])
def test_s3_upload_skips_links_with_a_note(tmp_path, run_cli, s3, name, filters, extra):
    src, regular = link_tree(tmp_path)
    bucket = s3.make_bucket()
    body = {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/up/"}
    if filters:
        body["filters"] = filters
    cfg = write_config(tmp_path / "c.yml", {"p": body})
    env = {**s3.env, **extra}
    dry = run_cli(["sync", "-n", "--json", cfg], env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert selection_of(dry.stdout) == set(regular)
    assert "flink.csv" in dry.stderr + dry.stdout and "skipped" in dry.stderr + dry.stdout
    done = run_cli(["sync", "--json", cfg], env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "skipped" in done.stderr + done.stdout
    uploaded = {k[len("up/"):]: s3.get(bucket, k) for k in s3.list(bucket, "up/")}
    assert uploaded == regular, sorted(uploaded)


# -- symlinks at a local target of an S3 download (15.1) ------------------------------------------------
def test_s3_download_delete_never_follows_a_link_in_the_target(tmp_path, run_cli, s3):
    bucket = s3.make_bucket()
    s3.put(bucket, "run/a.csv", b"a")
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    dst.mkdir()
    (outside / "od").mkdir(parents=True)
    (outside / "od" / "g.csv").write_text("outside")
    (outside / "o.csv").write_text("outside file")
    os.symlink(outside / "od", dst / "link")
    os.symlink(outside / "o.csv", dst / "flink.csv")
    (dst / "stale.csv").write_text("stale")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/run/",
                                                  "target": f"{dst}/", "delete": True}})
    dry = run_cli(["sync", "-n", "--json", cfg], env=s3.env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["would_delete"] == ["stale.csv"]
    done = run_cli(["sync", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert tree(outside, links=False) == {"od/g.csv": b"outside", "o.csv": b"outside file"}
    assert not (dst / "stale.csv").exists() and (dst / "a.csv").read_bytes() == b"a"
    assert (dst / "link").is_symlink() and (dst / "flink.csv").is_symlink()


@pytest.mark.parametrize("dry_run", [True, False])
def test_s3_download_refuses_to_write_through_a_linked_directory(tmp_path, run_cli, s3, dry_run):
    bucket = s3.make_bucket()
    s3.put(bucket, "run/d/new.csv", b"new")
    s3.put(bucket, "run/top.csv", b"top")
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    dst.mkdir()
    outside.mkdir()
    os.symlink(outside, dst / "d")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/run/",
                                                  "target": f"{dst}/"}})
    done = run_cli(["sync", *(["-n"] if dry_run else []), cfg], env=s3.env)
    assert done.returncode == 1, done.stderr
    assert "symbolic link 'd'" in done.stderr and "Traceback" not in done.stderr
    assert list(outside.iterdir()) == [] and not (dst / "top.csv").exists()


# -- rsync --delete around links and directories (15.1, 15.8) ---------------------------------------------
RSYNC_DELETE_BACKENDS = ["rsync-local", "rsync-push", "rsync-pull"]


@pytest.mark.parametrize("backend", RSYNC_DELETE_BACKENDS)
def test_rsync_delete_keeps_directories_and_never_follows_links(tmp_path, run_cli, sshd, backend):
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    (src / "r1").mkdir(parents=True)
    (src / "r1" / "a.csv").write_text("a")
    (dst / "r1").mkdir(parents=True)
    (dst / "r2" / "sub").mkdir(parents=True)
    (dst / "empty").mkdir()
    (dst / "r1" / "old.csv").write_text("old")
    (dst / "r2" / "sub" / "gone.csv").write_text("gone")
    outside.mkdir()
    (outside / "o.csv").write_text("outside")
    os.symlink(outside, dst / "r1" / "dlink")
    source, target, env = f"{src}/", f"{dst}/", None
    if backend == "rsync-push":
        target, env = f"{sshd.alias}:{dst}/", sshd.env
    elif backend == "rsync-pull":
        source, env = f"{sshd.alias}:{src}/", sshd.env
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": source, "target": target}})
    dry = run_cli(["sync", "-n", "--json", "--delete", cfg], env=env)
    assert dry.returncode == 0, dry.stderr
    expected = {"r1/old.csv", "r2/sub/gone.csv", "r1/dlink"}  # the link itself, as rsync -a sees it
    assert set(json.loads(dry.stdout)["would_delete"]) == expected
    done = run_cli(["sync", "--json", "--delete", cfg], env=env)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["deleted"]) == expected
    assert tree(dst, links=False) == {"r1/a.csv": b"a"}
    assert (dst / "empty").is_dir() and (dst / "r2" / "sub").is_dir(), "--delete removed a directory"
    assert tree(outside, links=False) == {"o.csv": b"outside"}


# -- hostile names: the listing is exact, the dry run equals what arrives (15.4) ---------------------------
HOSTILE = [" lead.csv", "trail .csv", "new\nline.csv", "st*r?[x].csv", "tab\there.csv", "arrow -> x.csv",
           "caf\u00e9.csv", "back\\#012slash.csv", "sub/ spaced/ in.csv"]
NON_UTF8 = os.fsdecode(b"bad\xff\xfe.csv")


def write_hostile(root: Path, names) -> dict[str, bytes]:
    out = {}
    for i, name in enumerate(names):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        data = f"content {i}".encode()
        p.write_bytes(data)
        out[name] = data
    return out


@pytest.mark.parametrize("filters", [None, ["+ *.csv", "- *"], ["+ *e*", "- *"]], ids=["none", "native", "explicit"])
def test_s3_download_of_hostile_keys_is_exact(tmp_path, run_cli, s3, filters):
    if s3.backend != "rclone":
        pytest.skip("moto cannot store keys with line breaks")
    bucket = s3.make_bucket()
    # rclone's store maps control characters to look-alikes it cannot read back: S3 gets the rest
    names = [n for n in HOSTILE if not any(ord(c) < 32 for c in n)]
    data = {}
    for i, name in enumerate(names):
        s3.put(bucket, f"run/{name}", f"content {i}")
        data[name] = f"content {i}".encode()
    # contract v2: '+ *e*' selects a file whose name, or any directory above it, has an 'e'
    expected = {n for n in names if filters is None or filters[0] == "+ *.csv" or any("e" in c for c in n.split("/"))}
    dst = tmp_path / "dst"
    body = {"type": "s3sync", "source": f"s3://{bucket}/run/", "target": f"{dst}/", "mkpath": True}
    if filters:
        body["filters"] = filters
    cfg = write_config(tmp_path / "c.yml", {"p": body})
    dry = run_cli(["sync", "-n", "--json", cfg], env=s3.env)
    assert dry.returncode == 0, dry.stderr
    assert selection_of(dry.stdout) == expected
    done = run_cli(["sync", cfg], env=s3.env)
    assert done.returncode == 0, done.stderr
    assert set(tree(dst, links=False)) == expected
    assert all(tree(dst, links=False)[n] == data[n] for n in expected)


def test_rsync_pull_listing_of_hostile_names_is_exact(tmp_path, run_cli, sshd):
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = write_hostile(src, [*HOSTILE, NON_UTF8])
    os.symlink("/etc/passwd", src / "link -> out.csv")
    dst.mkdir()
    (dst / " stale lead.csv").write_text("stale")
    (dst / "stale\nbreak.csv").write_text("stale")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{sshd.alias}:{src}/",
                                                  "target": f"{dst}/", "filters": ["+ *.csv", "- *"]}})
    dry = run_cli(["sync", "-n", "--json", "--delete", cfg], env=sshd.env)
    assert dry.returncode == 0, dry.stderr
    assert selection_of(dry.stdout) == set(data) | {"link -> out.csv"}
    assert set(json.loads(dry.stdout)["would_delete"]) == {" stale lead.csv", "stale\nbreak.csv"}
    done = run_cli(["sync", "--delete", cfg], env=sshd.env)
    assert done.returncode == 0, done.stderr
    assert tree(dst, links=False) == data
    assert os.readlink(dst / "link -> out.csv") == "/etc/passwd"  # copied as a link


# -- a full disk is named (15.8) -----------------------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {made.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("backend", ["rsync", "s3"])
def test_full_disk_is_reported_as_such(tmp_path, run_cli, s3, full_disk, backend):
    big = os.urandom(3 * 1024 * 1024)
    if backend == "rsync":
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "big.bin").write_bytes(big)
        body, env = {"type": "rsync", "source": f"{tmp_path}/src/", "target": f"{full_disk}/"}, None
    else:
        bucket = s3.make_bucket()
        s3.put(bucket, "run/big.bin", big)
        body, env = {"type": "s3sync", "source": f"s3://{bucket}/run/", "target": f"{full_disk}/"}, s3.env
    cfg = write_config(tmp_path / "c.yml", {"p": body})
    done = run_cli(["sync", cfg], env=env)
    assert done.returncode == 1, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "No space left on device" in error[0], done.stderr
    assert "Broken pipe" not in error[0] and "missing target parent" not in error[0]
