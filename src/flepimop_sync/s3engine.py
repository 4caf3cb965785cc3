"""The fast S3 engine: rclone moving exactly the evaluator's selection, with aws' sync rules.

``engine: rclone`` (or ``--engine rclone``) on an s3sync protocol replaces ``aws s3 sync``
by rclone (the ``fast`` extra: ``pip install 'flepimop-sync[fast]'``).  Nothing of
rclone's own matching or change detection is trusted; the engine is exact by construction:

1. list both ends (S3 with one ``rclone lsjson --fast-list --use-server-modtime``, a local
   directory in-process with the evaluator's own walk);
2. the selection is the evaluator's (``FilterList.select_local`` / ``select_paths``: the
   single source of truth, FILTERS.md);
3. what changed is decided here exactly as ``aws s3 sync`` decides it (awscli's
   ``SizeAndLastModifiedSync``): an upload or S3->S3 copy when the size differs or the
   source is newer than the target, a download when the size differs or the local file is
   newer than the S3 object; missing files always move;
4. rclone gets that explicit list (``--files-from-raw`` with ``--no-check-dest``: it moves
   those files and nothing else; an S3 source's files are found by listing their directories
   when that takes fewer requests than a HEAD per file, ``lists_cheaper``), then, with
   ``--delete``, the explicit list of selected target files missing at the source
   (``rclone delete``).

Downloads keep S3's LastModified as the local mtime, as aws does: the listed time, cut to the
second as aws cuts it, is set on each downloaded file after the copy (``_keep_listed_times``;
rclone's own time comes from a HEAD per file with ``--no-traverse``, and some servers' HEAD
disagrees with their listing by a second), so a re-sync in either direction, or by either
engine, moves nothing.  A file that vanished at the source between the listing and the copy
fails the sync, naming it, as rsync fails (exit 24): rclone itself skips it with exit 0
(``_check_arrived``; an S3 -> S3 copy costs one more listing of the target for it).  A rerun
after an interruption recomputes the lists: it resumes.

The first half of this module is pure (argv, environment, parsing, comparison); ``run`` at
the end orchestrates one sync in named steps (``_open``, ``_source_files``, ``_announce``,
then ``_dry_run`` or ``_sync``, both built on ``_compare`` and ``_commands``: the dry run
shows exactly the commands the real run executes), starting every process through
``runner.Runner``.
"""

from __future__ import annotations

import configparser
import datetime as _dt
import json
import os
import re
import stat
import tempfile
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from .endpoints import End, EndKind
from .errors import StepFailed, UsageError
from .failures import NO_BUCKET, rclone_found_nothing, step_failed
from .listing import refuse_unnameable_keys
from .lock import DestinationLock
from .mechanism import Engine, Mechanism, Word
from .report import now_iso, some
from .runner import INSTALL_HINTS

RCLONE = "rclone"
TRANSFERS = 64  # parallel transfers: small files are latency-bound (aws keeps 10 in flight)
LARGE_TRANSFERS = 8  # files of 1 MiB and more on average are bandwidth-bound: fewer streams contend less
LARGE_MEAN = 1 << 20
# Never read a user's rclone.conf: everything comes from the AWS settings, through the environment.
# No mtime metadata on uploads (aws stores none): the object's LastModified is its time, for both engines.
RCLONE_BASE = ("--config=", "--use-server-modtime", "--s3-no-system-metadata", "--s3-no-check-bucket", "--stats=0", "--log-level=NOTICE")


class Direction(Word):
    """Which way a sync moves files: it decides aws' change rule and how arrival is checked."""

    UPLOAD = "upload"
    DOWNLOAD = "download"
    COPY = "copy"  # S3 -> S3

    @classmethod
    def of(cls, source: End, destination: End) -> "Direction":
        if source.kind != EndKind.S3:
            return cls.UPLOAD
        return cls.COPY if destination.kind == EndKind.S3 else cls.DOWNLOAD


# -- planning (pure) ---------------------------------------------------------------
def build_plan(resolved, engine: Engine, *, source_is_file: bool = False):
    """The plan of a fast-engine sync (``engine`` as ``plan.engine_for`` chose it): its steps
    depend on both listings, made at run time."""
    from . import plan as planning

    mechanism = Mechanism.RCLONE_FILE if source_is_file else Mechanism.RCLONE
    return planning.Plan(resolved=resolved, mechanism=mechanism, steps=(), source_is_file=source_is_file,
                         warnings=tuple(resolved.rules.warnings), engine=engine)


def rclone_path(end: End) -> str:
    """rclone's name for an end: ``:s3:bucket/key`` (an on-the-fly remote configured through
    the environment, see ``rclone_env``) or an absolute local path (rclone would read a
    relative ``a:b`` as remote ``a``)."""
    if end.kind == EndKind.S3:
        return ":s3:" + end.path.rstrip("/")
    return os.path.abspath(end.path or ".")


def aws_settings(protocol, env: Mapping[str, str], config_text: str | None = None) -> dict[str, str]:
    """Profile, region and endpoint as the aws CLI resolves them (protocol keys first, then the
    ``AWS_*`` environment, then the profile's section of the AWS config file)."""
    profile = protocol.settings.profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or ""
    section: Mapping[str, str] = {}
    if config_text:
        parser = configparser.RawConfigParser(strict=False)
        try:
            parser.read_string(config_text)
            name = "default" if profile in ("", "default") else f"profile {profile}"
            if parser.has_section(name):
                section = dict(parser.items(name))
        except configparser.Error:
            section = {}
    endpoint = (protocol.settings.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
                or section.get("endpoint_url") or "")
    region = (protocol.settings.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
              or section.get("region") or "us-east-1")
    return {"profile": profile, "endpoint": endpoint, "region": region}


def rclone_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The ``:s3:`` remote's configuration as RCLONE_S3_* variables: credentials come from the
    AWS environment / shared files (env_auth), never from argv, so they never show."""
    env = {"RCLONE_S3_ENV_AUTH": "true", "RCLONE_S3_REGION": settings["region"]}
    if settings["endpoint"]:
        env.update(RCLONE_S3_PROVIDER="Other", RCLONE_S3_ENDPOINT=settings["endpoint"],
                   RCLONE_S3_FORCE_PATH_STYLE="true")
    else:
        env["RCLONE_S3_PROVIDER"] = "AWS"
    if settings["profile"]:
        env["RCLONE_S3_PROFILE"] = settings["profile"]
    return env


def lsjson_argv(end: End) -> tuple[str, ...]:
    # The listing is the first contact with the endpoint: 3 low-level attempts (aws makes a few
    # too) so an unreachable endpoint fails in seconds; rclone's default 10, with backoff, hung
    # for many minutes.  Transfers keep rclone's retries: they start only once the listing worked.
    # Its debug log (a dozen lines: no line per object) names rclone's version, which saves the
    # receipt a separate `rclone version` start (~0.25 s of CPU, seconds on a loaded machine).
    base = [a for a in RCLONE_BASE if not a.startswith("--log-level=")]
    return (RCLONE, "lsjson", "-R", "--files-only", "--no-mimetype", "--fast-list", "--low-level-retries=3",
            *base, "--log-level=DEBUG", rclone_path(end.as_dir()))


_LOGGED_VERSION = re.compile(r' DEBUG : rclone: Version "([^"]+)" starting')
_DEBUG_LINE = re.compile(r"^\S+ \S+ DEBUG : .*(?:\n|$)", re.MULTILINE)


def version_from_log(stderr: str) -> str:
    """rclone's version as ``rclone version`` prints it ("rclone v1.75.2"), from a debug log."""
    match = _LOGGED_VERSION.search(stderr)
    return f"rclone {match.group(1)}" if match else ""


def without_debug(stderr: str) -> str:
    """A log without its DEBUG lines: what rclone would have said at its default level."""
    return _DEBUG_LINE.sub("", stderr)


def lists_cheaper(todo: Sequence[str], listed: int) -> bool:
    """Should rclone find the files to copy from an S3 source by listing the directories that
    hold them, rather than by one HEAD request per file (``--no-traverse``)?

    Listing costs one request per directory on the way to a file, plus one per further page of
    1,000 entries (objects and subdirectories: fewer than twice ``listed``, the number of
    objects at the source, in all); HEADs cost one request per file.  Small files are latency-bound, so half the requests of a download
    is about half its time.
    """
    dirs = {""}
    for path in todo:
        parent = path.rpartition("/")[0]
        while parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return len(dirs) + 2 * listed // 1000 < len(todo)


def copy_argv(source: End, destination: End, list_file: str, *, interactive: bool = False,
              transfers: int = TRANSFERS, traverse: bool = False) -> tuple[str, ...]:
    """Copy exactly the files named in ``list_file`` (one path a line, relative to the source).

    ``--no-check-dest``: the change rule already decided, the target is not looked at again.
    The source's files are found with ``--no-traverse`` (a stat, or a HEAD on S3, per file) or,
    with ``traverse``, by listing their directories (see ``lists_cheaper``); either way rclone
    moves the listed files that exist and nothing else.
    """
    argv = [RCLONE, "copy", *RCLONE_BASE, f"--files-from-raw={list_file}",
            *(() if traverse else ("--no-traverse",)), "--no-check-dest",
            f"--transfers={transfers}", f"--checkers={transfers}", "--s3-no-head"]
    if interactive:
        argv.append("--progress")
    argv += [rclone_path(source.as_dir()), rclone_path(destination.as_dir())]
    return tuple(argv)


def copyto_argv(source: End, destination: End, *, interactive: bool = False) -> tuple[str, ...]:
    """A single-file source: always copied, as ``aws s3 cp`` does."""
    argv = [RCLONE, "copyto", *RCLONE_BASE, "--no-check-dest", "--s3-no-head"]
    if interactive:
        argv.append("--progress")
    argv += [rclone_path(source), rclone_path(destination)]
    return tuple(argv)


def delete_argv(destination: End, list_file: str) -> tuple[str, ...]:
    """Delete exactly the files named in ``list_file`` below the destination (no directories)."""
    return (RCLONE, "delete", *RCLONE_BASE, f"--files-from-raw={list_file}", f"--checkers={TRANSFERS}",
            rclone_path(destination.as_dir()))


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_time_us(text: str) -> int:
    """RFC 3339 (nanoseconds allowed) -> microseconds since the epoch (aws compares datetimes,
    which hold microseconds)."""
    match = _STAMP.match(text)
    if not match:
        raise ValueError(f"unexpected time {text!r}")
    base, frac, zone = match.groups()
    stamp = _dt.datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return int(stamp.timestamp()) * 1_000_000 + int((frac or "0")[:6].ljust(6, "0"))


def parse_lsjson(text: str) -> dict[str, tuple[int, int]]:
    """``rclone lsjson`` output -> {relative path: (size, mtime in microseconds)}."""
    return {item["Path"]: (int(item["Size"]), parse_time_us(item["ModTime"]))
            for item in json.loads(text or "[]") if not item.get("IsDir")}


def changed(source: Mapping[str, tuple[int, int]], target: Mapping[str, tuple[int, int]],
            direction: Direction | str) -> list[str]:
    """The selected source files ``aws s3 sync`` would transfer (awscli SizeAndLastModifiedSync).

    direction "upload"/"copy": size differs, or the source is newer than the target;
    "download": size differs, or the local file is newer than the S3 object (aws then sets
    the local mtime to the object's LastModified, so equal times mean "in sync").

    Times are compared in milliseconds, the precision of S3's timestamps: a server that stamps
    an object with the uploader's mtime (``rclone serve s3`` and others do, from rclone's
    X-Amz-Meta-Mtime) must not make every re-sync upload again for the lost microseconds.  An
    S3->S3 copy compares whole seconds: some servers stamp a copy with the source's time cut to
    the second (an HTTP date).
    """
    direction = Direction(direction)
    unit = 1_000_000 if direction is Direction.COPY else 1000
    out = []
    for path, (size, mtime) in source.items():
        have = target.get(path)
        if have is None or have[0] != size:
            out.append(path)
        elif direction is Direction.DOWNLOAD:
            if have[1] // unit > mtime // unit:
                out.append(path)
        elif have[1] // unit < mtime // unit:
            out.append(path)
    return sorted(out)


def list_file_text(paths: Iterable[str]) -> str:
    return "".join(f"{p}\n" for p in paths)


def check_listable(paths: Iterable[str]) -> None:
    """rclone's explicit lists are one path a line: a name with a line break cannot be named.
    Nor can one with U+201B: rclone reads ``--files-from-raw`` in its own encoding, where that
    character escapes the next one, so such a file was counted as copied and never arrived."""
    for p in paths:
        if "\n" in p or "\r" in p:
            raise UsageError(f"{p!r} contains a line break; the rclone engine cannot name it (use --engine aws)")
        if "\u201b" in p:
            raise UsageError(f"{p!r} contains U+201B ('\u201b', rclone's escape character); the rclone engine "
                             "cannot name it (use --engine aws)")


# -- running (every process through runner.Runner) -------------------------------------
@dataclass
class _Job:
    """One fast-engine sync in progress: what the steps below share."""

    plan: Any
    runner: Any
    reporter: Any
    env: dict[str, str]  # the RCLONE_S3_* configuration of the ':s3:' remote
    direction: Direction
    version: str = ""  # from the first listing's log (see lsjson_argv), else `rclone version`
    source: dict[str, tuple[int, int]] = field(default_factory=dict)  # selected: {path: (size, mtime_us)}
    listed: dict[str, tuple[int, int]] | None = None  # everything an S3 source holds (its listing)
    skipped: list[str] = field(default_factory=list)  # selected links and special files (local source)
    target: dict[str, tuple[int, int]] = field(default_factory=dict)  # what _compare found at the target


def run(plan, runner, reporter, *, started: str, start: float) -> dict[str, Any]:
    """One fast-engine sync: the same result document, dry run and messages as the aws path."""
    job = _open(plan, runner, reporter)
    job.source = _source_files(job)
    result = _announce(job, started)
    if plan.resolved.dry_run:
        return _dry_run(job, result, start)
    return _sync(job, result, start)


def _open(plan, runner, reporter) -> _Job:
    r = plan.resolved
    if runner.which(RCLONE) is None:
        raise UsageError(f"{r.protocol.where('engine')}: engine 'rclone' is not installed ({INSTALL_HINTS[RCLONE]})")
    config_text = _read_aws_config(runner.base_env)
    env = rclone_env(aws_settings(r.protocol, runner.base_env, config_text))
    return _Job(plan, runner, reporter, env, Direction.of(r.source, r.destination))


def _announce(job: _Job, started: str) -> dict[str, Any]:
    """The notes, guards and headline the aws path gives before moving anything; the result's start."""
    from . import execute

    plan, reporter = job.plan, job.reporter
    r = plan.resolved
    execute.note_skipped(job.skipped, reporter)
    if r.source.kind == EndKind.S3 and r.destination.kind == EndKind.LOCAL:  # the aws path's guard
        execute.refuse_writes_through_links(plan, _selection(job), job.runner, reporter)
    reporter.info(execute.headline(plan))
    if plan.source_is_file and not job.source:
        execute.note_file_excluded(plan, reporter)
    result: dict[str, Any] = {**plan.to_json(), "started": started, "config_files": [r.protocol.file]}
    result["selected"] = {"files": len(job.source), "bytes": sum(size for size, _ in job.source.values())}
    if job.skipped:
        result["skipped"] = job.skipped
    return result


def _selection(job: _Job) -> list[tuple[str, int]]:
    return sorted((p, size) for p, (size, _) in job.source.items())


def _compare(job: _Job) -> tuple[list[str], list[str]]:
    """What to copy (aws' change rule) and, with --delete, what to delete at the target."""
    r = job.plan.resolved
    if job.plan.source_is_file:
        return sorted(job.source), []  # aws s3 cp: always copied
    target = job.target = _target_files(job, everything=r.delete)
    todo = changed(job.source, target, job.direction)
    deletions = _deletions(job.plan, job.source, target) if r.delete else []
    check_listable(todo + deletions)
    return todo, deletions


def _commands(job: _Job, todo: Sequence[str], deletions: Sequence[str], list_file) -> list[tuple[str, tuple[str, ...]]]:
    """The rclone commands of a sync, (step name, argv) in order; ``list_file(name, paths)`` names
    the explicit list each one reads (a temporary file in a real run, a placeholder in a dry run)."""
    r, interactive = job.plan.resolved, job.reporter.is_tty
    if job.plan.source_is_file:  # nothing when the kept rules exclude the file (``_source_files``)
        return [("rclone copyto", copyto_argv(r.source, r.destination, interactive=interactive))] if todo else []
    steps = []
    if todo:
        large = sum(job.source[p][0] for p in todo) >= LARGE_MEAN * len(todo)
        traverse = r.source.kind == EndKind.S3 and job.listed is not None and lists_cheaper(todo, len(job.listed))
        steps.append(("rclone copy", copy_argv(r.source, r.destination, list_file("copy", todo),
                                               interactive=interactive, traverse=traverse,
                                               transfers=LARGE_TRANSFERS if large else TRANSFERS)))
    if deletions:
        steps.append(("rclone delete", delete_argv(r.destination, list_file("delete", deletions))))
    return steps


def _dry_run(job: _Job, result: dict[str, Any], start: float) -> dict[str, Any]:
    """The same comparison and commands the real run makes, reported as the aws path reports them."""
    from . import execute
    from .listing import Listing

    plan, reporter = job.plan, job.reporter
    execute.check_target_parent(plan, job.runner)
    todo, deletions = _compare(job)
    result["engine_version"] = _engine_version(job)
    listing = None if job.listed is None else Listing(files=tuple(sorted((p, s) for p, (s, _) in job.listed.items())))
    execute.warn_unmatched_includes(plan, listing, job.runner, reporter)
    if reporter.verbosity >= 1:
        reporter.info(f"engine {result['engine_version']}: the selection is compared with the target as aws "
                      "compares it, then handed to rclone as an explicit list (--files-from-raw)")
        shown = {"copy": "transfer", "delete": "delete"}  # the real run's lists are temporary files
        commands = _commands(job, todo, deletions, lambda name, paths: f"<list of the {len(paths)} file(s) to {shown[name]}>")
        execute.report_commands([argv for _, argv in commands], _selection(job), reporter)
    return execute.report_dry_run(_selection(job), [(p, job.source[p][0]) for p in todo], deletions, result,
                                  reporter, start)


def _sync(job: _Job, result: dict[str, Any], start: float) -> dict[str, Any]:
    from . import execute

    plan, runner, reporter = job.plan, job.runner, job.reporter
    r = plan.resolved
    if r.delete and not job.source:  # nothing selected: refuse, as the aws path does, if nothing is there at all
        execute.refuse_delete_from_empty_source(plan, None, runner, reporter)
    commands: list[list[str]] = []
    with DestinationLock(r.destination, r.protocol, runner) as lock, runner.inheriting(lock.fds), \
            tempfile.TemporaryDirectory(prefix="flepimop-sync-") as tmp:
        execute.prepare_target(plan)  # a missing target's last level, as on the aws path
        todo, deletions = _compare(job)
        for what, argv in _commands(job, todo, deletions, lambda name, paths: _write(tmp, f"{name}.txt", paths)):
            _run(runner, argv, job.env, what, plan)
            commands.append(list(argv))
            deleting = what == "rclone delete"
            _report_moves(job, deletions if deleting else todo, deleting=deleting)
        if todo and not plan.source_is_file:
            _check_arrived(job, todo)
        if job.direction is Direction.DOWNLOAD and not plan.source_is_file:
            _keep_listed_times(job, todo)
    transferred = {"files": len(todo), "bytes": sum(job.source[p][0] for p in todo)}
    seconds = time.monotonic() - start
    result.update(engine_version=_engine_version(job), status="ok", transferred=transferred,
                  seconds=round(seconds, 3), finished=now_iso(), commands=commands)
    if r.delete:
        result["deleted"] = deletions
    execute.report_done(r, transferred, seconds, reporter)
    return result


def _check_arrived(job: _Job, todo: Sequence[str]) -> None:
    """Fail, as rsync fails with exit 24, when a file to copy did not arrive: rclone skips a file
    that vanished at the source between our listing and its copy silently, with exit 0, so the
    summary would count it.  Downloads: each file is at the target with the listed size, and
    was written (its stat differs from what ``_compare`` found there, ``job.target``; its time
    is not compared with the listing: some servers' HEAD, where rclone takes it, is seconds off
    their listing).  Uploads: a file gone from the source is looked for at the target (one
    listing, only then).  S3 -> S3 copies: each file is at the target with the listed size, and
    was rewritten (its listing differs from ``job.target``); a target object that looks unchanged
    is missing only if the source object is gone or changed too (LastModified has one-second
    resolution: a same-size rewrite within the second of the old object looks unchanged).  One
    listing of the target after the copy and, only for such suspects, one of the source."""
    r = job.plan.resolved
    if job.direction is Direction.DOWNLOAD:
        root = r.destination.as_dir().text
        missing = []
        for path in todo:
            have = _stat_us(root + path)
            if have is None or have[0] != job.source[path][0] or have == job.target.get(path):
                missing.append(path)
    elif job.direction is Direction.UPLOAD:
        root = r.source.as_dir().text
        gone = [path for path in todo if _stat_us(root + path) is None]
        target = _list_s3(job, r.destination) if gone else {}
        missing = [path for path in gone if path not in target]
    else:  # an S3 end has no cheaper look than a listing
        after = _list_s3(job, r.destination)
        sized = {path for path in todo if path in after and after[path][0] == job.source[path][0]}
        suspects = [path for path in todo if path not in sized or after[path] == job.target.get(path)]
        source_now = _list_s3(job, r.source) if suspects else {}
        missing = [path for path in suspects if path not in sized or source_now.get(path) != job.source[path]]
    if missing:
        raise StepFailed(
            f"protocol '{r.protocol.name}': rclone copy: {len(missing)} selected file(s) vanished or changed at "
            f"the source during the transfer and did not arrive as listed ({some(missing)}); run the sync again",
            step="rclone copy", returncode=0)


def _keep_listed_times(job: _Job, paths: Sequence[str]) -> None:
    """Give each downloaded file the object's listed LastModified cut to the second, the time
    aws gives it, whatever time rclone took from the server (see the module docstring)."""
    root = job.plan.resolved.destination.as_dir().text
    for path in paths:
        seconds = job.source[path][1] // 1_000_000
        try:
            os.utime(root + path, (seconds, seconds), follow_symlinks=False)
        except FileNotFoundError:  # removed locally since _check_arrived saw it: nothing to stamp
            pass


def _report_moves(job: _Job, paths: Sequence[str], *, deleting: bool) -> None:
    """The lines aws prints for each file it copies or deletes, for -vv."""
    plan = job.plan
    r = plan.resolved
    src_dir, dst_dir = r.source.as_dir().text, r.destination.as_dir().text
    for path in paths:
        if deleting:
            job.reporter.detail(f"delete: {dst_dir}{path}")
            continue
        shown_src = r.source.text if plan.source_is_file else src_dir + path
        shown_dst = r.destination.text if plan.source_is_file else dst_dir + path
        job.reporter.detail(f"{job.direction}: {shown_src} to {shown_dst}")


def _engine_version(job: _Job) -> str:
    if not job.version:
        job.version = _version(job.runner)
    return job.version


def _version(runner) -> str:
    done = runner.run([RCLONE, "version"])
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0] if done.returncode == 0 and first else "unknown"


def _read_aws_config(env: Mapping[str, str]) -> str | None:
    path = env.get("AWS_CONFIG_FILE") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".aws", "config")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _run(runner, argv: Sequence[str], env: Mapping[str, str], what: str, plan):
    done = runner.stream(argv, env=env, live=runner.reporter.is_tty)
    if done.returncode != 0:
        raise step_failed(what, done, plan.protocol, runner.base_env)
    return done


def _write(tmp: str, name: str, paths: Sequence[str]) -> str:
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as handle:
        handle.write(list_file_text(paths))
    return path


def _list_s3(job: _Job, end: End) -> dict[str, tuple[int, int]]:
    done = job.runner.run(lsjson_argv(end), env=job.env)
    job.version = job.version or version_from_log(done.stderr)
    stderr = without_debug(done.stderr)
    if done.returncode != 0:
        if rclone_found_nothing(stderr) and _bucket_exists(job, end):
            return {}  # an empty prefix: nothing there yet
        # (its debug lines, asked for to learn rclone's version, are not its message)
        raise step_failed(f"listing {end.text}", replace(done, stderr=stderr), job.plan.protocol,
                          job.runner.base_env)
    return parse_lsjson(done.stdout)


def _bucket_exists(job: _Job, end: End) -> bool:
    """rclone says 'directory not found' for an empty prefix and for a missing bucket alike; the
    bucket's own ``lsjson --stat`` fails only for the latter.  Without this look a dry run into a
    missing bucket said 'would transfer' and exit 0, where the real run failed."""
    bucket = end.path.partition("/")[0]
    done = job.runner.run((RCLONE, "lsjson", "--stat", "--no-mimetype", "--low-level-retries=3", *RCLONE_BASE,
                           ":s3:" + bucket), env=job.env)
    if done.returncode == 0:
        return True
    if rclone_found_nothing(done.stderr):
        raise StepFailed(f"protocol '{job.plan.protocol.name}': listing {end.text} failed (rclone exit "
                         f"{done.returncode}: {NO_BUCKET}): no bucket {bucket!r}",
                         step=f"listing {end.text}", returncode=done.returncode)
    raise step_failed(f"listing {end.text}", done, job.plan.protocol, job.runner.base_env)


def _refuse_shadowed(job: _Job, end: End, listing: Mapping[str, Any]) -> None:
    """rclone names a prefix without its trailing '/' (``rclone_path``): when an object has
    exactly the prefix's name ('run1' beside 'run1/a.txt'), rclone syncs that object instead of
    the prefix (and lists it alone).  Its listing then holds the prefix's own name at the top,
    which a 'run1/run1' key gives too: only then does one ``lsjson --stat`` tell them apart."""
    name = end.path.rstrip("/").rpartition("/")[2]
    if end.kind != EndKind.S3 or "/" not in end.path.rstrip("/") or name not in listing:
        return
    done = job.runner.run((RCLONE, "lsjson", "--stat", "--no-mimetype", "--low-level-retries=3", *RCLONE_BASE,
                           rclone_path(end)), env=job.env)
    if done.returncode != 0:
        raise step_failed(f"listing {end.text}", done, job.plan.protocol, job.runner.base_env)
    if not json.loads(done.stdout or "{}").get("IsDir", True):
        raise UsageError(f"protocol '{job.plan.protocol.name}': {end.as_dir().text!r}: the object "
                         f"{end.path.rstrip('/').partition('/')[2]!r} has the prefix's own name, and the rclone engine "
                         "cannot sync a prefix shadowed by an object of the same name; use --engine aws")


def _stat_us(path: str) -> tuple[int, int] | None:
    """(size, mtime) of a regular file; None for links, special files and what is gone.  S3 stores
    regular files only and links are never followed (the aws path's rule, ``--no-follow-symlinks``)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size, st.st_mtime_ns // 1000


def _source_files(job: _Job) -> dict[str, tuple[int, int]]:
    """The evaluator's selection at the source, with sizes and mtimes (selected links and special
    files go to ``job.skipped``; an S3 source's whole listing to ``job.listed``)."""
    from . import filters as filter_rules

    r = job.plan.resolved
    if job.plan.source_is_file:  # the file itself, unless the kept rules exclude it (as on the aws path)
        have = _stat_us(r.source.path)
        assert have is not None
        name = os.path.basename(r.source.path)
        return {name: have} if not r.rules or r.rules.select_paths([(name, have[0])]) else {}
    if r.source.kind == EndKind.LOCAL:
        root = r.source.path or "."
        if not os.path.isdir(root):
            return {}
        rules = r.rules if r.rules else filter_rules.build_rules(None)
        out = {}
        for path, _size in rules.select_local(root):
            have = _stat_us(os.path.join(root, path))
            if have is not None:
                out[path] = have
            else:
                job.skipped.append(path)
        return out
    listing = job.listed = _list_s3(job, r.source)
    _refuse_shadowed(job, r.source, listing)
    refuse_unnameable_keys(listing, r.source, r.destination, r.protocol, rclone=True)
    if not listing:  # a mistyped prefix: an error, as on the aws path (issue 12 point 4)
        from .execute import require_s3_objects
        from .listing import Listing

        require_s3_objects(job.plan, Listing(files=()))
    if not r.rules:
        return listing
    return {path: listing[path] for path, _ in r.rules.select_paths(sorted((p, s) for p, (s, _) in listing.items()))}


def _target_files(job: _Job, *, everything: bool) -> dict[str, tuple[int, int]]:
    """What the target holds: every file (``everything``, for --delete) or just the selected paths."""
    from . import filters as filter_rules

    dest = job.plan.resolved.destination
    if dest.kind == EndKind.S3:
        listing = _list_s3(job, dest)
        _refuse_shadowed(job, dest, listing)
        refuse_unnameable_keys(listing, dest, job.plan.resolved.source, job.plan.resolved.protocol,
                               rclone=True)
        return listing
    root = dest.path or "."
    if everything:
        if not os.path.isdir(root):
            return {}
        out = {}
        for path, _size in filter_rules.build_rules(None).select_local(root):
            have = _stat_us(os.path.join(root, path))
            if have is not None:
                out[path] = have
        return out
    out = {}
    for path in job.source:
        have = _stat_us(os.path.join(root, path))
        if have is not None:
            out[path] = have
    return out


def _deletions(plan, source: Mapping[str, Any], target: Mapping[str, tuple[int, int]]) -> list[str]:
    """Selected target files missing at the source (what aws --delete removes with these rules)."""
    r = plan.resolved
    missing = sorted((p, size) for p, (size, _) in target.items() if p not in source)
    if r.rules:
        return [p for p, _ in r.rules.select_paths(missing)]
    return [p for p, _ in missing]


__all__ = ["build_plan", "run", "changed", "copy_argv", "delete_argv", "lsjson_argv", "rclone_env",
           "aws_settings", "parse_lsjson"]
