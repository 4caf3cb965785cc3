"""Run a sync: load, plan, list what must be listed, lock, run the steps, summarise.

This module orchestrates; ``runner.Runner`` is the only thing that starts processes
and ``plan`` builds every argv.  ``sync`` is the one entry point shared by the CLI
and the Snakemake wrapper; it returns a JSON-ready result (also the receipt body).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import os
import posixpath
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import filters as filter_rules
from . import plan as planning
from .config import Protocol, SyncConfig, load_config
from .endpoints import End
from .errors import ConfigError, SafetyHalt, StepFailed, SyncError, UsageError
from .options import SyncOptions
from .report import Reporter, format_argv, redact
from .runner import Completed, Runner

RSYNC_EXIT = {
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files or directories (does the target's parent exist? use --mkpath)",
    5: "error starting the client-server protocol",
    10: "error in socket I/O",
    11: "error in file I/O (missing target parent? use --mkpath; full disk or read-only target?)",
    12: "error in the rsync protocol data stream (ssh could not connect or the connection dropped, or the remote rsync failed)",
    13: "errors with program diagnostics",
    14: "error in IPC code",
    20: "rsync was interrupted",
    23: "partial transfer due to error (a source file missing or unreadable, or a target not writable)",
    24: "partial transfer: some source files vanished during the transfer",
    25: "the --max-delete limit stopped deletions",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
    255: "ssh failed: host unreachable, authentication refused, or the connection was cut",
}

_AWS_HINTS = (
    ("NoSuchBucket", "the bucket does not exist"),
    ("Unable to locate credentials", "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the protocol's 'profile')"),
    ("InvalidAccessKeyId", "the credentials were refused (invalid access key)"),
    ("SignatureDoesNotMatch", "the credentials were refused (wrong secret key)"),
    ("AccessDenied", "access denied by the S3 service"),
    ("ExpiredToken", "the session token has expired"),
    ("Could not connect to the endpoint URL", "the S3 endpoint is unreachable"),
    ("Connection was closed", "the S3 endpoint closed the connection"),
    ("ConnectionClosedError", "the S3 endpoint closed the connection"),
    ("EndpointConnectionError", "the S3 endpoint is unreachable"),
    ("The config profile", "the named AWS profile does not exist"),
    ("does not exist", "a path does not exist"),
    ("No space left on device", "the target filesystem is full"),
    ("Permission denied", "permission denied at the target"),
    ("Read-only file system", "the target filesystem is read-only"),
)


@dataclass(frozen=True)
class Listing:
    """What a source holds: relative paths of regular files (and links) with sizes."""

    files: tuple[tuple[str, int], ...]

    @property
    def paths(self) -> list[str]:
        return [p for p, _ in self.files]


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------
def sync(config_files: Sequence[str], options: SyncOptions, reporter: Reporter, *,
         env: Mapping[str, str] | None = None, cwd: str | None = None,
         config: SyncConfig | None = None) -> dict[str, Any]:
    """Load the config, run the chosen protocol, return the result (JSON-ready)."""
    config = config or load_config(config_files)
    protocol = config.get(options.protocol)
    if env is not None:
        reporter.env = env  # mask the secrets of the environment the children get
    with Runner(reporter, env=env) as runner:
        if protocol.type == "git":
            return run_git(protocol, options, runner, reporter, cwd=cwd)
        return run_transfer(protocol, options, runner, reporter)


def run_git(protocol: Protocol, options: SyncOptions, runner: Runner, reporter: Reporter,
            *, cwd: str | None = None) -> dict[str, Any]:
    used = options.touches_ends_or_filters
    if used:
        raise UsageError(
            f"{protocol.where()}: {', '.join(used)} cannot be used with a git protocol "
            "(git decides what to sync through .gitignore)"
        )
    from .gitsync import run_git_protocol

    started = now_iso()
    result = run_git_protocol(protocol, options, runner, reporter, cwd=cwd)
    result.setdefault("protocol", protocol.name)
    result.setdefault("type", "git")
    result["started"], result["finished"] = started, now_iso()
    result.setdefault("status", "ok")
    return result


def run_transfer(protocol: Protocol, options: SyncOptions, runner: Runner, reporter: Reporter) -> dict[str, Any]:
    start = time.monotonic()
    started = now_iso()
    source_is_file = _probe_source(protocol, options)
    plan = planning.build(protocol, options, source_is_file=source_is_file, interactive=reporter.is_tty)
    resolved = plan.resolved
    for warning in plan.warnings:
        reporter.warn(warning)
    reporter.detail(f"protocol {protocol.name!r} ({protocol.type}) from {protocol.file}")
    reporter.detail(f"filters: {resolved.rules.as_texts() or 'none (everything)'}")
    if plan.engine != "aws":  # a fast engine lists, compares and moves the selection itself
        from . import s3engine

        return s3engine.run(plan, runner, reporter, started=started, start=start)

    listing: Listing | None = None
    selection: list[tuple[str, int]] | None = None
    if plan.needs_listing:  # the whole listing is needed (finalize verifies against it)
        listing = list_source(plan, runner, reporter)
        selection = resolved.rules.select_paths(listing.files) if resolved.rules else list(listing.files)
    elif options.dry_run:
        selection = select_source(plan, runner, reporter)
    if plan.needs_listing:
        assert listing is not None
        target_paths: list[str] = []
        if resolved.delete:
            target_paths = list_end(resolved.destination, resolved.protocol, runner).paths
        stage_dir = None
        if resolved.source.kind == "local" and not resolved.delete and not options.dry_run:
            stage_dir = tempfile.mkdtemp(prefix="flepimop-sync-stage-")
        try:
            plan = planning.finalize(plan, listing.paths, target_listing=target_paths, interactive=reporter.is_tty,
                                     stage_dir=stage_dir, **_aws_tuning(runner.base_env))
        finally:
            if stage_dir and not plan.staged:
                os.rmdir(stage_dir)
    reporter.info(_headline(plan))
    result: dict[str, Any] = {
        **plan.to_json(),
        "started": started,
        "config_files": [protocol.file],
    }
    if selection is not None:
        result["selected"] = {"files": len(selection), "bytes": sum(size for _, size in selection)}

    if options.dry_run:
        assert selection is not None
        _print_selection(selection, plan, reporter)
        result["selection"] = [path for path, _ in selection]  # for scripts reading --json
        if plan.steps and not plan.needs_listing:
            reporter.detail("commands a real run would execute:")
            for step in plan.steps:
                reporter.detail(f"  {format_argv(step.argv, reporter.env)}")
        deletions = _planned_deletions(plan, selection, runner, reporter) if resolved.delete else []
        if resolved.delete:
            result["would_delete"] = deletions
            for path in deletions:
                reporter.info(f"would delete: {path}")
        result.update(status="dry-run", seconds=round(time.monotonic() - start, 3), finished=now_iso())
        return result

    if resolved.delete:
        _refuse_delete_from_empty_source(plan, listing, runner, reporter)
    with DestinationLock(resolved.destination) as lock:
        transferred = {"files": 0, "bytes": 0}
        commands = []
        runner.inherit_fds = lock.fds  # the writers hold the lock too (see Runner.inherit_fds)
        try:
            if plan.staged:
                _stage_links(plan, reporter)
            for step in plan.steps:
                outcome = _run_step(step, plan, runner, reporter)
                commands.append(list(step.argv))
                transferred["files"] += outcome["files"]
                transferred["bytes"] += outcome["bytes"]
        finally:
            runner.inherit_fds = ()
            if plan.stage_dir:
                shutil.rmtree(plan.stage_dir, ignore_errors=True)  # links only: never follows them
    seconds = time.monotonic() - start
    result.update(status="ok", transferred=transferred, seconds=round(seconds, 3), finished=now_iso(),
                  commands=commands)
    reporter.result(
        f"done: {transferred['files']} file(s), {human_bytes(transferred['bytes'])} transferred "
        f"in {seconds:.1f}s ({protocol.name}: {resolved.source.text} -> {resolved.destination.text})"
    )
    return result


def _stage_links(plan: planning.Plan, reporter: Reporter) -> None:
    """Link exactly the selected source files into the stage directory (aws follows links)."""
    assert plan.stage_dir is not None
    root = os.path.abspath(plan.resolved.source.path or ".")
    made: set[str] = set()
    for rel in plan.staged:
        link = os.path.join(plan.stage_dir, rel)
        parent = os.path.dirname(link)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        os.symlink(os.path.join(root, rel), link)
    reporter.detail(f"staged {len(plan.staged)} selected file(s) as links in {plan.stage_dir}")


def _aws_tuning(env: Mapping[str, str]) -> dict[str, int]:
    """Tuning knobs of the aws explicit mechanism (defaults in plan/s3filters; the tests use them
    to force splits and staging on small trees):

    FLEPIMOP_SYNC_AWS_PROCESS_COST  pattern tests one more aws process is worth
    FLEPIMOP_SYNC_AWS_STAGE_ABOVE   estimated pattern tests above which an upload is staged
    """
    knobs = {}
    for var, key in (("FLEPIMOP_SYNC_AWS_PROCESS_COST", "aws_process_cost"),
                     ("FLEPIMOP_SYNC_AWS_STAGE_ABOVE", "stage_above")):
        value = env.get(var)
        if not value:
            continue
        try:
            knobs[key] = max(0, int(value))
        except ValueError:
            raise UsageError(f"{var}={value!r} is not a whole number") from None
    return knobs


def _headline(plan: planning.Plan) -> str:
    r = plan.resolved
    verb = "dry run" if r.dry_run else "sync"
    return f"{verb} '{r.protocol.name}' ({r.protocol.type}): {r.source.text} -> {r.destination.text} [{plan.mechanism}]"


def _print_selection(selection: list[tuple[str, int]], plan: planning.Plan, reporter: Reporter) -> None:
    total = sum(size for _, size in selection)
    if reporter.verbosity >= 1:
        for path, size in selection:
            reporter.info(f"  {path}  ({size} bytes)")
    reporter.result(
        f"would transfer up to {len(selection)} file(s), {human_bytes(total)} "
        f"(selected by the filters; nothing was moved)"
    )


def _planned_deletions(plan: planning.Plan, selection: list[tuple[str, int]], runner: Runner,
                       reporter: Reporter) -> list[str]:
    """Target files a --delete run would remove: missing at the source and selected by the rules."""
    r = plan.resolved
    try:
        target = list_end(r.destination, r.protocol, runner)
    except StepFailed as error:  # e.g. the target does not exist yet: nothing there to delete
        reporter.warn(f"could not list the target to preview deletions: {error}")
        return []
    present = {p for p, _ in selection}
    rules = r.rules
    return [p for p in target.paths if p not in present and (not rules or rules.selects(p))]


# -- probing and listing -------------------------------------------------------
def _probe_source(protocol: Protocol, options: SyncOptions) -> bool:
    """Is the source a single local file? Refuse a missing local source before running anything."""
    src, _ = planning.resolve_ends(protocol, options)  # the rules are compiled once, by build
    if src.kind != "local":
        return False  # remote single files are not probed: rsync/aws treat them as dirs
    path = Path(src.path)
    try:
        path.stat()
    except FileNotFoundError:
        raise UsageError(f"{protocol.where('source')}: local source {_show(src.text)} does not exist") from None
    except OSError as exc:  # ENAMETOOLONG, EACCES, ELOOP, ENOTDIR...
        raise UsageError(f"{protocol.where('source')}: local source {_show(src.text)}: {exc.strerror}") from None
    return path.is_file()


def _show(text: str, limit: int = 200) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[:limit - 20]}...' ({len(text)} characters)"


def list_source(plan: planning.Plan, runner: Runner, reporter: Reporter) -> Listing:
    r = plan.resolved
    if plan.source_is_file:
        path = Path(r.source.path)
        return Listing(files=((path.name, path.stat().st_size),))
    reporter.debug(f"listing {r.source.text}")
    return list_end(r.source, r.protocol, runner)


def _refuse_delete_from_empty_source(plan: planning.Plan, listing: "Listing | None", runner: Runner,
                                     reporter: Reporter) -> None:
    """--delete mirrors the source: an empty source (a mistyped prefix, an unmounted disk)
    would wipe every selected file at the target. Refuse that instead."""
    if listing is None:
        listing = list_source(plan, runner, reporter)
    if not listing.files:
        r = plan.resolved
        raise SafetyHalt(
            f"protocol '{r.protocol.name}': the source {r.source.text!r} holds no files; refusing to --delete "
            f"what the filters select at {r.destination.text!r} (check the source path, or delete by hand)"
        )


def select_source(plan: planning.Plan, runner: Runner, reporter: Reporter) -> list[tuple[str, int]]:
    """What the rules select at the source: sorted (relative path, size).

    A local directory is walked once with the rules applied during the walk (subtrees the
    leading '-' rules exclude are never entered, and only selected files are stat'ed); other
    sources are listed, then filtered.
    """
    r = plan.resolved
    if not plan.source_is_file and r.source.kind == "local" and r.rules:
        reporter.debug(f"selecting from {r.source.text}")
        if not os.path.isdir(r.source.path or "."):
            return []
        return r.rules.select_local(r.source.path or ".")
    listing = list_source(plan, runner, reporter)
    if plan.source_is_file or not r.rules:
        return list(listing.files)
    return r.rules.select_paths(listing.files)


def list_end(end: End, protocol: Protocol, runner: Runner) -> Listing:
    """All regular files below an end, as relative paths (sorted)."""
    if end.kind == "local":
        if not os.path.isdir(end.path or "."):
            return Listing(files=())
        everything = filter_rules.build_rules(None)
        return Listing(files=tuple(everything.select_local(end.path or ".")))
    if end.kind == "remote":
        return _list_rsync_remote(end, protocol, runner)
    return _list_s3(end, protocol, runner)


_RSYNC_ESCAPE = re.compile(r"\\#([0-7]{3})")


def rsync_unescape(name: str) -> str:
    """Undo rsync's ``\\#ooo`` escapes, which stand for single *bytes* (in a non-UTF-8 locale
    every byte of a UTF-8 name is escaped): rebuild the bytes, then decode them as UTF-8."""
    if "\\#" not in name:
        return name
    out = bytearray()
    pos = 0
    for match in _RSYNC_ESCAPE.finditer(name):
        out += name[pos:match.start()].encode("utf-8", "surrogateescape")
        out.append(int(match.group(1), 8))
        pos = match.end()
    out += name[pos:].encode("utf-8", "surrogateescape")
    return out.decode("utf-8", "surrogateescape")


def _list_rsync_remote(end: End, protocol: Protocol, runner: Runner) -> Listing:
    argv = ["rsync", "-r", "--list-only"]
    if protocol.get("rsh"):
        argv.append(f"--rsh={protocol.get('rsh')}")
    argv += ["--", end.as_dir().text]
    done = runner.run(argv)
    if done.returncode != 0:
        raise _step_failed("listing the remote source", done, protocol, runner.base_env)
    files = []
    for line in done.stdout.splitlines():
        parts = line.split(None, 4)
        if len(parts) < 5 or line[0] not in "-l":
            continue
        name = rsync_unescape(parts[4])
        if line[0] == "l":
            name = name.split(" -> ", 1)[0]
        files.append((name, int(parts[1].replace(",", "").replace(".", ""))))
    return Listing(files=tuple(sorted(files)))


def _list_s3(end: End, protocol: Protocol, runner: Runner) -> Listing:
    prefix_url = end.as_dir().text
    argv = ["aws", "s3", "ls", "--recursive", prefix_url, *planning.aws_global_args(protocol)]
    done = runner.run(argv)
    key_prefix = end.as_dir().path.split("/", 1)[1] if "/" in end.as_dir().path else ""
    if done.returncode != 0:
        # 'aws s3 ls' exits 1 with no output when the prefix holds nothing
        if done.returncode == 1 and not done.stderr.strip():
            return Listing(files=())
        raise _step_failed("listing the S3 source", done, protocol, runner.base_env)
    files = []
    for line in done.stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4 or not parts[2].isdigit():
            continue
        key = parts[3]
        if key_prefix and key.startswith(key_prefix):
            key = key[len(key_prefix):]
        if key and not key.endswith("/"):
            files.append((key, int(parts[2])))
    return Listing(files=tuple(sorted(files)))


# -- running steps ---------------------------------------------------------------
_RSYNC_STAT = re.compile(r"^(Number of regular files transferred|Total transferred file size):\s*([\d,.]+)")
_AWS_DONE = re.compile(r"^(upload|download|copy|delete): ")


def _run_step(step: planning.Step, plan: planning.Plan, runner: Runner, reporter: Reporter) -> dict[str, int]:
    tool = step.argv[0]
    if runner.which(tool) is None:
        hint = {"aws": "install the AWS CLI: pip install awscli",
                "rsync": "install rsync: apt-get install rsync (or your system's package manager)"}.get(tool, "")
        raise StepFailed(f"{tool}: command not found", step=step.name, returncode=127, hint=hint or None)
    counts = {"files": 0, "bytes": 0}
    if tool == "rsync":
        stats: dict[str, int] = {}

        def on_line(line: str) -> None:
            match = _RSYNC_STAT.match(line)
            if match:
                stats[match.group(1)] = int(re.sub(r"[,.]", "", match.group(2)))
            elif reporter.verbosity >= 2 and re.match(r"^[<>ch.*][fdLDS]", line):
                reporter.detail(line)

        done = runner.stream(step.argv, env=step.env, on_stdout=on_line, live=reporter.is_tty)
        if done.returncode != 0:
            raise _step_failed(step.name, done, plan.protocol, runner.base_env)
        counts["files"] = stats.get("Number of regular files transferred", 0)
        counts["bytes"] = stats.get("Total transferred file size", 0)
        return counts

    dest = plan.resolved.destination

    def on_aws_line(line: str) -> None:
        match = _AWS_DONE.match(line)
        if not match:
            return
        reporter.detail(line)
        if match.group(1) == "delete":
            return
        counts["files"] += 1
        if dest.kind == "local":
            # "download: s3://b/k to path" -> the size of what landed
            _, _, local = line.rpartition(" to ")
            try:
                counts["bytes"] += os.path.getsize(local)
            except OSError:
                pass
        elif plan.resolved.source.kind == "local":
            # "upload: path to s3://..." -> the size of what was read
            local = line[len("upload: "):].rsplit(" to s3://", 1)[0]
            try:
                counts["bytes"] += os.path.getsize(local)
            except OSError:
                pass

    done = runner.stream(step.argv, env=step.env, on_stdout=on_aws_line, live=reporter.is_tty)
    if done.returncode != 0:
        raise _step_failed(step.name, done, plan.protocol, runner.base_env)
    return counts


def _step_failed(step: str, done: Completed, protocol: Protocol, env: Mapping[str, str] | None = None) -> StepFailed:
    tool = done.argv[0]
    code = done.returncode
    last = (_rsync_cause_line(done.stderr) if tool == "rsync" else "") or _last_error_line(done.stderr) \
        or _last_error_line(done.stdout)
    if tool == "rsync":
        meaning = RSYNC_EXIT.get(code, "see rsync's message")
    elif tool == "aws":
        meaning = next((hint for needle, hint in _AWS_HINTS if needle in done.stderr), "see aws's message")
    else:
        meaning = "see its message"
    if code < 0:
        meaning = f"killed by signal {-code}"
    detail = f": {redact(last, env)}" if last else ""  # tools may print credentials
    return StepFailed(
        f"protocol '{protocol.name}': {step} failed ({tool} exit {code}: {meaning}){detail}",
        step=step, returncode=code,
    )


_RSYNC_CAUSE = re.compile(r"^rsync: .*failed: .+ \(\d+\)$")


def _rsync_cause_line(text: str) -> str:
    """rsync's first concrete OS error (e.g. 'mkstemp "..." failed: Read-only file system (30)'):
    its last line is only a summary ('some files/attrs were not transferred')."""
    for line in text.replace("\r", "\n").splitlines():
        line = line.strip()
        if _RSYNC_CAUSE.match(line):
            return line[:300]
    return ""


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    for line in reversed(lines):
        if any(w in line.lower() for w in ("error", "failed", "denied", "no such", "unable", "could not", "fatal")):
            return line[:300]
    return lines[-1][:300] if lines else ""


# -- concurrency -------------------------------------------------------------------
def lock_dir() -> Path:
    base = os.environ.get("FLEPIMOP_SYNC_LOCK_DIR") or os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"flepimop-sync-locks-{os.getuid()}"


def _lock_key(end: End) -> str:
    """One key per place, however it is spelled (relative/absolute, trailing slash, '..')."""
    if end.kind == "local":
        return os.path.realpath(end.path or ".")
    if end.kind == "remote":
        return f"{end.host}:{posixpath.normpath(end.path or '.')}"
    return end.text.rstrip("/")


class DestinationLock:
    """One writer per destination on this machine: a second run refuses, naming the lock."""

    def __init__(self, destination: End):
        self.key = _lock_key(destination)
        digest = hashlib.sha256(self.key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.path = lock_dir() / f"{digest}.lock"
        self._fd: int | None = None

    def __enter__(self) -> "DestinationLock":
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise SafetyHalt(
                f"another flepimop sync is writing to {self.key!r} ({holder or 'unknown process'}); "
                f"lock {self.path} is held, try again when it finishes"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {now_iso()}".encode(), 0)
        self._fd = fd
        return self

    @property
    def fds(self) -> tuple[int, ...]:
        return () if self._fd is None else (self._fd,)

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


__all__ = ["sync", "run_transfer", "run_git", "list_end", "Listing", "DestinationLock", "SyncError", "ConfigError"]
