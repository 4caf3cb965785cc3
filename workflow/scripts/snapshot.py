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

all to `snapshot.target` (default ``"+ {run}"``). The outputs go first, then the manifest and the
project files, as in flepiMoP's job.  A protocol's `delete: true` applies only to a push on the
protocol's own pairing of source and target (``plan.deletion``): with the default target (an
append to the target alone) nothing is deleted, and a note says so; with `target: null` and the
protocol's source the outputs push deletes what its filters take and the outputs lack, and its
``s {run}`` takes a ``{run}_report.pdf``, so the project files must not be pushed before it.

``{run}`` (in every key of the section) is expanded here, in `expand_run`, and nowhere else: it
is the run id gempyor wrote
the outputs under, read from the calibrate receipt (`flepimop_run_id`: the workflow's run name,
passed as FLEPI_RUN_INDEX, in `calibrate.mode: command`; gempyor's job name in
`calibrate.mode: batch-calibrate`), else the workflow's run name.

One receipt (JSON): the main push as every sync rule's receipt (``api.run_rule``: selection,
transfer, the manifest as ``extra``, ``files`` the audit list of the destination, host and
SLURM job id, ``params_digest``), plus ``flepimop_run_id`` and ``parts`` (each push: outputs,
project files, manifest). On failure `<receipt>.failed`, no receipt, and the error's own exit
status (as a sync rule's, ``api.run_rule_status``: 2 for a config or usage error). Receipts are
written by ``api.write_receipt``, secrets masked: their commands may hold an rsh's or an
endpoint's.
"""


import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from flepimop_sync import api
from flepimop_sync.errors import SyncError
from flepimop_sync.report import now_iso, redact


def expand_run(value: Any, run: str) -> Any:
    """`{run}` -> the run id, in a string or each string of a list (the one place it is expanded)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [str(v).replace("{run}", run) for v in value]
    return str(value).replace("{run}", run)


def run_id_from(calibrate_receipt: Any, workflow_run: str) -> str:
    if isinstance(calibrate_receipt, (list, tuple)):  # Snakemake's named input: one file or none
        calibrate_receipt = calibrate_receipt[0] if calibrate_receipt else None
    if calibrate_receipt and os.path.isfile(calibrate_receipt):
        body = json.loads(Path(calibrate_receipt).read_text(encoding="utf-8"))
        return str(body.get("flepimop_run_id") or body.get("run") or workflow_run)
    return workflow_run


def _params(**values: Any) -> dict[str, Any]:
    """Rule params as api reads them: keys without a value left out."""
    return {k: v for k, v in values.items() if v is not None and v != []}


def rule_params(p: Mapping[str, Any], run: str, digest: str | None) -> dict[str, Any]:
    """api.run_rule's params for the push of the run's files under the outputs (the one the
    digest describes), the manifest as its extra file."""
    manifest = expand_run(p.get("manifest"), run)
    return _params(config_files=[str(f) for f in p["config_files"]], protocol=p["protocol"],
                   source=expand_run(p.get("source"), run), target=expand_run(p.get("target"), run),
                   mkpath=bool(p.get("mkpath")) or None, filters=expand_run(p.get("filters") or [], run),
                   fprefix=expand_run(p.get("fprefix") or [], run), fsuffix=expand_run(p.get("fsuffix") or [], run),
                   extra_files=[manifest] if manifest else None, digest=digest)


def project_params(p: Mapping[str, Any], run: str) -> dict[str, Any] | None:
    """The push of the run's *.pdf/*.h5 directly in project_dir (None: no project_files)."""
    patterns = expand_run(p.get("project_files") or [], run)
    if not patterns:
        return None
    project = str(expand_run(p.get("project_dir"), run) or ".").rstrip("/") + "/"
    return _params(protocol=p["protocol"], source=project, target=expand_run(p.get("target"), run),
                   mkpath=bool(p.get("mkpath")) or None, filters=[f"+ /{x}" for x in patterns])


PART_KEYS = ("type", "source", "destination", "filters", "status", "selected", "transferred", "commands")


def snapshot(p: Mapping[str, Any], receipt: Path, log: Path | None, calibrate_receipt: Any,
             digest: str | None = None) -> int:
    config_files = [str(f) for f in p["config_files"]]
    run = run_id_from(calibrate_receipt, str(p["run"]))
    failed = Path(f"{receipt}.failed")
    receipt.parent.mkdir(parents=True, exist_ok=True)
    project = project_params(p, run)
    try:
        # the outputs (and the manifest) first, as flepiMoP's sync job orders its pushes: with
        # `delete: true` the main push deletes what its filters take ('s {run}' takes a
        # '{run}_report.pdf') and the outputs lack, so a project file pushed before it would be
        # deleted again; the project push's own filters take only its files, so it deletes
        # nothing the others pushed. If it fails, the except below removes the main receipt.
        body = api.run_rule(rule_params(p, run, digest), receipt=receipt, log=log)
        project_part = {"part": "project files", "status": "skipped (no project_files)"}
        if project is not None:
            done = api.run_protocol(config_files, api.options_from_params(project), log=log)
            project_part = {"part": "project files", **{k: done.get(k) for k in PART_KEYS}}
    except SyncError as error:
        # as every sync rule ends (api.run_rule_status): the error's own status (2: the protocol or
        # its config; 128+n: a stop signal), one masked line, a masked failure receipt
        body = {"step": "snapshot", "protocol": p["protocol"], "run": p["run"], "flepimop_run_id": run,
                "status": "failed", "error": str(error), "exit_code": error.exit_code, "finished": now_iso(),
                **api.where_and_when()}
        api.write_receipt(failed, body)
        if receipt.exists():
            receipt.unlink()
        print(f"flepimop-sync: snapshot: {redact(str(error))}", file=sys.stderr)
        return error.exit_code
    manifest = expand_run(p.get("manifest"), run)
    parts = [{"part": "outputs", **{k: body.get(k) for k in PART_KEYS}}, project_part]
    if manifest:
        parts.append({"part": "manifest", **(body.get("extra") or [{}])[0]})
    body = {"step": "snapshot", "run": p["run"], "flepimop_run_id": run, **body, "parts": parts}
    api.write_receipt(receipt, body)  # masked: the commands may hold an rsh's or an endpoint's secret
    if failed.exists():
        failed.unlink()
    return 0


def run_job(smk) -> int:
    """The snapshot_run job: ``smk`` is the ``snakemake`` object of wrappers/flepimop-snapshot."""
    calibrate_receipt = smk.input.calibrate if "calibrate" in smk.input.keys() else None
    return snapshot(dict(smk.params.options, run=str(smk.params.run)), Path(smk.output[0]),
                    Path(smk.log[0]) if smk.log else None, calibrate_receipt, digest=smk.params.digest)
