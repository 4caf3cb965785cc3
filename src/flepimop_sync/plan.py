"""Protocol + options -> a plan: the resolved ends, the filter list and the argv of
every step.  Pure: no processes, and no I/O beyond what the user's own words ask for (``$NAME``
and ``~`` in ends, local ends resolved to refuse nesting: see ``endpoints``).  Facts that need
I/O (is the source a file? what does the source hold? the working directory, for aws roots with
glob characters) are passed in by ``execute``; only ``--reverse`` looks whether the configured
source is a local file itself (``resolve_ends``: the reversed ends depend on it).

Two phases, two types: ``build`` returns a ``Plan`` (every step's argv known) or, when no exact
aws translation of the rules exists, a ``DraftPlan`` (no steps, so it cannot run) that
``finalize`` completes from the source listing.  The fast engine's ``Plan`` (``--engine
rclone``, from ``s3engine.build_plan``) has no steps: its commands depend on both listings, so
``s3engine`` builds them at run time.  ``with_progress`` is the one place a terminal
changes an rsync or aws argv.

The CLI and the Snakemake layer both consume this module.  The rsync and aws commands a
transfer runs are built here (transfer, deletion, the target probes, ``aws s3 ls``), with the
filter flags from ``filters`` (rsync) and ``s3filters`` (aws); the other commands are built
beside the code that reads their output: listings in ``listing``, git in ``gitsync``, rclone in
``s3engine``, ``ssh -G`` in ``lock``, ``<tool> --version`` (for receipts) in ``api``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar, Mapping, Sequence

from . import filters as filter_rules
from .config import Protocol, S3Settings
from .endpoints import (End, EndKind, apply_option, check_nesting, check_protocol_ends, expand_end, keep_separator,
                        landing_warning, parse_end, part_below, reverse_ends)
from .endpoints import APPEND_PREFIX
from .errors import UsageError, show_value
from .mechanism import Engine, Mechanism, ProtocolType
from .options import SyncOptions

RSYNC_BASE = ("rsync", "-a", "--prune-empty-dirs")
#: rsync's line per entry in its dry runs (flags, size, name), which listing and preview parse
RSYNC_ITEMIZE = "--out-format=%i %l %n"
#: Above this many estimated aws pattern tests (~2 s of filtering), an explicit upload is staged.
STAGE_ABOVE_TESTS = 200_000



@dataclass(frozen=True)
class Step:
    """One process to run: its argv, named for messages (``name``: the tool's words, ``purpose``:
    which ends)."""

    name: str
    argv: tuple[str, ...]
    purpose: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "argv": list(self.argv), "purpose": self.purpose}


@dataclass(frozen=True)
class Resolved:
    """A protocol with the options applied: the ends, where files land, the rules."""

    protocol: Protocol
    source: End
    target: End
    destination: End  # where the source's contents land (target, or target/<name>)
    rules: "filter_rules.FilterList"
    mkpath: bool
    delete: bool
    dry_run: bool
    reverse: bool
    notes: tuple[str, ...] = ()  # facts about the run the user should know (``deletion``'s note)


@dataclass(frozen=True)
class Stage:
    """An explicit upload staged as links: execute links exactly ``files`` (relative to the
    source) into ``directory`` before the one step syncs that directory, following its links."""

    directory: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """A plan that can run: every step's argv is known (the fast engine's plan has no steps:
    its commands depend on both listings, so ``s3engine`` builds and runs them)."""

    resolved: Resolved
    mechanism: Mechanism
    steps: tuple[Step, ...]
    stage: Stage | None = None
    source_is_file: bool = False
    warnings: tuple[str, ...] = ()
    # aws roots whose absolute path has glob characters: (glob-free link, real directory) pairs that
    # execute creates before the steps run (see alias_glob_roots)
    aliases: tuple[tuple[str, str], ...] = ()
    engine: Engine = Engine.AWS  # s3sync: the tool that moves the files (s3engine runs the others)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mechanism", Mechanism(self.mechanism))
        object.__setattr__(self, "engine", Engine(self.engine))

    @property
    def protocol(self) -> Protocol:
        return self.resolved.protocol

    @property
    def mechanism_text(self) -> str:
        split = sum(1 for s in self.steps if s.argv[:3] == ("aws", "s3", "sync"))
        extra = f", split into {split} aws runs" if split > 1 else ""
        return self.mechanism.text + extra

    def to_json(self) -> dict[str, Any]:
        return _plan_json(self, [s.to_json() for s in self.steps])


@dataclass(frozen=True)
class DraftPlan:
    """An aws plan whose steps depend on what the source holds (no exact translation of the
    rules): execute lists the source and ``finalize`` turns it into a ``Plan``.  It has no steps,
    so nothing can run it."""

    resolved: Resolved
    mechanism: Mechanism
    warnings: tuple[str, ...] = ()
    source_is_file: ClassVar[bool] = False
    engine: ClassVar[Engine] = Engine.AWS

    @property
    def protocol(self) -> Protocol:
        return self.resolved.protocol

    @property
    def mechanism_text(self) -> str:
        return self.mechanism.text

    def to_json(self) -> dict[str, Any]:
        return _plan_json(self, [])


def _plan_json(plan: "Plan | DraftPlan", steps: list[dict[str, Any]]) -> dict[str, Any]:
    r = plan.resolved
    return {
        "protocol": r.protocol.name,
        "type": r.protocol.type.value,
        "config_files": [r.protocol.file],
        "source": r.source.text,
        "target": r.target.text,
        "destination": r.destination.text,
        "filters": r.rules.as_texts(),
        "mechanism": plan.mechanism_text,
        **({"engine": plan.engine.value} if r.protocol.type is ProtocolType.S3SYNC else {}),
        "dry_run": r.dry_run,
        "delete": r.delete,
        "steps": steps,
        "warnings": list(plan.warnings),
        "notes": [*r.rules.notes, *r.notes],
    }


# ---------------------------------------------------------------------------
def _where(protocol: Protocol, options: SyncOptions) -> Callable[[str | None], str]:
    # the options this run gave, as the user typed them: an error names what moved the ends
    given = [name for name, on in (("--source", options.source), ("--target", options.target),
                                   ("--reverse", options.reverse)) if on]
    changed = f" (after {', '.join(given)})" if given else ""

    def where(key: str | None = None) -> str:
        return protocol.where(key) + changed

    return where


def resolve_ends(protocol: Protocol, options: SyncOptions, *,
                 env: Mapping[str, str] | None = None) -> tuple[End, End]:
    """Apply --source/--target (replace or append), expand ``$NAME`` and ``~`` (``env``: the
    environment the tools run with, default ours), then --reverse; check the resulting ends."""
    if protocol.type is ProtocolType.GIT:
        raise UsageError(f"protocol '{protocol.name}' is a git protocol; it has no ends to resolve")
    env = os.environ if env is None else env
    where = _where(protocol, options)
    source = apply_option(protocol.source, options.source, what="source", env=env)
    target = apply_option(protocol.target, options.target, what="target", env=env)
    assert source is not None and target is not None  # the schema requires both
    source = expand_end(source, env, where("source"))
    target = expand_end(target, env, where("target"))
    if options.source is not None and options.source.startswith(APPEND_PREFIX):
        source = keep_separator(source, protocol.source or "")
    if options.target is not None and options.target.startswith(APPEND_PREFIX):
        target = keep_separator(target, protocol.target or "")
    if options.reverse:
        # A single local file went to '<target>/<name>' (see ``landing``); reversed as a directory it
        # would be read as 'out/f.txt/'.  (Remote and S3 sources are not probed, as in ``execute``.)
        configured = parse_end(source)
        is_file = configured.kind == EndKind.LOCAL and os.path.isfile(configured.path)
        if is_file and parse_end(target).kind != EndKind.LOCAL:
            raise UsageError(f"{where('source')}: --reverse cannot bring the single file {show_value(source)} back "
                             f"from {show_value(target)}: a single-file source must be local")
        source, target = reverse_ends(source, target, source_is_file=is_file)
    src, tgt = check_protocol_ends(protocol.type, source, target, where, error=UsageError)
    if protocol.type is ProtocolType.RSYNC:
        for key, end in (("source", src), ("target", tgt)):
            if end.kind == EndKind.REMOTE and "\\" in end.path and any(c in end.path for c in _GLOB):
                # the remote sender glob-expands its paths; a backslash next to them has no exact escape
                raise UsageError(f"{where(key)}: {end.text!r}: a remote path with both a backslash and glob characters "
                                 "(* ? [ ]) cannot be passed to rsync literally; rename it")
    return src, tgt


def _replaces(value: str | None) -> bool:
    """Does an -s/-t value replace the configured end (not a '+ ' append below it)?"""
    return value is not None and not value.startswith(APPEND_PREFIX)


def source_replaced(options: SyncOptions) -> bool:
    """Did -s replace the protocol's source (not a '+ ' append)? Then its -a/-e includes narrow
    the list (filters.build_rules)."""
    return _replaces(options.source)


def landing(src: End, tgt: End, *, source_is_file: bool) -> End:
    """Where the source's contents land: the target itself for a directory written with a
    trailing slash (or a root); else below it, under the source's name. A single file always
    lands inside the target, like a directory's contents do."""
    if source_is_file or not (src.trailing_slash or not src.basename):
        return tgt.child(src.basename)
    return tgt


def resolve(protocol: Protocol, options: SyncOptions, *, source_is_file: bool = False,
            env: Mapping[str, str] | None = None, ends: tuple[End, End] | None = None) -> Resolved:
    """Apply --source/--target (replace or append), filters, --reverse.  ``ends``: what
    ``resolve_ends`` already returned for these options (a run resolves them once)."""
    src, tgt = ends or resolve_ends(protocol, options, env=env)
    rules = filter_rules.build_rules(
        protocol.filters,
        override=options.filters,
        prefix=options.fprefix,
        suffix=options.fsuffix,
        no_filter=options.no_filter,
        env=env,
        source_replaced=source_replaced(options),
        source_is_file=source_is_file,
    )
    destination = destination_of(protocol, options, src, tgt, source_is_file=source_is_file, rules=rules)
    delete, delete_note = deletion(protocol, options, src, destination, env=env)
    return Resolved(
        protocol=protocol,
        source=src,
        target=tgt,
        destination=destination,
        rules=rules,
        mkpath=wants_mkpath(protocol, options),
        delete=delete,
        dry_run=options.dry_run,
        reverse=options.reverse,
        notes=(delete_note,) if delete_note else (),
    )


def destination_of(protocol: Protocol, options: SyncOptions, src: End, tgt: End, *, source_is_file: bool,
                   rules: "filter_rules.FilterList") -> End:
    """Where the source's contents land (``landing``), refused when it holds the source or lies
    inside it where ``rules`` may select (``check_nesting``): for a run and for ``api.meaning``."""
    destination = landing(src, tgt, source_is_file=source_is_file)
    check_nesting(src, destination, _where(protocol, options), rules=rules)
    return destination


def check_place_nesting(resolved: Resolved, options: SyncOptions,
                        places: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
    """``check_nesting`` on the ends' canonical places (``lock.canonical_place``, which ``execute``
    computes: it may ask ``ssh -G``), for ends whose spellings differ in kind or host but may name
    one place (an ssh alias of this machine and a local path)."""
    check_nesting(resolved.source, resolved.destination, _where(resolved.protocol, options), places=places,
                  rules=resolved.rules)


def wants_mkpath(protocol: Protocol, options: SyncOptions) -> bool:
    """--mkpath, or the protocol's ``mkpath`` key."""
    return bool(options.mkpath or protocol.settings.mkpath)


def moved_off_configured(protocol: Protocol, options: SyncOptions, source: End, destination: End, *,
                         env: Mapping[str, str] | None = None) -> bool:
    """Did ``-s``/``-t`` move this run off what the protocol's configured run mirrors?  The run
    (``source`` copied into ``destination``, as ``resolve`` found them) stays on it when it
    mirrors the configured source into the configured destination, or a part of the source
    into the same part there: ``-s '+ USA/' -t '+ USA/'``, or ``-t`` naming the configured
    target.  Anything else (a replaced end; an append to one end only: ``-t '+ USA'`` copies
    the whole source into the target's ``USA/``, ``-s '+ USA'`` USA's contents onto the whole
    target) pairs files the config never paired, where mirroring would delete files the
    configured run keeps."""
    if options.source is None and options.target is None:
        return False
    try:
        configured_source, configured_target = resolve_ends(protocol, SyncOptions(reverse=options.reverse), env=env)
    except UsageError:
        return True  # the configured ends do not resolve here ($NAME unset): nothing to stay on
    part = part_below(source, configured_source)
    if part is None:
        return True
    configured = landing(configured_source, configured_target, source_is_file=False)
    return part_below(destination, configured.child(part) if part else configured) != ""


def deletion(protocol: Protocol, options: SyncOptions, source: End, destination: End, *,
             env: Mapping[str, str] | None = None) -> tuple[bool, str | None]:
    """Does the run delete, and the note of a protocol's ``delete`` key left out (else None)?
    The one home of the rule (runs, dry runs, ``--plan``/``--json``, the Snakemake layer's
    ``api.meaning``): --delete; else the protocol's ``delete`` key in this direction
    (``config_deletes``), unless -s/-t moved the run off what the configured run mirrors
    (``moved_off_configured``): the key was written for the configured ends, not for any
    pairing typed on the command line, where it could delete unrelated files; the note says so.
    ``source``/``destination``: the run's, as ``resolve`` finds them."""
    if options.delete:
        return True, None
    if not config_deletes(protocol, reverse=options.reverse):
        return False, None
    if not moved_off_configured(protocol, options, source, destination, env=env):
        return True, None
    value = protocol.settings.delete
    key = "true" if value is True else value
    given = " and ".join(flag for flag, option in (("-s/--source", options.source), ("-t/--target", options.target))
                         if option is not None)
    return False, (f"'delete: {key}' is not applied: with {given}{' and --reverse' if options.reverse else ''} "
                   f"this run copies {show_value(source.text)} into {show_value(destination.text)}, not what the "
                   "configured ends pair (or a part of it, in its place): nothing is deleted there; --delete asks "
                   "for it")


def config_deletes(protocol: Protocol, *, reverse: bool) -> bool:
    """Does the protocol's ``delete`` key ask for deletion in this direction?

    ``true`` means the configured direction only: a ``--reverse`` run deletes only when the
    config says ``reverse`` or ``both`` (or ``--delete`` is given), so files that were never
    pushed are not deleted by pulling them back.
    """
    value = protocol.settings.delete
    if reverse:
        return value in ("reverse", "both")
    return value is True or value == "both"


def engine_for(protocol: Protocol, options: SyncOptions) -> Engine:
    """The tool that moves the files (the one home of the choice, for runs and for
    ``api.meaning``): ``--engine``, else the protocol's ``engine``, else aws; any other engine
    than aws applies to s3sync protocols only."""
    name = options.engine or (protocol.settings.engine if isinstance(protocol.settings, S3Settings) else Engine.AWS)
    if name != Engine.AWS and protocol.type is not ProtocolType.S3SYNC:
        raise UsageError(f"{protocol.where()}: --engine applies to s3sync protocols only")
    try:
        return Engine(name)
    except ValueError:  # the schema and the CLI offer only these; Snakemake params may say anything
        raise UsageError(f"{protocol.where('engine')}: unknown engine {name!r} "
                         f"(known: {', '.join(e.value for e in Engine)})") from None


def build(protocol: Protocol, options: SyncOptions, *, source_is_file: bool = False,
          env: Mapping[str, str] | None = None, ends: tuple[End, End] | None = None) -> "Plan | DraftPlan":
    """The plan for one rsync or s3sync protocol: a ``DraftPlan`` when the aws steps depend on
    what the source holds (see ``finalize``)."""
    resolved = resolve(protocol, options, source_is_file=source_is_file, env=env, ends=ends)
    engine = engine_for(protocol, options)
    if engine is Engine.RCLONE:
        from . import s3engine

        plan = s3engine.build_plan(resolved, engine, source_is_file=source_is_file)
    elif protocol.type is ProtocolType.RSYNC:
        plan = _rsync_plan(resolved, source_is_file=source_is_file, verbosity=options.verbosity)
    else:
        plan = _s3_plan(resolved, source_is_file=source_is_file)
    landing = None if source_is_file else landing_warning(resolved.source, resolved.target, resolved.destination)
    return replace(plan, warnings=(landing, *plan.warnings)) if landing else plan


# -- rsync -------------------------------------------------------------------
def rsync_argv(resolved: Resolved, *, source_is_file: bool = False, verbosity: int = 0) -> tuple[str, ...]:
    """The one place rsync flags are built (the CLI and Snakemake both come here)."""
    argv = list(RSYNC_BASE)
    if resolved.mkpath:
        argv.append("--mkpath")
    # No '--delete' here: rsync's own deletion also removes directories (empty ones, and those it
    # empties), which the README promises to keep.  Deletion is a second step that removes exactly
    # the listed files (``rsync_delete_argv``), the list the dry run shows.
    argv += rsync_rsh_args(resolved.protocol)
    argv.append("--stats")  # (with_progress adds --info=progress2 after it)
    if verbosity >= 2:
        argv.append("--itemize-changes")
    argv.extend(resolved.rules.rsync_args())
    source = _rsync_operand(resolved.source, directory=not source_is_file, sender=True)
    dest = _rsync_operand(resolved.destination, directory=not source_is_file)
    argv.append("--")
    argv.extend([source, dest])
    return tuple(argv)


def rsync_rsh_args(protocol: Protocol) -> list[str]:
    """The remote shell flag of every rsync a protocol runs (transfer, deletion, listing, probes)."""
    rsh = protocol.settings.rsh
    return [f"--rsh={rsh}"] if rsh else []


def rsync_delete_argv(resolved: Resolved, skeleton: str, list_file: str) -> tuple[str, ...]:
    """Delete exactly the files named (NUL-separated) in ``list_file`` at the destination, and
    nothing else: each is a "missing argument" of ``skeleton``, a local directory holding only
    their parent directories.  rsync removes a missing argument itself (a link is unlinked,
    never followed) and touches no directory: ``-r`` without ``-t``/``-p`` changes none."""
    argv = ["rsync", "-r", "--itemize-changes", "--from0", f"--files-from={list_file}", "--delete-missing-args"]
    argv += rsync_rsh_args(resolved.protocol)
    argv += ["--", skeleton.rstrip("/") + "/", _rsync_operand(resolved.destination, directory=True)]
    return tuple(argv)


def rsync_probe_dir_argv(protocol: Protocol, directory: End) -> tuple[str, ...]:
    """Does a remote directory exist?  ``rsync --list-only`` of the directory alone (exit 23: no
    such directory; any other failure is the host's)."""
    argv = ["rsync", "--list-only", "-d", "--exclude=*", *rsync_rsh_args(protocol)]
    return (*argv, "--", rsync_sender_operand(directory.as_dir()))


def rsync_make_dir_argv(resolved: Resolved, *, source_is_file: bool) -> tuple[str, ...]:
    """Create a remote target's last level as plain ``rsync -a src host:target`` would: the
    source directory alone (no content, no times or permissions) sent as ``target``."""
    source = resolved.source
    source_dir = parse_end((os.path.dirname(source.path) or ".") + "/") if source_is_file else source.as_dir()
    argv = ["rsync", "-d", "--exclude=*", *rsync_rsh_args(resolved.protocol)]
    return (*argv, "--", _rsync_operand(source_dir, directory=True), resolved.target.as_dir().text)


_GLOB = "*?[]"


def rsync_sender_operand(end: End) -> str:
    """A remote path rsync's *sender* reads: the remote rsync glob-expands it (``hpc:runs[1]/``
    would read ``runs1/``), so its glob characters are escaped; a receiver path is literal."""
    if end.kind != EndKind.REMOTE or not any(c in end.path for c in _GLOB):
        return end.text  # without glob characters rsync takes a backslash literally: nothing to escape
    return end.host + ":" + "".join("\\" + c if c in _GLOB else c for c in end.path)


def _rsync_operand(end: End, *, directory: bool, sender: bool = False) -> str:
    text = end.as_dir().text if directory else end.text
    if sender and end.kind == EndKind.REMOTE:
        return rsync_sender_operand(end.as_dir() if directory else end)
    if end.kind == EndKind.LOCAL and (text.startswith("-") or ":" in text.split("/", 1)[0]):
        # '--' already ends the options; './' also keeps rsync from reading a local 'a b:c'
        # (which we classify as local: no valid host) as host 'a b', path 'c'
        text = "./" + text
    return text


def _rsync_plan(resolved: Resolved, *, source_is_file: bool, verbosity: int) -> Plan:
    argv = rsync_argv(resolved, source_is_file=source_is_file, verbosity=verbosity)
    step = Step(name="rsync", argv=argv, purpose=f"{resolved.source.text} -> {resolved.destination.text}")
    mechanism = Mechanism.RSYNC_FILE if source_is_file else (Mechanism.RSYNC if resolved.rules else Mechanism.NONE)
    return Plan(resolved=resolved, mechanism=mechanism, steps=(step,), source_is_file=source_is_file,
                warnings=tuple(resolved.rules.warnings))


# -- s3sync ------------------------------------------------------------------
def aws_global_args(protocol: Protocol) -> list[str]:
    # '--opt=value': a value that looks like an option ('--debug', '--endpoint-url=...') stays a value
    args, settings = [], protocol.settings
    if settings.endpoint_url:
        args.append(f"--endpoint-url={settings.endpoint_url}")
    if settings.profile:
        args.append(f"--profile={settings.profile}")
    if settings.region:
        args.append(f"--region={settings.region}")
    return args


def aws_ls_argv(protocol: Protocol, end: End) -> tuple[str, ...]:
    """Does an S3 prefix hold anything?  ``aws s3 ls`` of it (empty output: nothing there)."""
    return ("aws", "s3", "ls", end.as_dir().text, *aws_global_args(protocol))


def _aws_operand(end: End, *, directory: bool) -> str:
    text = end.as_dir().text if directory else end.text
    if end.kind == EndKind.LOCAL and text.startswith("-"):
        text = "./" + text
    return text


def aws_sync_argv(resolved: Resolved, filter_args: Sequence[str], *,
                  follow_symlinks: bool = False) -> tuple[str, ...]:
    """The one place ``aws s3 sync`` flags are built.

    aws follows symbolic links by default: out of the tree, round a loop forever, and for
    --delete into a linked directory at a local target.  S3 stores no links, so they are
    skipped (``--no-follow-symlinks``) like the listings skip them; only the stage directory,
    made of links to exactly the selected regular files, is synced following its links.
    """
    argv = ["aws", "s3", "sync", _aws_operand(resolved.source, directory=True),
            _aws_operand(resolved.destination, directory=True)]
    argv += aws_global_args(resolved.protocol)
    argv += _joined_options(filter_args)
    if not follow_symlinks and EndKind.LOCAL in (resolved.source.kind, resolved.destination.kind):
        argv.append("--no-follow-symlinks")
    if resolved.delete:
        argv.append("--delete")
    argv.append("--no-progress")  # (with_progress removes it on a terminal)
    return tuple(argv)


def _joined_options(args: Sequence[str]) -> list[str]:
    """('--include', P) -> '--include=P': a pattern such as '-e' or '--delete' must stay a value
    (aws' argparse reads a separate '-e' as an option and fails, or worse)."""
    out: list[str] = []
    items = list(args)
    i = 0
    while i < len(items):
        if items[i] in ("--include", "--exclude") and i + 1 < len(items):
            out.append(f"{items[i]}={items[i + 1]}")
            i += 2
        else:
            out.append(items[i])
            i += 1
    return out


def _s3_plan(resolved: Resolved, *, source_is_file: bool) -> "Plan | DraftPlan":
    from . import s3filters

    if source_is_file:
        argv = ["aws", "s3", "cp", _aws_operand(resolved.source, directory=False),
                _aws_operand(resolved.destination, directory=False), *aws_global_args(resolved.protocol),
                "--no-progress"]
        step = Step(name="aws s3 cp", argv=tuple(argv), purpose=f"{resolved.source.text} -> {resolved.destination.text}")
        return Plan(resolved=resolved, mechanism=Mechanism.AWS_FILE, steps=(step,), source_is_file=True)
    if not resolved.rules:
        argv = aws_sync_argv(resolved, ())
        return Plan(resolved=resolved, mechanism=Mechanism.NONE, steps=(_aws_step(resolved, argv),))
    _check_aws_root(resolved)
    translation = s3filters.translate_for_aws(resolved.rules)
    if translation.exact:
        argv = aws_sync_argv(resolved, translation.args)
        return Plan(resolved=resolved, mechanism=Mechanism.NATIVE, steps=(_aws_step(resolved, argv),),
                    warnings=tuple(resolved.rules.warnings))
    # No exact fnmatch form for some rule: the steps depend on what the source holds.
    # How exactness is reached is not the user's business (issue 12 point 5): no warning here;
    # the mechanism shows in the summary line and -v output.
    return DraftPlan(resolved=resolved, mechanism=Mechanism.EXPLICIT, warnings=tuple(resolved.rules.warnings))


#: fnmatch reads these in the root aws joins to every pattern ('?' matches itself there, but a
#: root is checked whole: exactness must not hang on that argument)
_AWS_GLOB = "*?["


def _check_aws_root(resolved: Resolved) -> None:
    """aws joins every filter pattern to the root of each end (``bucket/prefix`` for S3, the
    *absolute* path for local ends) and fnmatches the result, so glob characters there would
    silently change what every pattern matches.  Local roots are made glob-free at run time
    (``alias_glob_roots``); an S3 prefix cannot be, so filters below one are refused."""
    for end in (resolved.source, resolved.destination):
        if end.kind != EndKind.S3:
            continue
        bad = sorted({c for c in end.as_dir().path if c in "*["})
        if bad:
            raise UsageError(
                f"{resolved.protocol.where()}: {end.text!r} contains {' '.join(bad)}; aws s3 sync cannot apply "
                "filters below an S3 prefix with glob characters (rename it, or sync it without filters)"
            )


def _has_aws_filters(argv: Sequence[str]) -> bool:
    return any(a.startswith(("--include=", "--exclude=")) for a in argv)


def aws_glob_roots(plan: Plan, cwd: str) -> list[str]:
    """The local roots (absolute, as aws computes them) of aws steps with filters whose path has
    glob characters: each pattern would be joined to it and match the wrong files, or none."""
    roots: list[str] = []
    for step in plan.steps:
        if step.argv[:3] != ("aws", "s3", "sync") or not _has_aws_filters(step.argv):
            continue
        for operand in step.argv[3:5]:
            if operand.startswith("s3://"):
                continue
            root = os.path.normpath(os.path.join(cwd, operand))
            if any(c in root for c in _AWS_GLOB) and root not in roots:
                roots.append(root)
    return roots


def refuse_glob_root_names(plan: Plan, cwd: str) -> None:
    """The refusal of ``alias_glob_roots`` for a root whose own name has glob characters, alone:
    a real run asks it before it creates anything (a refused run leaves the disk as it was)."""
    _refuse_glob_names(plan, [os.path.basename(root) for root in aws_glob_roots(plan, cwd)])


def _refuse_glob_names(plan: Plan, paths: Sequence[str]) -> None:
    for path in paths:
        if any(c in path for c in _AWS_GLOB):
            raise UsageError(f"{plan.protocol.where()}: {path!r} has glob characters (* ? [), which aws would read "
                             "in every filter pattern; rename it, or sync without filters")


def alias_glob_roots(plan: Plan, cwd: str, alias_dir: str) -> Plan:
    """Run aws through glob-free paths: ``alias_dir/N`` is a link to each such root's *parent*
    and the operand is ``alias_dir/N/<root name>/``, so the patterns are joined to a path that
    matches itself only; the root itself stays a real directory (aws --no-follow-symlinks skips
    a root that is a link, and reads and writes below it as usual).  A root whose own name has
    glob characters cannot be reached that way: refused.  ``alias_dir`` must be glob-free."""
    roots = aws_glob_roots(plan, cwd)
    if not roots:
        return plan
    _refuse_glob_names(plan, (alias_dir, *(os.path.basename(root) for root in roots)))
    parents = sorted({os.path.dirname(root) for root in roots})
    links = {parent: os.path.join(alias_dir, str(i)) for i, parent in enumerate(parents)}
    steps = []
    for step in plan.steps:
        argv = list(step.argv)
        if argv[:3] == ["aws", "s3", "sync"] and _has_aws_filters(argv):
            for i in (3, 4):
                if not argv[i].startswith("s3://"):
                    root = os.path.normpath(os.path.join(cwd, argv[i]))
                    if root in roots:
                        argv[i] = os.path.join(links[os.path.dirname(root)], os.path.basename(root)) + "/"
        steps.append(replace(step, argv=tuple(argv)))
    return replace(plan, steps=tuple(steps), aliases=tuple((link, parent) for parent, link in links.items()))


def _aws_step(resolved: Resolved, argv: Sequence[str]) -> Step:
    return Step(name="aws s3 sync", argv=tuple(argv), purpose=f"{resolved.source.text} -> {resolved.destination.text}")


def finalize(plan: "DraftPlan | Plan", listing: Sequence[str], *, target_listing: Sequence[str] = (),
             aws_process_cost: int | None = None, stage_dir: str | None = None,
             stage_above: int = STAGE_ABOVE_TESTS) -> Plan:
    """The ``Plan`` of a draft, given the source listing (pure: the listing is given).

    First try the candidate native translation: if aws would select exactly the
    evaluator's files on this listing, it is used ("verified"). Otherwise the exact
    selection is handed to aws as an explicit include list, compressed to whole
    directories where every file is selected.  ``stage_dir`` (an empty directory): a large
    explicit upload may be staged there as links (``Plan.stage``).
    """
    from . import s3filters

    if isinstance(plan, Plan):  # (its steps never depended on a listing)
        return plan
    resolved = plan.resolved
    # Deletion may remove target files missing at the source: they must be judged too.
    universe = sorted(set(listing) | set(target_listing)) if resolved.delete else list(listing)
    cost = {} if aws_process_cost is None else {"process_cost": aws_process_cost}
    choice = s3filters.choose_aws_filter_args(resolved.rules, universe, **cost)
    if any(any(c in run.subdir for c in _AWS_GLOB) for run in choice.runs):
        # a split run's root would carry a file name's glob characters (see _check_aws_root and
        # alias_glob_roots): one run instead
        choice = s3filters.choose_aws_filter_args(resolved.rules, universe, process_cost=10 ** 15)
    common = {"resolved": resolved, "warnings": plan.warnings}
    if choice.mechanism is Mechanism.EXPLICIT and stage_dir and resolved.source.kind == EndKind.LOCAL \
            and not resolved.delete and choice.cost > stage_above:
        # aws filters cost ~11 us per file x pattern: a large explicit selection of local files is
        # cheaper as a directory of links to exactly those files, synced with no filter at all.
        # (Not with --delete: there every unselected target file would look deletable.)
        staged = replace(resolved, source=parse_end(stage_dir.rstrip("/") + "/"))
        step = _aws_step(resolved, aws_sync_argv(staged, (), follow_symlinks=True))
        return Plan(**common, mechanism=Mechanism.STAGED, steps=(step,),
                    stage=Stage(directory=stage_dir, files=tuple(choice.selected or ())))
    steps = []
    for run in choice.runs:
        # A split selection: each run syncs one subtree with the patterns for it alone.
        sub = replace(resolved, source=resolved.source.as_dir().child(run.subdir).as_dir() if run.subdir
                      else resolved.source,
                      destination=resolved.destination.as_dir().child(run.subdir).as_dir() if run.subdir
                      else resolved.destination)
        steps.append(_aws_step(sub, aws_sync_argv(sub, run.args)))
    return Plan(**common, mechanism=choice.mechanism, steps=tuple(steps))


def rsync_preview_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """A transfer step as a dry run that itemizes each file with its size (``%i %l %n``):
    what rsync itself would send and delete."""
    out = [a for a in argv if a not in ("--itemize-changes", "--info=progress2")]
    tail = out.index("--")
    out[tail:tail] = ["--dry-run", RSYNC_ITEMIZE]
    return tuple(out)


def aws_preview_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """An aws step as its dry run (``--dryrun``: aws prints what it would do)."""
    return tuple(argv) if "--dryrun" in argv else (*argv, "--dryrun")


def with_progress(plan: Plan) -> Plan:
    """The plan as run on a terminal: rsync and aws show their progress (``--info=progress2``
    after rsync's ``--stats``; aws without ``--no-progress``).  The one place output for a
    terminal changes an rsync or aws argv (execute applies it to the plan that runs)."""
    steps = []
    for step in plan.steps:
        argv = list(step.argv)
        if argv[0] == "rsync" and "--stats" in argv:
            argv.insert(argv.index("--stats") + 1, "--info=progress2")
        elif argv[0] == "aws":
            argv = [a for a in argv if a != "--no-progress"]
        steps.append(replace(step, argv=tuple(argv)))
    return replace(plan, steps=tuple(steps))
