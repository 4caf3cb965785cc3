"""Protocol + options -> a plan: the resolved ends, the filter list and the argv of
every step.  Pure: no I/O, no processes.  Facts that need I/O (is the source a
file? what does the source hold?) are passed in by ``execute``.

The CLI and the Snakemake layer both consume this module; flags are built here and
nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from . import filters as filter_rules
from .config import Protocol
from .endpoints import End, apply_option, check_protocol_ends, parse_end, reverse_ends
from .errors import UsageError
from .options import SyncOptions

RSYNC_BASE = ("rsync", "-a", "--prune-empty-dirs")
#: Above this many estimated aws pattern tests (~2 s of filtering), an explicit upload is staged.
STAGE_ABOVE_TESTS = 200_000

MECH_RSYNC = "rsync filter rules"
MECH_NONE = "no filters"
MECH_AWS_NATIVE = "aws native include/exclude (exact translation)"
MECH_AWS_VERIFIED = "aws native include/exclude (verified against the source listing)"
MECH_AWS_EXPLICIT = "aws explicit selection (computed from the source listing)"
MECH_AWS_STAGED = "aws explicit selection, staged as links (computed from the source listing)"
MECH_AWS_FILE = "aws s3 cp (single file)"
MECH_RSYNC_FILE = "rsync (single file)"


@dataclass(frozen=True)
class Step:
    """One process to run: argv plus the environment additions it needs."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
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


@dataclass(frozen=True)
class Plan:
    resolved: Resolved
    mechanism: str
    steps: tuple[Step, ...]
    needs_listing: bool = False  # execute must list the source and call ``finalize``
    staged: tuple[str, ...] = ()  # explicit uploads: link these source files into ``stage_dir`` first
    stage_dir: str | None = None
    source_is_file: bool = False
    warnings: tuple[str, ...] = ()
    engine: str = "aws"  # s3sync: the tool that moves the files (s3engine runs the others)

    @property
    def protocol(self) -> Protocol:
        return self.resolved.protocol

    def to_json(self) -> dict[str, Any]:
        r = self.resolved
        return {
            "protocol": r.protocol.name,
            "type": r.protocol.type,
            "config_files": [r.protocol.file],
            "source": r.source.text,
            "target": r.target.text,
            "destination": r.destination.text,
            "filters": r.rules.as_texts(),
            "mechanism": self.mechanism,
            **({"engine": self.engine} if r.protocol.type == "s3sync" else {}),
            "dry_run": r.dry_run,
            "delete": r.delete,
            "steps": [s.to_json() for s in self.steps],
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------
def resolve_ends(protocol: Protocol, options: SyncOptions) -> tuple[End, End]:
    """Apply --source/--target (replace or append) and --reverse; check the resulting ends."""
    if protocol.type == "git":
        raise UsageError(f"protocol '{protocol.name}' is a git protocol; it has no ends to resolve")
    source = apply_option(protocol.source, options.source, what="source")
    target = apply_option(protocol.target, options.target, what="target")
    assert source is not None and target is not None  # the schema requires both
    if options.reverse:
        source, target = reverse_ends(source, target)
    changed = " (after --source/--target/--reverse)" if (options.source or options.target or options.reverse) else ""

    def where(key: str | None = None) -> str:
        return protocol.where(key) + changed

    return check_protocol_ends(protocol.type, source, target, where, error=UsageError)


def resolve(protocol: Protocol, options: SyncOptions, *, source_is_file: bool = False) -> Resolved:
    """Apply --source/--target (replace or append), filters, --reverse."""
    src, tgt = resolve_ends(protocol, options)
    rules = filter_rules.build_rules(
        protocol.filters,
        override=options.filters,
        prefix=options.fprefix,
        suffix=options.fsuffix,
        no_filter=options.no_filter,
    )
    # A single file always lands inside the target, like a directory's contents do.
    if source_is_file or not (src.trailing_slash or not src.basename):
        destination = tgt.child(src.basename)
    else:
        destination = tgt
    return Resolved(
        protocol=protocol,
        source=src,
        target=tgt,
        destination=destination,
        rules=rules,
        mkpath=options.mkpath or bool(protocol.get("mkpath", False)),
        delete=options.delete or bool(protocol.get("delete", False)),
        dry_run=options.dry_run,
        reverse=options.reverse,
    )


def build(protocol: Protocol, options: SyncOptions, *, source_is_file: bool = False,
          interactive: bool = False) -> Plan:
    """The plan for one rsync or s3sync protocol."""
    resolved = resolve(protocol, options, source_is_file=source_is_file)
    engine = options.engine or protocol.get("engine") or "aws"
    if engine != "aws":
        if protocol.type != "s3sync":
            raise UsageError(f"{protocol.where()}: --engine applies to s3sync protocols only")
        from . import s3engine

        return s3engine.build_plan(resolved, engine, source_is_file=source_is_file)
    if protocol.type == "rsync":
        return _rsync_plan(resolved, source_is_file=source_is_file, interactive=interactive,
                           verbosity=options.verbosity)
    return _s3_plan(resolved, source_is_file=source_is_file, interactive=interactive)


# -- rsync -------------------------------------------------------------------
def rsync_argv(resolved: Resolved, *, source_is_file: bool = False, interactive: bool = False,
               verbosity: int = 0, dry_run: bool = False) -> tuple[str, ...]:
    """The one place rsync flags are built (the CLI and Snakemake both come here)."""
    argv = list(RSYNC_BASE)
    if resolved.mkpath:
        argv.append("--mkpath")
    if resolved.delete:
        argv.append("--delete")  # rsync never deletes what our rules exclude (they protect)
    rsh = resolved.protocol.get("rsh")
    if rsh:
        argv.append(f"--rsh={rsh}")
    argv.append("--stats")
    if interactive:
        argv.append("--info=progress2")
    if verbosity >= 2:
        argv.append("--itemize-changes")
    if dry_run:
        argv.append("--dry-run")
    argv.extend(resolved.rules.rsync_args())
    source = _rsync_operand(resolved.source, directory=not source_is_file)
    dest = _rsync_operand(resolved.destination, directory=not source_is_file)
    argv.append("--")
    argv.extend([source, dest])
    return tuple(argv)


def _rsync_operand(end: End, *, directory: bool) -> str:
    text = end.as_dir().text if directory else end.text
    if end.kind == "local" and (text.startswith("-") or ":" in text.split("/", 1)[0]):
        # '--' already ends the options; './' also keeps rsync from reading a local 'a b:c'
        # (which we classify as local: no valid host) as host 'a b', path 'c'
        text = "./" + text
    return text


def _rsync_plan(resolved: Resolved, *, source_is_file: bool, interactive: bool, verbosity: int) -> Plan:
    argv = rsync_argv(resolved, source_is_file=source_is_file, interactive=interactive, verbosity=verbosity)
    step = Step(name="rsync", argv=argv, purpose=f"{resolved.source.text} -> {resolved.destination.text}")
    mechanism = MECH_RSYNC_FILE if source_is_file else (MECH_RSYNC if resolved.rules else MECH_NONE)
    return Plan(resolved=resolved, mechanism=mechanism, steps=(step,), source_is_file=source_is_file,
                warnings=tuple(resolved.rules.warnings))


# -- s3sync ------------------------------------------------------------------
def aws_global_args(protocol: Protocol) -> list[str]:
    # '--opt=value': a value that looks like an option ('--debug', '--endpoint-url=...') stays a value
    args = []
    if protocol.get("endpoint_url"):
        args.append(f"--endpoint-url={protocol.get('endpoint_url')}")
    if protocol.get("profile"):
        args.append(f"--profile={protocol.get('profile')}")
    if protocol.get("region"):
        args.append(f"--region={protocol.get('region')}")
    return args


def _aws_operand(end: End, *, directory: bool) -> str:
    text = end.as_dir().text if directory else end.text
    if end.kind == "local" and text.startswith("-"):
        text = "./" + text
    return text


def aws_sync_argv(resolved: Resolved, filter_args: Sequence[str], *, interactive: bool = False,
                  dry_run: bool = False) -> tuple[str, ...]:
    """The one place ``aws s3 sync`` flags are built."""
    argv = ["aws", "s3", "sync", _aws_operand(resolved.source, directory=True),
            _aws_operand(resolved.destination, directory=True)]
    argv += aws_global_args(resolved.protocol)
    argv += _joined_options(filter_args)
    if resolved.delete:
        argv.append("--delete")
    if not interactive:
        argv.append("--no-progress")
    if dry_run:
        argv.append("--dryrun")
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


def _s3_plan(resolved: Resolved, *, source_is_file: bool, interactive: bool) -> Plan:
    from . import s3filters

    if source_is_file:
        argv = ["aws", "s3", "cp", _aws_operand(resolved.source, directory=False),
                _aws_operand(resolved.destination, directory=False), *aws_global_args(resolved.protocol)]
        if not interactive:
            argv.append("--no-progress")
        step = Step(name="aws s3 cp", argv=tuple(argv), purpose=f"{resolved.source.text} -> {resolved.destination.text}")
        return Plan(resolved=resolved, mechanism=MECH_AWS_FILE, steps=(step,), source_is_file=True)
    if not resolved.rules:
        argv = aws_sync_argv(resolved, (), interactive=interactive)
        return Plan(resolved=resolved, mechanism=MECH_NONE, steps=(_aws_step(resolved, argv),))
    _check_aws_root(resolved)
    translation = s3filters.translate_for_aws(resolved.rules)
    if translation.exact:
        argv = aws_sync_argv(resolved, translation.args, interactive=interactive)
        return Plan(resolved=resolved, mechanism=MECH_AWS_NATIVE, steps=(_aws_step(resolved, argv),),
                    warnings=tuple(resolved.rules.warnings))
    # No exact fnmatch form for some rule: the steps depend on what the source holds.
    return Plan(resolved=resolved, mechanism=MECH_AWS_EXPLICIT, steps=(), needs_listing=True,
                warnings=tuple(resolved.rules.warnings) + tuple(
                    f"rule {text!r} has no exact aws form; the selection is computed from the source listing"
                    for text in translation.inexact_rules))


def _check_aws_root(resolved: Resolved) -> None:
    """aws joins every filter pattern to the source root and fnmatches the result, so glob
    characters in the root would silently change what every pattern matches."""
    for end in (resolved.source, resolved.destination):
        root = end.as_dir().text
        bad = sorted({c for c in root if c in "*?["})
        if bad:
            raise UsageError(
                f"{resolved.protocol.where()}: {end.text!r} contains {' '.join(bad)}; aws s3 sync cannot apply "
                "filters below a path with glob characters (rename it, or sync it without filters)"
            )


def _aws_step(resolved: Resolved, argv: Sequence[str]) -> Step:
    return Step(name="aws s3 sync", argv=tuple(argv), purpose=f"{resolved.source.text} -> {resolved.destination.text}")


def finalize(plan: Plan, listing: Sequence[str], *, target_listing: Sequence[str] = (),
             interactive: bool = False, aws_process_cost: int | None = None,
             stage_dir: str | None = None, stage_above: int = STAGE_ABOVE_TESTS) -> Plan:
    """Complete an s3 plan that needed the source listing (pure: the listing is given).

    First try the candidate native translation: if aws would select exactly the
    evaluator's files on this listing, it is used ("verified"). Otherwise the exact
    selection is handed to aws as an explicit include list, compressed to whole
    directories where every file is selected.
    """
    from . import s3filters

    if not plan.needs_listing:
        return plan
    resolved = plan.resolved
    # Deletion may remove target files missing at the source: they must be judged too.
    universe = sorted(set(listing) | set(target_listing)) if resolved.delete else list(listing)
    cost = {} if aws_process_cost is None else {"process_cost": aws_process_cost}
    choice = s3filters.choose_aws_filter_args(resolved.rules, universe, **cost)
    mechanism = {"verified": MECH_AWS_VERIFIED, "explicit": MECH_AWS_EXPLICIT,
                 "native": MECH_AWS_NATIVE, "none": MECH_NONE}[choice.mechanism]
    if choice.mechanism == "explicit" and stage_dir and resolved.source.kind == "local" and not resolved.delete \
            and choice.cost > stage_above:
        # aws filters cost ~11 us per file x pattern: a large explicit selection of local files is
        # cheaper as a directory of links to exactly those files, synced with no filter at all.
        # (Not with --delete: there every unselected target file would look deletable.)
        staged = replace(resolved, source=parse_end(stage_dir.rstrip("/") + "/"))
        step = _aws_step(resolved, aws_sync_argv(staged, (), interactive=interactive))
        return replace(plan, mechanism=MECH_AWS_STAGED, steps=(step,), needs_listing=False,
                       staged=tuple(choice.selected or ()), stage_dir=stage_dir)
    steps = []
    for run in choice.runs:
        # A split selection: each run syncs one subtree with the patterns for it alone.
        sub = replace(resolved, source=resolved.source.as_dir().child(run.subdir).as_dir() if run.subdir
                      else resolved.source,
                      destination=resolved.destination.as_dir().child(run.subdir).as_dir() if run.subdir
                      else resolved.destination)
        steps.append(_aws_step(sub, aws_sync_argv(sub, run.args, interactive=interactive)))
    if len(steps) > 1:
        mechanism += f", split into {len(steps)} aws runs"
    return replace(plan, mechanism=mechanism, steps=tuple(steps), needs_listing=False)


def endpoint_parse(text: str) -> End:  # re-exported for callers that only import plan
    return parse_end(text)
