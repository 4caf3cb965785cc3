"""The ``git`` sync protocol: keep a model's code in step with its authoritative repository.

``run_git_protocol`` is the whole protocol.  It only starts processes through
``Runner.run`` (argv lists, never a shell) and only ever runs these git commands::

    git rev-parse / symbolic-ref / for-each-ref / remote / config   (read only)
    git update-index -q --refresh                                   (stat cache only)
    git diff-index / diff-files / ls-files                          (read only)
    git fetch --no-write-fetch-head <remote> +refs/heads/B:refs/remotes/<remote>/B
    git merge-tree --write-tree                                     (conflict check: objects only)
    git merge --ff-only | --ff --no-edit --no-autostash refs/remotes/<remote>/B
    git merge --abort                                               (after a conflict)
    git push --porcelain <remote> refs/heads/L:refs/heads/B

Order of a run:

1. options and protocol keys (no process started): ``-s/-t/-f/-a/-e/--no-filter/--mkpath/--delete``
   are a usage error (exit 2) -- git chooses files with ``.gitignore``;
2. locate the repository (``path``, else the working directory);
3. safety checks "before anything": an operation in progress (merge, rebase, cherry-pick...),
   staged-but-uncommitted changes, unstaged changes to tracked files -> ``SafetyHalt`` (exit 1,
   nothing changed); untracked files that are not ignored -> a warning, then go on;
4. branch (detached HEAD is an error), remote (configured, else the branch's upstream, else
   ``origin``; it must exist);
5. fetch the one remote branch into its remote-tracking ref and count ahead/behind;
6. pull: fast-forward, or merge (never rebase).  A merge is first tried in memory with
   ``git merge-tree --write-tree`` (git >= 2.38): when it would conflict, no merge is started at
   all and the conflicting files are named.  With an older git (or if the real merge still stops),
   ``git merge --abort`` runs, HEAD/index/tree are verified unchanged and the index file's bytes
   are restored (the abort only refreshed its stat data).
   push: refuse when the remote has commits the branch lacks, else push (never force).

Dry run (``-n``): steps 1-5 run for real -- including the fetch, which updates the remote-tracking
ref ``refs/remotes/<remote>/<branch>`` and the object store only (no FETCH_HEAD, no local branch,
no index, no work-tree file) -- and the output says so.  A pull's merge is predicted with
``git merge-tree --write-tree`` (git >= 2.38; writes unreachable objects only), so a dry run
names the files that would conflict.  Checks that would halt the real run (dirty tree, push
behind the remote) halt the dry run the same way; a predicted conflict is a warning (exit 0).
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

from .config import Protocol
from .errors import ConfigError, SafetyHalt, StepFailed, UsageError
from .options import SyncOptions
from .report import Reporter, redact
from .runner import Completed, Runner

MODES = ("pull", "push")
SHOW_NAMES = 10  # file names listed inside a one-line error/warning; the rest are counted
SHOW_COMMITS = 20  # commits printed at level 0; all of them are in the summary (capped below)
MAX_COMMITS = 1000

# git's own messages are parsed in a few places: force the untranslated ones.  No prompts: a
# credential prompt would hang a batch job (the runner also gives children no terminal).
GIT_ENV = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_MERGE_AUTOEDIT": "no"}
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
                     cwd: str | None = None) -> dict:
    """Run one ``type: git`` protocol; return a JSON-ready summary (see module docstring)."""
    mode = _check_protocol(protocol, options)
    start = _start_dir(protocol, cwd)
    git = _Git(runner, start)
    repo = git.toplevel(protocol, explicit=protocol.get("path") is not None)
    git.cwd = repo
    summary: dict[str, Any] = {
        "protocol": protocol.name, "type": "git", "mode": mode, "repo": repo, "remote": None,
        "remote_url": None, "branch": None, "remote_branch": None, "ahead": None, "behind": None,
        "action": None, "commits": [], "conflicts": [], "untracked": [], "warnings": [],
        "head_before": None, "head_after": None, "fetched": False, "dry_run": options.dry_run,
    }

    # -- 3. safety checks, before anything ------------------------------------------------------
    _check_in_progress(git, repo)
    untracked = _check_tree(git, repo, reporter)
    if untracked:
        message = (f"{len(untracked)} untracked file(s) not ignored in {repo} (left alone; commit them or "
                   f"add them to .gitignore to silence this): {_names(untracked)}")
        reporter.warn(message)
        summary["untracked"] = untracked
        summary["warnings"].append(message)

    # -- 4. branch and remote ---------------------------------------------------------------------
    branch, current = _resolve_branch(git, protocol, mode, repo)
    remote, remote_branch = _resolve_remote(git, protocol, branch, repo)
    url = redact(git.run("remote", "get-url", "--", remote, check=False).stdout.strip()) or None
    summary.update(branch=branch, remote=remote, remote_branch=remote_branch, remote_url=url)
    tracking = f"refs/remotes/{remote}/{remote_branch}"
    local_ref = f"refs/heads/{branch}"
    head_before = git.rev(local_ref)
    summary["head_before"] = summary["head_after"] = head_before
    shown_remote = f"{remote}/{remote_branch}"
    reporter.info(f"git {mode}: {repo} branch {branch} <-> {shown_remote}"
                  + (f" ({url})" if url else "") + (" [dry run]" if options.dry_run else ""))

    # -- 5. fetch and compare -------------------------------------------------------------------
    remote_has_branch = git.fetch(remote, remote_branch, tracking)
    summary["fetched"] = True
    if options.dry_run:
        reporter.info(f"dry run: fetched {shown_remote} into its remote-tracking ref only; "
                      "no branch, index or working-tree file will be changed")
    remote_tip = git.rev(tracking) if remote_has_branch else None
    ahead, behind = git.ahead_behind(head_before and local_ref, remote_tip and tracking, remote)
    summary.update(ahead=ahead, behind=behind)
    reporter.info(f"{branch} is {_count(ahead)} ahead of and {_count(behind)} behind {shown_remote}"
                  + ("" if remote_has_branch else f" (no branch '{remote_branch}' on {remote} yet)"))

    if mode == "pull":
        return _pull(git, reporter, options, summary, local_ref, tracking, shown_remote, current)
    return _push(git, reporter, options, summary, local_ref, tracking, shown_remote, remote_has_branch)


# ------------------------------------------------------------------------------------------------
# pull / push
# ------------------------------------------------------------------------------------------------

def _pull(git: "_Git", reporter: Reporter, options: SyncOptions, summary: dict, local_ref: str,
          tracking: str, shown_remote: str, current: str | None) -> dict:
    branch, ahead, behind = summary["branch"], summary["ahead"], summary["behind"]
    if not summary["behind"]:
        summary["action"] = "up-to-date"
        note = f"; {_count(ahead)} local only (push them with mode push or --reverse)" if ahead else ""
        reporter.info(f"{branch} is up to date with {shown_remote}{note}")
        return summary
    commits = git.commits(tracking, exclude=local_ref if summary["head_before"] else None)
    summary["commits"] = commits
    action = "fast-forward" if not ahead else "merge"
    summary["action"] = action
    verb = "fast-forward" if action == "fast-forward" else "merge"
    if options.dry_run:
        reporter.info(f"would {verb} {branch} with {_count(behind)} from {shown_remote}:")
        _show_commits(reporter, commits)
        if action == "merge":
            conflicts = git.predict_conflicts(local_ref, tracking)
            if conflicts is None:
                reporter.info("(conflicts not predicted: needs git >= 2.38)")
            elif conflicts:
                summary["conflicts"] = conflicts
                message = (f"the merge would stop on conflicts in {len(conflicts)} file(s): {_names(conflicts)}; "
                           "a real run would not start the merge and would change nothing")
                reporter.warn(message)
                summary["warnings"].append(message)
            else:
                reporter.info("the merge would complete without conflicts")
        return summary

    assert current == branch  # _resolve_branch guarantees it for pull
    if action == "fast-forward":
        argv = ["merge", "--ff-only", "--no-edit", "--no-autostash", "--no-stat", tracking]
    else:
        # Predict first: a merge that would conflict is never started, so nothing is touched.
        conflicts = git.predict_conflicts(local_ref, tracking)
        if conflicts:
            summary["conflicts"] = conflicts
            raise StepFailed(
                f"git merge {shown_remote} into {branch} would stop on conflicts in {len(conflicts)} file(s): "
                f"{_names(conflicts)}; nothing was merged and {summary['repo']} is exactly as before",
                step="git merge", returncode=1, hint=_RESOLVE_HINT.format(remote=shown_remote))
        argv = ["merge", "--ff", "--no-edit", "--no-autostash", "--no-stat", tracking]
    saved = git.save_index()
    done = git.run(*argv, check=False)
    if done.returncode != 0:
        _merge_failed(git, done, summary, shown_remote, saved)
    summary["head_after"] = git.rev("HEAD")
    how = "fast-forwarded" if action == "fast-forward" else "merged"
    reporter.info(f"{how} {branch} with {_count(behind)} from {shown_remote} "
                  f"({_short(summary['head_before'])} -> {_short(summary['head_after'])}):")
    _show_commits(reporter, commits)
    return summary


_RESOLVE_HINT = ("resolve by hand as usual: git merge {remote}, edit the conflicting files, "
                 "git add them, git commit; then rerun")


def _merge_failed(git: "_Git", done: Completed, summary: dict, shown_remote: str,
                  saved: "tuple[str, bytes, str] | None") -> None:
    """A merge stopped: abort it when one is in progress, verify nothing moved, raise.

    After a verified abort the index has the same entries as before but fresh stat data (the
    abort rewrote the conflicted files); the saved index bytes are put back under git's own
    ``index.lock`` so the index file is byte-identical to before the run.
    """
    repo, branch, before = summary["repo"], summary["branch"], summary["head_before"]
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
    intact = after == before and git.clean_index_and_tree()
    if intact and saved is not None:
        git.restore_index(saved)
    if not intact:
        raise StepFailed(
            f"git merge {shown_remote} failed (exit {done.returncode}) and {repo} is not as before "
            f"(HEAD {_short(before)} -> {_short(after)}): {_stderr_line(done)}",
            step="git merge", returncode=done.returncode,
            hint="inspect it with 'git status'; 'git reset --merge' may restore it")
    if conflicts:
        summary["conflicts"] = conflicts
        raise StepFailed(
            f"git merge {shown_remote} into {branch} stopped on conflicts in {len(conflicts)} file(s): "
            f"{_names(conflicts)}; the merge was aborted and {repo} is exactly as before",
            step="git merge", returncode=done.returncode,
            hint=_RESOLVE_HINT.format(remote=shown_remote))
    raise StepFailed(
        f"git merge {shown_remote} failed (exit {done.returncode}): {_stderr_line(done)}; "
        f"nothing was changed in {repo}",
        step="git merge", returncode=done.returncode)


def _push(git: "_Git", reporter: Reporter, options: SyncOptions, summary: dict, local_ref: str,
          tracking: str, shown_remote: str, remote_has_branch: bool) -> dict:
    branch, ahead, behind = summary["branch"], summary["ahead"], summary["behind"]
    remote, remote_branch = summary["remote"], summary["remote_branch"]
    if behind:
        missing = git.commits(tracking, exclude=local_ref if summary["head_before"] else None)
        summary["commits"] = missing
        raise SafetyHalt(
            f"refusing to push {branch}: {shown_remote} has {_count(behind)} that {branch} lacks "
            f"(latest: {_short(missing[0]['sha']) if missing else '?'} "
            f"{missing[0]['subject'] if missing else ''}); nothing was pushed",
            hint="pull first (" + ("rerun without --reverse" if options.reverse else "rerun with --reverse")
                 + "), then push")
    if not ahead:
        summary["action"] = "nothing to push"
        reporter.info(f"nothing to push: {shown_remote} already has every commit of {branch}")
        return summary
    exclude = tracking if remote_has_branch else None
    commits = git.commits(local_ref, exclude=exclude, not_remote=None if remote_has_branch else remote)
    summary["commits"] = commits
    summary["action"] = "push"
    refspec = f"{local_ref}:refs/heads/{remote_branch}"
    if options.dry_run:
        reporter.info(f"would push {_count(ahead)} of {branch} to {shown_remote}"
                      + ("" if remote_has_branch else " (a new branch)") + ":")
        _show_commits(reporter, commits)
        return summary
    done = git.run("push", "--porcelain", "--no-follow-tags", "--no-signed", "--", remote, refspec, check=False)
    if done.returncode != 0:
        text = (done.stdout + "\n" + done.stderr).lower()
        if "[rejected]" in text or "non-fast-forward" in text or "fetch first" in text or "\t!" in done.stdout:
            raise StepFailed(
                f"git push {remote} {branch} failed (exit {done.returncode}): rejected, {shown_remote} has "
                f"commits {branch} lacks (pushed meanwhile?); nothing was pushed",
                step="git push", returncode=done.returncode, hint="pull first, then push")
        raise StepFailed(f"git push {remote} {branch} failed (exit {done.returncode}): "
                         f"{_unreachable_prefix(done)}{_stderr_line(done)}",
                         step="git push", returncode=done.returncode)
    reporter.info(f"pushed {_count(ahead)} of {branch} to {shown_remote}:")
    _show_commits(reporter, commits)
    return summary


# ------------------------------------------------------------------------------------------------
# checks before anything
# ------------------------------------------------------------------------------------------------

def _check_protocol(protocol: Protocol, options: SyncOptions) -> str:
    """Options and keys; returns the effective mode.  Starts no process."""
    if protocol.type != "git":
        raise ConfigError(f"{protocol.where('type')}: expected a git protocol, got {protocol.type!r}")
    bad = options.touches_ends_or_filters
    if bad:
        raise UsageError(
            f"{', '.join(bad)} cannot be used with git protocol '{protocol.name}' "
            "(git chooses files with .gitignore and syncs with the configured remote)")
    for key, value in (("filters", protocol.filters), ("source", protocol.source), ("target", protocol.target)):
        if value is not None:
            raise ConfigError(f"{protocol.where(key)}: not allowed in a git protocol (git uses .gitignore and remotes)")
    mode = protocol.get("mode", "pull")
    if mode not in MODES:
        raise ConfigError(f"{protocol.where('mode')}: {mode!r} is not one of pull, push")
    for key in ("remote", "branch", "path"):
        value = protocol.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{protocol.where(key)}: must be a non-empty string")
        if key != "path" and (value.startswith("-") or any(c.isspace() or ord(c) < 32 for c in value)
                              or value.startswith("refs/") or ".." in value):
            raise ConfigError(f"{protocol.where(key)}: {value!r} is not a valid git {key} name")
        if "\0" in value:
            raise ConfigError(f"{protocol.where(key)}: contains a NUL character")
    if options.reverse:
        mode = "push" if mode == "pull" else "pull"
    return mode


def _start_dir(protocol: Protocol, cwd: str | None) -> str:
    base = os.path.abspath(cwd or os.getcwd())
    path = protocol.get("path")
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
    for (_, what, how), git_path in zip(_IN_PROGRESS, paths):
        if os.path.lexists(os.path.join(repo, git_path)):
            raise SafetyHalt(f"{what} in {repo}; nothing was changed", hint=f"{how}, then rerun")


def _check_tree(git: "_Git", repo: str, reporter: Reporter) -> list[str]:
    """Halt on staged or unstaged changes (listing them); return untracked, not ignored files."""
    git.run("update-index", "-q", "--refresh", check=False)  # stat cache only: a bare touch is no change
    has_head = git.run("rev-parse", "-q", "--verify", "HEAD^{commit}", check=False).returncode == 0
    base = "HEAD" if has_head else git.run("hash-object", "-t", "tree", os.devnull).stdout.strip()
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


def _resolve_branch(git: "_Git", protocol: Protocol, mode: str, repo: str) -> tuple[str, str | None]:
    """(branch to sync, currently checked-out branch or None when HEAD is detached)."""
    head = git.run("symbolic-ref", "-q", "HEAD", check=False)
    current = head.stdout.strip()[len("refs/heads/"):] if head.returncode == 0 and \
        head.stdout.startswith("refs/heads/") else None
    wanted = protocol.get("branch")
    if wanted is not None:
        ok = git.run("check-ref-format", f"refs/heads/{wanted}", check=False).returncode == 0
        if not ok:
            raise ConfigError(f"{protocol.where('branch')}: {wanted!r} is not a valid branch name")
    if current is None and (wanted is None or mode == "pull"):
        raise SafetyHalt(f"HEAD is detached in {repo} (no branch is checked out); nothing was changed",
                         hint="check out the branch to sync (git switch <branch>), then rerun")
    branch = wanted or current
    assert branch is not None
    if mode == "pull" and branch != current:
        raise SafetyHalt(
            f"{protocol.where('branch')}: pull updates the checked-out branch, but {repo} has "
            f"'{current}' checked out, not '{branch}'; nothing was changed",
            hint=f"git switch {branch}, then rerun")
    if mode == "push" and git.run("rev-parse", "-q", "--verify", f"refs/heads/{branch}^{{commit}}",
                                  check=False).returncode != 0 and branch != current:
        raise ConfigError(f"{protocol.where('branch')}: no local branch '{branch}' in {repo}")
    return branch, current


def _resolve_remote(git: "_Git", protocol: Protocol, branch: str, repo: str) -> tuple[str, str]:
    """(remote name, branch name on the remote)."""
    remotes = git.run("remote").stdout.split()
    upstream = git.run("for-each-ref", "--format=%(upstream:remotename)%00%(upstream:remoteref)",
                       f"refs/heads/{branch}").stdout.strip("\n").split("\0")
    up_remote, up_ref = (upstream + ["", ""])[:2]
    configured = protocol.get("remote")
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
    if protocol.get("branch") is None and remote == up_remote and up_ref.startswith("refs/heads/"):
        remote_branch = up_ref[len("refs/heads/"):]
    return remote, remote_branch


# ------------------------------------------------------------------------------------------------
# git access
# ------------------------------------------------------------------------------------------------

class _Git:
    def __init__(self, runner: Runner, cwd: str):
        self.runner = runner
        self.cwd = cwd

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

    def predict_conflicts(self, ours: str, theirs: str) -> list[str] | None:
        done = self.run("merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", ours, theirs,
                        check=False)
        if done.returncode == 0:
            return []
        if done.returncode == 1:
            entries = done.stdout.split("\0")
            return _dedup(e for e in entries[1:] if e)
        return None  # git < 2.38 (no --write-tree) or another failure: no prediction

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
        lock = path + ".lock"
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return  # someone else holds the index: leave it as git left it
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(lock, path)
        except BaseException:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass
            raise

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


def _names(names: Iterable[str], limit: int = SHOW_NAMES) -> str:
    names = list(names)
    shown = ", ".join(_show_name(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


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


def _unreachable_prefix(done: Completed) -> str:
    err = done.stderr.lower()
    return "remote unreachable: " if any(p in err for p in _UNREACHABLE) else ""
