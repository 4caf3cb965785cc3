"""A small Python API over the core, used by the Snakemake workflow and wrapper.

Everything here goes through ``config`` -> ``plan`` -> ``execute``: the workflow
never builds a flag of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import plan as planning
from .config import SyncConfig, load_config
from .options import SyncOptions
from .report import Reporter, redact, redact_json


def plan_as_json(config_files: Sequence[str], options: SyncOptions, *, config: SyncConfig | None = None) -> dict[str, Any]:
    """The resolved plan without running anything (no I/O beyond reading the configs)."""
    config = config or load_config(config_files)
    protocol = config.get(options.protocol)
    body: dict[str, Any] = {"protocol": protocol.name, "type": protocol.type, "config_files": list(config.files),
                            "definition": protocol.definition()}
    if protocol.type == "git":
        mode = protocol.get("mode", "pull")
        if options.reverse:
            mode = "push" if mode == "pull" else "pull"
        body.update(mode=mode, remote=protocol.get("remote"), branch=protocol.get("branch"),
                    path=protocol.get("path"), dry_run=options.dry_run)
        return body
    plan = planning.build(protocol, options, source_is_file=_source_is_local_file(protocol, options))
    body.update(plan.to_json())
    body["config_files"] = list(config.files)
    if plan.needs_listing:
        body["steps"] = []
        body["note"] = "the aws arguments are computed from the source listing at run time"
    return body


def tool_versions() -> dict[str, str]:
    """Versions of the tools a receipt depends on (best effort, never fails)."""
    from . import __version__

    versions = {"flepimop-sync": __version__, "python": platform.python_version()}
    for tool, argv in (("rsync", ["rsync", "--version"]), ("aws", ["aws", "--version"]), ("git", ["git", "--version"])):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
            text = (done.stdout or done.stderr).strip().splitlines()
            versions[tool] = text[0] if text else "unknown"
        except (OSError, subprocess.SubprocessError):
            versions[tool] = "not installed"
    return versions


def run_protocol(config_files: Sequence[str], options: SyncOptions, *, receipt: str | os.PathLike[str] | None = None,
                 log: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one protocol and write its receipt (JSON). Raises SyncError on failure,
    after writing a receipt with ``status: failed`` to ``<receipt>.failed`` (never to
    the receipt path itself, so Snakemake does not take a failed run as done)."""
    from .errors import SyncError
    from .execute import now_iso, sync

    log_handle = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115
    try:
        reporter = Reporter(verbosity=max(options.verbosity, 1), json_mode=True,
                            stream=log_handle or Reporter().stream, out=log_handle or Reporter().out)
        started = now_iso()
        try:
            result = sync(config_files, options, reporter, env=env)
        except SyncError as error:
            if receipt:
                _write_failure(receipt, options, config_files, error, started, env)
            if log_handle:
                print(f"error: {redact(str(error), env)}", file=log_handle)
            raise
        result["tool_versions"] = tool_versions()
        result["config_files"] = list(config_files)
        if receipt:
            _write_json(Path(receipt), result, env)
        return result
    finally:
        if log_handle:
            log_handle.close()


def _source_is_local_file(protocol, options: SyncOptions) -> bool:
    source, _ = planning.resolve_ends(protocol, options)
    return source.kind == "local" and os.path.isfile(source.path)


def _write_failure(receipt: str | os.PathLike[str], options: SyncOptions, config_files: Sequence[str],
                   error: Exception, started: str, env: Mapping[str, str] | None) -> None:
    """``<receipt>.failed`` (never the receipt itself: Snakemake must not take a failure as done)."""
    from .execute import now_iso

    failed = {"protocol": options.protocol, "config_files": list(config_files), "status": "failed",
              "error": redact(str(error), env), "exit_code": getattr(error, "exit_code", 1), "started": started,
              "finished": now_iso(), "tool_versions": tool_versions()}
    _write_json(Path(f"{receipt}.failed"), failed, env)


def _write_json(path: Path, body: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(redact(json.dumps(redact_json(body, env), indent=2, default=str), env) + "\n", encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------------------
# Snakemake glue (added for the workflow and the wrapper). Params -> SyncOptions is
# mapped here and nowhere else: the Snakefile (for the rerun digest) and the
# wrapper (to run) both call ``options_from_params``.

#: Rule params that are not SyncOptions fields.
SNAKEMAKE_NON_OPTION_PARAMS = ("config_files", "digest", "extra_files")


def options_from_params(params: Mapping[str, Any]) -> SyncOptions:
    """SyncOptions from a Snakemake rule's params (a mapping; non-option keys are ignored).

    ``dry_run`` is refused: a rule's output is a receipt of a real run."""
    from .errors import UsageError

    values = {k: v for k, v in dict(params).items() if k not in SNAKEMAKE_NON_OPTION_PARAMS and v is not None}
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


def rule_digest(params: Mapping[str, Any]) -> str:
    """``resolved_digest`` of a rule's params (put it in the rule's params as ``digest``)."""
    extra = [str(f) for f in (dict(params).get("extra_files") or ())]
    return resolved_digest(config_files_from_params(params), options_from_params(params), extra_files=extra)


def resolved_digest(config_files: Sequence[str], options: SyncOptions, *, extra_files: Sequence[str] = ()) -> str:
    """Digest of what a run would do: the resolved plan (ends, filters after the options,
    mechanism, every argv). It ignores what the options override (e.g. the protocol's own
    filters when the rule replaces them) and the ``description``, so a rule reruns only
    when its own behaviour changes."""
    body = plan_as_json(config_files, options)
    body.pop("config_files", None)
    definition = body.pop("definition", {})
    if body.get("type") == "git":
        body["definition"] = {k: v for k, v in definition.items() if k != "description"}
    if extra_files:
        body["extra_files"] = [str(f) for f in extra_files]
    text = json.dumps(body, sort_keys=True, default=str)
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

    from .errors import SyncError
    from .execute import now_iso

    config_files = config_files_from_params(params)
    options = options_from_params(params)
    extra_files = [str(f) for f in (dict(params).get("extra_files") or ())]
    started = now_iso()
    try:
        result = run_protocol(config_files, options, receipt=None, log=log, env=env)
        if result.get("type") != "git":
            if "selected" not in result:
                result["selected"] = _selection(config_files, options, env)
            extras = []
            for path in extra_files:
                if not os.path.isfile(path):
                    extras.append({"source": path, "status": "skipped (not present)"})
                    continue
                extra_options = replace(options, source=path, filters=(), fprefix=(), fsuffix=(), no_filter=True)
                done = run_protocol(config_files, extra_options, log=log, env=env)
                extras.append({k: done.get(k) for k in ("source", "destination", "status", "transferred", "commands")})
            if extra_files:
                result["extra"] = extras
    except SyncError as error:
        _write_failure(receipt, options, config_files, error, started, env)
        raise
    result["started"] = started
    result["finished"] = now_iso()
    result["params_digest"] = dict(params).get("digest")
    _write_json(Path(receipt), result, env)
    failed_path = Path(f"{receipt}.failed")
    if failed_path.exists():
        failed_path.unlink()
    return result


def _selection(config_files: Sequence[str], options: SyncOptions, env: Mapping[str, str] | None) -> dict[str, int]:
    """What the filters select at the source (files, bytes): one listing, nothing moved."""
    from .execute import select_source
    from .runner import Runner

    protocol = load_config(config_files).get(options.protocol)
    plan = planning.build(protocol, options, source_is_file=_source_is_local_file(protocol, options))
    with Runner(Reporter(verbosity=0, json_mode=True), env=env) as runner:
        chosen = select_source(plan, runner, runner.reporter)
    return {"files": len(chosen), "bytes": sum(size for _, size in chosen)}


def rule_params(config_files: Sequence[str] | str, **options: Any) -> dict[str, Any]:
    """A sync rule's params: the config files, the options (SyncOptions fields, None
    dropped; ``extra_files`` allowed) and the ``digest`` of the resolved definition,
    so Snakemake's params rerun-trigger reruns the rule exactly when that changes."""
    files = [config_files] if isinstance(config_files, (str, os.PathLike)) else list(config_files)
    params: dict[str, Any] = {"config_files": [str(f) for f in files]}
    for key, value in options.items():
        if value is None or value == () or value == []:
            continue
        params[key] = list(value) if isinstance(value, tuple) else value
    params["digest"] = rule_digest(params)
    return params
