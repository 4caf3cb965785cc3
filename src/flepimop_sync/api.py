"""A small Python API over the core, used by the Snakemake workflow and wrapper.

Everything here goes through ``config`` -> ``plan`` -> ``execute``: the workflow
never builds a flag of its own, and every process (listings for receipts, ``--version`` of the
tools) starts through ``runner``. Snakemake glue: ``rule_params`` (a rule's params with the
digest of ``meaning``, what the rule would move, so reruns follow meaning and not argv),
``run_rule`` (run + receipt: host, SLURM job id, and ``destination_files``, the audit list),
``run_rule_status`` (a sync rule's outcome as an exit status: the wrapper's and the rendered rules'),
``write_receipt`` (the one writer of receipts, secrets masked: the snapshot and calibrate scripts'
too).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TextIO

from . import filters as filter_rules
from . import plan as planning
from .config import SyncConfig, load_config
from .endpoints import EndKind
from .mechanism import Engine, ProtocolType
from .options import SyncOptions
from .report import Reporter, dump_json, now_iso, redact

if TYPE_CHECKING:  # imported where they run: the Snakefile imports api to build params and needs neither
    from .execute import Outcome
    from .listing import Listing


def plan_as_json(config_files: Sequence[str], options: SyncOptions, *, config: SyncConfig | None = None) -> dict[str, Any]:
    """The resolved plan without running anything (no I/O beyond reading the configs)."""
    config = config or load_config(config_files)
    protocol = config.get(options.protocol)
    body: dict[str, Any] = {"protocol": protocol.name, "type": protocol.type.value, "config_files": list(config.files),
                            "definition": protocol.definition()}
    if protocol.type is ProtocolType.GIT:
        body.update(_git_fields(protocol, options), dry_run=options.dry_run)
        return body
    plan = planning.build(protocol, options, source_is_file=_source_is_local_file(protocol, options))
    body.update(plan.to_json())
    body["config_files"] = list(config.files)
    if isinstance(plan, planning.DraftPlan):
        body["note"] = "the aws arguments are computed from the source listing at run time"
    return body


ALL_TOOLS = ("rsync", "aws", "git")


def tool_versions(tools: Sequence[str] = ALL_TOOLS) -> dict[str, str]:
    """Versions of flepimop-sync, Python and ``tools`` (best effort, never fails)."""
    from . import __version__

    return {"flepimop-sync": __version__, "python": platform.python_version(),
            **{tool: _tool_version(tool) for tool in tools}}


def tools_of(result: Mapping[str, Any]) -> tuple[str, ...]:
    """The program a run's result says did the work: its receipt names that one's version
    (``aws --version`` alone starts the whole aws CLI, ~1 s of CPU: not for an rsync run)."""
    ptype = result.get("type")
    if ptype == ProtocolType.S3SYNC:
        return (str(result.get("engine") or Engine.AWS),)
    if ptype in (ProtocolType.RSYNC, ProtocolType.GIT):  # the tool of these types bears their name
        return (str(ptype),)
    return ALL_TOOLS


@functools.lru_cache(maxsize=None)
def _tool_version(tool: str) -> str:
    """First line of ``<tool> --version``, once per process: a rule that also pushes its extra
    files asks once."""
    from .errors import Interrupted, SyncError
    from .runner import Runner

    with Runner(Reporter(verbosity=0, json_mode=True)) as runner:
        try:
            done = runner.run([tool, "--version"], timeout=20)
        except Interrupted:  # a stop signal is the run's end, not an answer about the tool
            raise
        except (OSError, SyncError):  # missing, not executable, or no answer
            return "not installed"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def run_protocol(config_files: Sequence[str], options: SyncOptions, *, receipt: str | os.PathLike[str] | None = None,
                 log: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                 config: SyncConfig | None = None) -> dict[str, Any]:
    """Run one protocol and write its receipt (JSON). Raises SyncError on failure,
    after writing a receipt with ``status: failed`` to ``<receipt>.failed`` (never to
    the receipt path itself, so Snakemake does not take a failed run as done).
    ``config``: the configs already loaded from ``config_files``."""
    return _run_protocol(config_files, options, receipt=receipt, log=log, env=env, config=config).result


def _run_protocol(config_files: Sequence[str], options: SyncOptions, *, receipt: str | os.PathLike[str] | None,
                  log: str | os.PathLike[str] | None, env: Mapping[str, str] | None,
                  config: SyncConfig | None) -> "Outcome":
    """``run_protocol``, with the source listing the run made (``execute.Outcome``)."""
    from .errors import SyncError
    from .execute import run

    log_handle = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115
    try:
        reporter = Reporter(verbosity=max(options.verbosity, 1), json_mode=True,
                            stream=log_handle or Reporter().stream, out=log_handle or Reporter().out)
        started = now_iso()
        try:
            outcome = run(config_files, options, reporter, env=env, config=config)
            result = outcome.result
            # a fast engine's run already asked its version (asking starts a process: a stop
            # signal may land there, and ends the run as a failed one like any other)
            known = {result["engine"]: result["engine_version"]} if result.get("engine_version") else {}
            result["tool_versions"] = {**tool_versions([t for t in tools_of(result) if t not in known]), **known}
        except SyncError as error:
            if receipt:
                _write_failure(receipt, options, config_files, error, started, env)
            if log_handle:
                print(f"error: {redact(str(error), env)}", file=log_handle)
            raise
        result["config_files"] = list(config_files)
        if receipt:
            write_receipt(Path(receipt), result, env)
        return outcome
    finally:
        if log_handle:
            log_handle.close()


def _source_is_local_file(protocol, options: SyncOptions) -> bool:
    """Is the source a single local file (a missing one is not: digests are made before it exists)?"""
    from .execute import probe_source

    return probe_source(protocol, planning.resolve_ends(protocol, options)[0], strict=False)


def _write_failure(receipt: str | os.PathLike[str], options: SyncOptions, config_files: Sequence[str],
                   error: Exception, started: str, env: Mapping[str, str] | None) -> None:
    """``<receipt>.failed`` (never the receipt itself: Snakemake must not take a failure as done)."""
    failed = {"protocol": options.protocol, "config_files": list(config_files), "status": "failed",
              "error": redact(str(error), env), "exit_code": getattr(error, "exit_code", 1), "started": started,
              "finished": now_iso(), "tool_versions": tool_versions(_failure_tools(error, config_files, options))}
    write_receipt(Path(f"{receipt}.failed"), failed, env)


def _failure_tools(error: Exception, config_files: Sequence[str], options: SyncOptions) -> tuple[str, ...]:
    """The tools whose versions a failure receipt names: the one the protocol runs, asked only when
    a tool ran and failed.  After a stop signal nothing more is started (the stop must be prompt:
    a probe is a new process, which may itself hang, and ``aws --version`` alone costs about a
    second of CPU); a refused run (usage or config error, exit 2) never reached a tool."""
    from .errors import ConfigError, Interrupted, SyncError, UsageError

    if isinstance(error, (Interrupted, ConfigError, UsageError)):
        return ()
    try:
        protocol = load_config(config_files).get(options.protocol)
        return tools_of({"type": protocol.type, "engine": planning.engine_for(protocol, options)})
    except SyncError:  # the protocol cannot be read now: every tool, as for a run of unknown type
        return ALL_TOOLS


def write_receipt(path: str | os.PathLike[str], body: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    """The one writer of receipts and failure receipts (the workflow's scripts call it too):
    secrets masked inside the document (``report.dump_json``; ``env``: the environment the tools
    ran with, whose credentials are masked too), written whole (a temporary file renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dump_json(body, env) + "\n", encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------------------
# Snakemake glue (added for the workflow and the wrapper). Params -> SyncOptions is
# mapped here and nowhere else: the Snakefile (for the rerun digest) and the
# wrapper (to run) both call ``options_from_params``.

#: Rule params that are not SyncOptions fields.
SNAKEMAKE_NON_OPTION_PARAMS = ("config_files", "digest", "extra_files")

#: SyncOptions fields whose name Snakemake refuses for a param (its params container is a list:
#: ``reverse`` is list.reverse, "reserved for internal use"), and the param name used instead.
SNAKEMAKE_PARAM_NAMES = {"reverse": "reverse_direction"}


def options_from_params(params: Mapping[str, Any]) -> SyncOptions:
    """SyncOptions from a Snakemake rule's params (a mapping; non-option keys are ignored).
    ``reverse_direction`` is ``reverse`` (``SNAKEMAKE_PARAM_NAMES``); the field's own name is
    taken too, from a mapping that is not Snakemake's params.

    ``dry_run`` is refused: a rule's output is a receipt of a real run."""
    from .errors import UsageError

    values = {k: v for k, v in dict(params).items() if k not in SNAKEMAKE_NON_OPTION_PARAMS and v is not None}
    for field, name in SNAKEMAKE_PARAM_NAMES.items():
        if name in values:
            value = values.pop(name)
            if field in values and values[field] != value:
                raise UsageError(f"params {field} and {name} disagree ({values[field]!r} and {value!r}): give one")
            values[field] = value
    if values.get("dry_run"):
        raise UsageError("dry_run cannot be used in a Snakemake rule (use `snakemake -n` instead)")
    return SyncOptions.from_mapping(values)


def config_files_from_params(params: Mapping[str, Any]) -> list[str]:
    """The ``config_files`` param as a list of paths (a single string is accepted)."""
    from .errors import UsageError

    files = dict(params).get("config_files")
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not files:
        raise UsageError("the rule needs params.config_files: the flepiMoP config file(s) holding 'sync:'")
    return [str(f) for f in files]


def rule_digest(params: Mapping[str, Any], *, config: SyncConfig | None = None) -> str:
    """``resolved_digest`` of a rule's params (put it in the rule's params as ``digest``)."""
    extra = [str(f) for f in (dict(params).get("extra_files") or ())]
    return resolved_digest(config_files_from_params(params), options_from_params(params), extra_files=extra,
                           config=config)


#: Protocol keys that say *where* an end is (which store, which account, which shell): part of
#: the meaning although they are not ends.
_WHERE_KEYS = ("endpoint_url", "profile", "region", "rsh")


def meaning(config_files: Sequence[str], options: SyncOptions, *, extra_files: Sequence[str] = (),
            config: SyncConfig | None = None) -> dict[str, Any]:
    """The canonical record of what a run would move, and nothing about how we spell it.

    Transfers: the protocol type, the tool (rsync; for s3sync the engine: aws or rclone),
    the resolved source/target/destination, the resolved filter list normalised to
    ``"<action> <pattern>"`` (so ``P`` and ``+ P`` are one rule; the implicit ``- **`` tail
    included), the options that change the outcome (mkpath, delete) and where the ends are
    (endpoint, profile, region, remote shell). Git: mode, remote, branch, path. Never the
    argv: a flepimop-sync upgrade that spells a command differently (one more rsync flag)
    must not rerun hours of calibration downstream.

    Cheap on purpose (a campaign computes one per node while Snakemake builds its DAG): the
    ends are resolved and checked as ``plan.resolve`` does, but no command is built and a
    filter list is compiled once per distinct list of rules (``_meaning_filters``).
    """
    config = config or load_config(config_files)
    protocol = config.get(options.protocol)
    record: dict[str, Any] = {"type": protocol.type.value}
    if protocol.type is ProtocolType.GIT:
        record.update(tool="git", **_git_fields(protocol, options))
        return record
    from .execute import probe_source

    source, target = planning.resolve_ends(protocol, options)
    source_is_file = probe_source(protocol, source, strict=False)
    rules = _meaning_filters(protocol.filters, options, source_is_file)
    destination = planning.destination_of(protocol, options, source, target, source_is_file=source_is_file,
                                          rules=rules)
    record.update(
        tool=_tool(protocol, options),
        source=source.text,
        target=target.text,
        destination=destination.text,
        filters=[rule.canonical for rule in rules.rules],
        options={"mkpath": planning.wants_mkpath(protocol, options),
                 "delete": planning.deletion(protocol, options, source, destination)[0]},
        where={k: v for k in _WHERE_KEYS if (v := getattr(protocol.settings, k, None)) is not None},
    )
    if extra_files:
        record["extra_files"] = [str(f) for f in extra_files]
    return record


def _git_fields(protocol: Any, options: SyncOptions) -> dict[str, Any]:
    """A git protocol's mode (swapped by --reverse), remote, branch and path, as --plan and the
    rerun digests record them.  Options a git run refuses are refused here too: a plan or a
    ``snakemake -n`` that accepted them would promise a run that then fails."""
    from .gitsync import effective_mode, refuse_transfer_options  # the one home of the swap and of the refusal

    refuse_transfer_options(protocol, options)
    settings = protocol.settings
    return {"mode": effective_mode(settings.mode, reverse=options.reverse).value, "remote": settings.remote,
            "branch": settings.branch, "path": settings.path}


def _tool(protocol: Any, options: SyncOptions) -> str:
    """The program that moves the files: rsync, or the s3sync engine (``plan.engine_for``)."""
    engine = planning.engine_for(protocol, options)
    return engine.value if protocol.type is ProtocolType.S3SYNC else protocol.type.value


def _meaning_filters(config_rules: Any, options: SyncOptions, source_is_file: bool) -> filter_rules.FilterList:
    """The resolved filter list, built by ``filters.build_rules`` as a run builds it. Lists without ``$NAME`` are memoised: a campaign's runs share a few
    lists, and compiling one is most of a meaning's cost. A list with a variable is built every
    time (the environment may differ between calls)."""
    texts = [t for t, _ in config_rules or ()] + [*options.filters, *options.fprefix, *options.fsuffix]
    key = (tuple(config_rules or ()), options.filters, options.fprefix, options.fsuffix, options.no_filter,
           planning.source_replaced(options), source_is_file)
    if any("$" in t for t in texts):
        return _build_meaning_filters(*key)
    return _cached_meaning_filters(*key)


def _build_meaning_filters(config_rules, override, prefix, suffix, no_filter, source_replaced,
                           source_is_file) -> filter_rules.FilterList:
    return filter_rules.build_rules(config_rules, override=override, prefix=prefix, suffix=suffix,
                                    no_filter=no_filter, source_replaced=source_replaced,
                                    source_is_file=source_is_file)


_cached_meaning_filters = functools.lru_cache(maxsize=4096)(_build_meaning_filters)


def resolved_digest(config_files: Sequence[str], options: SyncOptions, *, extra_files: Sequence[str] = (),
                    config: SyncConfig | None = None) -> str:
    """Digest of ``meaning(...)``: what a run would move (see there). It ignores what the
    options override (e.g. the protocol's own filters when the rule replaces them), the
    ``description`` and the argv, so a rule reruns only when what it moves changes."""
    record = meaning(config_files, options, extra_files=extra_files, config=config)
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_rule(params: Mapping[str, Any], *, receipt: str | os.PathLike[str], log: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run the protocol a rule's params describe and write its receipt.

    On top of ``run_protocol``: the receipt always records what the filters selected
    (``selected``: files and bytes, from a listing of the source), and each existing
    file in ``params.extra_files`` (e.g. a run's manifest) is pushed with the same
    protocol and target (``extra`` in the receipt; missing ones are listed as skipped).
    Raises SyncError on failure, after writing ``<receipt>.failed``.
    """
    from dataclasses import replace

    from .errors import Interrupted, SyncError

    config_files = config_files_from_params(params)
    options = options_from_params(params)
    extra_files = [str(f) for f in (dict(params).get("extra_files") or ())]
    started = now_iso()
    try:
        outcome = _run_protocol(config_files, options, receipt=None, log=log, env=env,  # (logs a config error)
                                config=None)
        result = outcome.result
        # the source listing the run made: the audit list reads the source's ETags from it
        source_listing = outcome.source_listing
        config = load_config(config_files)  # once more, for the extra files and the receipt
        if result.get("type") != ProtocolType.GIT:
            if "selected" not in result:
                result["selected"], listed = _selection(config_files, options, env, config=config)
                if source_listing is None:
                    source_listing = listed
            extras = []
            for path in extra_files:
                if not os.path.isfile(path):
                    extras.append({"source": path, "status": "skipped (not present)"})
                    continue
                extra_options = replace(options, source=path, filters=(), fprefix=(), fsuffix=(), no_filter=True)
                done = run_protocol(config_files, extra_options, log=log, env=env, config=config)
                extras.append({k: done.get(k) for k in ("source", "destination", "status", "transferred", "commands")})
            if extra_files:
                result["extra"] = extras
    except SyncError as error:
        _write_failure(receipt, options, config_files, error, started, env)
        raise
    if result.get("type") != ProtocolType.GIT:
        try:
            result["files"] = destination_files(config_files, options, env, config=config,
                                                source_listing=source_listing)
        except Interrupted as error:  # a stop is the run's end (exit 128+n), not a missing audit list
            _write_failure(receipt, options, config_files, error, started, env)
            raise
        except SyncError as error:  # the sync itself succeeded: say why the audit list is missing
            result["files_error"] = str(error)
    result.update(where_and_when())
    result["started"] = started
    result["finished"] = now_iso()
    result["params_digest"] = dict(params).get("digest")
    write_receipt(Path(receipt), result, env)
    failed_path = Path(f"{receipt}.failed")
    if failed_path.exists():
        failed_path.unlink()
    return result


def run_rule_status(params: Mapping[str, Any], *, receipt: str | os.PathLike[str],
                    log: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                    stream: TextIO | None = None) -> int:
    """``run_rule``, and the rule's exit status: 0 (receipt written), else the error's own
    (``SyncError.exit_code``: 1 a run-time failure, 2 a usage or config error, 128+n a stop
    signal) after one line on ``stream`` (default stderr), ``flepimop-sync: <why>``, and
    ``<receipt>.failed``. The one home of a sync rule's outcome: the wrapper exits with it,
    the rules of ``flepimop sync --snakemake-rules`` fail on it; a bug (any other exception)
    propagates, with its traceback."""
    import sys

    from .errors import SyncError

    try:
        run_rule(params, receipt=receipt, log=log, env=env)
    except SyncError as error:
        print(f"flepimop-sync: {redact(str(error), env)}", file=stream or sys.stderr)
        return error.exit_code
    return 0


def where_and_when() -> dict[str, Any]:
    """Where a receipt was written: the host and, inside a SLURM job, its job id."""
    import socket

    return {"host": socket.gethostname(), "slurm_job_id": os.environ.get("SLURM_JOB_ID") or None}


def destination_files(config_files: Sequence[str], options: SyncOptions,
                      env: Mapping[str, str] | None = None, *, config: SyncConfig | None = None,
                      source_listing: "Listing | None" = None) -> list[dict[str, Any]]:
    """The files of the selection as they are at the destination after a run, for audits:
    ``[{"path", "size"}]`` (paths relative to the destination), plus ``"etag"`` for an S3
    object (the destination's for an upload, the source's for a download). One listing of the
    destination (``listing.list_end``: rsync, aws s3api, or a walk) and, for a download, the
    source's: ``source_listing``, the one the run itself made (``execute.Outcome``: what the
    files were copied from), else a new one."""
    from .listing import list_end
    from .runner import Runner

    protocol = (config or load_config(config_files)).get(options.protocol)
    plan = planning.build(protocol, options, source_is_file=_source_is_local_file(protocol, options))
    source_is_file, r = plan.source_is_file, plan.resolved
    # a single file lands as <target>/<name>: list the target and pick it
    listed = r.target if source_is_file else r.destination
    with Runner(Reporter(verbosity=0, json_mode=True), env=env) as runner:
        listing = list_end(listed, protocol, runner)
        # a download: the ETags are the source's (the objects the files were copied from)
        downloaded = r.source.kind == EndKind.S3 and listed.kind != EndKind.S3
        origin: Mapping[str, str] = {}
        if downloaded:
            origin = (source_listing if source_listing is not None else list_end(r.source, protocol, runner)).etags
    entries: dict[str, dict[str, Any]] = {}
    for path, size in listing.files:
        entries[path] = {"path": path, "size": size}
        etag = listing.etags.get(path, origin.get(path))
        if etag is not None:
            entries[path]["etag"] = etag
    if source_is_file:
        name = r.source.basename
        return [entries[name]] if name in entries else []
    if r.rules:
        keep = {path for path, _ in r.rules.select_paths([(p, e["size"]) for p, e in entries.items()])}
    else:
        keep = set(entries)
    return [entries[p] for p in sorted(keep)]


def _selection(config_files: Sequence[str], options: SyncOptions, env: Mapping[str, str] | None, *,
               config: SyncConfig | None = None) -> "tuple[dict[str, int], Listing | None]":
    """What the filters select at the source (files, bytes): one listing, nothing moved; and
    that listing when the source was listed (the audit list reads the source's ETags from it)."""
    from .execute import select_and_list_source
    from .runner import Runner

    protocol = (config or load_config(config_files)).get(options.protocol)
    plan = planning.build(protocol, options, source_is_file=_source_is_local_file(protocol, options))
    with Runner(Reporter(verbosity=0, json_mode=True), env=env) as runner:
        chosen, listing = select_and_list_source(plan, runner, runner.reporter)
    return {"files": len(chosen), "bytes": sum(size for _, size in chosen)}, listing


def rule_params(config_files: Sequence[str] | str, *, config: SyncConfig | None = None,
                **options: Any) -> dict[str, Any]:
    """A sync rule's params: the config files, the options (SyncOptions fields, None
    dropped; ``extra_files`` allowed) and the ``digest`` of what the rule would move
    (``meaning``), so Snakemake's params rerun-trigger reruns the rule exactly when that
    changes. ``config``: the already loaded configs (a workflow with many rules loads once).
    ``reverse=True`` is written as ``reverse_direction`` (``SNAKEMAKE_PARAM_NAMES``: Snakemake
    refuses a param named ``reverse``)."""
    files = [config_files] if isinstance(config_files, (str, os.PathLike)) else list(config_files)
    params: dict[str, Any] = {"config_files": [str(f) for f in files]}
    for key, value in options.items():
        if value is None or value == () or value == []:
            continue
        params[SNAKEMAKE_PARAM_NAMES.get(key, key)] = list(value) if isinstance(value, tuple) else value
    params["digest"] = rule_digest(params, config=config)
    return params
