"""Run a sync: load, plan, list what must be listed, finalize the plan, lock, run the steps,
summarise.  A dry run contacts both ends the same way and runs the tools' own dry runs
(``rsync --dry-run``, ``aws s3 sync --dryrun``) to report what they would transfer and delete.

This module orchestrates and builds no argv of its own (it only substitutes run-time operands:
a local root that is a link, resolved; an empty directory for aws' preview of a missing
destination; the glob-free aliases of ``plan.alias_glob_roots``): ``plan`` builds the transfer,
deletion, preview and probe commands, ``listing`` lists an end, ``lock`` holds the destination (and
tells a remote end that is this machine's path: ``refuse_nesting_on_this_machine``), ``failures``
words a tool's failure, and ``runner.Runner`` starts every process.  It decides the run-time
facts the plan is given (is the source a local file: ``probe_source``; the listings; a stage
directory) and owns what happens on disk around the steps (target creation, stage links,
glob-free aliases), and what every engine says and checks before and after moving files, which
``s3engine`` calls too: the headline (``headline``), the guards (``refuse_writes_through_links``,
``refuse_delete_from_empty_source``, ``require_s3_objects``, ``check_target_parent``,
``warn_unmatched_includes``), the target's creation (``prepare_target``) and the report lines
(``report_done``, ``note_skipped``, ``note_file_excluded``, ``report_commands``,
``report_dry_run``).  ``sync`` is the
CLI's entry point: a JSON-ready result; ``run``, the Snakemake wrapper's (through ``api``): that
result (the receipt body) with the source listing the run made (``Outcome``), which the
receipt's audit list reuses.

Counts (the summary's files and bytes, ``transferred`` and ``would_transfer``) are regular files
and their sizes on every backend, dry or real: rsync's ``--stats`` (its dry run's itemized ``f``
entries: a link is no transferred file); the files aws names (``aws_line_ends`` splits its
``<source> to <destination>`` lines), sized by the local file read or written, an S3 -> S3 copy
by the source listing when the run has one, else by one listing of the destination after the
copies.  A size that cannot be known is ``None`` ("size unknown"), never a false number.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import plan as planning
from .config import Protocol, SyncConfig, load_config
from .endpoints import End, EndKind
from .errors import ConfigError, SafetyHalt, StepFailed, SyncError, UsageError, describe_os_error, show_value
from .failures import step_failed as _step_failed
from .filters import Action, FilterList
from .listing import Listing, list_end, regular_only, rsync_unescape
from . import listing as listing_mod
from .lock import DestinationLock, canonical_place
from .mechanism import Engine, ProtocolType
from .options import SyncOptions
from .report import Reporter, format_argv, now_iso, some
from .runner import Completed, Runner

# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """A finished run: its JSON-ready result (what the CLI prints, the body of a receipt) and the
    listing of the source the run made, if it made one (a receipt's audit list reads the
    source's ETags from it instead of listing the source again)."""

    result: dict[str, Any]
    source_listing: Listing | None = None


def sync(config_files: Sequence[str], options: SyncOptions, reporter: Reporter, *,
         env: Mapping[str, str] | None = None, cwd: str | None = None,
         config: SyncConfig | None = None) -> dict[str, Any]:
    """Load the config, run the chosen protocol, return the result (JSON-ready)."""
    return run(config_files, options, reporter, env=env, cwd=cwd, config=config).result


def run(config_files: Sequence[str], options: SyncOptions, reporter: Reporter, *,
        env: Mapping[str, str] | None = None, cwd: str | None = None,
        config: SyncConfig | None = None) -> Outcome:
    """``sync``, with the source listing the run made (``Outcome``)."""
    config = config or load_config(config_files)
    protocol = config.get(options.protocol)
    if env is not None:
        reporter = reporter.with_env(env)  # mask the secrets of the environment the children get
    try:
        with Runner(reporter, env=env) as runner:
            if protocol.type is ProtocolType.GIT:
                return Outcome(run_git(protocol, options, runner, reporter, cwd=cwd))
            return run_transfer(protocol, options, runner, reporter)
    except OSError as exc:  # the environment (an unreadable directory, a full disk): one line, exit 1
        raise StepFailed(f"protocol '{protocol.name}': {describe_os_error(exc)}") from None


def run_git(protocol: Protocol, options: SyncOptions, runner: Runner, reporter: Reporter,
            *, cwd: str | None = None) -> dict[str, Any]:
    from .gitsync import refuse_transfer_options, run_git_protocol

    refuse_transfer_options(protocol, options)
    started = now_iso()
    result = run_git_protocol(protocol, options, runner, reporter, cwd=cwd)
    result.setdefault("protocol", protocol.name)
    result.setdefault("type", ProtocolType.GIT.value)
    result["started"], result["finished"] = started, now_iso()
    result.setdefault("status", "ok")
    return result


def run_transfer(protocol: Protocol, options: SyncOptions, runner: Runner, reporter: Reporter) -> Outcome:
    """An rsync or s3sync run: plan, look at the source, finalize the plan, then the dry run or
    the transfer."""
    start = time.monotonic()
    started = now_iso()
    ends = planning.resolve_ends(protocol, options, env=runner.base_env)
    source_is_file = probe_source(protocol, ends[0], given_as=_source_option(options))
    draft = planning.build(protocol, options, ends=ends, source_is_file=source_is_file, env=runner.base_env)
    refuse_nesting_on_this_machine(draft.resolved, options, runner)
    for warning in draft.warnings:
        reporter.warn(warning)
    reporter.detail(f"protocol {protocol.name!r} ({protocol.type}) from {protocol.file}")
    report_filters(protocol, draft.resolved.rules, reporter)
    for note in draft.resolved.notes:  # (e.g. the protocol's delete not applied off its pairing)
        reporter.note(f"protocol '{protocol.name}': {note}")
    if draft.engine is not Engine.AWS:  # a fast engine lists, compares and moves the selection itself
        from . import s3engine

        return Outcome(s3engine.run(draft, runner, reporter, started=started, start=start))
    source = _look_at_source(draft, options, runner, reporter)
    source_listing = None if draft.source_is_file else source.listing
    plan = _final_plan(draft, source.listing, options, runner, reporter)
    reporter.info(headline(plan))
    if plan.source_is_file and source.selection == [] and isinstance(plan, planning.Plan):
        # the protocol's excludes still apply to a named file (README): rsync would skip it, and
        # 'aws s3 cp' applies no rules, so no backend runs at all
        note_file_excluded(plan, reporter)
        plan = dataclasses.replace(plan, steps=())
    result: dict[str, Any] = {
        **plan.to_json(),
        "started": started,
        "config_files": [protocol.file],
    }
    if source.selection is not None:
        result["selected"] = {"files": len(source.selection), "bytes": sum(size for _, size in source.selection)}
    if source.skipped:
        result["skipped"] = source.skipped
    if options.dry_run:
        assert source.selection is not None
        warn_unmatched_includes(plan, source.listing, runner, reporter)
        return Outcome(_dry_run(plan, source.selection, result, runner, reporter, start), source_listing)
    return Outcome(_transfer(plan, source.listing, result, runner, reporter, start), source_listing)


def refuse_nesting_on_this_machine(resolved: planning.Resolved, options: SyncOptions, runner: Runner) -> None:
    """A local end and a remote one may be one place: ``hpc:/abs`` where ``hpc`` is this machine
    (the plan compares ends by their text, so it cannot see that).  Compared as the destination
    lock compares them (``canonical_place``), so that a source inside the destination is refused
    before a --delete removes it, and a destination inside the source (or the source written onto
    itself) before a run copies the tree into itself, with or without --delete, as the plan refuses
    two local spellings.  Every run asks ``ssh -G`` (one process, ~10 ms, no connection) to
    resolve the alias: an alias of this machine is seen whatever its name."""
    src, dst = resolved.source, resolved.destination
    if EndKind.REMOTE not in (src.kind, dst.kind) or (src.kind == dst.kind and src.host == dst.host):
        return  # never one place (local and S3), or already compared by the plan
    places = (canonical_place(src, resolved.protocol, runner), canonical_place(dst, resolved.protocol, runner))
    planning.check_place_nesting(resolved, options, places)


@dataclass(frozen=True)
class _Source:
    """What a run learnt about its source before the transfer."""

    listing: Listing | None  # the whole listing, when the plan was a draft
    selection: list[tuple[str, int]] | None  # what the rules select, when it was needed
    skipped: list[str]  # selected links/special files a backend without links leaves out


def _look_at_source(plan: "planning.Plan | planning.DraftPlan", options: SyncOptions, runner: Runner,
                    reporter: Reporter) -> _Source:
    """List or select the source as far as the run needs it; refuse an empty S3 source and
    writes through links before anything moves."""
    resolved = plan.resolved
    listing: Listing | None = None
    selection: list[tuple[str, int]] | None = None
    skipped: list[str] = []
    if isinstance(plan, planning.DraftPlan):  # the whole listing is needed (finalize verifies against it)
        listing = list_source(plan, runner, reporter)
        require_s3_objects(plan, listing)
        selection, skipped = _select_listed(resolved.rules, listing)
    elif options.dry_run or plan.source_is_file or (resolved.source.kind == EndKind.LOCAL
                                                   and not listing_mod.copies_links(resolved.protocol)):
        # (a single file is judged by the kept rules before any backend runs: aws s3 cp applies none)
        # (a real S3 upload walks the source too: the links aws will skip are named, not lost silently)
        selection = select_source(plan, runner, reporter, skipped=skipped)
    note_skipped(skipped, reporter)
    if resolved.source.kind == EndKind.S3 and resolved.destination.kind == EndKind.LOCAL:
        refuse_writes_through_links(plan, selection, runner, reporter)
    return _Source(listing, selection, skipped)


def _final_plan(plan: "planning.Plan | planning.DraftPlan", listing: Listing | None, options: SyncOptions,
                runner: Runner, reporter: Reporter) -> planning.Plan:
    """The plan that runs: a draft finalized on the source listing (and, for --delete, the
    target's), with the tools' progress shown on a terminal."""
    if isinstance(plan, planning.DraftPlan):
        assert listing is not None
        resolved = plan.resolved
        target_paths: list[str] = []
        if resolved.delete:
            target_paths = list_end(resolved.destination, resolved.protocol, runner, toward=resolved.source).paths
        stage_dir = None
        if resolved.source.kind == EndKind.LOCAL and not resolved.delete and not options.dry_run:
            stage_dir = tempfile.mkdtemp(prefix="flepimop-sync-stage-")
        final = None
        try:
            final = planning.finalize(plan, listing.paths, target_listing=target_paths, stage_dir=stage_dir,
                                      **_aws_tuning(runner.base_env))
        finally:
            if stage_dir and (final is None or final.stage is None):
                os.rmdir(stage_dir)
        plan = final
    return planning.with_progress(plan) if reporter.is_tty else plan


def _transfer(plan: planning.Plan, listing: Listing | None, result: dict[str, Any], runner: Runner,
              reporter: Reporter, start: float) -> dict[str, Any]:
    """The real run: the checks that need no lock, then the steps under the destination lock."""
    resolved = plan.resolved
    checked = listing is not None
    # The refusals that need nothing but the plan come before anything is created.
    planning.refuse_glob_root_names(plan, os.getcwd())
    # Every missing level of a local destination, deepest first: whatever this run creates there
    # is removed again (when still empty) if the run is refused later on, so a refused run (exit
    # 2) leaves the disk as it was.  A download into a missing directory: aws creates it even
    # when the source holds nothing, so there the levels also go when the run fails, without an
    # `aws s3 ls` (~1 s) before it.
    created = _missing_levels(resolved.destination)
    on_failure = created if not checked and resolved.source.kind == EndKind.S3 else []
    if resolved.delete:
        listing = refuse_delete_from_empty_source(plan, listing, runner, reporter)
    # S3 -> S3 copies: aws names no size, so the sizes come from the source listing when the run
    # has one (a draft's, or --delete's above), else from one listing after the copies (_copy_sizes)
    sizes = {} if listing is None or resolved.source.kind != EndKind.S3 else \
        {resolved.source.as_dir().text + path: size for path, size in listing.files}
    try:
        with DestinationLock(resolved.destination, resolved.protocol, runner) as lock, runner.inheriting(lock.fds):
            # (the writers hold the lock too: see Runner.inheriting)
            transferred, commands = _run_steps(plan, result, runner, reporter, sizes)
        if not transferred["files"] and not checked:
            # nothing moved: a mistyped S3 prefix looks exactly like this, so make sure the source exists
            require_s3_objects(plan, None, runner)
    except (UsageError, ConfigError):  # a refusal: "nothing was run, nothing changed"
        _remove_if_empty(created)
        raise
    except BaseException:
        _remove_if_empty(on_failure)
        raise
    seconds = time.monotonic() - start
    result.update(status="ok", transferred=transferred, seconds=round(seconds, 3), finished=now_iso(),
                  commands=commands)
    report_done(resolved, transferred, seconds, reporter)
    return result


def note_file_excluded(plan: planning.Plan, reporter: Reporter) -> None:
    """The line of a single-file source the kept rules exclude, which no backend moves (every engine)."""
    reporter.info(f"the protocol's filters exclude {plan.resolved.source.text!r}: nothing is transferred")


def note_skipped(skipped: Sequence[str], reporter: Reporter) -> None:
    """The note naming the selected links and special files an S3 run leaves out (every engine)."""
    if skipped:
        reporter.info(f"note: {len(skipped)} selected symbolic link(s) or special file(s) skipped: S3 stores "
                      f"regular files only and links are never followed ({some(skipped)})")


def report_done(resolved: planning.Resolved, transferred: Mapping[str, Any], seconds: float,
                reporter: Reporter) -> None:
    """The closing summary of a real run (every backend and engine): files, bytes (the regular
    files moved; None: not known, said so), time, where."""
    size = "size unknown" if transferred["bytes"] is None else human_bytes(transferred["bytes"])
    reporter.result(
        f"done: {transferred['files']} file(s), {size} transferred "
        f"in {seconds:.1f}s ({resolved.protocol.name}: {resolved.source.text} -> {resolved.destination.text})"
    )


def _run_steps(plan: planning.Plan, result: dict[str, Any], runner: Runner, reporter: Reporter,
               sizes: Mapping[str, int]) -> tuple[dict[str, Any], list[list[str]]]:
    """Prepare the target (and the stage, and glob-free aliases), run every step, then rsync's
    deletions; ``result`` gets the deleted files.  Returns (transferred, commands): the regular
    files moved and their bytes (None when a size cannot be known, never a false number)."""
    resolved = plan.resolved
    transferred: dict[str, Any] = {"files": 0, "bytes": 0}
    unsized: list[str | None] = []
    commands: list[list[str]] = []
    alias_dir = None
    try:
        prepare_target(plan)
        plan, alias_dir = _alias_glob_roots(plan, create=True)
        if plan.stage:
            _stage_links(plan, reporter)
        for step in plan.steps:
            outcome = _run_step(step, plan, runner, reporter, sizes)
            commands.append(list(step.argv))
            transferred["files"] += outcome["files"]
            transferred["bytes"] += outcome["bytes"]
            unsized += outcome.get("unsized", [])
            if resolved.delete and "deleted" in outcome:
                result["deleted"] = sorted(result.get("deleted", []) + outcome["deleted"])
        if resolved.delete and resolved.protocol.type is ProtocolType.RSYNC:
            result["deleted"] = _rsync_delete(plan, runner, reporter, commands)
        if unsized:
            more = _copy_sizes(plan, unsized, runner, reporter)
            transferred["bytes"] = None if more is None else transferred["bytes"] + more
    finally:
        if plan.stage:
            shutil.rmtree(plan.stage.directory, ignore_errors=True)  # links only: never follows them
        if alias_dir:
            shutil.rmtree(alias_dir, ignore_errors=True)  # links only: never follows them
    return transferred, commands


def _copy_sizes(plan: planning.Plan, copied: Sequence[str | None], runner: Runner, reporter: Reporter) -> int | None:
    """The bytes of S3 -> S3 copies (destination URLs) whose size no listing in hand knew: one
    listing of the destination, after the copies, under the run's lock (what arrived, as a
    download's size is what landed).  Only runs that copied something pay for it (one aws
    process, ~0.8 s CPU measured against a local S3: about as much as a small sync itself); a
    no-op run, a dry run, a draft's run and a --delete run never do.  None (unknown) when it
    fails, or a line named no file of the step."""
    if None in copied:
        return None
    r = plan.resolved
    try:
        listing = list_end(r.destination, r.protocol, runner)
    except StepFailed as error:
        reporter.warn(f"the copies succeeded, but their sizes are unknown: {error}")
        return None
    root = r.destination.as_dir().text
    sizes = {root + path: size for path, size in listing.files}
    if any(url not in sizes for url in copied):  # e.g. removed again by someone else meanwhile
        return None
    return sum(sizes[url] for url in copied)


def _stage_links(plan: planning.Plan, reporter: Reporter) -> None:
    """Link exactly the selected source files into the stage directory (aws follows these links,
    and only these).  The selection holds regular files only (the s3sync listing leaves links
    out); an entry that became a link, or whose directory now leads out of the source through a
    link, since the listing is not staged."""
    assert plan.stage is not None
    stage = plan.stage
    root = os.path.realpath(plan.resolved.source.path or ".")
    made: set[str] = set()
    inside: dict[str, bool] = {}
    dropped = []
    for rel in stage.files:
        source = os.path.join(root, rel)
        rel_dir = os.path.dirname(rel)
        if rel_dir not in inside:
            inside[rel_dir] = os.path.realpath(os.path.join(root, rel_dir)) == os.path.join(root, rel_dir).rstrip("/")
        try:
            regular = inside[rel_dir] and stat.S_ISREG(os.lstat(source).st_mode)
        except OSError:
            regular = False
        if not regular:
            dropped.append(rel)
            continue
        link = os.path.join(stage.directory, rel)
        parent = os.path.dirname(link)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        os.symlink(source, link)
    if dropped:
        reporter.warn(f"{len(dropped)} selected file(s) changed into links or vanished since the listing and "
                      f"were not uploaded ({some(dropped)})")
    reporter.detail(f"staged {len(stage.files) - len(dropped)} selected file(s) as links in {stage.directory}")


def refuse_writes_through_links(plan: planning.Plan, selection: "list[tuple[str, int]] | None",
                                 runner: Runner, reporter: Reporter) -> None:
    """An S3 download writes each key's file below the local destination; aws (even with
    --no-follow-symlinks) writes *through* a symbolic link to a directory found on the way,
    i.e. outside the target (rsync would replace the link by a directory).  Refuse before
    anything moves, naming the link, in the dry run as in the real run."""
    r = plan.resolved
    tree = listing_mod.walk_local(r.destination.path or ".")
    if not any(is_dir for _, is_dir in tree.links):
        return
    if selection is None:
        selection = select_source(plan, runner, reporter)
    through = listing_mod.links_on_the_way(tree, [p for p, _ in selection])
    if through:
        path, link = next(iter(sorted(through.items())))
        target = os.readlink(os.path.join(r.destination.path or ".", link))
        raise SafetyHalt(
            f"protocol '{r.protocol.name}': {len(through)} selected file(s) would be written through the symbolic "
            f"link {link!r} (-> {target!r}) at {r.destination.text!r}, outside the target (e.g. {path!r}); "
            f"replace the link by a directory, or exclude it with a filter"
        )


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


def headline(plan: planning.Plan) -> str:
    r = plan.resolved
    verb = "dry run" if r.dry_run else "sync"
    return f"{verb} '{r.protocol.name}' ({r.protocol.type}): {r.source.text} -> {r.destination.text} [{plan.mechanism_text}]"


def _planned_deletions(plan: planning.Plan, selection: list[tuple[str, int]], runner: Runner,
                       reporter: Reporter, *, strict: bool = False) -> list[str]:
    """Target entries a --delete run removes: missing at the source and selected by the rules.
    Files (and, where the backend copies links, links) only: never a directory, never anything
    behind a link.  The dry run prints this list; a real rsync run deletes exactly it."""
    r = plan.resolved
    if plan.source_is_file:
        # One file replaces one entry: nothing is missing at the source.  (Listing '<target>/<name>'
        # would read a same-named directory there as the target, and delete all of it.)
        reporter.info("--delete: the source is a single file, so nothing is deleted")
        return []
    try:
        target = list_end(r.destination, r.protocol, runner, toward=r.source)
    except StepFailed as error:  # e.g. the target does not exist yet: nothing there to delete
        if strict:
            raise
        # not a warning: the dry run's own rsync preview already failed loudly if the host is unreachable
        reporter.detail(f"could not list the target to preview deletions: {error}")
        return []
    present = {p for p, _ in selection}
    rules = r.rules
    return [p for p in target.paths if p not in present and (not rules or rules.selects(p))]


# -- dry run ------------------------------------------------------------------------
def _dry_run(plan: planning.Plan, selection: list[tuple[str, int]], result: dict[str, Any], runner: Runner,
             reporter: Reporter, start: float) -> dict[str, Any]:
    """Contact both ends as the real run would and let the tools themselves say what they would
    transfer and delete (``rsync --dry-run --itemize-changes``, ``aws s3 sync --dryrun``); fail
    where the real run would fail.  The report (selection, commands) goes to stdout."""
    r = plan.resolved
    require_s3_objects(plan, Listing(files=tuple(selection)) if selection else None, runner)
    check_target_parent(plan, runner)
    # rsync runs without --delete; the real run then deletes exactly this list with one more
    # command, only when the list is not empty (_rsync_delete): that command is shown then only
    rsync_deletions = _planned_deletions(plan, selection, runner, reporter) \
        if r.delete and r.protocol.type is ProtocolType.RSYNC else None
    alias_dir = None
    try:
        plan, alias_dir = _alias_glob_roots(plan)
        if reporter.verbosity >= 1:
            argvs = [step.argv for step in plan.steps]
            if rsync_deletions:
                argvs.append(planning.rsync_delete_argv(r, "<directory skeleton>", "<the files listed as 'would delete'>"))
            report_commands(argvs, selection, reporter)
        sizes = {r.source.as_dir().text + path: size for path, size in selection}
        transfer: list[tuple[str, int | None]] = []
        deletions: list[str] = []
        for step in plan.steps:
            if r.protocol.type is ProtocolType.RSYNC:
                _rsync_preview(step, plan, runner, reporter, transfer, deletions)
            else:
                _aws_preview(step, plan, runner, sizes, transfer, deletions)
    finally:
        if alias_dir:
            shutil.rmtree(alias_dir, ignore_errors=True)
    if rsync_deletions is not None:
        deletions = rsync_deletions
    return report_dry_run(selection, transfer, deletions, result, reporter, start)


def report_filters(protocol: Protocol, rules: FilterList, reporter: Reporter) -> None:
    """How the list was built, when that is worth a note; at -v the list (FILTERS.md section 1),
    each rule with where it came from."""
    for note in rules.notes:
        reporter.note(f"protocol '{protocol.name}': {note}")
    if not rules:
        reporter.verbose("filters: none (everything)")
        return
    reporter.verbose("filters (first match wins):")
    width = max(len(r.text) for r in rules.rules)
    for rule in rules.rules:
        reporter.verbose(f"  {rule.text:<{width}}  ({rule.origin})")


def report_commands(argvs: Sequence[Sequence[str]], selection: Sequence[tuple[str, int]],
                    reporter: Reporter) -> None:
    """A dry run's -v report (every backend and engine): the exact commands a real run would
    execute, then the selection."""
    reporter.info("commands a real run would execute:")
    for argv in argvs:
        reporter.info(f"  {format_argv(argv, reporter.env)}")
    for path, size in selection:
        reporter.info(f"  selected: {path}  ({size} bytes)")


def report_dry_run(selection: Sequence[tuple[str, int]], transfer: Sequence[tuple[str, int | None]],
                   deletions: Sequence[str], result: dict[str, Any], reporter: Reporter,
                   start: float) -> dict[str, Any]:
    """The dry run's report, the same for every backend and engine: what the filters select
    beside what the tool would transfer and delete (stdout), and the JSON keys scripts read."""
    deletions = list(deletions)
    if reporter.verbosity >= 1:
        for path, size in transfer:
            reporter.info(f"  would transfer: {path}  ({'size unknown' if size is None else f'{size} bytes'})")
    for path in deletions:
        reporter.info(f"would delete: {path}")
    selected_bytes = sum(size for _, size in selection)
    sized = [size for _, size in transfer if size is not None]
    moved_bytes = sum(sized) if len(sized) == len(transfer) else None  # (None: not known, never a false number)
    result["selection"] = [path for path, _ in selection]  # for scripts reading --json
    result["would_transfer"] = {"files": len(transfer), "bytes": moved_bytes}
    result["would_delete"] = deletions
    reporter.result(
        f"selected {len(selection)} file(s) ({human_bytes(selected_bytes)}); would transfer {len(transfer)} "
        f"({'size unknown' if moved_bytes is None else human_bytes(moved_bytes)}), delete {len(deletions)} "
        "(dry run: nothing was changed)"
    )
    result.update(status="dry-run", seconds=round(time.monotonic() - start, 3), finished=now_iso())
    return result


def _rsync_preview(step: planning.Step, plan: planning.Plan, runner: Runner, reporter: Reporter,
                   transfer: list[tuple[str, int | None]], deletions: list[str]) -> None:
    """``rsync --dry-run``, itemized with each file's size: what rsync itself would send and delete."""
    argv = planning.rsync_preview_argv(step.argv)

    def on_line(line: str) -> None:
        match = _RSYNC_ITEM.match(line)
        if not match:
            return
        item, size, name = match.groups()
        name = rsync_unescape(name)
        if item == "*deleting":
            if not name.endswith("/"):
                deletions.append(name)
        elif item[0] in "<>ch" and item[1] == "f":
            # a regular file rsync would send: what the real run's --stats count ("Number of
            # regular files transferred", "Total transferred file size"); a link it would create
            # is no transferred file there (and its %l is its target's length, not a size)
            transfer.append((name, int(re.sub(r"[,.]", "", size))))
        if reporter.verbosity >= 2:
            reporter.detail(line)

    done = runner.stream(argv, on_stdout=on_line)
    if done.returncode != 0:
        raise _step_failed(f"{step.name} (dry run)", done, plan.protocol, runner.base_env)


_RSYNC_ITEM = re.compile(r"^(\*deleting|[<>ch.*][fdLDS][^ ]*) +([\d,.]+) (.*)$")
_AWS_DRY = re.compile(r"^\(dryrun\) (upload|download|copy|delete): (.*)$")


def _aws_preview(step: planning.Step, plan: planning.Plan, runner: Runner,
                 sizes: Mapping[str, int], transfer: list[tuple[str, int | None]], deletions: list[str]) -> None:
    """``aws s3 sync --dryrun`` (or ``cp``): the lines aws itself prints for what it would do."""
    argv = list(planning.aws_preview_argv(_aws_linked_roots(step.argv)))  # the operands the real run gives aws
    r = plan.resolved
    src_root = r.source.as_dir().text
    cwd = os.getcwd()

    def on_line(line: str) -> None:
        match = _AWS_DRY.match(line)
        if not match:
            return
        action, rest = match.groups()
        if action == "delete":
            deletions.append(_relative_to_end(rest, r.destination, argv[4] if len(argv) > 4 else ""))
            return
        ends = aws_line_ends(action, rest, argv, cwd)
        if ends is None:  # (not a line of this step: counted, its size unknown)
            transfer.append((rest, None))
            return
        source = ends[0]
        # an upload's size is the file's now, a download's or copy's the listed object's (the
        # sizes the real run reports: what landed, or the listing)
        size = _aws_moved_size(action, ends, sizes) if action == "upload" else sizes.get(source)
        rel = source[len(src_root):] if source.startswith(src_root) else \
            _relative_to_end(source, r.source, argv[3])
        transfer.append((rel, size))

    empty = None
    if argv[1:3] == ["s3", "sync"] and not argv[4].startswith("s3://") and not os.path.exists(argv[4]):
        # aws creates a missing local destination even with --dryrun: preview into an empty one
        empty = tempfile.mkdtemp(prefix="flepimop-sync-dry-")
        argv[4] = empty + "/"
    try:
        done = runner.stream(argv, on_stdout=on_line)
    finally:
        if empty:
            shutil.rmtree(empty, ignore_errors=True)
    if done.returncode != 0:
        raise _step_failed(f"{step.name} (dry run)", done, plan.protocol, runner.base_env)


def _relative_to_end(path: str, end: End, operand: str) -> str:
    """A path aws printed, relative to the end (it prints S3 URLs whole and local paths relative to
    the working directory, or through the operand it was given)."""
    for root in (end.as_dir().text, operand):
        if root and path.startswith(root):
            return path[len(root):]
    if not path.startswith("s3://"):
        for root in (end.as_dir().path or "./", operand):
            full = os.path.abspath(root)
            if root and os.path.abspath(path).startswith(full.rstrip("/") + "/"):
                return os.path.relpath(os.path.abspath(path), full)
    return path


def require_s3_objects(plan: planning.Plan, listing: "Listing | None", runner: Runner | None = None) -> None:
    """An S3 source prefix holding no objects is a mistake (a typo in the prefix), not a success:
    a missing local or remote directory fails too."""
    r = plan.resolved
    if r.source.kind != EndKind.S3 or plan.source_is_file:
        return
    if listing is not None and listing.files:
        return
    if listing is None:
        if runner is None:
            return
        done = runner.run(planning.aws_ls_argv(r.protocol, r.source))
        if done.returncode == 0 and done.stdout.strip():
            return
        if done.returncode not in (0, 1) or done.stderr.strip():
            raise _step_failed("checking the S3 source", done, r.protocol, runner.base_env)
    raise StepFailed(f"protocol '{r.protocol.name}': the S3 source {r.source.as_dir().text!r} holds no objects "
                     "(check the bucket and the prefix)", step="checking the S3 source")


# -- the target --------------------------------------------------------------------
CHECKING_TARGET = "checking the target"  # the step that refuses a target whose parent is missing (dry and real runs)


def _target_parent(end: End) -> str:
    path = end.path.rstrip("/")
    return posixpath.dirname(path) if "/" in path else ""


def _no_target_parent(r: planning.Resolved, parent: str, *, dry_run: bool = False) -> StepFailed:
    """The refusal of a target whose parent is missing (before any transfer: nothing was written)."""
    would = ", so the real run would fail" if dry_run else ""
    return StepFailed(f"protocol '{r.protocol.name}': the target's parent {parent!r} does not exist{would} "
                      "(create it or use --mkpath)", step=CHECKING_TARGET)


def check_target_parent(plan: planning.Plan, runner: Runner) -> None:
    """Plain rsync creates a missing target's last level, no more; --mkpath creates them all.
    The dry run checks what the real run would need (rsync --dry-run itself never fails there)."""
    r = plan.resolved
    if r.mkpath or r.target.kind == EndKind.S3:
        return
    if r.target.kind == EndKind.LOCAL:
        if os.path.isdir(r.target.path or ".") or os.path.isdir(_target_parent(r.target) or "."):
            return
        parent = _target_parent(r.target)
    else:
        parent = _target_parent(r.target)
        if not parent or parent in ("~",):
            return  # the remote home
        done = runner.run(planning.rsync_probe_dir_argv(r.protocol, r.target.with_path(parent + "/")))
        if done.returncode == 0:
            return
        if done.returncode != 23:  # 23: no such directory; anything else: the host itself failed
            raise _step_failed(f"{CHECKING_TARGET} (dry run)", done, r.protocol, runner.base_env)
    raise _no_target_parent(r, parent, dry_run=True)


def _missing_levels(end: End) -> list[str]:
    """The missing directories of a local end, deepest first (what a run would create)."""
    if end.kind != EndKind.LOCAL:
        return []
    missing = []
    path = os.path.abspath(end.path or ".")
    while not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _remove_if_empty(directories: Sequence[str]) -> None:
    """Remove each directory (deepest first) that is still empty: rmdir never removes a file."""
    for path in directories:
        try:
            os.rmdir(path)
        except OSError:
            pass


def prepare_target(plan: planning.Plan) -> None:
    """Create a missing local target's last level as plain ``rsync -a src dst`` does (our rsync runs
    as ``src/ dst/src/``, which would need two levels).  aws creates every level itself: refuse
    the deeper ones without --mkpath, as rsync does."""
    r = plan.resolved
    if r.target.kind != EndKind.LOCAL or os.path.isdir(r.target.path or "."):
        return
    parent = _target_parent(r.target)
    if not r.mkpath and not os.path.isdir(parent or "."):
        if r.protocol.type is ProtocolType.RSYNC:
            return  # rsync fails itself, naming the directory
        raise _no_target_parent(r, parent)
    if r.destination.text != r.target.text:
        try:
            os.makedirs(r.target.path) if r.mkpath else os.mkdir(r.target.path)
        except FileExistsError:
            pass


def _make_remote_target(plan: planning.Plan, failed: Completed, runner: Runner) -> bool:
    """rsync could not create ``host:target/name/`` because ``target`` is missing too: create
    ``target`` the way plain ``rsync -a src host:target`` would (its last level only: this fails,
    naming it, when the parent is missing as well), so that the caller runs the step again."""
    r = plan.resolved
    if r.target.kind != EndKind.REMOTE or r.mkpath or r.destination.text == r.target.text:
        return False
    if 'mkdir "' not in failed.stderr or "No such file or directory" not in failed.stderr:
        return False
    done = runner.run(planning.rsync_make_dir_argv(r, source_is_file=plan.source_is_file))
    if done.returncode != 0:
        raise _step_failed("creating the target", done, r.protocol, runner.base_env)
    return True


def _alias_glob_roots(plan: planning.Plan, *, create: bool = False) -> tuple[planning.Plan, str | None]:
    """Glob-free links for aws roots with glob characters (see plan.alias_glob_roots).  ``create``
    (a real run): a destination root that does not exist yet is made first, so that aws finds
    a directory there (its parent was checked by prepare_target)."""
    cwd = os.getcwd()
    if not planning.aws_glob_roots(plan, cwd):
        return plan, None
    alias_dir = tempfile.mkdtemp(prefix="flepimop-sync-root-")
    try:
        plan = planning.alias_glob_roots(plan, cwd, alias_dir)
        for link, parent in plan.aliases:
            os.symlink(parent, link)
        if create:  # a download's root may not exist yet (its parent was checked by prepare_target)
            for step in plan.steps:
                for operand in step.argv[3:5]:
                    if operand.startswith(alias_dir):
                        os.makedirs(operand, exist_ok=True)
    except BaseException:
        shutil.rmtree(alias_dir, ignore_errors=True)
        raise
    return plan, alias_dir


def _rsync_delete(plan: planning.Plan, runner: Runner, reporter: Reporter, commands: list) -> list[str]:
    """--delete for rsync, after the transfer: list both ends again, then have rsync remove
    exactly the selected target entries the source lacks (``plan.rsync_delete_argv``).  rsync's
    own --delete would also remove directories, empty or emptied, which no dry run lists."""
    selection = select_source(plan, runner, reporter)
    deletions = _planned_deletions(plan, selection, runner, reporter, strict=True)
    if not deletions:
        return []
    with tempfile.TemporaryDirectory(prefix="flepimop-sync-delete-") as work:
        skeleton = os.path.join(work, "skeleton")
        os.mkdir(skeleton)
        for parent in sorted({posixpath.dirname(p) for p in deletions} - {""}):
            os.makedirs(os.path.join(os.fsencode(skeleton), os.fsencode(parent)), exist_ok=True)
        list_file = os.path.join(work, "delete.list")
        with open(list_file, "wb") as fh:
            fh.write(b"".join(os.fsencode(p) + b"\0" for p in deletions))
        step = planning.Step(name="rsync (delete)", argv=planning.rsync_delete_argv(plan.resolved, skeleton, list_file),
                             purpose=f"delete {len(deletions)} selected file(s) missing at the source")
        deleted: list[str] = []

        def on_line(line: str) -> None:
            if line.startswith("*deleting "):
                deleted.append(line[len("*deleting "):].strip())
                reporter.detail(line)

        done = runner.stream(step.argv, env={"LC_ALL": "C"}, on_stdout=on_line, live=False)
        commands.append(list(step.argv))
        if done.returncode != 0:
            raise _step_failed(step.name, done, plan.protocol, runner.base_env)
    reporter.info(f"deleted {len(deletions)} selected file(s) missing at the source")
    return deletions


# -- probing and listing -------------------------------------------------------
def _source_option(options: SyncOptions) -> str | None:
    """-s/--source when it wrote the run's source end; None otherwise, and under ``--reverse``
    (the ends are swapped there: the source is not simply what -s wrote)."""
    return "-s/--source" if options.source and not options.reverse else None


def probe_source(protocol: Protocol, src: End, *, strict: bool = True, given_as: str | None = None) -> bool:
    """Is the (resolved) source a single local file?  The one home of that rule.  ``strict`` (a
    run): refuse a missing local source before running anything; otherwise (``--plan``, rerun
    digests) a missing or unreadable source is simply not a file.  ``given_as``: the option that
    wrote the source, named in the refusal instead of the config key the user did not write."""
    if src.kind != EndKind.LOCAL:
        return False  # remote single files are not probed: rsync/aws treat them as dirs
    path = Path(src.path)
    where = f"{protocol.where()} {given_as}" if given_as else protocol.where("source")
    try:
        path.stat()
    except FileNotFoundError:
        if not strict:
            return False
        raise UsageError(f"{where}: local source {show_value(src.text, 200)} does not exist") from None
    except OSError as exc:  # ENAMETOOLONG, EACCES, ELOOP, ENOTDIR...
        if not strict:
            return False
        raise UsageError(f"{where}: local source {show_value(src.text, 200)}: {exc.strerror}") from None
    return path.is_file()


def warn_unmatched_includes(plan: planning.Plan, listing: "Listing | None", runner: Runner,
                             reporter: Reporter) -> None:
    """Dry run: name each include rule that matches nothing at the source (issue 12 point 5: a
    warning is for a surprise the user must act on, e.g. a run index that does not exist)."""
    rules = plan.resolved.rules
    if not rules or plan.source_is_file or not any(r.action != Action.EXCLUDE and not r.implicit for r in rules.rules):
        return
    if listing is None:
        listing = list_source(plan, runner, reporter)
    for rule in rules.unmatched_includes(listing.paths):
        reporter.warn(f"filter {rule.text!r} ({rule.origin}) matches no file or directory at the source "
                      f"{plan.resolved.source.text}")


def list_source(plan: planning.Plan, runner: Runner, reporter: Reporter) -> Listing:
    r = plan.resolved
    if plan.source_is_file:
        path = Path(r.source.path)
        return Listing(files=((path.name, path.stat().st_size),))
    reporter.debug(f"listing {r.source.text}")
    return list_end(r.source, r.protocol, runner, toward=r.destination)


def refuse_delete_from_empty_source(plan: planning.Plan, listing: "Listing | None", runner: Runner,
                                     reporter: Reporter) -> Listing:
    """--delete mirrors the source: an empty source (a mistyped prefix, an unmounted disk)
    would wipe every selected file at the target. Refuse that instead.  Returns the listing
    (the one given, or the one made here)."""
    if listing is None:
        listing = list_source(plan, runner, reporter)
    if not listing.files:
        r = plan.resolved
        raise SafetyHalt(
            f"protocol '{r.protocol.name}': the source {r.source.text!r} holds no files; refusing to --delete "
            f"what the filters select at {r.destination.text!r} (check the source path, or delete by hand)"
        )
    return listing


def select_source(plan: planning.Plan, runner: Runner, reporter: Reporter,
                  skipped: "list[str] | None" = None) -> list[tuple[str, int]]:
    """What the rules select at the source: sorted (relative path, size).

    A local directory is walked once with the rules applied during the walk (subtrees the
    leading '-' rules exclude are never entered, and only selected files are stat'ed); other
    sources are listed, then filtered.  Links are never followed; for a backend that does not
    copy links (S3) selected links and special files are left out and added to ``skipped``.
    """
    return select_and_list_source(plan, runner, reporter, skipped)[0]


def select_and_list_source(plan: planning.Plan, runner: Runner, reporter: Reporter,
                           skipped: "list[str] | None" = None) -> tuple[list[tuple[str, int]], Listing | None]:
    """``select_source``, and the listing of the source directory it was made from (None when
    a local directory was walked with the rules instead, or the source is a single file)."""
    r = plan.resolved
    if not plan.source_is_file and r.source.kind == EndKind.LOCAL and r.rules:
        reporter.debug(f"selecting from {r.source.text}")
        if not os.path.isdir(r.source.path or "."):
            return [], None
        chosen = r.rules.select_local(r.source.path or ".")
        if listing_mod.copies_links(r.protocol):
            return chosen, None
        chosen, odd = regular_only(r.source.path or ".", chosen)
        if skipped is not None:
            skipped.extend(odd)
        return chosen, None
    listing = list_source(plan, runner, reporter)
    chosen, odd = _select_listed(r.rules, listing)
    if skipped is not None:
        skipped.extend(odd)
    if plan.source_is_file:  # the file itself, unless the kept rules exclude it (as rsync does)
        return chosen, None
    return chosen, listing


def _select_listed(rules: FilterList | None, listing: Listing) -> tuple[list[tuple[str, int]], list[str]]:
    """The listed files the rules select (all without rules), and the selected entries the
    listing left out (links and special files, which S3 cannot store)."""
    if not rules:
        return list(listing.files), list(listing.skipped)
    return rules.select_paths(listing.files), [p for p in listing.skipped if rules.selects(p)]


# -- running steps ---------------------------------------------------------------
_RSYNC_STAT = re.compile(r"^(Number of regular files transferred|Total transferred file size):\s*([\d,.]+)")
_AWS_DONE = re.compile(r"^(upload|download|copy|delete): ")


def _run_step(step: planning.Step, plan: planning.Plan, runner: Runner, reporter: Reporter,
              sizes: Mapping[str, int]) -> dict[str, Any]:
    if plan.protocol.type is ProtocolType.RSYNC:  # every step of its plan is an rsync (an s3sync's: aws)
        return _run_rsync_step(step, plan, runner, reporter)
    return _run_aws_step(step, plan, runner, reporter, sizes)


def _run_rsync_step(step: planning.Step, plan: planning.Plan, runner: Runner, reporter: Reporter) -> dict[str, int]:
    """rsync, counting what its --stats report; a missing remote target's last level is created
    (``_make_remote_target``) and the step run again."""
    stats: dict[str, int] = {}

    def on_line(line: str) -> None:
        match = _RSYNC_STAT.match(line)
        if match:
            stats[match.group(1)] = int(re.sub(r"[,.]", "", match.group(2)))
        elif reporter.verbosity >= 2 and re.match(r"^[<>ch.*][fdLDS]", line):
            reporter.detail(line)

    done = runner.stream(step.argv, on_stdout=on_line, live=reporter.is_tty)
    name = step.name
    if done.returncode in (3, 11) and _make_remote_target(plan, done, runner):
        name = f"{step.name} (run again after creating the target {plan.resolved.target.text})"
        done = runner.stream(step.argv, on_stdout=on_line, live=reporter.is_tty)
    if done.returncode != 0:
        raise _step_failed(name, done, plan.protocol, runner.base_env)
    return {"files": stats.get("Number of regular files transferred", 0),
            "bytes": stats.get("Total transferred file size", 0)}


def _run_aws_step(step: planning.Step, plan: planning.Plan, runner: Runner, reporter: Reporter,
                  sizes: Mapping[str, int]) -> dict[str, Any]:
    """aws, counting the files it names and their sizes (``_aws_moved_size``); the files it
    deletes are named in ``deleted`` (the --json result names them, as rsync's and rclone's do),
    and S3 -> S3 copies whose size ``sizes`` (S3 URL -> size) does not know in ``unsized`` (their
    destination URLs), or ``None`` in it for a line that names no file this step could move."""
    dest = plan.resolved.destination
    argv = _aws_linked_roots(step.argv)
    cwd = os.getcwd()  # aws prints local paths relative to its working directory: ours
    counts: dict[str, Any] = {"files": 0, "bytes": 0, "deleted": [], "unsized": []}

    def on_aws_line(line: str) -> None:
        match = _AWS_DONE.match(line)
        if not match:
            return
        reporter.detail(line)
        action, rest = match.group(1), line[match.end():]
        if action == "delete":
            counts["deleted"].append(_relative_to_end(rest, dest, argv[4] if len(argv) > 4 else ""))
            return
        counts["files"] += 1
        ends = aws_line_ends(action, rest, argv, cwd)
        size = None if ends is None else _aws_moved_size(action, ends, sizes)
        if size is None:
            counts["unsized"].append(ends[1] if ends and action == "copy" else None)
        else:
            counts["bytes"] += size

    done = runner.stream(argv, on_stdout=on_aws_line, live=reporter.is_tty)
    if done.returncode != 0:
        raise _step_failed(step.name, done, plan.protocol, runner.base_env)
    return counts


def _aws_moved_size(action: str, ends: tuple[str, str], sizes: Mapping[str, int]) -> int | None:
    """The size of one file aws moved: the local file an upload read or a download wrote, an
    S3 -> S3 copy's from ``sizes`` (None when unknown)."""
    if action == "copy":
        return sizes.get(ends[0])
    try:
        return os.path.getsize(ends[0] if action == "upload" else ends[1])
    except OSError:  # gone already (removed by someone else): its size is unknown, not 0
        return None


def aws_line_ends(action: str, rest: str, argv: Sequence[str], cwd: str) -> tuple[str, str] | None:
    """(source, destination) as an aws line names them after ``upload: ``, ``download: `` or
    ``copy: `` (with or without ``(dryrun) ``): S3 URLs whole, local paths relative to ``cwd``.

    aws writes ``<source> to <destination>`` and either side may contain `` to `` (a key
    ``p/b to c.txt``), so the split chosen is the one whose two sides name the same file below the
    step's operands (``argv[3]``, ``argv[4]``): the S3 side starts with its operand, and the
    relative tail after it, joined to the other operand, is the local side (compared as absolute
    normalised paths, as aws computes them), or the other S3 side.  ``aws s3 cp`` of one local
    file names the operand itself.  None when no split fits (not a line of this step)."""
    src_op, dst_op = argv[3], argv[4]
    single = argv[2] == "cp"
    parts = rest.split(" to ")
    for i in range(1, len(parts)):
        left, right = " to ".join(parts[:i]), " to ".join(parts[i:])
        if action == "upload":
            if single:
                ok = _same_local(left, src_op, "", cwd) and right == (dst_op + _basename(src_op)
                                                                      if dst_op.endswith("/") else dst_op)
            else:
                ok = right.startswith(dst_op) and _same_local(left, src_op, right[len(dst_op):], cwd)
        elif action == "download":
            ok = left.startswith(src_op) and _same_local(right, dst_op, left[len(src_op):], cwd)
        else:  # copy
            ok = left.startswith(src_op) and right.startswith(dst_op) and left[len(src_op):] == right[len(dst_op):]
        if ok:
            return left, right
    return None


def _basename(path: str) -> str:
    return path.rstrip("/").rpartition("/")[2]


def _same_local(printed: str, operand: str, rel: str, cwd: str) -> bool:
    """Is ``printed`` (a local path as aws prints it) the file ``rel`` below the ``operand``?"""
    if printed.startswith("s3://") or operand.startswith("s3://"):
        return False
    expected = os.path.join(cwd, operand) + ("/" + rel if rel else "")
    return os.path.normpath(os.path.join(cwd, printed)) == os.path.normpath(expected)


def _aws_linked_roots(argv: Sequence[str]) -> tuple[str, ...]:
    """aws --no-follow-symlinks also skips a local *root* that is itself a symbolic link (it
    would sync nothing, or delete nothing): the configured end is the user's own choice, so
    its link is resolved here, at run time, and only the links below it are skipped."""
    out = list(argv)
    if tuple(out[:3]) == ("aws", "s3", "sync") and "--no-follow-symlinks" in out:
        for i in (3, 4):
            text = out[i]
            if not text.startswith("s3://") and os.path.islink(text.rstrip("/")):
                out[i] = os.path.realpath(text) + "/"
    return tuple(out)


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


__all__ = ["sync", "run_transfer", "run_git", "list_end", "Listing", "DestinationLock", "SyncError", "ConfigError"]
