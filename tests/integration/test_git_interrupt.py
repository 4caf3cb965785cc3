"""An interrupted git pull leaves the repository as it was (or the rerun finishes it).

Real git, a bare remote, and ``python -m flepimop_sync`` in the background; the signal is timed
with psutil (a slow hook of the merge is running) or with git's ``index.lock`` (a fast-forward
writing thousands of files).  Reading guide -- point of interruption x signal -> outcome:

=================================================  =====================  ======================
where the pull is when the signal arrives           SIGINT/SIGTERM/SIGHUP  SIGKILL (no clean-up)
=================================================  =====================  ======================
fast-forward, ``post-merge`` hook running           exit 130/143/129,      the rerun rolls the
merge, ``pre-merge-commit`` hook (tree written)     repository byte-       journal back, then
merge, ``post-merge`` hook (commit made)            identical to before;   pulls: HEAD at the
fast-forward of 3,000 files, mid-write              the rerun pulls        remote tip, nothing
                                                    cleanly                stray
=================================================  =====================  ======================

"Byte-identical": HEAD, every local ref, the index file's bytes, ``git status --ignored``, the
content of every work-tree file (untracked and ignored ones included); the remote-tracking ref
moved by the fetch is the one legitimate change.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import cli_env, start_cli, wait_until
from test_git_protocol import assert_identical, make_world

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.integration

SLOW = 120  # seconds a slow hook sleeps: far longer than any test waits


@pytest.fixture
def world(tmp_path, base_env, request):
    w = make_world(tmp_path, dict(base_env))
    w.large_tree = lambda: request.getfixturevalue("large_tree")  # built only where a test publishes it
    (tmp_path / "sync.yml").write_text("sync:\n  checkcode:\n    type: git\n")
    # local work the pull must never touch: an untracked file and ignored output
    w.write("notes.txt", "mine\n")
    w.write("model_output/run1/hnpi.csv", "1,2\n")
    w.write("debug.log", "log\n")
    return w


def slow_hook(world, name: str) -> Path:
    """A hook that sleeps while the flag file exists; returns the flag."""
    flag = world.root / f"{name}.slow"
    flag.write_text("")
    hook = world.work / ".git" / "hooks" / name
    hook.write_text(f"#!/bin/sh\nif [ -e '{flag}' ]; then sleep {SLOW}; fi\nexit 0\n")
    hook.chmod(0o755)
    return flag


def _diverge(world):
    world.commit(world.work, {"model.py": "RATE = 2\n"}, "mine")


def _publish_small(world):
    return world.publish({"config.yml": "seed: 2\n", "new/dir/added.py": "x = 1\n"}, "theirs")


LARGE = 3000


@pytest.fixture(scope="session")  # not module: tests/slow_first.py may interleave other modules
def large_tree(tmp_path_factory, git_env):
    """The 3,000 new files of the large fast-forward, written, hashed and packed once per worker:
    (objects dir, tree id).  Each test's colleague commits this very tree (same paths, same bytes)
    through git's alternates instead of writing and hashing 3,000 files again; the pull under test
    still writes all of them."""
    repo = git_env.make_repo(tmp_path_factory.mktemp("large-tree"))
    blob = "0123456789abcdef" * 256  # 4 KiB
    for i in range(LARGE):
        path = repo / "big" / f"d{i % 30:02}" / f"f{i:04}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{i}\n{blob}")
    git_env.git("add", "-A", cwd=repo)
    git_env.git("commit", "-q", "-m", "large", cwd=repo)
    git_env.git("repack", "-a", "-d", "-q", cwd=repo)  # a push reuses the packed objects as they are
    tree = git_env.head(repo, "HEAD:big")
    return repo / ".git" / "objects", tree


def _publish_large(world):
    """3,000 new files (some deep), a changed file, a deleted one: a long fast-forward."""
    world.git("pull", "-q", "--ff-only", cwd=world.other)
    objects, tree = world.large_tree()
    (world.other / ".git" / "objects" / "info").mkdir(exist_ok=True)
    (world.other / ".git" / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    world.write("model.py", "RATE = 3\n", world.other)
    world.git("rm", "-q", "config.yml", cwd=world.other)
    world.git("add", "-A", cwd=world.other)
    world.git("read-tree", "--prefix=big/", tree, cwd=world.other)  # into the index only
    world.git("commit", "-q", "-m", "large", cwd=world.other)
    world.git("push", "-q", "origin", "main", cwd=world.other)
    return world.head(world.other)


def _hook_running(proc, name):
    def find():
        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return None
        for kid in kids:
            try:
                if any(name in part for part in kid.cmdline()):
                    return kids
            except psutil.Error:
                continue
        return None
    return find


def _merge_writing(proc, world):
    """`git merge` runs and holds the index lock: it is writing the work tree (earlier commands
    such as `update-index --refresh` take the same lock, so the merge process is looked for too)."""
    lock = world.work / ".git" / "index.lock"
    find = _hook_running(proc, "--ff-only")
    return lambda: find() and lock.exists()


POINTS = [
    # (id, hook, set-up before the remote moves, publish)
    ("ff-post-merge", "post-merge", None, _publish_small),
    ("merge-pre-merge-commit", "pre-merge-commit", _diverge, _publish_small),
    ("merge-post-merge", "post-merge", _diverge, _publish_small),
    ("ff-3000-files", None, None, _publish_large),
]
SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]


def _start(world, point):
    _, hook, setup, publish = point
    if setup:
        setup(world)
    flag = slow_hook(world, hook) if hook else None
    tip = publish(world)
    world.settle()
    before = world.snapshot(remotes=False)
    proc = start_cli(["sync", world.root / "sync.yml"], env=world.env, cwd=world.work)
    ready = _hook_running(proc, hook) if hook else _merge_writing(proc, world)
    try:
        wait_until(lambda: ready() or proc.poll() is not None, 120, f"the pull to reach {point[0]}",
                   interval=0.001)
    except BaseException:
        proc.kill()
        raise
    return proc, flag, tip, before


def _pulled(world, tip, untracked=("debug.log", "model_output/", "notes.txt")):
    parents = world.git("rev-list", "--parents", "-n1", "HEAD").stdout.split()
    assert parents[0] == tip or parents[2:] == [tip], parents  # fast-forwarded, or a merge of the tip
    status = world.git("status", "--porcelain", "--ignored").stdout.splitlines()
    assert sorted(line[3:] for line in status) == sorted(untracked), status
    assert not (world.work / ".git" / "flepimop-sync").exists()
    assert (world.work / "notes.txt").read_text() == "mine\n"


def _rerun_completes(world, run_cli, flag, tip):
    if flag:
        flag.unlink()
    r = run_cli(["sync", world.root / "sync.yml"], env=world.env, cwd=world.work)
    assert r.returncode == 0, r.stderr
    _pulled(world, tip)
    return r


@pytest.mark.parametrize("signum,code", SIGNALS, ids=[s.name for s, _ in SIGNALS])
@pytest.mark.parametrize("point", POINTS, ids=[p[0] for p in POINTS])
def test_interrupted_pull_leaves_the_repository_as_it_was(world, run_cli, point, signum, code):
    proc, flag, tip, before = _start(world, point)
    hooks = [p for p in psutil.Process(proc.pid).children(recursive=True)]
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"interrupted by {signum.name}" in err and "rerun" in err, err
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in hooks), "a hook survived"
    if point[1] or "rolled back" in err:
        # the update was under way: rolled back, byte for byte
        assert "rolled back" in err, err
        assert_identical(before, world.snapshot(remotes=False))
        assert not (world.work / ".git" / "flepimop-sync").exists()
    else:  # the fast-forward had finished before the signal: complete, nothing half-done
        _pulled(world, tip)
    _rerun_completes(world, run_cli, flag, tip)


@pytest.mark.parametrize("point", POINTS, ids=[p[0] for p in POINTS])
def test_killed_pull_is_rolled_back_and_finished_by_the_rerun(world, run_cli, point):
    """SIGKILL: no clean-up in the process; the journal lets the rerun roll back, then pull."""
    proc, flag, tip, before = _start(world, point)
    _kill_with_children(proc)
    journal = world.work / ".git" / "flepimop-sync" / "pull-journal.json"
    # a dry run changes nothing and says what a real run will do
    r = run_cli(["sync", "-n", world.root / "sync.yml"], env=world.env, cwd=world.work)
    if journal.exists():
        assert r.returncode == 1 and "was interrupted" in r.stderr and "without -n" in r.stderr, r.stderr
        assert journal.exists()
    r = _rerun_completes(world, run_cli, flag, tip)
    assert not journal.exists()


# `python -m flepimop_sync` whose SIGHUP lands while `git merge --ff-only` is being started: the
# merge is already writing the work tree (its index.lock exists) but subprocess.Popen has not yet
# returned it to the runner -- the window a loaded machine opens by chance, held open here.
SIGNAL_WHILE_STARTING = r"""
import os, runpy, signal, subprocess, sys, time
real = subprocess.Popen
class Popen(real):
    def __init__(self, args, *rest, **kwargs):
        super().__init__(args, *rest, **kwargs)
        if "--ff-only" in args:
            lock = os.path.join(kwargs["cwd"], ".git", "index.lock")
            deadline = time.monotonic() + 60
            while not os.path.exists(lock) and self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            os.kill(os.getpid(), signal.SIGHUP)
            self.signalled = True  # the handler runs here, before Popen returns
subprocess.Popen = Popen
sys.argv[0] = "flepimop_sync"
runpy.run_module("flepimop_sync", run_name="__main__", alter_sys=True)
"""


def test_signal_while_the_merge_is_being_started_is_rolled_back(world, run_cli):
    """The merge that had just started when the signal landed is stopped before the roll-back
    runs: nothing it writes afterwards can land in the restored work tree."""
    tip = _publish_large(world)
    world.settle()
    before = world.snapshot(remotes=False)
    done = subprocess.run([sys.executable, "-c", SIGNAL_WHILE_STARTING, "sync", str(world.root / "sync.yml")],
                          env=cli_env(world.env), cwd=world.work, capture_output=True, text=True, timeout=120)
    assert done.returncode == 129, done.stderr
    assert "interrupted by SIGHUP" in done.stderr and "rolled back" in done.stderr, done.stderr
    time.sleep(1)  # an orphaned merge would still be writing
    assert_identical(before, world.snapshot(remotes=False))
    assert not (world.work / ".git" / "flepimop-sync").exists()
    _rerun_completes(world, run_cli, None, tip)


def test_signal_during_the_rollback_is_deferred(world, run_cli):
    """A second signal while rolling back does not cut the roll-back short."""
    proc, flag, tip, before = _start(world, POINTS[1])
    os.kill(proc.pid, signal.SIGTERM)
    time.sleep(0.01)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    # the second signal may also land after everything, while the interpreter exits (-SIGINT)
    assert proc.returncode in (130, 143, -signal.SIGINT), err
    assert "rolled back" in err, err
    assert_identical(before, world.snapshot(remotes=False))
    _rerun_completes(world, run_cli, flag, tip)


def _kill_with_children(proc):
    """SIGKILL the run and what it started: what a crash of the whole session would take down."""
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.communicate(timeout=60)
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=30)


def _kill_mid_update(world, point):
    """Start a pull, SIGKILL it (and its children) while it updates: the journal is left behind."""
    proc, flag, tip, before = _start(world, point)
    _kill_with_children(proc)
    assert (world.work / ".git" / "flepimop-sync" / "pull-journal.json").exists()
    return flag, tip


def _edit(rel, text="mine, after the crash\n"):
    return lambda w: (w.work / rel).write_text(text)


def _cut(rel, keep):
    """What git leaves when stopped while writing a file: its first ``keep`` bytes."""
    def cut(w):
        data = (w.work / rel).read_bytes()
        (w.work / rel).write_bytes(data[:keep])
    return cut


def _both_edits(w):
    _edit("config.yml")(w)
    _edit("new/dir/added.py", "x = 1\nmy work\n")(w)


# What the user does between a killed pull (its update done up to a hook, its journal left) and
# the rerun -> what the rerun does.  Files the pull changed (config.yml) or added
# (new/dir/added.py) holding other content are local work: the roll-back would overwrite or delete
# them, so the rerun halts, names them and changes nothing.
AFTER_THE_KILL = [
    # (id, what the user does, files the rerun names (None: it rolls back and pulls))
    ("edits a file the pull changed", _edit("config.yml"), ["config.yml"]),
    ("edits a file the pull added", _edit("new/dir/added.py", "x = 1\nmy work\n"), ["new/dir/added.py"]),
    ("edits both", _both_edits, ["config.yml", "new/dir/added.py"]),
    ("nothing (git stopped mid-write)", _cut("new/dir/added.py", 3), None),
    ("nothing (git stopped after creating a file)", _cut("config.yml", 0), None),
    ("adds a file in a directory the pull made", _edit("new/dir/mine.txt"), None),
]


@pytest.mark.parametrize("point", [p for p in POINTS if p[1]], ids=[p[0] for p in POINTS if p[1]])
@pytest.mark.parametrize("after,change,named", AFTER_THE_KILL, ids=[a[0] for a in AFTER_THE_KILL])
def test_rerun_never_rolls_back_over_local_work(world, run_cli, point, after, change, named):
    flag, tip = _kill_mid_update(world, point)
    change(world)
    flag.unlink()
    world.settle()
    before = world.snapshot(remotes=False)
    r = run_cli(["sync", world.root / "sync.yml"], env=world.env, cwd=world.work)
    if named is None:
        assert r.returncode == 0, r.stderr
        kept = ("new/dir/mine.txt",) if after.startswith("adds") else ()
        _pulled(world, tip, untracked=("debug.log", "model_output/", "notes.txt", *kept))
        return
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "content the pull did not write" in line and "nothing was changed" in line, line
    for name in named:
        assert name in line, line
    assert_identical(before, world.snapshot(remotes=False))
    assert (world.work / ".git" / "flepimop-sync" / "pull-journal.json").exists()
    for name in named:  # the user saves the work elsewhere, as the hint says: the rerun finishes
        (world.work / name).unlink()
    _rerun_completes(world, run_cli, None, tip)


def test_rerun_leaves_a_lock_a_running_git_command_holds(world, run_cli, tmp_path):
    """A lock file newer than the killed pull is removed only when no process has it open: one held
    open is a git command running now, and the rerun stops (journal kept) until it has finished."""
    flag, tip = _kill_mid_update(world, POINTS[0])
    flag.unlink()
    lock = world.work / ".git" / "index.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"import time; f = open({str(lock)!r}, 'w'); time.sleep(120)"])
    try:
        wait_until(lock.exists, 30, "the other command's lock")
        r = run_cli(["sync", world.root / "sync.yml"], env=world.env, cwd=world.work)
        assert r.returncode == 1, r.stderr
        assert "held by a running process" in r.stderr and f"pid {holder.pid}" in r.stderr, r.stderr
        assert lock.exists() and (world.work / ".git" / "flepimop-sync" / "pull-journal.json").exists()
    finally:
        holder.kill()
        holder.wait()
    _rerun_completes(world, run_cli, None, tip)  # a lock nobody holds, left since the crash: removed


SPARSE_FLAG = "sparse.slow"


def test_interrupted_pull_in_a_sparse_checkout_is_rolled_back(world, run_cli):
    """Files outside a sparse checkout (skip-worktree) are not in the work tree: the roll-back
    restores the index and the branch without checking them out (git refuses those paths)."""
    world.commit(world.other, {"out/y.txt": "1\n", "in/x.txt": "1\n"}, "tree")
    world.git("push", "-q", "origin", "main", cwd=world.other)
    world.git("pull", "-q", "--ff-only")
    world.git("sparse-checkout", "set", "in")
    world.publish({"out/y.txt": "2\n", "in/x.txt": "2\n"})
    flag = slow_hook(world, "post-merge")
    tip = world.head(world.other)
    world.settle()
    before = world.snapshot(remotes=False)
    proc = start_cli(["sync", world.root / "sync.yml"], env=world.env, cwd=world.work)
    wait_until(lambda: _hook_running(proc, "post-merge")() or proc.poll() is not None, 120, "the hook")
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "rolled back" in err, err
    assert_identical(before, world.snapshot(remotes=False))
    flag.unlink()
    r = run_cli(["sync", world.root / "sync.yml"], env=world.env, cwd=world.work)
    assert r.returncode == 0, r.stderr
    assert world.head() == tip and (world.work / "in" / "x.txt").read_text() == "2\n"


def test_journal_of_a_killed_pull_is_not_applied_after_the_branch_moved(world, run_cli):
    """Work committed after a kill is never rolled back: the rerun halts and names the journal."""
    proc, flag, tip, before = _start(world, POINTS[0])
    _kill_with_children(proc)
    world.commit(world.work, {"model.py": "RATE = 99\n"}, "work done after the crash")
    world.settle()
    after_crash = world.snapshot(remotes=False)
    flag.unlink()
    r = run_cli(["sync", world.root / "sync.yml"], env=world.env, cwd=world.work)
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "journal of an interrupted pull" in line and "pull-journal.json" in line and "moved" in line, line
    assert_identical(after_crash, world.snapshot(remotes=False))
