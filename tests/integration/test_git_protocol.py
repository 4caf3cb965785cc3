"""The git protocol against real git: every repository state and what `sync` does with it.

Setting (the ``world`` fixture): a bare *authoritative* repository (on a local path, or on the
test sshd as ``hpc:/abs/path/remote.git``), the user's clone ``work`` (where the protocol runs)
and a colleague's clone ``other`` that publishes commits to the authority.

Reading guide -- repository state -> outcome (exit code, message fragments, whether the user's
repository must be byte-identical afterwards: ``git status --porcelain=v2``, HEAD, every local
ref, the index file's bytes and the hash of every work-tree file):

=====================================  ====  ===========================================  =========
state (mode pull unless noted)         exit  message                                       identical
=====================================  ====  ===========================================  =========
clean, up to date                      0     "up to date"                                 yes
staged, not committed                  1     "staged but uncommitted", file, "git commit" yes
unstaged change to a tracked file      1     "unstaged changes", file, "git stash"        yes
staged and unstaged                    1     both lists                                   yes
untracked, not ignored (and behind)    0     warning naming the file, then fast-forward   file kept
ignored file only                      0     no warning                                   --
behind                                 0     "fast-forwarded"                             --
ahead                                  0     "up to date", ahead=1                        yes
diverged, no conflict                  0     "merged", a merge commit                     --
diverged with a conflict               1     conflicting file, "aborted", "resolve"       yes (*)
merge already in progress              1     "a merge is in progress"                     yes
detached HEAD                          1     "detached"                                   yes
untracked/ignored file in the way      1     "would be overwritten", the local name       yes (*)
push: ahead                            0     "pushed", remote tip == local                --
push: up to date                       0     "nothing to push"                            yes
push: behind / diverged                1     "pull first"                                 yes, remote too
push: rejected (remote moved)          1     "rejected", "pull first"                     yes (*)
push: refused by a server hook         1     "refused by the remote", the hook's message  remote too
=====================================  ====  ===========================================  =========

(*) the fetch legitimately updated the remote-tracking ref ``refs/remotes/origin/main``; nothing
else changed.  Halts happen before the fetch, so there even the remote-tracking refs are equal.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flepimop_sync.config import validate_protocol
from flepimop_sync.errors import ConfigError, SafetyHalt, StepFailed, SyncError, UsageError
from flepimop_sync.gitsync import run_git_protocol
from flepimop_sync.options import SyncOptions
from flepimop_sync.report import Reporter
from flepimop_sync.runner import Completed, Runner

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def _git(env, *args, cwd=None, check=True):
    r = subprocess.run(["git", *map(str, args)], cwd=cwd, env=env, text=True, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=120, errors="surrogateescape")  # any file name
    if check:
        assert r.returncode == 0, f"git {args} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@dataclass
class World:
    root: Path
    env: dict
    remote: Path  # bare repository on disk
    url: str  # how the clones reach it (path or hpc:/path)
    work: Path  # the user's repository: the protocol runs here
    other: Path  # a colleague's clone

    def git(self, *args, cwd=None, check=True):
        return _git(self.env, *args, cwd=cwd or self.work, check=check)

    def write(self, rel, text, repo=None):
        p = Path(repo or self.work) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def commit(self, repo, files, msg):
        for rel, text in files.items():
            self.write(rel, text, repo)
            self.git("add", "-f", "--", rel, cwd=repo)  # -f: a test may track an ignored path
        self.git("commit", "-q", "-m", msg, cwd=repo)
        return self.head(repo)

    def publish(self, files, msg="colleague's change"):
        """The colleague commits and pushes to the authoritative repository."""
        self.git("pull", "-q", "--ff-only", cwd=self.other)
        sha = self.commit(self.other, files, msg)
        self.git("push", "-q", "origin", "main", cwd=self.other)
        return sha

    def head(self, repo=None, ref="HEAD"):
        return self.git("rev-parse", ref, cwd=repo or self.work).stdout.strip()

    def remote_tip(self, branch="main"):
        r = _git(self.env, "rev-parse", "-q", "--verify", f"refs/heads/{branch}", cwd=self.remote, check=False)
        return r.stdout.strip() or None

    def settle(self):
        """Make the index's stat cache fresh and not racy, as any `git status` would."""
        past = 1_000_000_000
        for p in self.work.rglob("*"):
            if ".git" not in p.relative_to(self.work).parts and p.is_file():
                os.utime(p, (past, past))
        self.git("update-index", "-q", "--refresh", check=False)

    def snapshot(self, remotes=True):
        """Everything a run must not change (remote-tracking refs optional: a fetch moves them)."""
        env = dict(self.env, GIT_OPTIONAL_LOCKS="0")  # status must not rewrite the index itself
        status = _git(env, "status", "--porcelain=v2", "-z", "--untracked-files=all", "--ignored",
                      cwd=self.work).stdout
        refs = _git(env, "for-each-ref", "--format=%(refname) %(objectname)",
                    *(["refs/"] if remotes else ["refs/heads", "refs/tags"]), cwd=self.work).stdout
        gitdir = self.work / ".git"
        files = {}
        for p in sorted(self.work.rglob("*")):
            rel = p.relative_to(self.work)
            if rel.parts[0] != ".git" and p.is_file():
                files[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
        return {
            "status": status,
            "HEAD": (gitdir / "HEAD").read_text(),
            "head_commit": self.git("rev-parse", "-q", "--verify", "HEAD", check=False).stdout,
            "refs": refs,
            "index": hashlib.sha256((gitdir / "index").read_bytes()).hexdigest(),
            "files": files,
            "MERGE_HEAD": (gitdir / "MERGE_HEAD").exists(),
            "config": (gitdir / "config").read_text(),
        }


@dataclass
class Outcome:
    code: int
    result: dict | None
    out: str
    err: str
    error: SyncError | None = None
    argvs: list = field(default_factory=list)

    @property
    def text(self):
        return f"{self.error or ''}\n{self.out}\n{self.err}"


class SpyRunner(Runner):
    """A real Runner that records every argv (and can act just before a given git command)."""

    def __init__(self, *a, before=None, **kw):
        super().__init__(*a, **kw)
        self.argvs = []
        self.before = before or {}

    def run(self, argv, **kw):
        self.argvs.append(list(argv))
        sub = next((a for a in argv[1:] if not a.startswith("-") and "=" not in a), None)
        hook = self.before.pop(sub, None)
        if hook:
            hook()
        return super().run(argv, **kw)


def sync(world, body=None, *, cwd=None, env=None, before=None, verbosity=1, runner_cls=None,
         **opts) -> Outcome:
    """Run a git protocol the way the CLI will (validated config, real Runner)."""
    protocol = validate_protocol(str(world.root / "sync.yml"), "code", body or {"type": "git"})
    out, err = io.StringIO(), io.StringIO()
    reporter = Reporter(verbosity=verbosity, stream=err, out=out)
    runner = (runner_cls or SpyRunner)(reporter, env=env or world.env, before=before)
    options = SyncOptions(verbosity=verbosity, **opts)
    try:
        result = run_git_protocol(protocol, options, runner, reporter, cwd=str(cwd or world.work))
    except SyncError as exc:
        return Outcome(exc.exit_code, None, out.getvalue(), err.getvalue(), exc, runner.argvs)
    json.dumps(result)  # JSON-ready
    return Outcome(0, result, out.getvalue(), err.getvalue(), None, runner.argvs)


def make_world(root: Path, env: dict, url_of=lambda p: str(p)) -> World:
    remote = root / "remote.git"
    _git(env, "init", "-q", "--bare", "-b", "main", remote)
    url = url_of(remote)
    seed = root / "seed"
    _git(env, "clone", "-q", url, seed)
    w = World(root, env, remote, url, root / "work", root / "other")
    w.commit(seed, {"README.md": "model\n", "model.py": "RATE = 1\n", "config.yml": "seed: 1\n",
                    ".gitignore": "*.log\nmodel_output/\n"}, "initial")
    _git(env, "push", "-q", "origin", "main", cwd=seed)
    _git(env, "clone", "-q", url, w.work)
    _git(env, "clone", "-q", url, w.other)
    shutil.rmtree(seed)
    return w


@pytest.fixture
def world(tmp_path, base_env) -> World:
    return make_world(tmp_path, dict(base_env))


@pytest.fixture
def ssh_world(tmp_path, request) -> World:
    try:
        sshd = request.getfixturevalue("sshd")
    except Exception as exc:  # pragma: no cover - no sshd on this machine
        pytest.skip(f"test sshd unavailable: {exc}")
    env = dict(sshd.env)
    assert env["GIT_SSH_COMMAND"].startswith("ssh -F ")  # never resolve 'hpc' through DNS
    return make_world(tmp_path, env, url_of=lambda p: f"{sshd.alias}:{p}")


def assert_identical(before, after):
    for key in before:
        assert before[key] == after[key], f"{key} changed:\n{before[key]!r}\n{after[key]!r}"


# ------------------------------------------------------------------------------------------------
# states that halt before anything (pull and push)
# ------------------------------------------------------------------------------------------------

def _staged(w):
    w.write("model.py", "RATE = 2\n")
    w.git("add", "model.py")


def _unstaged(w):
    w.write("config.yml", "seed: 2\n")


def _both(w):
    _staged(w)
    _unstaged(w)


def _merge_in_progress(w):
    w.publish({"model.py": "RATE = 3\n"})
    w.commit(w.work, {"model.py": "RATE = 4\n"}, "mine")
    w.git("fetch", "-q", "origin")
    assert w.git("merge", "origin/main", check=False).returncode == 1


def _detached(w):
    w.git("checkout", "-q", "--detach", "HEAD")


def _staged_new_file(w):
    w.write("new dir/ünïcode name.py", "x = 1\n")
    w.git("add", "--", "new dir/ünïcode name.py")


HALTS = [
    # (id, set-up, exit, fragments in the one-line error)
    ("staged", _staged, 1, ["staged but uncommitted", "model.py", "git commit", "nothing was changed"]),
    ("staged-new-unicode", _staged_new_file, 1, ["staged but uncommitted", "new dir/ünïcode name.py"]),
    ("unstaged", _unstaged, 1, ["unstaged changes", "config.yml", "git stash", "nothing was changed"]),
    ("staged+unstaged", _both, 1, ["staged but uncommitted", "model.py", "unstaged changes", "config.yml"]),
    ("merge-in-progress", _merge_in_progress, 1, ["a merge is in progress", "git merge --abort"]),
    ("detached-head", _detached, 1, ["HEAD is detached", "git switch"]),
]


@pytest.mark.parametrize("mode", ["pull", "push"])
@pytest.mark.parametrize("state,setup,code,fragments", HALTS, ids=[h[0] for h in HALTS])
def test_halts_leave_repository_byte_identical(world, mode, state, setup, code, fragments):
    setup(world)
    world.settle()
    before, remote_before = world.snapshot(), world.remote_tip()
    for dry_run in (True, False):  # a dry run reports the same halt
        o = sync(world, {"type": "git", "mode": mode}, dry_run=dry_run)
        assert o.code == code and isinstance(o.error, SafetyHalt), o.text
        for fragment in fragments:
            assert fragment in str(o.error), str(o.error)
        assert "\n" not in str(o.error)
        assert not any(a[4] in ("fetch", "merge", "push") for a in o.argvs), o.argvs  # halted first
        assert_identical(before, world.snapshot())
    assert world.remote_tip() == remote_before


def test_unstaged_touch_only_is_not_a_change(world):
    """A bare `touch` changes the stat data, not the content: no halt (update-index --refresh)."""
    os.utime(world.work / "model.py", (2_000_000_000, 2_000_000_000))
    o = sync(world)
    assert o.code == 0, o.text
    assert o.result["action"] == "up-to-date"


def test_long_lists_are_shortened_in_the_error_but_printed_in_full(world):
    for i in range(15):
        world.write(f"data/f{i:02}.csv", "1\n")
    world.git("add", "data")
    o = sync(world)
    assert o.code == 1
    assert "staged but uncommitted changes in 15 file(s)" in str(o.error)
    assert "and 5 more" in str(o.error)
    assert all(f"data/f{i:02}.csv" in o.out for i in range(15))


# ------------------------------------------------------------------------------------------------
# pull
# ------------------------------------------------------------------------------------------------

def test_minimal_protocol_clean_up_to_date(world):
    world.settle()
    before = world.snapshot()
    o = sync(world)  # checkcode: {type: git}
    assert o.code == 0, o.text
    r = o.result
    assert (r["mode"], r["remote"], r["branch"], r["remote_branch"]) == ("pull", "origin", "main", "main")
    assert (r["ahead"], r["behind"], r["action"]) == (0, 0, "up-to-date")
    assert r["repo"] == str(world.work) and r["dry_run"] is False and r["warnings"] == []
    assert "up to date" in o.out
    assert_identical(before, world.snapshot())


def test_behind_fast_forwards(world):
    tip = world.publish({"model.py": "RATE = 5\n"}, "raise the rate")
    o = sync(world)
    assert o.code == 0, o.text
    assert (o.result["behind"], o.result["ahead"], o.result["action"]) == (1, 0, "fast-forward")
    assert world.head() == tip
    assert (world.work / "model.py").read_text() == "RATE = 5\n"
    assert [c["subject"] for c in o.result["commits"]] == ["raise the rate"]
    assert "fast-forwarded main with 1 commit" in o.out and "raise the rate" in o.out
    assert o.result["head_after"] == tip
    assert world.git("status", "--porcelain").stdout == ""


def test_ahead_pull_is_up_to_date_and_mentions_push(world):
    world.commit(world.work, {"model.py": "RATE = 9\n"}, "local work")
    world.settle()
    before = world.snapshot()
    o = sync(world)
    assert o.code == 0, o.text
    assert (o.result["ahead"], o.result["behind"], o.result["action"]) == (1, 0, "up-to-date")
    assert "1 commit local only" in o.out
    assert_identical(before, world.snapshot())


def test_diverged_without_conflict_merges(world):
    theirs = world.publish({"config.yml": "seed: 7\n"}, "new seed")
    mine = world.commit(world.work, {"model.py": "RATE = 8\n"}, "new rate")
    o = sync(world)
    assert o.code == 0, o.text
    assert (o.result["ahead"], o.result["behind"], o.result["action"]) == (1, 1, "merge")
    parents = world.git("rev-list", "--parents", "-n1", "HEAD").stdout.split()[1:]
    assert parents == [mine, theirs]  # a merge commit, never a rebase
    assert (world.work / "config.yml").read_text() == "seed: 7\n"
    assert (world.work / "model.py").read_text() == "RATE = 8\n"
    assert "merged main with 1 commit from origin/main" in o.out
    assert world.git("status", "--porcelain").stdout == ""


def test_conflict_is_aborted_and_repository_byte_identical(world):
    world.publish({"model.py": "RATE = 3\n", "config.yml": "seed: 3\n"}, "theirs")
    world.commit(world.work, {"model.py": "RATE = 4\n", "config.yml": "seed: 4\n"}, "mine")
    world.settle()
    before = world.snapshot(remotes=False)
    o = sync(world)
    assert o.code == 1 and isinstance(o.error, StepFailed), o.text
    msg = str(o.error)
    assert "would stop on conflicts in 2 file(s)" in msg and "model.py" in msg and "config.yml" in msg
    assert "nothing was merged" in msg and "exactly as before" in msg and "resolve by hand" in msg
    assert "\n" not in msg
    assert o.result is None and not any(a[4] == "merge" for a in o.argvs)  # never started
    assert_identical(before, world.snapshot(remotes=False))


class _NoMergeTree(SpyRunner):
    """Pretend git is older than 2.38 (no `merge-tree --write-tree`): the real merge must run."""

    def run(self, argv, **kw):
        if "merge-tree" in argv:
            self.argvs.append(list(argv))
            return Completed(tuple(argv), 129, "", "usage: git merge-tree ...", 0.0)
        return super().run(argv, **kw)


def test_conflict_in_a_real_merge_is_aborted_byte_identical(world):
    world.publish({"model.py": "RATE = 3\n", "config.yml": "seed: 3\n"}, "theirs")
    world.commit(world.work, {"model.py": "RATE = 4\n", "config.yml": "seed: 4\n"}, "mine")
    world.settle()
    before = world.snapshot(remotes=False)
    o = sync(world, runner_cls=_NoMergeTree)
    assert o.code == 1 and isinstance(o.error, StepFailed), o.text
    msg = str(o.error)
    assert "stopped on conflicts in 2 file(s)" in msg and "model.py" in msg and "config.yml" in msg
    assert "merge was aborted" in msg and "exactly as before" in msg and "resolve by hand" in msg
    assert ["git", "--no-pager", "-c", "core.quotepath=off", "merge", "--abort"] in o.argvs
    assert_identical(before, world.snapshot(remotes=False))


def test_untracked_files_warn_then_go_on(world):
    tip = world.publish({"model.py": "RATE = 6\n"})
    world.write("notes.txt", "mine\n")
    world.write("scratch/a.txt", "a\n")
    world.write("run.log", "ignored\n")  # .gitignore: *.log -> not mentioned
    o = sync(world)
    assert o.code == 0, o.text
    assert "warning: 2 untracked file(s) not ignored" in o.err
    assert "notes.txt" in o.err and "scratch/" in o.err and "run.log" not in o.err
    assert ".gitignore" in o.err
    assert o.result["untracked"] == ["notes.txt", "scratch/"]
    assert len(o.result["warnings"]) == 1
    assert world.head() == tip and (world.work / "notes.txt").read_text() == "mine\n"


def test_ignored_files_only_give_no_warning(world):
    world.write("model_output/run1.csv", "1\n")
    world.write("debug.log", "x\n")
    o = sync(world)
    assert o.code == 0 and o.err.count("warning") == 0, o.text
    assert o.result["untracked"] == []


# A file the incoming commits add, where the user has a file git does not track.  git refuses to
# overwrite an untracked file but silently replaces an ignored one (or an ignored directory, or an
# ignored file where it needs a directory): the preflight halts on all of them, naming the local
# path, before anything changes; the dry run says the same.
def _ignored_dir_where_a_file_comes(w):
    w.write("model_output/run1/hnpi.csv", "mine\n")  # ignored (model_output/)
    return {"model_output": "a file now\n"}


def _ignored_file_where_a_dir_comes(w):
    w.write("calib.log", "mine\n")  # ignored (*.log)
    return {"calib.log/README": "a directory now\n"}


def _untracked_symlink(w):
    os.symlink("model.py", w.work / "alias.py")
    return {"alias.py": "theirs\n"}


IN_THE_WAY = [
    # (id, local set-up returning the incoming files, diverged?, local name in the error, kind)
    ("untracked-file", lambda w: (w.write("results.csv", "mine\n"), {"results.csv": "theirs\n"})[1],
     False, "results.csv", "untracked"),
    ("ignored-file", lambda w: (w.write("debug.log", "mine\n"), {"debug.log": "theirs\n"})[1],
     False, "debug.log", "ignored"),
    ("ignored-file-merge", lambda w: (w.write("debug.log", "mine\n"), {"debug.log": "theirs\n"})[1],
     True, "debug.log", "ignored"),
    ("ignored-file-deep", lambda w: (w.write("model_output/a b/ü.csv", "mine\n"),
                                     {"model_output/a b/ü.csv": "theirs\n"})[1], False, "model_output/", "ignored"),
    ("ignored-dir-vs-file", _ignored_dir_where_a_file_comes, False, "model_output/", "ignored"),
    ("ignored-file-vs-dir", _ignored_file_where_a_dir_comes, True, "calib.log", "ignored"),
    ("untracked-symlink", _untracked_symlink, False, "alias.py", "untracked"),
]


@pytest.mark.parametrize("state,setup,diverged,name,kind", IN_THE_WAY, ids=[c[0] for c in IN_THE_WAY])
def test_local_files_in_the_pulls_way_halt_and_change_nothing(world, state, setup, diverged, name, kind):
    incoming = setup(world)
    world.publish(incoming, "start tracking it")
    if diverged:
        world.commit(world.work, {"model.py": "RATE = 77\n"}, "mine")
    world.settle()
    before = world.snapshot(remotes=False)
    for dry_run in (True, False):
        o = sync(world, dry_run=dry_run)
        assert o.code == 1 and isinstance(o.error, SafetyHalt), o.text
        msg = str(o.error)
        assert f"local {kind} file(s)" in msg and name in msg, msg
        assert "would be overwritten" in msg and "nothing was changed" in msg and "\n" not in msg
        assert not any(a[4] == "merge" for a in o.argvs)
        assert_identical(before, world.snapshot(remotes=False))


def test_ignored_files_next_to_incoming_files_do_not_halt(world):
    world.write("model_output/run1.csv", "mine\n")
    world.write("debug.log", "mine\n")
    tip = world.publish({"model_output.md": "x\n", "logs/debug.log": "theirs\n", "a/b/c.py": "x\n"})
    o = sync(world)
    assert o.code == 0, o.text
    assert world.head() == tip and (world.work / "debug.log").read_text() == "mine\n"


def test_upstream_remote_and_branch_are_the_defaults(world):
    """No 'remote'/'branch': the current branch's upstream (here: 'authority', branch 'main')."""
    world.git("remote", "rename", "origin", "authority")
    world.git("checkout", "-q", "-b", "dev", "--track", "authority/main")
    tip = world.publish({"model.py": "RATE = 11\n"})
    o = sync(world)
    assert o.code == 0, o.text
    assert (o.result["remote"], o.result["branch"], o.result["remote_branch"]) == ("authority", "dev", "main")
    assert world.head() == tip


def test_explicit_remote_and_branch(world):
    world.git("remote", "add", "mirror", world.url)
    world.git("branch", "--unset-upstream")
    tip = world.publish({"model.py": "RATE = 12\n"})
    o = sync(world, {"type": "git", "remote": "mirror", "branch": "main", "mode": "pull"})
    assert o.code == 0, o.text
    assert o.result["remote"] == "mirror" and world.head() == tip
    assert world.head(ref="refs/remotes/mirror/main") == tip


def test_path_key_selects_the_repository(world, tmp_path):
    tip = world.publish({"model.py": "RATE = 13\n"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    o = sync(world, {"type": "git", "path": str(world.work / ".")}, cwd=elsewhere)
    assert o.code == 0, o.text
    assert world.head() == tip
    sub = world.work / "sub"
    sub.mkdir()
    o = sync(world, {"type": "git"}, cwd=sub)  # any directory inside the repository
    assert o.code == 0 and o.result["repo"] == str(world.work)


def test_pull_of_a_branch_that_is_not_checked_out_halts(world):
    world.git("branch", "other")
    o = sync(world, {"type": "git", "branch": "other"})
    assert o.code == 1 and isinstance(o.error, SafetyHalt)
    assert "'main' checked out, not 'other'" in str(o.error) and "git switch other" in str(o.error)


# ------------------------------------------------------------------------------------------------
# push
# ------------------------------------------------------------------------------------------------

def test_push_when_ahead(world):
    mine = world.commit(world.work, {"model.py": "RATE = 20\n"}, "calibrated")
    o = sync(world, {"type": "git", "mode": "push"})
    assert o.code == 0, o.text
    assert (o.result["ahead"], o.result["behind"], o.result["action"]) == (1, 0, "push")
    assert world.remote_tip() == mine
    assert [c["subject"] for c in o.result["commits"]] == ["calibrated"]
    assert "pushed 1 commit of main to origin/main" in o.out


def test_push_up_to_date_is_nothing_to_push(world):
    world.settle()
    before = world.snapshot()
    o = sync(world, {"type": "git", "mode": "push"})
    assert o.code == 0 and o.result["action"] == "nothing to push", o.text
    assert_identical(before, world.snapshot())


@pytest.mark.parametrize("diverged", [False, True], ids=["behind", "diverged"])
def test_push_refused_when_remote_has_commits(world, diverged):
    theirs = world.publish({"config.yml": "seed: 30\n"}, "their seed")
    if diverged:
        world.commit(world.work, {"model.py": "RATE = 31\n"}, "mine")
    world.settle()
    before = world.snapshot(remotes=False)
    o = sync(world, {"type": "git", "mode": "push"})
    assert o.code == 1 and isinstance(o.error, SafetyHalt), o.text
    assert "origin/main has 1 commit that main lacks" in str(o.error)
    assert "their seed" in str(o.error) and "pull first" in str(o.error)
    assert not any("push" in a for a in o.argvs)
    assert world.remote_tip() == theirs
    assert_identical(before, world.snapshot(remotes=False))


def test_push_rejected_because_the_remote_moved_meanwhile(world):
    world.commit(world.work, {"model.py": "RATE = 40\n"}, "mine")
    world.settle()
    before = world.snapshot(remotes=False)
    theirs = {}

    def colleague_pushes():  # between our fetch and our push
        theirs["sha"] = world.publish({"config.yml": "seed: 41\n"}, "race")

    o = sync(world, {"type": "git", "mode": "push"}, before={"push": colleague_pushes})
    assert o.code == 1 and isinstance(o.error, StepFailed), o.text
    assert "git push origin main failed (exit 1): rejected" in str(o.error)
    assert "pull first" in str(o.error)
    assert world.remote_tip() == theirs["sha"]
    assert_identical(before, world.snapshot(remotes=False))


HOOK_REFUSALS = [
    # (server hook, its script body, fragments of the one-line error)
    ("pre-receive", 'echo "Push refused: model.py must pass the calibration check" >&2\n'
                    'echo "see docs/CONTRIBUTING.md"\nexit 1\n',
     ["refused by the remote (pre-receive hook declined)", "Push refused: model.py must pass the calibration check",
      "see docs/CONTRIBUTING.md"]),
    ("update", 'printf "branch %s is frozen\\033[31m until Friday\\n" "$1" >&2\nexit 1\n',
     ["refused by the remote (hook declined)", "branch refs/heads/main is frozen", "until Friday"]),
    ("pre-receive", "exit 1\n", ["refused by the remote (pre-receive hook declined); nothing was pushed"]),
]


@pytest.mark.parametrize("hook,body,fragments", HOOK_REFUSALS, ids=["pre-receive", "update-escapes", "silent"])
def test_push_refused_by_a_server_hook_shows_its_reason(world, hook, body, fragments):
    script = world.remote / "hooks" / hook
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    world.commit(world.work, {"model.py": "RATE = 45\n"}, "uncalibrated")
    tip = world.remote_tip()
    o = sync(world, {"type": "git", "mode": "push"})
    assert o.code == 1 and isinstance(o.error, StepFailed), o.text
    msg = str(o.error)
    assert msg.startswith("git push origin main failed (exit 1): refused by the remote"), msg
    for fragment in fragments:
        assert fragment in msg, msg
    assert "\n" not in msg and "\x1b" not in msg and "nothing was pushed" in msg
    assert world.remote_tip() == tip


def test_push_new_branch(world):
    world.git("checkout", "-q", "-b", "feature")
    mine = world.commit(world.work, {"model.py": "RATE = 50\n"}, "feature work")
    o = sync(world, {"type": "git", "mode": "push"})
    assert o.code == 0, o.text
    assert o.result["remote_branch"] == "feature" and o.result["ahead"] == 1
    assert world.remote_tip("feature") == mine and world.remote_tip("main") != mine


def test_reverse_swaps_pull_and_push(world):
    mine = world.commit(world.work, {"model.py": "RATE = 60\n"}, "mine")
    o = sync(world, {"type": "git"}, reverse=True)  # pull reversed = push
    assert o.code == 0 and o.result["mode"] == "push" and world.remote_tip() == mine, o.text
    theirs = world.publish({"config.yml": "seed: 61\n"})
    o = sync(world, {"type": "git", "mode": "push"}, reverse=True)  # push reversed = pull
    assert o.code == 0 and o.result["mode"] == "pull" and world.head() == theirs, o.text


# ------------------------------------------------------------------------------------------------
# dry run: fetches into remote-tracking refs only, says so, changes no branch/index/file
# ------------------------------------------------------------------------------------------------

def test_dry_run_pull_behind(world):
    tip = world.publish({"model.py": "RATE = 70\n"}, "upstream fix")
    world.settle()
    before = world.snapshot(remotes=False)
    o = sync(world, dry_run=True)
    assert o.code == 0, o.text
    r = o.result
    assert r["dry_run"] and (r["behind"], r["action"], r["head_after"]) == (1, "fast-forward", r["head_before"])
    assert "would fast-forward main with 1 commit from origin/main" in o.out and "upstream fix" in o.out
    assert "remote-tracking ref only" in o.out
    assert_identical(before, world.snapshot(remotes=False))
    assert world.head(ref="refs/remotes/origin/main") == tip  # the fetch did happen
    assert not (world.work / ".git" / "FETCH_HEAD").exists()


# theirs (published), mine (committed locally) -> the predicted conflicts, what stdout and stderr say
DRY_RUN_MERGES = [
    pytest.param({"model.py": "RATE = 71\n"}, {"model.py": "RATE = 72\n"}, ["model.py"],
                 "would merge", "conflicts in 1 file(s): model.py", id="predicts a conflict"),
    pytest.param({"config.yml": "seed: 73\n"}, {"model.py": "RATE = 74\n"}, [],
                 "without conflicts", "", id="without conflict"),
]


@pytest.mark.parametrize("theirs, mine, conflicts, out, err", DRY_RUN_MERGES)
def test_dry_run_merge_without_touching_anything(world, theirs, mine, conflicts, out, err):
    world.publish(theirs)
    world.commit(world.work, mine, "mine")
    world.settle()
    before = world.snapshot(remotes=False)
    o = sync(world, dry_run=True)
    assert o.code == 0, o.text
    assert o.result["action"] == "merge" and o.result["conflicts"] == conflicts, o.text
    assert out in o.out and err in o.err, o.text
    assert_identical(before, world.snapshot(remotes=False))


def test_dry_run_push(world):
    world.commit(world.work, {"model.py": "RATE = 75\n"}, "to publish")
    remote_before = world.remote_tip()
    o = sync(world, {"type": "git", "mode": "push"}, dry_run=True)
    assert o.code == 0 and o.result["action"] == "push", o.text
    assert "would push 1 commit of main to origin/main" in o.out and "to publish" in o.out
    assert world.remote_tip() == remote_before
    assert not any(a[4:5] == ["push"] for a in o.argvs)


def test_dry_run_push_behind_is_refused_like_the_real_run(world):
    world.publish({"config.yml": "seed: 76\n"})
    o = sync(world, {"type": "git", "mode": "push"}, dry_run=True)
    assert o.code == 1 and "pull first" in str(o.error)


# ------------------------------------------------------------------------------------------------
# clear errors
# ------------------------------------------------------------------------------------------------

def test_not_a_git_repository(world, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    o = sync(world, cwd=plain)
    assert o.code == 2 and isinstance(o.error, ConfigError), o.text
    assert f"{plain} is not in a git repository" in str(o.error) and "'path'" in str(o.error)
    o = sync(world, {"type": "git", "path": str(plain)})
    assert o.code == 2 and "key 'path'" in str(o.error)
    o = sync(world, {"type": "git", "path": str(tmp_path / "missing")})
    assert o.code == 2 and "does not exist" in str(o.error)
    o = sync(world, {"type": "git", "path": str(world.remote)})
    assert o.code == 2 and "bare repository" in str(o.error)


def test_no_such_remote(world):
    o = sync(world, {"type": "git", "remote": "upstream"})
    assert o.code == 2 and isinstance(o.error, ConfigError), o.text
    assert "key 'remote': no remote named 'upstream'" in str(o.error) and "origin" in str(o.error)


def test_no_upstream_and_no_origin(world):
    world.git("remote", "rename", "origin", "authority")
    world.git("branch", "--unset-upstream")
    o = sync(world)
    assert o.code == 2 and "no upstream" in str(o.error) and "no remote 'origin'" in str(o.error)
    assert "authority" in str(o.error)


@pytest.mark.parametrize("key,value", [("remote", "--upload-pack=touch /tmp/pwned"), ("remote", "-o"),
                                       ("branch", "-D"), ("branch", "--force"), ("branch", "a..b")])
def test_option_like_names_are_refused_before_running_anything(world, key, value):
    o = sync(world, {"type": "git", key: value})
    assert o.code == 2 and isinstance(o.error, ConfigError), o.text
    assert f"key '{key}'" in str(o.error)
    assert o.argvs == []


def test_remote_unreachable_local_path(world):
    world.git("remote", "set-url", "origin", str(world.root / "gone.git"))
    world.settle()
    before = world.snapshot()
    o = sync(world)
    assert o.code == 1 and isinstance(o.error, StepFailed), o.text
    assert str(o.error).startswith("git fetch origin failed (exit 128): remote unreachable:")
    assert o.error.returncode == 128
    assert_identical(before, world.snapshot())


def test_credentials_in_the_remote_url_are_not_reported(world):
    world.git("remote", "set-url", "origin", "https://alice:s3cret@127.0.0.1:9/model.git")
    o = sync(world)
    assert o.code == 1 and "s3cret" not in o.text, o.text


def test_remote_missing_branch_on_pull(world):
    world.git("checkout", "-q", "-b", "lonely")
    o = sync(world)
    assert o.code == 0 and o.result["action"] == "up-to-date" and o.result["ahead"] == 0, o.text
    assert "no branch 'lonely' on origin yet" in o.out


@pytest.mark.parametrize("opts,flag", [
    ({"filters": ("+ *.py",)}, "-f/--filter"), ({"fprefix": ("- *.log",)}, "-a/--fprefix"),
    ({"fsuffix": ("- *",)}, "-e/--fsuffix"), ({"source": "elsewhere"}, "-s/--source"),
    ({"target": "hpc:/x"}, "-t/--target"), ({"no_filter": True}, "--no-filter"),
])
def test_filter_and_end_options_are_a_usage_error(world, opts, flag):
    o = sync(world, **opts)
    assert o.code == 2 and isinstance(o.error, UsageError), o.text
    assert flag in str(o.error) and ".gitignore" in str(o.error)
    assert o.argvs == []  # nothing ran


@pytest.mark.parametrize("body", [{"type": "git", "filters": ["+ *"]}, {"type": "git", "source": "."},
                                  {"type": "git", "target": "x"}, {"type": "git", "mode": "both"}])
def test_schema_rejects_transfer_keys_in_a_git_protocol(world, body):
    with pytest.raises(ConfigError) as info:
        validate_protocol("sync.yml", "code", body)
    assert info.value.exit_code == 2


def test_every_git_command_is_argv_safe(world):
    """User-controlled strings never appear where git could read them as options."""
    world.publish({"model.py": "RATE = 80\n"})
    world.commit(world.work, {"config.yml": "seed: 80\n"}, "mine")
    o = sync(world, {"type": "git", "remote": "origin", "branch": "main"})
    assert o.code == 0, o.text
    for argv in o.argvs:
        assert argv[:4] == ["git", "--no-pager", "-c", "core.quotepath=off"]
        sub = argv[4]
        if sub in ("fetch", "push"):
            assert argv[argv.index("--") + 1] == "origin"
        if sub == "merge" and "--abort" not in argv:
            assert argv[-1] == "refs/remotes/origin/main"


# ------------------------------------------------------------------------------------------------
# over ssh (the test sshd, `hpc:/abs/path/remote.git`, GIT_SSH_COMMAND='ssh -F <cfg>')
# ------------------------------------------------------------------------------------------------

def test_ssh_behind_ahead_and_conflict(ssh_world):
    w = ssh_world
    assert w.url.startswith("hpc:/")
    tip = w.publish({"model.py": "RATE = 90\n"})
    o = sync(w)
    assert o.code == 0 and o.result["action"] == "fast-forward" and w.head() == tip, o.text
    mine = w.commit(w.work, {"model.py": "RATE = 91\n"}, "mine over ssh")
    o = sync(w, {"type": "git", "mode": "push"})
    assert o.code == 0 and w.remote_tip() == mine, o.text
    # conflict over ssh: aborted, byte-identical
    w.publish({"config.yml": "seed: 92\n"})
    w.commit(w.work, {"config.yml": "seed: 93\n"}, "conflicting")
    w.settle()
    before = w.snapshot(remotes=False)
    o = sync(w)
    assert o.code == 1 and "conflicts in 1 file(s): config.yml" in str(o.error), o.text
    assert_identical(before, w.snapshot(remotes=False))
    # push refused over ssh
    o = sync(w, {"type": "git", "mode": "push"})
    assert o.code == 1 and "pull first" in str(o.error)


def test_ssh_halts_before_contacting_the_remote(ssh_world):
    _unstaged(ssh_world)
    ssh_world.settle()
    before = ssh_world.snapshot()
    o = sync(ssh_world)
    assert o.code == 1 and "unstaged changes" in str(o.error)
    assert_identical(before, ssh_world.snapshot())


def test_ssh_host_unreachable(ssh_world):
    # 'nowhere' matches the test ssh_config's catch-all: 127.0.0.1 on a port nothing listens on
    ssh_world.git("remote", "set-url", "origin", "nowhere:/srv/remote.git")
    o = sync(ssh_world)
    assert o.code == 1 and isinstance(o.error, StepFailed), o.text
    assert str(o.error).startswith("git fetch origin failed (exit 128): remote unreachable:")


# ------------------------------------------------------------------------------------------------
# local work git's checks do not see; git pointed elsewhere
# ------------------------------------------------------------------------------------------------

def _assume_unchanged_edit(w):
    w.write("model.py", "RATE = 42  # my local tuning\n")
    w.git("update-index", "--assume-unchanged", "model.py")


def _stale_index_lock(w):
    (w.work / ".git" / "index.lock").write_text("")  # a crashed git command's


REFUSED_MERGES = [
    # (id, set-up, fragment of git's refusal in the error)
    ("assume-unchanged edit", _assume_unchanged_edit, "would be overwritten"),
    ("stale index.lock", _stale_index_lock, "index.lock"),
]


@pytest.mark.parametrize("state,setup,fragment", REFUSED_MERGES, ids=[r[0] for r in REFUSED_MERGES])
def test_a_merge_git_refuses_is_not_rolled_back(world, state, setup, fragment):
    """git refused the update before writing anything: there is nothing to roll back, and nothing
    may be (the refusal protects local work); no journal is left for a rerun to apply."""
    world.publish({"model.py": "RATE = 2\n"})
    world.settle()
    setup(world)
    before = world.snapshot(remotes=False)
    o = sync(world)
    assert o.code == 1 and isinstance(o.error, StepFailed), o.text
    assert fragment in str(o.error) and "nothing was changed" in str(o.error), str(o.error)
    assert "rolled back" not in o.err and "checkout-index" not in str(o.argvs), o.text
    assert_identical(before, world.snapshot(remotes=False))
    assert not (world.work / ".git" / "flepimop-sync").exists()
    if state == "stale index.lock":  # the user removes the lock, edits, reruns: a dirty tree halts
        (world.work / ".git" / "index.lock").unlink()
        world.write("model.py", "RATE = 7  # my work\n")
        o = sync(world)
        assert o.code == 1 and "unstaged changes" in str(o.error), o.text
    assert "my" in (world.work / "model.py").read_text()


def test_incoming_file_names_that_are_not_utf8_halt(world):
    """git's output is read as UTF-8: such a name could not be looked up on disk, so a local
    ignored file of that name would be overwritten unseen.  The pull halts, changing nothing."""
    name = b"caf\xe9.dat"
    world.commit(world.other, {".gitignore": "*.dat\n"}, "ignore data")
    world.git("push", "-q", "origin", "main", cwd=world.other)
    world.git("pull", "-q", "--ff-only")
    mine, theirs = (os.path.join(os.fsencode(repo), name) for repo in (world.work, world.other))
    with open(mine, "wb") as fh:
        fh.write(b"my local results\n")
    with open(theirs, "wb") as fh:
        fh.write(b"upstream\n")
    subprocess.run([b"git", b"add", b"-f", b"--", name], cwd=world.other, env=world.env, check=True)
    world.git("commit", "-q", "-m", "add data", cwd=world.other)
    world.git("push", "-q", "origin", "main", cwd=world.other)
    world.settle()
    before = world.snapshot(remotes=False)
    o = sync(world)
    assert o.code == 1 and isinstance(o.error, SafetyHalt), o.text
    assert "not valid UTF-8" in str(o.error) and "nothing was changed" in str(o.error), str(o.error)
    with open(mine, "rb") as fh:
        assert fh.read() == b"my local results\n"
    assert_identical(before, world.snapshot(remotes=False))


@pytest.mark.parametrize("variable", ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"])
def test_git_variables_of_the_caller_do_not_redirect_the_run(world, variable):
    """Inside a git hook (or a shell that set GIT_DIR), git would act on that repository while the
    run reports on the protocol's: the protocol's repository is the one synced, the other untouched."""
    tip = world.publish({"model.py": "RATE = 2\n"})
    elsewhere = {"GIT_DIR": world.other / ".git", "GIT_WORK_TREE": world.other,
                 "GIT_INDEX_FILE": world.other / ".git" / "index"}[variable]
    world.commit(world.other, {"config.yml": "seed: 9\n"}, "the colleague's unpushed work")
    other_before = (world.head(world.other), world.git("status", "--porcelain", cwd=world.other).stdout)
    o = sync(world, env=dict(world.env, **{variable: str(elsewhere)}))
    assert o.code == 0 and o.result["action"] == "fast-forward", o.text
    assert world.head() == tip and (world.work / "model.py").read_text() == "RATE = 2\n"
    assert world.git("status", "--porcelain").stdout == ""
    assert (world.head(world.other), world.git("status", "--porcelain", cwd=world.other).stdout) == other_before


def test_a_push_url_other_than_the_fetch_url_is_said(world, tmp_path):
    """A remote's pushurl sends pushes elsewhere than it fetches from: the run says where it pushed,
    and that the comparison was made against the fetch URL."""
    fork = tmp_path / "fork.git"
    _git(world.env, "clone", "-q", "--bare", world.remote, fork)
    world.git("remote", "set-url", "--push", "origin", str(fork))
    world.commit(world.work, {"model.py": "RATE = 5\n"}, "mine")
    o = sync(world, {"type": "git", "mode": "push"})
    assert o.code == 0 and o.result["action"] == "push", o.text
    assert o.result["remote_url"] == str(fork), o.result
    warning = next(w for w in o.result["warnings"] if "pushurl" in w)
    assert str(fork) in warning and str(world.remote) in warning, warning
    assert _git(world.env, "rev-parse", "main", cwd=fork).stdout.strip() == world.head()


# ------------------------------------------------------------------------------------------------
# through the CLI
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def cli(world, run_cli):
    cfg = world.root / "sync.yml"
    cfg.write_text("sync:\n  checkcode:\n    type: git\n  publish:\n    type: git\n    mode: push\n")

    def run(*args):
        return run_cli(["sync", cfg, *args], env=world.env, cwd=world.work)

    return run


def test_cli_pull_json(world, cli):
    tip = world.publish({"model.py": "RATE = 100\n"})
    r = cli("-p", "checkcode", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["action"] == "fast-forward" and result["behind"] == 1 and world.head() == tip


def test_cli_exit_codes(world, cli):
    r = cli("-p", "checkcode", "-f", "+ *.py")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: "), r.stderr
    assert "-f/--filter" in r.stderr
    _staged(world)
    r = cli("-p", "checkcode")
    assert r.returncode == 1 and "error: " in r.stderr and "staged but uncommitted" in r.stderr, r.stderr
    world.git("reset", "-q", "--hard")
    r = cli("-p", "checkcode", "-n", "-v")
    assert r.returncode == 0 and "+ " in r.stderr and "git" in r.stderr, r.stderr


def test_cli_reverse_and_push_refusal(world, cli):
    mine = world.commit(world.work, {"model.py": "RATE = 101\n"}, "mine")
    r = cli("-p", "checkcode", "--reverse")
    assert r.returncode == 0 and world.remote_tip() == mine, r.stderr
    world.publish({"config.yml": "seed: 102\n"})
    r = cli("-p", "publish")
    assert r.returncode == 1 and "pull first" in r.stderr, r.stderr
