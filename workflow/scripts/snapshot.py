"""The snapshot rule: push exactly the calibrated run, as flepiMoP's post-calibration sync job does.

flepiMoP's job (`flepimop batch-calibrate --sync-protocol P`, gempyor/batch/_submit.py) pushes,
each with `--target '+ RUN' --mkpath`: the protocol's source with `--fprefix 's RUN'` (the run's
files under model_output), the project root's `RUN*.pdf` and `RUN*.h5`, and `manifest.json`.
This rule does the same three things with one protocol (config key `snapshot`):

1. ``outputs``: the protocol's source (or `snapshot.source`), the protocol's filters (or
   `snapshot.filters`) then `snapshot.fsuffix` (default ``["s {run}"]``: the files whose path
   names the run; after the filters, unlike the job's `--fprefix`, so the protocol's exclusions
   such as ``- intermediate/`` still hold; `snapshot.fprefix` puts rules before them);
2. ``project files``: `snapshot.project_dir` with only `snapshot.project_files` selected
   (default ``["{run}*.pdf", "{run}*.h5"]``, anchored at that directory: ``+ /<pattern>``);
3. ``manifest``: `snapshot.manifest`, a single file, when present;

all to `snapshot.target` (default ``"+ {run}"``).

``{run}`` is expanded here, in `expand_run`, and nowhere else: it is the run id gempyor wrote
the outputs under, read from the calibrate receipt (`flepimop_run_id`: the workflow's run name,
passed as FLEPI_RUN_INDEX, in `calibrate.mode: command`; gempyor's job name in
`calibrate.mode: batch-calibrate`), else the workflow's run name.

One receipt (JSON) lists each part; on failure `<receipt>.failed` and no receipt.
"""


import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from flepimop_sync import api
from flepimop_sync.errors import SyncError
from flepimop_sync.execute import now_iso
from flepimop_sync.options import SyncOptions


def expand_run(value: Any, run: str) -> Any:
    """`{run}` -> the run id, in a string or each string of a list (the one place it is expanded)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [str(v).replace("{run}", run) for v in value]
    return str(value).replace("{run}", run)


def run_id_from(calibrate_receipt: str | None, workflow_run: str) -> str:
    if calibrate_receipt and os.path.isfile(calibrate_receipt):
        body = json.loads(Path(calibrate_receipt).read_text(encoding="utf-8"))
        return str(body.get("flepimop_run_id") or body.get("run") or workflow_run)
    return workflow_run


def parts(p: Mapping[str, Any], run: str) -> list[tuple[str, SyncOptions | None]]:
    """(name, options) of each push; None options: skipped (say why in the name)."""
    target = expand_run(p.get("target"), run)
    mkpath = bool(p.get("mkpath"))
    base = {"protocol": p["protocol"], "target": target, "mkpath": mkpath}
    out: list[tuple[str, SyncOptions | None]] = [("outputs", SyncOptions(
        source=expand_run(p.get("source"), run), filters=tuple(expand_run(p.get("filters") or [], run)),
        fprefix=tuple(expand_run(p.get("fprefix") or [], run)),
        fsuffix=tuple(expand_run(p.get("fsuffix") or [], run)), **base))]
    patterns = expand_run(p.get("project_files") or [], run)
    if patterns:
        project = str(p.get("project_dir") or ".").rstrip("/") + "/"
        out.append(("project files", SyncOptions(source=project, filters=tuple(f"+ /{x}" for x in patterns),
                                                 **base)))
    manifest = p.get("manifest")
    if manifest:
        out.append(("manifest", SyncOptions(source=str(manifest), no_filter=True, **base)
                    if os.path.isfile(manifest) else None))
    return out


def snapshot(p: Mapping[str, Any], receipt: Path, log: Path | None, calibrate_receipt: str | None) -> int:
    config_files = [str(f) for f in p["config_files"]]
    run = run_id_from(calibrate_receipt, str(p["run"]))
    body: dict[str, Any] = {"step": "snapshot", "protocol": p["protocol"], "run": p["run"], "flepimop_run_id": run,
                            "started": now_iso(), "parts": []}
    failed = Path(f"{receipt}.failed")
    receipt.parent.mkdir(parents=True, exist_ok=True)
    try:
        for name, options in parts(p, run):
            if options is None:
                body["parts"].append({"part": name, "status": "skipped (not present)", "source": p.get("manifest")})
                continue
            result = api.run_protocol(config_files, options, log=log)
            body["parts"].append({"part": name, **{k: result.get(k) for k in (
                "type", "source", "destination", "filters", "status", "transferred", "commands")}})
    except SyncError as error:
        body.update(status="failed", error=str(error), finished=now_iso())
        failed.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"flepimop-sync: snapshot: {error}", file=sys.stderr)
        return 1
    body.update(status="ok", finished=now_iso(), destination=body["parts"][0].get("destination"))
    if failed.exists():
        failed.unlink()
    receipt.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if "snakemake" in globals():
    _smk = globals()["snakemake"]
    _cal = _smk.input.calibrate if "calibrate" in _smk.input.keys() else None
    sys.exit(snapshot(dict(_smk.params.options), Path(_smk.output[0]), Path(_smk.log[0]) if _smk.log else None,
                      _cal))
