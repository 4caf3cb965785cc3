"""The ``git`` sync protocol: keep a model's code in step with its authoritative repository.

``run_git_protocol`` is the whole protocol: ``git_run`` builds the run's record
(:class:`GitRecord`: mode, remote, branch, ahead/behind, what was fetched, merged or pushed, the
commits, conflicts, untracked files, warnings) and returns it; ``run_git_protocol`` returns it
as the JSON-ready summary (``--json``, receipts).  The homes of two git rules live here too:
:func:`effective_mode` (the protocol's mode, swapped by ``--reverse``; ``api`` calls it) and
:func:`refuse_transfer_options` (a git protocol takes no end or filter option; ``execute``
and ``api`` call it).

Imports: the standard library, ``config`` (the protocol), ``errors``, ``mechanism`` (the
protocol types), ``options``, ``report`` (output, redaction) and ``runner`` (``Runner.run``:
every process starts there, argv lists, never a shell).  Unlike the transfer protocols, the
git argv are built here, not in ``plan``: only these git commands ever run (in the protocol's
repository: the caller's GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE... are not passed on)::

    git rev-parse / symbolic-ref / for-each-ref / remote / check-ref-format  (read only)
    git rev-list / log / merge-base / hash-object (no -w) / cat-file         (read only)
    git update-index -q --refresh                                            (stat cache only)
    git diff / diff-index / diff-files / diff-tree / ls-files / ls-tree      (read only)
    git fetch --no-write-fetch-head <remote> +refs/heads/B:refs/remotes/<remote>/B
    git merge-tree --write-tree                                              (conflict check: objects only)
    git merge --ff-only | --ff --no-edit --no-autostash refs/remotes/<remote>/B
    git merge --abort                                                        (after a conflict)
    git checkout-index -f / update-ref                                       (rolling back an interrupted pull)
    git push --porcelain <remote> refs/heads/L:refs/heads/B

Order of a run:

1. options and protocol keys (no process started): ``-s/-t/-f/-a/-e/--no-filter/--mkpath/--delete``
   (and ``--engine``) are a usage error (exit 2) -- git chooses files with ``.gitignore``;
2. locate the repository (``path``, else the working directory);
3. an earlier pull killed while updating the repository (its journal in ``$GIT_DIR/flepimop-sync/``
   exists) is rolled back first (see "the update as one step" below);
   safety checks "before anything": an operation in progress (merge, rebase, cherry-pick...),
   staged-but-uncommitted changes, unstaged changes to tracked files -> ``SafetyHalt`` (exit 1,
   nothing changed); untracked files that are not ignored -> a warning, then go on;
4. branch (detached HEAD is an error), remote (configured, else the branch's upstream, else
   ``origin``; it must exist);
5. fetch the one remote branch into its remote-tracking ref and count ahead/behind;
6. pull: fast-forward, or merge (never rebase).  A merge is first tried in memory with
   ``git merge-tree --write-tree`` (git >= 2.38): when it would conflict, no merge is started at
   all and the conflicting files are named.  With an older git (or if the real merge still stops),
   ``git merge --abort`` runs, HEAD/index/tree are verified unchanged and the index file's bytes
   are restored (the abort only refreshed its stat data).  Before the update, a local file git
   does not track -- untracked or *ignored* (git silently overwrites ignored files) -- where the
   incoming commits add a file (or need a directory) halts the run (``SafetyHalt``), naming it.
   The update runs under a journal: interrupted (SIGINT/SIGTERM/SIGHUP) or failed at any point,
   it is rolled back so the repository is as before; killed outright, the next run rolls it back
   -- unless a file the roll-back would overwrite or delete holds content the update did not write
   (local work, edited since): then it halts, changing nothing.  A merge git refuses before writing
   anything (a lock, a local change its checks hid) is not rolled back: nothing moved.  Incoming
   file names that are not UTF-8 halt the pull (they could not be checked against local files).
   push: refuse when the remote has commits the branch lacks, else push (never force); a push
   refused by a server hook reports the remote's own message (its ``remote:`` lines).

Dry run (``-n``): steps 1-5 run for real -- including the fetch, which updates the remote-tracking
ref ``refs/remotes/<remote>/<branch>`` and the object store only (no FETCH_HEAD, no local branch,
no index, no work-tree file) -- and the output says so.  A pull's merge is predicted with
``git merge-tree --write-tree`` (git >= 2.38; writes unreachable objects only), so a dry run
names the files that would conflict.  Checks that would halt the real run (dirty tree, push
behind the remote, untracked or ignored files in the pull's way) halt the dry run the same way; a
predicted conflict is a warning (exit 0).  A journal of a killed pull halts a dry run (a real run
rolls it back).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

from .config import Protocol
from .errors import ConfigError, Interrupted, SafetyHalt, StepFailed, UsageError, has_nul
from .mechanism import ProtocolType
from .options import SyncOptions
from .report import Reporter, redact, some
from .runner import Completed, Runner


class GitMode(Enum):
    """Which way a git protocol syncs: ``pull`` (the checkout follows its remote) or ``push``."""

    PULL = "pull"
    PUSH = "push"


MODES = tuple(mode.value for mode in GitMode)


def effective_mode(configured: str | GitMode, *, reverse: bool) -> GitMode:
    """The mode a run uses: the configured one, swapped by ``--reverse`` (the one home of the swap)."""
    mode = GitMode(configured)
    if reverse:
        return GitMode.PUSH if mode is GitMode.PULL else GitMode.PULL
    return mode


class GitAction(Enum):
    """What a run did (in a dry run: would do)."""

    UP_TO_DATE = "up-to-date"
    FAST_FORWARD = "fast-forward"
    MERGE = "merge"
    NOTHING_TO_PUSH = "nothing to push"
    PUSH = "push"


@dataclass
class GitRecord:
    """What one git run found and did; built and returned by ``git_run``."""

    protocol: str
    mode: GitMode
    repo: str
    dry_run: bool
    remote: str | None = None
    remote_url: str | None = None  # credentials masked
    branch: str | None = None
    remote_branch: str | None = None
    ahead: int | None = None
    behind: int | None = None
    action: GitAction | None = None
    commits: list[dict[str, str]] = field(default_factory=list)  # {"sha", "subject"}, newest first
    conflicts: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    head_before: str | None = None
    head_after: str | None = None
    fetched: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready summary (``--json``, receipts): these keys, in this order."""
        return {
            "protocol": self.protocol, "type": ProtocolType.GIT.value, "mode": self.mode.value, "repo": self.repo,
            "remote": self.remote, "remote_url": self.remote_url, "branch": self.branch,
            "remote_branch": self.remote_branch, "ahead": self.ahead, "behind": self.behind,
            "action": None if self.action is None else self.action.value,
            "commits": [dict(commit) for commit in self.commits], "conflicts": list(self.conflicts),
            "untracked": list(self.untracked), "warnings": list(self.warnings),
            "head_before": self.head_before, "head_after": self.head_after, "fetched": self.fetched,
            "dry_run": self.dry_run,
        }


SHOW_NAMES = 10  # file names listed inside a one-line error/warning; the rest are counted
SHOW_COMMITS = 20  # commits printed at level 0; all of them are in the summary (capped below)
MAX_COMMITS = 1000

# git's own messages are parsed in a few places: force the untranslated ones.  No prompts: a
# credential prompt would hang a batch job (the runner also gives children no terminal).
# Variables that point git at another repository, index or object store (git's own list:
# ``git rev-parse --local-env-vars``, its config variables aside) are not passed on: inside a git
# hook, or a shell that set GIT_DIR, git would otherwise update that repository while the run
# reports on the protocol's.
_REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_IMPLICIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE",
                         "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_GRAFT_FILE",
                         "GIT_SHALLOW_FILE", "GIT_NO_REPLACE_OBJECTS", "GIT_REPLACE_REF_BASE", "GIT_PREFIX")
GIT_ENV: dict[str, str | None] = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0",
                                  "GIT_MERGE_AUTOEDIT": "no", **dict.fromkeys(_REPOSITORY_VARIABLES)}
GIT_BASE = ("git", "--no-pager", "-c", "core.quotepath=off")

_UNREACHABLE = (
    "could not read from remote repository", "does not appear to be a git repository",
    "unable to access", "connection refused", "could not resolve hostname", "connection timed out",
    "no route to host", "connection closed", "host key verification failed", "permission denied",
    "repository not found", "network is unreachable", "operation timed out",
)

_IN_PROGRESS = (
    ("MERGE_HEAD", "a merge is in progress", "finish it (git commit) or abort it (git merge --abort)"),
    ("rebase-merge", "a rebase is in progress", "finish it (git rebase --continue) or abort it (git rebase --abort)"),
    ("rebase-apply", "a rebase or 'git am' is in progress", "finish or abort it (git rebase --abort / git am --abort)"),
    ("CHERRY_PICK_HEAD", "a cherry-pick is in progress", "finish it or abort it (git cherry-pick --abort)"),
    ("REVERT_HEAD", "a revert is in progress", "finish it or abort it (git revert --abort)"),
    ("BISECT_LOG", "a bisect is in progress", "end it (git bisect reset)"),
)


def run_git_protocol(protocol: Protocol, options: SyncOptions, runner: Runner, reporter: Reporter, *,
                     cwd: str | None = None) -> dict[str, Any]:
    """Run one ``type: git`` protocol; return its record as the JSON-ready summary."""
    return git_run(protocol, options, runner, reporter, cwd=cwd).as_dict()


def git_run(protocol: Protocol, options: SyncOptions, runner: Runner, reporter: Reporter, *,
            cwd: str | None = None) -> GitRecord:
    """Run one ``type: git`` protocol (steps: module docstring); return what it did."""
    mode = _check_protocol(protocol, options)
    start = _start_dir(protocol, cwd)
    git = _Git(runner, start)
    repo = git.toplevel(protocol, explicit=protocol.settings.path is not None)
    git.cwd = repo
    run = _Run(git, reporter, options, GitRecord(protocol=protocol.name, mode=mode, repo=repo,
                                                 dry_run=options.dry_run))

    # -- 3. safety checks, before anything ------------------------------------------------------
    _resume_interrupted(run)  # a killed run's update: roll it back first
    _check_in_progress(git, repo)
    untracked = _check_tree(git, repo, reporter)
    if untracked:
        run.record.untracked = untracked
        run.warn(f"{len(untracked)} untracked file(s) not ignored in {repo} (left alone; commit them or "
                 f"add them to .gitignore to silence this): {_names(untracked)}")

    # -- 4. branch and remote; 5. fetch and compare; 6. pull or push ------------------------------
    _resolve(run, protocol)
    _fetch_and_compare(run)
    if mode is GitMode.PULL:
        _pull(run)
    else:
        _push(run)
    return run.record


@dataclass
class _Run:
    """One run: git in the repository, where output goes, the options, and the record it builds."""

    git: "_Git"
    reporter: Reporter
    options: SyncOptions
    record: GitRecord
    # set by _resolve and _fetch_and_compare
    current: str | None = None  # the checked-out branch (None: detached HEAD)
    local_ref: str = ""  # refs/heads/<branch>
    tracking: str = ""  # refs/remotes/<remote>/<remote branch>
    shown_remote: str = ""  # <remote>/<remote branch>
    remote_has_branch: bool = False

    @property
    def dry_run(self) -> bool:
        return self.options.dry_run

    def warn(self, message: str) -> None:
        """A warning printed now and kept in the record."""
        self.reporter.warn(message)
        self.record.warnings.append(message)


def _resolve(run: _Run, protocol: Protocol) -> None:
    """Step 4: the branch and the remote (and its branch); says what will be synced with what."""
    git, record = run.git, run.record
    branch, run.current = _resolve_branch(git, protocol, record.mode, record.repo)
    remote, remote_branch = _resolve_remote(git, protocol, branch, record.repo)
    url = redact(git.run("remote", "get-url", "--", remote, check=False).stdout.strip()) or None
    if record.mode is GitMode.PUSH:  # a remote may push elsewhere than it fetches from (pushurl)
        pushes = [redact(u) for u in git.run("remote", "get-url", "--push", "--all", "--", remote,
                                             check=False).stdout.split("\n") if u.strip()]
        if pushes and pushes != [url]:
            run.warn(f"remote {remote} pushes to {' and '.join(pushes)} (remote.{remote}.pushurl), not to {url}, "
                     f"which it fetches from: what the branch lacks or has is counted against {url}")
            url = " ".join(pushes)
    record.branch, record.remote, record.remote_branch, record.remote_url = branch, remote, remote_branch, url
    run.tracking = f"refs/remotes/{remote}/{remote_branch}"
    run.local_ref = f"refs/heads/{branch}"
    record.head_before = record.head_after = git.rev(run.local_ref)
    run.shown_remote = f"{remote}/{remote_branch}"
    run.reporter.info(f"git {record.mode.value}: {record.repo} branch {branch} <-> {run.shown_remote}"
                      + (f" ({url})" if url else "") + (" [dry run]" if run.dry_run else ""))


def _fetch_and_compare(run: _Run) -> None:
    """Step 5: fetch the remote branch into its remote-tracking ref; count ahead/behind."""
    git, record = run.git, run.record
    assert record.remote is not None and record.remote_branch is not None  # _resolve ran
    run.remote_has_branch = git.fetch(record.remote, record.remote_branch, run.tracking)
    record.fetched = True
    if run.dry_run:
        run.reporter.info(f"dry run: fetched {run.shown_remote} into its remote-tracking ref only; "
                          "no branch, index or working-tree file will be changed")
    remote_tip = git.rev(run.tracking) if run.remote_has_branch else None
    record.ahead, record.behind = git.ahead_behind(record.head_before and run.local_ref,
                                                   remote_tip and run.tracking, record.remote)
    missing = "" if run.remote_has_branch else f" (no branch '{record.remote_branch}' on {record.remote} yet)"
    run.reporter.info(f"{record.branch} is {_count(record.ahead)} ahead of and {_count(record.behind)} behind "
                      f"{run.shown_remote}{missing}")


# ------------------------------------------------------------------------------------------------
# pull / push
# ------------------------------------------------------------------------------------------------

def _pull(run: _Run) -> None:
    git, record, reporter = run.git, run.record, run.reporter
    branch, ahead, behind, shown_remote = record.branch, record.ahead, record.behind, run.shown_remote
    if not behind:
        record.action = GitAction.UP_TO_DATE
        note = f"; {_count(ahead)} local only (push them with mode push or --reverse)" if ahead else ""
        reporter.info(f"{branch} is up to date with {shown_remote}{note}")
        return
    commits = git.commits(run.tracking, exclude=run.local_ref if record.head_before else None)
    record.commits = commits
    action = GitAction.FAST_FORWARD if not ahead else GitAction.MERGE
    record.action = action
    old, theirs = record.head_before, git.rev(run.tracking)
    assert theirs is not None  # behind > 0: the remote-tracking ref exists
    result_tree: str | None = f"{theirs}^{{tree}}"
    conflicts: list[str] | None = []
    if action is GitAction.MERGE:
        result_tree, conflicts = git.merge_tree(run.local_ref, run.tracking)
    if run.dry_run:
        reporter.info(f"would {action.value} {branch} with {_count(behind)} from {shown_remote}:")
        _show_commits(reporter, commits)
    if action is GitAction.MERGE:
        _predicted_merge(run, conflicts)
    # Every path the update will write or delete, as changes from HEAD (git's own view).
    changes = git.tree_changes(old, result_tree) if not conflicts and result_tree else \
        git.tree_changes_fallback(old, theirs)
    _check_names(run, changes)
    _check_in_the_way(run, changes)
    if run.dry_run:
        return

    assert run.current == branch  # _resolve_branch guarantees it for pull
    ff = "--ff-only" if action is GitAction.FAST_FORWARD else "--ff"
    _atomic_update(run, ["merge", ff, "--no-edit", "--no-autostash", "--no-stat", run.tracking], theirs, changes)
    record.head_after = git.rev("HEAD")
    how = "fast-forwarded" if action is GitAction.FAST_FORWARD else "merged"
    reporter.info(f"{how} {branch} with {_count(behind)} from {shown_remote} "
                  f"({_short(record.head_before)} -> {_short(record.head_after)}):")
    _show_commits(reporter, commits)


def _predicted_merge(run: _Run, conflicts: list[str] | None) -> None:
    """What ``git merge-tree`` predicts: a dry run warns about conflicts, a real run never starts them."""
    record, shown_remote = run.record, run.shown_remote
    if conflicts is None:
        run.reporter.info("(conflicts not predicted: needs git >= 2.38)")
    elif conflicts and run.dry_run:
        record.conflicts = conflicts
        run.warn(f"the merge would stop on conflicts in {len(conflicts)} file(s): {_names(conflicts)}; "
                 "a real run would not start the merge and would change nothing")
    elif conflicts:
        # A merge that would conflict is never started, so nothing is touched.
        raise StepFailed(
            f"git merge {shown_remote} into {record.branch} would stop on conflicts in {len(conflicts)} file(s): "
            f"{_names(conflicts)}; nothing was merged and {record.repo} is exactly as before",
            step="git merge", returncode=1, hint=_RESOLVE_HINT.format(remote=shown_remote))
    elif run.dry_run:
        run.reporter.info("the merge would complete without conflicts")


def _check_names(run: _Run, changes: Sequence[Change]) -> None:
    """Halt when a file the update writes has a name that is not UTF-8: read back as text, it cannot
    be looked up on disk, so neither the check below nor a roll-back could find it."""
    odd = [change.path for change in changes if "\ufffd" in change.path]
    if odd:
        raise SafetyHalt(
            f"pulling {run.shown_remote}: {len(odd)} incoming file name(s) are not valid UTF-8: {_names(odd)}; "
            f"flepimop sync cannot check them against local files, so nothing was changed in {run.record.repo}"
            + (" (dry run)" if run.dry_run else ""),
            hint="pull with git itself (git pull --ff-only), or rename the files upstream")


def _check_in_the_way(run: _Run, changes: Sequence[Change]) -> None:
    """Halt when the update would overwrite or delete a local file git does not track.

    git refuses to overwrite an untracked file, but silently replaces an *ignored* one (and an
    ignored directory, or an ignored file where the update needs a directory).  A path the
    update adds is in the way when it exists locally, or when one of its parent directories
    exists as something other than a directory (unless git tracks it and the update deletes it).
    """
    git, repo = run.git, run.record.repo
    suspects = _in_the_way(repo, changes)
    if not suspects:
        return
    # What git does not track at (or below) those paths: untracked and ignored alike.
    found: list[str] = []
    for chunk in _chunks([f":(literal){p}" for p in _dedup(suspects)]):
        found += _split_z(git.run("ls-files", "-z", "--others", "--", *chunk).stdout)
    found = _dedup(found)
    if not found:
        return
    ignored = set(_split_z(git.run("ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--",
                                   *(f":(literal){p}" for p in found[:1000])).stdout))
    kinds = "ignored" if all(f in ignored for f in found) else \
        "untracked" if not ignored & set(found) else "untracked or ignored"
    raise SafetyHalt(
        f"pulling {run.shown_remote}: {len(found)} local {kinds} file(s) that git does not track would be "
        f"overwritten or deleted by files the incoming commits add: {_names(found)}; nothing was changed "
        f"in {repo}" + (" (dry run)" if run.dry_run else ""),
        hint="move them out of the way (or commit them), then rerun")


def _in_the_way(repo: str, changes: Sequence[Change]) -> list[str]:
    """Paths the update adds that exist locally, or whose parent exists as a non-directory."""
    deleted = {change.path for change in changes if change.status == "D"}
    suspects: list[str] = []
    parents: dict[str, bool] = {}  # parent -> in the way
    for change in changes:
        if change.status != "A":
            continue
        path = change.path
        if os.path.lexists(os.path.join(repo, path)):
            suspects.append(path)
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in parents:
                full = os.path.join(repo, parent)
                parents[parent] = (parent not in deleted and os.path.lexists(full)
                                   and (os.path.islink(full) or not os.path.isdir(full)))
            if parents[parent]:
                suspects.append(parent)
                break
    return suspects


_RESOLVE_HINT = ("resolve by hand as usual: git merge {remote}, edit the conflicting files, "
                 "git add them, git commit; then rerun")


def _merge_failed(run: _Run, done: Completed, saved: "tuple[str, bytes, str] | None",
                  added: Sequence[str]) -> StepFailed:
    """A merge stopped: abort it when one is in progress, verify nothing moved; return the error.

    Raises (the caller rolls back) when the repository is not as before: HEAD moved, the index or
    a tracked file differs, or a file the update adds (``added``) exists.  Otherwise nothing is to
    be rolled back, and nothing may be: a file git refused to overwrite (say, one marked
    assume-unchanged) holds local work.  After a verified abort the index has the same entries as
    before but fresh stat data (the abort rewrote the conflicted files); the saved index bytes are
    put back under git's own ``index.lock`` so the index file is byte-identical to before the run.
    """
    git, shown_remote = run.git, run.shown_remote
    repo, branch, before = run.record.repo, run.record.branch, run.record.head_before
    in_merge = git.run("rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).returncode == 0
    conflicts: list[str] = []
    if in_merge:
        listing = git.run("diff", "--name-only", "--diff-filter=U", "-z", "--no-renames", check=False)
        conflicts = _dedup(_split_z(listing.stdout))
        aborted = git.run("merge", "--abort", check=False)
        if aborted.returncode != 0:
            raise StepFailed(
                f"git merge {shown_remote} stopped (exit {done.returncode}) and 'git merge --abort' failed "
                f"(exit {aborted.returncode}): {_stderr_line(aborted)}",
                step="git merge --abort", returncode=aborted.returncode,
                hint=f"inspect {repo} with 'git status' before doing anything else")
    after = git.rev("HEAD")
    intact = after == before and git.clean_index_and_tree() and \
        not any(os.path.lexists(os.path.join(repo, path)) for path in added)
    if intact and saved is not None:
        git.restore_index(saved)
    if not intact:
        raise StepFailed(
            f"git merge {shown_remote} failed (exit {done.returncode}) and {repo} is not as before "
            f"(HEAD {_short(before)} -> {_short(after)}): {_stderr_line(done)}",
            step="git merge", returncode=done.returncode,
            hint="inspect it with 'git status'; 'git reset --merge' may restore it")
    if conflicts:
        return StepFailed(
            f"git merge {shown_remote} into {branch} stopped on conflicts in {len(conflicts)} file(s): "
            f"{_names(conflicts)}; the merge was aborted and {repo} is exactly as before",
            step="git merge", returncode=done.returncode,
            hint=_RESOLVE_HINT.format(remote=shown_remote))
    return StepFailed(
        f"git merge {shown_remote} failed (exit {done.returncode}): {_stderr_line(done)}; "
        f"nothing was changed in {repo}",
        step="git merge", returncode=done.returncode)


def _push(run: _Run) -> None:
    git, record, reporter = run.git, run.record, run.reporter
    branch, ahead, behind, shown_remote = record.branch, record.ahead, record.behind, run.shown_remote
    if behind:
        missing = git.commits(run.tracking, exclude=run.local_ref if record.head_before else None)
        raise SafetyHalt(
            f"refusing to push {branch}: {shown_remote} has {_count(behind)} that {branch} lacks "
            f"(latest: {_short(missing[0]['sha']) if missing else '?'} "
            f"{missing[0]['subject'] if missing else ''}); nothing was pushed",
            hint="pull first (" + ("rerun without --reverse" if run.options.reverse else "rerun with --reverse")
                 + "), then push")
    if not ahead:
        record.action = GitAction.NOTHING_TO_PUSH
        reporter.info(f"nothing to push: {shown_remote} already has every commit of {branch}")
        return
    exclude = run.tracking if run.remote_has_branch else None
    commits = git.commits(run.local_ref, exclude=exclude, not_remote=None if run.remote_has_branch else record.remote)
    record.commits = commits
    record.action = GitAction.PUSH
    if run.dry_run:
        reporter.info(f"would push {_count(ahead)} of {branch} to {shown_remote}"
                      + ("" if run.remote_has_branch else " (a new branch)") + ":")
        _show_commits(reporter, commits)
        return
    assert record.remote is not None  # _resolve ran
    refspec = f"{run.local_ref}:refs/heads/{record.remote_branch}"
    done = git.run("push", "--porcelain", "--no-follow-tags", "--no-signed", "--", record.remote, refspec,
                   check=False)
    if done.returncode != 0:
        _push_failed(run, done)
    reporter.info(f"pushed {_count(ahead)} of {branch} to {shown_remote}:")
    _show_commits(reporter, commits)


def _push_failed(run: _Run, done: Completed) -> None:
    """Word a failed ``git push``: refused by the remote, rejected (it moved), or another failure."""
    remote, branch = run.record.remote, run.record.branch
    text = (done.stdout + "\n" + done.stderr).lower()
    said = _remote_says(done)
    refused = _porcelain_reason(done.stdout, "[remote rejected]")
    if refused is not None:  # a server-side hook (pre-receive/update) or the server's policy
        raise StepFailed(
            f"git push {remote} {branch} failed (exit {done.returncode}): refused by the remote"
            + (f" ({refused})" if refused else "") + (f", which said: {said}" if said else "")
            + "; nothing was pushed",
            step="git push", returncode=done.returncode,
            hint="fix what the remote's message asks for, commit, then rerun")
    if "[rejected]" in text or "non-fast-forward" in text or "fetch first" in text or "\t!" in done.stdout:
        raise StepFailed(
            f"git push {remote} {branch} failed (exit {done.returncode}): rejected, {run.shown_remote} has "
            f"commits {branch} lacks (pushed meanwhile?); nothing was pushed",
            step="git push", returncode=done.returncode, hint="pull first, then push")
    raise StepFailed(f"git push {remote} {branch} failed (exit {done.returncode}): "
                     f"{_unreachable_prefix(done)}{_stderr_line(done)}"
                     + (f" (the remote said: {said})" if said else ""),
                     step="git push", returncode=done.returncode)


# ------------------------------------------------------------------------------------------------
# the update as one step: journal, interruption, roll-back
# ------------------------------------------------------------------------------------------------
#
# A pull's update (``git merge``: a fast-forward writing thousands of files, or a merge running
# slow hooks) can be interrupted half-way.  Before it starts, a journal is written to
# ``$GIT_DIR/flepimop-sync/``: the branch and its commit, the index file's bytes, git's state files
# (ORIG_HEAD, MERGE_HEAD...) and every path the update will write or delete (``changes``: git's own
# diff from HEAD to the result).  The safety checks guarantee there were no local changes to
# tracked files and nothing untracked in the update's way, so the state before is exactly: the
# branch at its old commit, the saved index, and the old commit's content at the changed paths
# (paths the update adds did not exist).  Rolling back is therefore: remove the added paths (and
# the directories created for them), put the index bytes back, reset the branch and the state
# files, check the other changed paths out of that index (git skips files whose stat data still
# match).  Every step is idempotent, so the same roll-back runs in-process after an interruption
# (with SIGINT/SIGTERM/SIGHUP deferred until it is done) and, if the process was killed outright,
# at the start of the next run, before the safety checks.  The journal keeps each path's blob
# before and after: a file holding neither (nor a beginning of the new one, git stopped while
# writing it) is local work, and the roll-back halts before touching anything.  A lock file git
# left is removed only when no live process holds it open.

JOURNAL_DIR = "flepimop-sync"
JOURNAL = "pull-journal.json"
INDEX_COPY = "index.before"
_STATE_FILES = ("ORIG_HEAD", "MERGE_HEAD", "MERGE_MSG", "MERGE_MODE", "MERGE_RR", "AUTO_MERGE", "SQUASH_MSG")
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _atomic_update(run: _Run, argv: list[str], theirs: str, changes: Sequence[Change]) -> None:
    """Run ``git merge`` so that, interrupted or failed at any point, the repository is as before."""
    git, record = run.git, run.record
    assert record.action is not None  # _pull chose fast-forward or merge
    journal = _Journal(git)
    failure: StepFailed | None = None
    with _hangup_interrupts(git.runner):
        try:
            saved = journal.write(run.local_ref, record.head_before, theirs, record.action.value, changes)
            done = git.run(*argv, check=False)
            if done.returncode != 0:  # verified unchanged, or raises to be rolled back
                failure = _merge_failed(run, done, saved, [c.path for c in changes if c.status == "A"])
            journal.remove()  # the update is complete (or never began): this is its commit point
        except BaseException as exc:
            _roll_back_deferred(journal, run.reporter, exc)
            raise
    if failure is not None:
        raise failure


def _roll_back_deferred(journal: "_Journal", reporter: Reporter, exc: BaseException | None) -> None:
    """Roll back with interruptions deferred; a signal that arrives meanwhile is re-raised after."""
    for _ in range(3):  # a second signal before the deferral is in place: roll back all the same
        try:
            with _signals_deferred() as received:
                journal.roll_back(reporter, interrupted=isinstance(exc, Interrupted))
            break
        except Interrupted:
            continue
        except (StepFailed, OSError) as failure:
            raise StepFailed(f"rolling back the pull in {journal.git.cwd} failed: {failure}; its journal "
                             f"{journal.path} is kept", step="roll-back",
                             hint="rerun the same command to finish the roll-back") from None
    else:  # pragma: no cover - three signals in a few microseconds; the journal is still there
        return
    if received and exc is None:
        raise Interrupted(received[0])


@contextlib.contextmanager
def _signals_deferred() -> Iterator[list[int]]:
    """SIGINT/SIGTERM/SIGHUP are recorded, not acted on, inside the block (main thread only)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {signum: signal.signal(signum, lambda signum, _frame: received.append(signum))
                for signum in _SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


@contextlib.contextmanager
def _hangup_interrupts(runner: Runner) -> Iterator[None]:
    """While the update runs, a hangup (terminal or ssh session closed) is an interruption too.

    The runner owns signal handling; this only fills in SIGHUP when nobody handles it, so a
    closed session cannot kill us between changing the repository and rolling it back.
    """
    on_signal = getattr(runner, "_on_signal", None)
    hup = getattr(signal, "SIGHUP", None)
    if (on_signal is None or hup is None or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(hup) is not signal.SIG_DFL):
        yield
        return
    signal.signal(hup, on_signal)
    try:
        yield
    finally:
        signal.signal(hup, signal.SIG_DFL)


class _Journal:
    """``$GIT_DIR/flepimop-sync/pull-journal.json`` (+ ``index.before``): see above."""

    def __init__(self, git: "_Git"):
        self.git = git
        repo = git.cwd
        names = ["index", JOURNAL_DIR, *_STATE_FILES]
        paths = git.run("rev-parse", *[a for n in names for a in ("--git-path", n)]).stdout.splitlines()
        full = [os.path.join(repo, p) for p in paths]
        self.index, self.dir, self.state_paths = full[0], full[1], dict(zip(_STATE_FILES, full[2:], strict=True))
        self.path = os.path.join(self.dir, JOURNAL)
        self.index_copy = os.path.join(self.dir, INDEX_COPY)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def write(self, local_ref: str, old: str | None, theirs: str, action: str,
              changes: Sequence[Change]) -> "tuple[str, bytes, str] | None":
        """Record the state before the update; returns the saved index (see ``_merge_failed``)."""
        repo = self.git.cwd
        saved = self.git.save_index()
        added = [change.path for change in changes if change.status == "A"]
        new_dirs: set[str] = set()
        seen: set[str] = set()
        for path in added:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                parent = "/".join(parts[:i])
                if parent in seen:
                    continue
                seen.add(parent)
                full = os.path.join(repo, parent)
                if os.path.islink(full) or not os.path.isdir(full):
                    new_dirs.add(parent)
        state = {}
        for name, path in self.state_paths.items():
            try:
                with open(path, "rb") as fh:
                    state[name] = base64.b64encode(fh.read()).decode("ascii")
            except FileNotFoundError:
                state[name] = None
        record = {
            "version": 2, "started": time.time(), "ref": local_ref, "old": old, "theirs": theirs,
            "action": action, "had_index": saved is not None,
            "remove": added, "restore": [change.path for change in changes if change.status != "A"],
            "blobs": {change.path: [change.old, change.new] for change in changes},
            "new_dirs": sorted(new_dirs, key=lambda d: (-d.count("/"), d)), "state": state,
        }
        os.makedirs(self.dir, exist_ok=True)
        if saved is not None:
            _write_atomic(self.index_copy, saved[1])
        _write_atomic(self.path, json.dumps(record).encode())  # the journal exists from here on
        return saved

    def remove(self) -> None:
        for path in (self.path, self.index_copy):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(self.dir)

    def roll_back(self, reporter: Reporter, *, interrupted: bool = False) -> None:
        """Put the repository back as the journal recorded it (nothing to do without a journal)."""
        record = self._read()
        if record is None:
            return
        ref, old = record["ref"], record["old"]
        current = self._check_unmoved(record)
        self._check_untouched(record)
        self._remove_new_locks(ref, float(record.get("started", 0)) - 1.0)
        self._restore_tree(record)
        self._restore_index(record)
        # 3. the branch and git's state files, before the work tree: if a checkout below fails, the
        # repository is back at its old commit with (journalled, rolled back by a rerun) file changes,
        # not at the new commit with the old index (whose next commit would revert the update)
        self._restore_refs(record, current)
        # 4. the changed paths that existed before, from that index (files still matching it stay);
        # not those outside a sparse checkout (skip-worktree): git never wrote them, and refuses them
        outside = {entry[2:] for entry in _split_z(self.git.run("ls-files", "-t", "-z").stdout)
                   if entry.startswith("S ")}
        for chunk in _chunks([path for path in record["restore"] if path not in outside]):
            self.git.run("checkout-index", "-f", "-q", "--", *chunk, step="git checkout-index (roll-back)")
        self.remove()
        what = "was interrupted" if interrupted else "did not complete"
        reporter.warn(f"the pull {what}; it was rolled back: {ref[len('refs/heads/'):]} is at "
                      f"{_short(old)} again and the index and working tree are as before")

    def _read(self) -> dict[str, Any] | None:
        """The journal's record; None (and leftovers removed) when there is none."""
        try:
            with open(self.path, "rb") as fh:
                record = json.loads(fh.read())
            record["ref"], record["old"], record["theirs"]  # a journal without them is unreadable
        except FileNotFoundError:
            self.remove()
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SafetyHalt(f"unreadable journal of an interrupted pull {self.path} ({exc}); nothing was changed",
                             hint=f"check {self.git.cwd} with 'git status', then delete the journal") from None
        return record

    def _check_unmoved(self, record: dict[str, Any]) -> str | None:
        """The branch's commit now: the old one, the incoming one, or the merge of both; else halt."""
        git, ref, old, theirs = self.git, record["ref"], record["old"], record["theirs"]
        head = git.run("symbolic-ref", "-q", "HEAD", check=False).stdout.strip()
        current = git.rev(ref)
        ours = current in (old, theirs) or (
            current is not None and old is not None
            and git.run("rev-list", "--parents", "-n1", current, "--").stdout.split()[1:] == [old, theirs])
        if head != ref or not ours:
            raise SafetyHalt(
                f"{git.cwd} has the journal of an interrupted pull ({self.path}) but its branch moved since "
                f"(HEAD {head or 'detached'} at {_short(current)}, expected {ref} at {_short(old)}); "
                "nothing was changed",
                hint="check the repository with 'git status' and 'git log', then delete the journal and rerun")
        return current

    def _check_untouched(self, record: dict[str, Any]) -> None:
        """Halt, changing nothing, when a file the roll-back would overwrite or delete holds content
        the update did not write: local work (edited after a killed pull, or hidden from the checks
        before it, as with assume-unchanged or skip-worktree files).

        A journalled file may be absent, hold its content before the update, the update's, or a
        beginning of the update's (git was stopped while writing it).  Below a directory the update
        created, only files it added may exist.  (A version-1 journal has no blob ids: not checked.)
        """
        blobs: dict[str, list[str | None]] | None = record.get("blobs")
        if blobs is None:
            return
        repo = self.git.cwd
        files, links = [], {}
        for path in blobs:
            full = os.path.join(repo, path)
            if os.path.islink(full):
                links[path] = os.fsencode(os.readlink(full))
            elif os.path.isfile(full):
                files.append(path)
        now = {path: self.git.blob_id(target) for path, target in links.items()}
        for chunk in _chunks(files):
            ids = self.git.run("hash-object", "--", *chunk).stdout.split()
            now.update(zip(chunk, ids, strict=True))
        changed = [path for path, blob in now.items() if blob not in blobs[path][:2] and not
                   self._partly_written(path, blobs[path][1])]
        # a directory the update made where a file was: checking that file out again removes it
        added, restored = set(record["remove"]), set(record["restore"])
        for directory in (d for d in record["new_dirs"] if d in restored):
            for top, _dirs, names in os.walk(os.path.join(repo, directory)):
                changed += [rel for rel in (os.path.relpath(os.path.join(top, n), repo).replace(os.sep, "/")
                                            for n in names) if rel not in added]
        if changed:
            raise SafetyHalt(
                f"{repo} has the journal of an interrupted pull ({self.path}), but {len(changed)} file(s) it "
                f"would roll back hold content the pull did not write (local work): {_names(sorted(set(changed)))}; "
                "nothing was changed",
                hint="copy your changes to them elsewhere and delete them, then rerun: the roll-back restores "
                     "them as they were before the pull")

    def _partly_written(self, path: str, new: str | None) -> bool:
        """Is the file a beginning of blob ``new`` (git was stopped while writing it)?  Compared as
        decoded text (the runner's output is text): a cut inside a UTF-8 character counts as changed.
        A symbolic link is never partly written (git makes it in one call): reading it would read
        what it points to, or fail when that does not exist."""
        full = os.path.join(self.git.cwd, path)
        if new is None or os.path.islink(full):
            return False
        with open(full, "rb") as fh:
            head = fh.read().decode("utf-8", "replace")
        return self.git.run("cat-file", "blob", new).stdout.startswith(head)

    def _remove_new_locks(self, ref: str, started: float) -> None:
        """Lock files a stopped git left behind (only ones created since the journal was written)."""
        git, repo = self.git, self.git.cwd
        locks = [self.index, self.state_paths["ORIG_HEAD"], self.state_paths["AUTO_MERGE"],
                 os.path.join(repo, git.run("rev-parse", "--git-path", ref).stdout.strip()),
                 os.path.join(repo, git.run("rev-parse", "--git-path", "HEAD").stdout.strip())]
        for lock in (p + ".lock" for p in locks):
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(lock).st_mtime >= started:
                    holder = _holder(lock)
                    if holder:  # a git command started since (git keeps its lock file open)
                        raise StepFailed(f"{lock} is held by a running process ({holder})", step="roll-back",
                                         hint="rerun when that git command has finished")
                    os.unlink(lock)

    def _restore_tree(self, record: dict[str, Any]) -> None:
        """1. the work tree: paths the update added, and the directories made for them."""
        repo = self.git.cwd
        for path in record["remove"]:
            full = os.path.join(repo, path)
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                if os.path.isdir(full) and not os.path.islink(full):
                    with contextlib.suppress(OSError):
                        os.rmdir(full)  # an empty directory git made (a submodule's)
                else:
                    os.unlink(full)
        for directory in record["new_dirs"]:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(repo, directory))

    def _restore_index(self, record: dict[str, Any]) -> None:
        """2. the index, byte for byte."""
        if not record.get("had_index"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.index)
            return
        with open(self.index_copy, "rb") as fh:
            data = fh.read()
        if not _write_locked(self.index, data):
            raise StepFailed(f"cannot restore {self.index}: {self.index}.lock exists (another git command running?)",
                             step="roll-back", hint="when no git command is running, delete the lock and rerun")

    def _restore_refs(self, record: dict[str, Any], current: str | None) -> None:
        """3. the branch and git's state files."""
        ref, old = record["ref"], record["old"]
        if current != old:
            message = "flepimop sync: roll back an interrupted pull"
            if old:
                self.git.run("update-ref", "-m", message, ref, old, step="git update-ref (roll-back)")
            else:
                self.git.run("update-ref", "-d", ref, step="git update-ref (roll-back)")
        for name, content in record["state"].items():
            path = self.state_paths[name]
            if content is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            else:
                _write_atomic(path, base64.b64decode(content))


def _resume_interrupted(run: _Run) -> None:
    """A previous run was killed during its update: roll it back before checking anything."""
    git = run.git
    journal = _Journal(git)
    if not journal.exists():
        return
    if run.dry_run:
        raise SafetyHalt(f"a previous pull in {git.cwd} was interrupted while updating it (journal "
                         f"{journal.path}); a dry run changes nothing",
                         hint="rerun without -n/--dry-run: it rolls the interrupted pull back, then pulls")
    run.reporter.warn(f"a previous pull in {git.cwd} was interrupted while updating it; rolling it back first")
    _roll_back_deferred(journal, run.reporter, None)


def _holder(path: str) -> str | None:
    """'pid N: command' of a live process with ``path`` open (Linux /proc; None elsewhere or when none).

    Only processes we may inspect are seen: a user's own git commands, which are the ones that
    write their repository."""
    if not os.path.isdir("/proc/self/fd"):
        return None
    target = os.path.realpath(path)
    for pid in (entry for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        command = fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
                    return f"pid {pid}: {command or '?'}"
            except OSError:
                continue
    return None


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_locked(path: str, data: bytes) -> bool:
    """Replace a file git guards with ``<file>.lock`` (the index), taking that lock as git does.

    False, and nothing written, when the lock is already taken (another git command is running).
    """
    lock = path + ".lock"
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(lock, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        raise
    return True


def _chunks(items: Sequence[str], max_bytes: int = 100_000) -> Iterator[list[str]]:
    """Split paths into argv-sized groups."""
    chunk: list[str] = []
    size = 0
    for item in items:
        if chunk and size + len(item) + 1 > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.encode()) + 1
    if chunk:
        yield chunk


# ------------------------------------------------------------------------------------------------
# checks before anything
# ------------------------------------------------------------------------------------------------

def refuse_transfer_options(protocol: Protocol, options: SyncOptions) -> None:
    """A git protocol takes no end or filter option (the one home of this rule; ``execute`` and
    ``api`` -- plans and rerun digests -- call it)."""
    used = options.touches_ends_or_filters
    if used:
        raise UsageError(
            f"{protocol.where()}: {', '.join(used)} cannot be used with a git protocol "
            "(git decides what to sync through .gitignore)"
        )


def _check_protocol(protocol: Protocol, options: SyncOptions) -> GitMode:
    """Options and keys; returns the effective mode.  Starts no process.  A loaded config was
    checked by the schema already: these guard a protocol built by hand (``api`` callers)."""
    if protocol.type is not ProtocolType.GIT:
        raise ConfigError(f"{protocol.where('type')}: expected a git protocol, got {protocol.type.value!r}")
    refuse_transfer_options(protocol, options)
    for key, value in (("filters", protocol.filters), ("source", protocol.source), ("target", protocol.target)):
        if value is not None:
            raise ConfigError(f"{protocol.where(key)}: not allowed in a git protocol (git uses .gitignore and remotes)")
    mode = protocol.settings.mode
    if mode not in MODES:
        raise ConfigError(f"{protocol.where('mode')}: {mode!r} is not one of {', '.join(MODES)}")
    for key in ("remote", "branch", "path"):
        value = getattr(protocol.settings, key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{protocol.where(key)}: must be a non-empty string")
        if key != "path" and (value.startswith("-") or any(c.isspace() or ord(c) < 32 for c in value)
                              or value.startswith("refs/") or ".." in value):
            raise ConfigError(f"{protocol.where(key)}: {value!r} is not a valid git {key} name")
        if "\0" in value:
            raise ConfigError(has_nul(protocol.where(key)))
    return effective_mode(mode, reverse=options.reverse)


def _start_dir(protocol: Protocol, cwd: str | None) -> str:
    base = os.path.abspath(cwd or os.getcwd())
    path = protocol.settings.path
    if path is None:
        return base
    path = os.path.join(base, os.path.expanduser(path))  # relative paths: from the working directory
    if not os.path.exists(path):
        raise ConfigError(f"{protocol.where('path')}: {path} does not exist")
    if not os.path.isdir(path):
        raise ConfigError(f"{protocol.where('path')}: {path} is not a directory")
    return path


def _check_in_progress(git: "_Git", repo: str) -> None:
    args = [arg for name, _, _ in _IN_PROGRESS for arg in ("--git-path", name)]
    paths = git.run("rev-parse", *args).stdout.splitlines()
    for (_, what, how), git_path in zip(_IN_PROGRESS, paths, strict=True):
        if os.path.lexists(os.path.join(repo, git_path)):
            raise SafetyHalt(f"{what} in {repo}; nothing was changed", hint=f"{how}, then rerun")


def _check_tree(git: "_Git", repo: str, reporter: Reporter) -> list[str]:
    """Halt on staged or unstaged changes (listing them); return untracked, not ignored files."""
    git.run("update-index", "-q", "--refresh", check=False)  # stat cache only: a bare touch is no change
    has_head = git.run("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).returncode == 0
    base = "HEAD" if has_head else git.empty_tree()
    staged = _name_status(git.run("diff-index", "--cached", "--name-status", "--no-renames", "-z", base, "--").stdout)
    unstaged = _name_status(git.run("diff-files", "--name-status", "--no-renames", "-z").stdout)
    parts: list[str] = []
    hints: list[str] = []
    if staged:
        parts.append(f"staged but uncommitted changes in {len(staged)} file(s): {_names(p for _, p in staged)}")
        hints.append("commit them (git commit) or unstage them (git restore --staged <file>)")
    if unstaged:
        parts.append(f"unstaged changes to {len(unstaged)} tracked file(s): {_names(p for _, p in unstaged)}")
        hints.append("commit them (git add + git commit) or stash them (git stash)")
    if parts:
        for title, entries in (("staged, not committed", staged), ("changed, not staged", unstaged)):
            if len(entries) > SHOW_NAMES:
                reporter.info(f"{title}:")
                for status, path in entries:
                    reporter.info(f"  {status} {path}")
        raise SafetyHalt(f"{repo} has " + "; ".join(parts) + "; nothing was changed",
                         hint="; ".join(hints) + ", then rerun (untracked files can go in .gitignore)")
    listing = git.run("ls-files", "-z", "--others", "--exclude-standard", "--directory", "--no-empty-directory")
    return _split_z(listing.stdout)


def _resolve_branch(git: "_Git", protocol: Protocol, mode: GitMode, repo: str) -> tuple[str, str | None]:
    """(branch to sync, currently checked-out branch or None when HEAD is detached)."""
    head = git.run("symbolic-ref", "-q", "HEAD", check=False)
    current = head.stdout.strip()[len("refs/heads/"):] if head.returncode == 0 and \
        head.stdout.startswith("refs/heads/") else None
    wanted = protocol.settings.branch
    if wanted is not None:
        ok = git.run("check-ref-format", f"refs/heads/{wanted}", check=False).returncode == 0
        if not ok:
            raise ConfigError(f"{protocol.where('branch')}: {wanted!r} is not a valid branch name")
    if current is None and (wanted is None or mode is GitMode.PULL):
        raise SafetyHalt(f"HEAD is detached in {repo} (no branch is checked out); nothing was changed",
                         hint="check out the branch to sync (git switch <branch>), then rerun")
    branch = wanted or current
    assert branch is not None
    if mode is GitMode.PULL and branch != current:
        raise SafetyHalt(
            f"{protocol.where('branch')}: pull updates the checked-out branch, but {repo} has "
            f"'{current}' checked out, not '{branch}'; nothing was changed",
            hint=f"git switch {branch}, then rerun")
    if mode is GitMode.PUSH and git.run("rev-parse", "-q", "--verify", f"refs/heads/{branch}^{{commit}}",
                                  check=False).returncode != 0 and branch != current:
        raise ConfigError(f"{protocol.where('branch')}: no local branch '{branch}' in {repo}")
    return branch, current


def _resolve_remote(git: "_Git", protocol: Protocol, branch: str, repo: str) -> tuple[str, str]:
    """(remote name, branch name on the remote)."""
    remotes = git.run("remote").stdout.split()
    upstream = git.run("for-each-ref", "--format=%(upstream:remotename)%00%(upstream:remoteref)",
                       f"refs/heads/{branch}").stdout.strip("\n").split("\0")
    up_remote, up_ref = (upstream + ["", ""])[:2]
    configured = protocol.settings.remote
    if configured is not None:
        remote = configured
        if remote not in remotes:
            raise ConfigError(f"{protocol.where('remote')}: no remote named {remote!r} in {repo} "
                              f"(configured remotes: {', '.join(remotes) or 'none'})")
    elif up_remote and up_remote != "." and up_remote in remotes:
        remote = up_remote
    elif "origin" in remotes:
        remote = "origin"
    else:
        raise ConfigError(
            f"{protocol.where()}: branch '{branch}' has no upstream and {repo} has no remote 'origin' "
            f"(configured remotes: {', '.join(remotes) or 'none'})",
            hint="set 'remote' in the protocol, or add one: git remote add origin <url>")
    if remote.startswith("-"):  # a remote configured outside our config
        raise ConfigError(f"{protocol.where('remote')}: refusing remote name {remote!r} (starts with '-')")
    remote_branch = branch
    if protocol.settings.branch is None and remote == up_remote and up_ref.startswith("refs/heads/"):
        remote_branch = up_ref[len("refs/heads/"):]
    return remote, remote_branch


# ------------------------------------------------------------------------------------------------
# git access
# ------------------------------------------------------------------------------------------------

class _Git:
    def __init__(self, runner: Runner, cwd: str):
        self.runner = runner
        self.cwd = cwd
        self._object_format: str | None = None  # asked once per run (``blob_id``)

    def run(self, *args: str, check: bool = True, step: str | None = None) -> Completed:
        done = self.runner.run([*GIT_BASE, *args], cwd=self.cwd, env=GIT_ENV)
        if check and done.returncode != 0:
            label = step or f"git {args[0]}"
            raise StepFailed(f"{label} failed (exit {done.returncode}): {_stderr_line(done)}",
                             step=label, returncode=done.returncode)
        return done

    def toplevel(self, protocol: Protocol, *, explicit: bool) -> str:
        done = self.run("rev-parse", "--show-toplevel", check=False)
        top = done.stdout.strip()
        if done.returncode == 0 and top:
            return top
        err = done.stderr.lower()
        if "not a git repository" in err:
            where = protocol.where("path") if explicit else protocol.where()
            raise ConfigError(f"{where}: {self.cwd} is not in a git repository",
                              hint=None if explicit else "run from the model's repository or set 'path'")
        if done.returncode == 0 or "work tree" in err:
            raise ConfigError(f"{protocol.where('path' if explicit else None)}: {self.cwd} is a bare repository "
                              "or has no work tree; a git protocol needs a checkout")
        raise StepFailed(f"git rev-parse failed (exit {done.returncode}) in {self.cwd}: {_stderr_line(done)}",
                         step="git rev-parse", returncode=done.returncode)

    def rev(self, ref: str) -> str | None:
        done = self.run("rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False)
        return (done.stdout.strip() or None) if done.returncode == 0 else None

    def fetch(self, remote: str, remote_branch: str, tracking: str) -> bool:
        """Fetch one branch into its remote-tracking ref; False when the remote lacks the branch."""
        refspec = f"+refs/heads/{remote_branch}:{tracking}"
        done = self.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules",
                        "--", remote, refspec, check=False)
        if done.returncode == 0:
            return True
        if "couldn't find remote ref" in done.stderr.lower():
            return False
        raise StepFailed(f"git fetch {remote} failed (exit {done.returncode}): "
                         f"{_unreachable_prefix(done)}{_stderr_line(done)}",
                         step="git fetch", returncode=done.returncode,
                         hint="check the remote URL (git remote -v) and network/ssh access")

    def ahead_behind(self, local: str | None, remote: str | None, remote_name: str) -> tuple[int, int]:
        if local and remote:
            out = self.run("rev-list", "--left-right", "--count", f"{local}...{remote}", "--").stdout.split()
            return int(out[0]), int(out[1])
        if local:  # remote branch missing: commits not on any ref of that remote
            out = self.run("rev-list", "--count", local, "--not", f"--remotes={remote_name}", "--").stdout
            return int(out.strip() or 0), 0
        if remote:  # unborn local branch
            return 0, int(self.run("rev-list", "--count", remote, "--").stdout.strip() or 0)
        return 0, 0

    def commits(self, tip: str, exclude: str | None = None, not_remote: str | None = None) -> list[dict]:
        args = ["log", "--no-show-signature", "--no-decorate", "--no-color", f"--max-count={MAX_COMMITS}",
                "--format=%H %s", tip]
        if exclude:
            args.append(f"^{exclude}")
        if not_remote:
            args += ["--not", f"--remotes={not_remote}"]
        out = self.run(*args, "--").stdout
        commits = []
        for line in out.splitlines():
            sha, _, subject = line.partition(" ")
            if sha:
                commits.append({"sha": sha, "subject": subject})
        return commits

    def merge_tree(self, ours: str, theirs: str) -> tuple[str | None, list[str] | None]:
        """(merged tree, conflicting files) computed in memory; (None, None) with git < 2.38."""
        done = self.run("merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", ours, theirs,
                        check=False)
        if done.returncode in (0, 1):
            entries = done.stdout.split("\0")
            return entries[0].strip() or None, _dedup(e for e in entries[1:] if e)
        return None, None  # git < 2.38 (no --write-tree) or another failure: no prediction

    def blob_id(self, content: bytes) -> str:
        """The id git gives ``content`` as a blob (a symlink's target), in the repository's hash."""
        if self._object_format is None:
            self._object_format = self.run("rev-parse", "--show-object-format").stdout.strip() or "sha1"
        algorithm = self._object_format
        return hashlib.new(algorithm, b"blob %d\0" % len(content) + content).hexdigest()

    def empty_tree(self) -> str:
        return self.run("hash-object", "-t", "tree", os.devnull).stdout.strip()

    def tree_changes(self, old: str | None, new: str) -> list[Change]:
        """Every file that differs between two trees (no renames), with its blob before and after."""
        done = self.run("diff-tree", "-r", "-z", "--no-renames", "--raw", "--no-abbrev", "--no-commit-id",
                        old or self.empty_tree(), new, "--")
        return _raw_changes(done.stdout)

    def tree_changes_fallback(self, old: str | None, theirs: str) -> list[Change]:
        """Without a merged tree: a superset of what a merge of ``theirs`` into ``old`` touches.  A
        file both sides changed may be merged into content neither has: its ``new`` is unknown."""
        changes = {change.path: change for change in self.tree_changes(old, theirs)}
        if old:
            base = self.run("merge-base", old, theirs, check=False).stdout.strip()
            if base:
                ours = {change.path for change in self.tree_changes(base, old)}
                in_old: dict[str, str] | None = None
                for change in self.tree_changes(base, theirs):
                    if change.path in changes:
                        if change.path in ours:  # both sides changed it: maybe a content merge
                            changes[change.path] = changes[change.path]._replace(new=None)
                        continue
                    if in_old is None:
                        in_old = _blob_ids(self.run("ls-tree", "-r", "-z", "--full-tree", old).stdout)
                    blob = in_old.get(change.path)
                    changes[change.path] = Change("M" if blob else "A", change.path, blob, None)
        return list(changes.values())

    def save_index(self) -> "tuple[str, bytes, str] | None":
        """(index path, its bytes, its entries) before a merge; None when there is no index yet."""
        path = self.run("rev-parse", "--git-path", "index").stdout.strip()
        path = os.path.join(self.cwd, path)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return None
        return path, data, self.run("ls-files", "--stage", "-z").stdout

    def restore_index(self, saved: "tuple[str, bytes, str]") -> None:
        """Put the saved index bytes back when the entries are unchanged (stat data only differs)."""
        path, data, entries = saved
        if self.run("ls-files", "--stage", "-z").stdout != entries:
            return
        _write_locked(path, data)  # False: someone else holds the index; leave it as git left it

    def clean_index_and_tree(self) -> bool:
        self.run("update-index", "-q", "--refresh", check=False)
        cached = self.run("diff-index", "--cached", "--quiet", "HEAD", "--", check=False).returncode
        files = self.run("diff-files", "--quiet", check=False).returncode
        return cached == 0 and files == 0


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------

def _split_z(text: str) -> list[str]:
    return [item for item in text.split("\0") if item]


class Change(NamedTuple):
    """One file an update writes or deletes: its status (A/D/M/T) and the blob ids before and after
    (None: absent, a submodule, or -- ``new`` of a content merge git < 2.38 cannot predict -- unknown)."""

    status: str
    path: str
    old: str | None
    new: str | None


_BLOB_MODES = ("100644", "100755", "120000")


def _raw_changes(text: str) -> list[Change]:
    """``git diff-tree --raw -z --no-abbrev`` output: ``:<mode> <mode> <id> <id> <status>\0<path>\0``."""
    items = text.split("\0")
    out = []
    for i in range(0, len(items) - 1, 2):
        if not items[i].startswith(":"):
            continue
        old_mode, new_mode, old_id, new_id, status = items[i][1:].split(" ")
        out.append(Change(status[:1], items[i + 1], old_id if old_mode in _BLOB_MODES else None,
                          new_id if new_mode in _BLOB_MODES else None))
    return out


def _blob_ids(text: str) -> dict[str, str]:
    """Path -> blob id from ``git ls-tree -r -z`` output (``<mode> <type> <id>\t<path>``)."""
    ids = {}
    for entry in _split_z(text):
        meta, _, path = entry.partition("\t")
        mode, _, blob = meta.split(" ")
        if mode in _BLOB_MODES:
            ids[path] = blob
    return ids


def _name_status(text: str) -> list[tuple[str, str]]:
    items = text.split("\0")
    out = []
    for i in range(0, len(items) - 1, 2):
        if items[i]:
            out.append((items[i], items[i + 1]))
    return out


def _dedup(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _show_name(name: str) -> str:
    return name if name.isprintable() and name.strip() == name and name else repr(name)


def _names(names: Iterable[str]) -> str:
    return some(names, SHOW_NAMES, show=_show_name)


def _count(n: int | None) -> str:
    return f"{n} commit" + ("" if n == 1 else "s")


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "(none)"


def _show_commits(reporter: Reporter, commits: Sequence[dict]) -> None:
    for i, commit in enumerate(commits):
        line = f"  {_short(commit['sha'])} {commit['subject']}"
        if i < SHOW_COMMITS:
            reporter.info(line)
        else:
            reporter.detail(line)
    if len(commits) > SHOW_COMMITS and reporter.verbosity < 2:
        reporter.info(f"  ... and {len(commits) - SHOW_COMMITS} more (-vv lists them)")


def _stderr_line(done: Completed) -> str:
    """git's complaint as one line: its fatal/error lines if any, else its first lines."""
    lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
    key = [ln for ln in lines if ln.lower().startswith(("fatal:", "error:", "!"))]
    chosen = (key or lines)[:3]
    return "; ".join(chosen) if chosen else "no error message"


REMOTE_LINES = 8  # lines of a remote's own message (a server hook's reason) kept in an error
REMOTE_CHARS = 600


def _remote_says(done: Completed) -> str:
    """The remote's own message (``remote: ...`` lines: a pre-receive/update hook's output), one line."""
    lines = []
    for line in done.stderr.replace("\r", "\n").splitlines():
        if not line.startswith("remote:"):
            continue
        text = "".join(c if c.isprintable() else "?" for c in line[len("remote:"):]).strip()
        if text and text not in lines:
            lines.append(text)
    said = "; ".join(lines[:REMOTE_LINES]) + (f"; ... ({len(lines) - REMOTE_LINES} more line(s))"
                                               if len(lines) > REMOTE_LINES else "")
    return said if len(said) <= REMOTE_CHARS else said[:REMOTE_CHARS] + "..."


def _porcelain_reason(stdout: str, flag: str) -> str | None:
    """The reason git push --porcelain gives for a ref refused with ``flag``; None when none was."""
    for line in stdout.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[0] == "!" and fields[2].startswith(flag):
            return fields[2][len(flag):].strip().strip("()").strip()
    return None


def _unreachable_prefix(done: Completed) -> str:
    err = done.stderr.lower()
    return "remote unreachable: " if any(p in err for p in _UNREACHABLE) else ""
