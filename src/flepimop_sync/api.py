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
from .report import Reporter, redact


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
    source_is_file = False
    src = planning.resolve(protocol, options).source
    if src.kind == "local" and os.path.isfile(src.path):
        source_is_file = True
    plan = planning.build(protocol, options, source_is_file=source_is_file)
    body.update(plan.to_json())
    body["config_files"] = list(config.files)
    if plan.needs_listing:
        body["steps"] = []
        body["note"] = "the aws arguments are computed from the source listing at run time"
    return body


def definition_digest(config_files: Sequence[str], options: SyncOptions) -> str:
    """A stable digest of a protocol's resolved definition: changes iff the plan would."""
    body = plan_as_json(config_files, options)
    text = json.dumps({k: v for k, v in body.items() if k != "config_files"}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
            failed = {"protocol": options.protocol, "config_files": list(config_files), "status": "failed",
                      "error": redact(str(error)), "exit_code": error.exit_code, "started": started,
                      "finished": now_iso(), "tool_versions": tool_versions()}
            if receipt:
                _write_json(Path(f"{receipt}.failed"), failed)
            if log_handle:
                print(f"error: {error}", file=log_handle)
            raise
        result["tool_versions"] = tool_versions()
        result["config_files"] = list(config_files)
        if receipt:
            _write_json(Path(receipt), result)
        return result
    finally:
        if log_handle:
            log_handle.close()


def _write_json(path: Path, body: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(redact(json.dumps(body, indent=2, default=str)) + "\n", encoding="utf-8")
    tmp.replace(path)
