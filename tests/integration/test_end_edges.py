"""Ends at their edges, end to end through the CLI with real rsync (and the suite's S3 server and
sshd): a source ending in '..', an append through '$NAME', a single-file source next to a
same-named directory, a single-file source the protocol's own rules exclude, a source inside
the destination spelled through an ssh alias of this machine.  Each is a case where a run once
wrote or deleted outside the place the user named.  And a refused run that once left the
target it had created behind, and --reverse of a single-file source, which once read the file
back as a directory and always failed."""

from __future__ import annotations


import pytest

from helpers import write_config
from trees import tree, write_tree

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("source", ["..", "../", "../."])
def test_a_source_ending_in_dotdot_lands_in_the_target_not_above_it(tmp_path, run_cli, source):
    write_tree(tmp_path / "work/proj", {"file1": b"data", "sub/keep": b"k"})
    write_tree(tmp_path / "out", {"T/stale": b"s", "keep/p.txt": b"precious", "o.txt": b"other"})
    cwd = tmp_path / "work/proj/sub"
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": source,
                                                  "target": str(tmp_path / "out/T")}})
    done = run_cli(["sync", "--delete", cfg], cwd=cwd)
    assert done.returncode == 0, done.stderr
    # as plain 'rsync -a --delete .. out/T': the contents in T, nothing above T touched
    assert tree(tmp_path / "out") == {"T/file1": b"data", "T/sub/keep": b"k",
                                      "keep/p.txt": b"precious", "o.txt": b"other"}


@pytest.mark.parametrize("append", ["+ $SUB", "+ ${SUB}", "+ runs/$SUB"])
def test_an_append_cannot_climb_out_through_a_variable(tmp_path, run_cli, base_env, append):
    write_tree(tmp_path / "src", {"f": b"new"})
    write_tree(tmp_path / "arch", {"runs/r": b"run", "secret/s.txt": b"keep"})
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "arch/runs"}})
    climb = "../../secret" if append.startswith("+ runs/") else "../secret"
    done = run_cli(["sync", "--delete", "--mkpath", "-t", append, cfg], cwd=tmp_path, env={**base_env, "SUB": climb})
    assert done.returncode == 2, done.stderr
    assert "'..'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert tree(tmp_path / "arch") == {"runs/r": b"run", "secret/s.txt": b"keep"}


@pytest.mark.parametrize("dry", [False, True])
def test_a_single_file_source_deletes_nothing_in_a_same_named_directory(tmp_path, run_cli, dry):
    write_tree(tmp_path / "s", {"report.csv": b"a,b"})
    write_tree(tmp_path / "out", {"report.csv/k2.txt": b"keep2", "report.csv/old/k.txt": b"keep"})
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": "s/", "target": "out/"}})
    done = run_cli(["sync", "--delete", *(["-n"] if dry else []), "-s", "s/report.csv", cfg], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "single file, so nothing is deleted" in done.stdout + done.stderr
    assert not dry or "delete 0" in done.stdout
    # as plain 'rsync -a --delete s/report.csv out/report.csv': the file goes into the directory,
    # nothing in it is deleted
    kept = {"report.csv/k2.txt": b"keep2", "report.csv/old/k.txt": b"keep"}
    assert tree(tmp_path / "out") == (kept if dry else {**kept, "report.csv/report.csv": b"a,b"})


# the protocol's excludes still apply to a named file (README): every backend leaves it alone
@pytest.mark.parametrize("kind", ["rsync", "s3sync", "rclone"])  # rclone: s3sync with engine rclone
@pytest.mark.parametrize("dry", [True, False])
def test_a_single_file_source_the_excludes_exclude_moves_nothing(tmp_path, run_cli, s3, kind, dry):
    write_tree(tmp_path / "proj", {"llik/secret.json": b"x"})
    bucket = s3.make_bucket()
    target = str(tmp_path / "out") + "/" if kind == "rsync" else f"s3://{bucket}/out/"
    (tmp_path / "out").mkdir()
    engine = {"type": "s3sync", "engine": "rclone"} if kind == "rclone" else {"type": kind}
    cfg = write_config(tmp_path / "c.yml", {"p": {**engine, "source": "proj/", "target": target,
                                                  "filters": ["- llik/", "- *.json"]}})
    done = run_cli(["sync", *(["-n"] if dry else []), "-s", "proj/llik/secret.json", cfg], cwd=tmp_path, env=s3.env)
    assert done.returncode == 0, done.stderr
    assert "the protocol's filters exclude 'proj/llik/secret.json': nothing is transferred" in done.stdout + done.stderr
    if dry:
        assert "selected 0" in done.stdout, done.stdout
    assert tree(tmp_path / "out") == {}
    assert not s3.list(bucket)


def _entries(root) -> list[str]:
    """Every file and directory below ``root`` (a refused run must not leave even an empty one)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# Refused runs (exit 2: "nothing was run, nothing changed") that a real run once refused only after
# creating the target: the disk must be as before, not one new directory.
@pytest.mark.parametrize("source, target, args", [
    ("run?x", "newdir", []),  # the destination root 'newdir/run?x' has glob characters
    ("run?x", "deep/er/newdir", ["--mkpath"]),  # every level --mkpath would create
    ("run?x/", "new?dir", []),  # the target itself is that root
])
def test_a_refused_run_creates_no_directory(tmp_path, run_cli, s3, source, target, args):
    bucket = s3.make_bucket()
    s3.put(bucket, "run?x/a1b.csv", b"1")
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "s3sync", "source": f"s3://{bucket}/{source}",
                                                  "target": target, "filters": ["+ a*b.csv"]}})
    before = _entries(tmp_path)
    done = run_cli(["sync", *args, cfg], cwd=tmp_path, env=s3.env)
    assert done.returncode == 2, done.stderr
    assert "glob characters" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert _entries(tmp_path) == before


# A local path and an ssh alias of this machine (the test bed's 'hpc' is 127.0.0.1) are one place:
# a source inside the destination is refused as when both are written as local paths, before a
# --delete removes it; so is a destination inside the source spelled with a loopback name.
@pytest.mark.parametrize("source, target, args", [
    ("{w}/data/x/", "hpc:{w}/data/", ["--delete"]),
    ("{w}/data/x/", "hpc:{w}/data/", ["--delete", "-n"]),
    ("hpc:{w}/data/x/", "{w}/data/", ["--delete"]),  # pulling
    ("{w}/data/x", "hpc:{w}/", ["--delete"]),  # 'x' lands in '{w}/x/', which holds no source
    ("{w}/data/", "localhost:{w}/data/x/", []),  # no --delete: the loopback name is enough
    # ... and so is an alias (ssh -G), with or without --delete, its path absolute or below the home
    ("{w}/data/x/", "hpc:{w}/data/", []),
    ("hpc:{w}/data/", "{w}/data/x/", []),  # pulling the tree into itself
    ("{w}/data/x/", "hpc:{r}/data/", []),
    ("hpc:~/{r}/data/", "{w}/data/x", ["--delete"]),
])
def test_a_source_and_destination_nested_through_a_loopback_alias_are_refused(tmp_path, run_cli, sshd,
                                                                               source, target, args):
    import os
    import pwd

    w = tmp_path / "w"
    r = os.path.relpath(w, pwd.getpwnam("root").pw_dir)  # below the test server's login home
    write_tree(w, {"data/x/f": b"1", "data/other.txt": b"o"})
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": source.format(w=w, r=r),
                                                  "target": target.format(w=w, r=r)}})
    done = run_cli(["sync", *args, cfg], cwd=tmp_path, env=sshd.env)
    if target == "hpc:{w}/":  # not nested: the control row, so the others cannot pass by refusing everything
        assert done.returncode == 0, done.stderr
        assert tree(w) == {"data/x/f": b"1", "data/other.txt": b"o", "x/f": b"1"}
        return
    assert done.returncode == 2, done.stderr
    assert "inside" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert tree(w) == {"data/x/f": b"1", "data/other.txt": b"o"}


# A destination inside the source is allowed when the filters provably take nothing below it:
# flepiMoP's post-calibration job pushes the project root's RUN*.pdf ('+ /RUN*.pdf' from './'),
# and a snapshot directory may lie below the project, reached by path or through an alias of
# this machine. Run twice: the second run must not copy the snapshot into itself.
@pytest.mark.parametrize("target", ["{w}/snap/r1/", "hpc:{w}/snap/r1/"])
def test_a_destination_below_the_source_that_the_filters_never_take_is_allowed(tmp_path, run_cli, sshd,
                                                                               target):
    w = tmp_path / "w"
    write_tree(w, {"r1_report.pdf": b"p", "r1.h5": b"h", "r2.pdf": b"other", "data/r1.pdf": b"deep"})
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{w}/",
                                                  "target": target.format(w=w), "mkpath": True,
                                                  "filters": ["+ /r1*.pdf", "+ /r1*.h5"]}})
    for _ in range(2):
        done = run_cli(["sync", cfg], cwd=tmp_path, env=sshd.env)
        assert done.returncode == 0, done.stderr
    assert tree(w / "snap") == {"r1/r1_report.pdf": b"p", "r1/r1.h5": b"h"}


@pytest.mark.parametrize("rules", [["+ **.pdf"], ["+ r1*.pdf"], ["s r1"], ["- data/"], []])
@pytest.mark.parametrize("target", ["{w}/snap/r1/", "hpc:{w}/snap/r1/"])
def test_a_destination_below_the_source_that_the_filters_may_take_is_refused(tmp_path, run_cli, sshd,
                                                                             target, rules):
    w = tmp_path / "w"
    write_tree(w, {"r1_report.pdf": b"p"})
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": f"{w}/", "filters": rules,
                                                  "target": target.format(w=w), "mkpath": True}})
    done = run_cli(["sync", cfg], cwd=tmp_path, env=sshd.env)
    assert done.returncode == 2, done.stderr
    assert "inside the source" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert tree(w) == {"r1_report.pdf": b"p"}


# --reverse of a single-file source reads '<target>/<name>' (where the forward run put it) and
# writes it back where it came from; the source spelled every way a user writes it
@pytest.mark.parametrize("source, cwd", [
    ("data/f.txt", "."), ("./data/f.txt", "."), ("{w}/data/f.txt", "."), ("f.txt", "data"),
])
def test_reverse_of_a_single_file_source_brings_the_file_back(tmp_path, run_cli, source, cwd):
    write_tree(tmp_path, {"data/f.txt": b"v1", "data/g.txt": b"other"})
    (tmp_path / "out").mkdir()
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": source.format(w=tmp_path),
                                                  "target": str(tmp_path / "out") + "/"}})
    done = run_cli(["sync", cfg], cwd=tmp_path / cwd)
    assert done.returncode == 0, done.stderr
    (tmp_path / "out/f.txt").write_bytes(b"v2, longer")  # another size: rsync's quick check sees it in the same second
    done = run_cli(["sync", "--reverse", "--delete", cfg], cwd=tmp_path / cwd)
    assert done.returncode == 0, done.stderr
    # as 'rsync -a out/f.txt data/': the file only, nothing beside it touched (nor deleted)
    assert tree(tmp_path) == {"c.yml": (tmp_path / "c.yml").read_bytes(), "data/f.txt": b"v2, longer",
                              "data/g.txt": b"other", "out/f.txt": b"v2, longer"}


# a single file cannot be read back from a remote or S3 target (a single-file source is local):
# refused in one line before anything runs (the test bed's servers all the same: the code before
# the fix did contact them)
@pytest.mark.parametrize("kind, target", [("rsync", "hpc:out/"), ("s3sync", "s3://bucket/out/")])
def test_reverse_of_a_single_file_source_from_afar_is_refused(tmp_path, run_cli, sshd, s3, kind, target):
    write_tree(tmp_path, {"data/f.txt": b"v1"})
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": kind, "source": "data/f.txt", "target": target}})
    done = run_cli(["sync", "--reverse", cfg], cwd=tmp_path, env=sshd.env if kind == "rsync" else s3.env)
    assert done.returncode == 2, done.stderr
    assert "single-file source must be local" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert tree(tmp_path / "data") == {"f.txt": b"v1"}
