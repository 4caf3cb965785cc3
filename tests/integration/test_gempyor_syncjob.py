"""flepiMoP's own post-calibration sync job, run exactly as gempyor writes it, with our CLI.

`flepimop batch-calibrate --sync-protocol P` submits a job dependent on the calibration that
runs `flepimop sync` four times (gempyor/batch/_submit.py): the run's files under the
protocol's source (`--fprefix 's RUN'`), the run's `*.pdf` and `*.h5` at the project root
(`--source <project>/`), and `manifest.json` (a single-file source), each with
`--target '+ RUN' --mkpath`. gempyor 2.1's own `batch-calibrate --sync-protocol` crashes before
submitting (`_get_sync_protocol`: `issubclass()` on a dict), so the job script is rendered with
gempyor's own code (`_submit_scenario_job`, SLURM batch system, dry run: the `.sbatch` files
land in the working directory) and its `flepimop sync` lines are executed with bash, our
`flepimop` first on PATH, from the project directory (the job's `#SBATCH --chdir`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trees import list_files

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RUN = "sample-20260101T000000_None_None"
OLD = "sample-20251201T000000_None_None"

RENDER = r'''
import sys
from gempyor.batch._submit import _submit_scenario_job
from gempyor.batch.systems import get_batch_system
job_name, project_path, config, protocol = sys.argv[1:5]
bs = get_batch_system("slurm")
size = bs.size_from_jobs_simulations_blocks(1, 2, 1, 1)
_submit_scenario_job(size, bs, {}, {
    "verbosity": 0, "dry_run": True, "outcome_modifiers_scenario": "None",
    "seir_modifiers_scenario": "None", "job_name": job_name.rsplit("_None_None", 1)[0],
    "name": "sample", "inference_method": "r", "project_path": project_path, "config": config,
    "sync_protocol": protocol, "flepi_path": project_path, "array_capable": True})
'''

# project files -> pushed by the job? (relative to <target>/RUN/)
PROJECT = {
    f"model_output/sample_None_None/{RUN}/hosp/000000001.{RUN}.hosp.parquet": f"sample_None_None/{RUN}/hosp/000000001.{RUN}.hosp.parquet",
    f"model_output/sample_None_None/{RUN}/llik/000000002.{RUN}.llik.parquet": f"sample_None_None/{RUN}/llik/000000002.{RUN}.llik.parquet",
    f"model_output/sample_None_None/{OLD}/hosp/000000001.{OLD}.hosp.parquet": None,  # an earlier run
    f"{RUN}_fit.pdf": f"{RUN}_fit.pdf",
    f"{RUN}_chains.pdf": f"{RUN}_chains.pdf",
    f"{RUN}_backend.h5": f"{RUN}_backend.h5",
    f"{OLD}_fit.pdf": None,
    "manifest.json": "manifest.json",
    "notes.txt": None,
}


def render_sync_job(client, project: Path, protocol: str, workdir: Path) -> str:
    workdir.mkdir()
    subprocess.run([str(client.python), "-c", RENDER, RUN, str(project), str(project / "config.yml"), protocol],
                   cwd=workdir, check=True, capture_output=True, text=True, timeout=300)
    scripts = [p.read_text() for p in workdir.glob("*.sbatch") if "flepimop sync" in p.read_text()]
    assert len(scripts) == 1, [p.name for p in workdir.iterdir()]
    return scripts[0]


def our_flepimop_first(tmp_path: Path, env: dict) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "flepimop").write_text(f'#!/bin/sh\nexec {sys.executable} -m flepimop_sync "$@"\n')
    (bin_dir / "flepimop").chmod(0o755)
    env = dict(env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def run_sync_job(kind: str, files: dict, filters, gempyor_client, sshd, s3, tmp_path: Path):
    """Write ``files`` into a project whose config has one protocol 'push' (model_output/ to the
    test sshd or S3, with ``filters``), render gempyor's sync job for it, run the job's lines
    exactly as written; -> (what landed under <target>/RUN/, the job's CompletedProcess)."""
    project = tmp_path / "project"
    for rel in files:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(rel)
    extra = "" if filters is None else f"    filters: {filters!r}\n"
    if kind == "rsync":
        remote = tmp_path / "remote"
        remote.mkdir()
        protocol = f"type: rsync\n    source: model_output/\n    target: {sshd.remote(remote)}/\n{extra}"
        env = sshd.env
    else:
        bucket = s3.make_bucket()
        protocol = (f"type: s3sync\n    source: model_output/\n    target: s3://{bucket}/project/\n"
                    f"    endpoint_url: {s3.endpoint}\n{extra}")
        env = s3.env
    (project / "config.yml").write_text(f"name: sample\nsync:\n  push:\n    {protocol}")
    script = render_sync_job(gempyor_client, project, "push", tmp_path / "render")
    job = script[script.index("flepimop sync"):]
    assert job.count("flepimop sync") == 4 and "--source manifest.json" in job
    assert f"--fprefix '+ {RUN}*.pdf'" in job
    done = subprocess.run(["bash", "-e", "-c", job], cwd=project, env=our_flepimop_first(tmp_path, env),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    if kind == "rsync":
        got = list_files(remote / RUN)
        assert {p.name for p in remote.iterdir()} == {RUN}
    else:
        keys = s3.list(bucket)
        assert all(k.startswith(f"project/{RUN}/") for k in keys), keys
        got = {k[len(f"project/{RUN}/"):] for k in keys}
    return got, done


@pytest.mark.parametrize("kind", ["rsync", "s3sync"])
def test_batch_calibrate_sync_job_runs_with_our_cli(kind, gempyor_client, sshd, s3, tmp_path):
    got, _ = run_sync_job(kind, PROJECT, None, gempyor_client, sshd, s3, tmp_path)
    assert got == {dest for dest in PROJECT.values() if dest}


# The same job with the protocol's own filters: exactly that run lands under <target>/RUN/, never
# the decoys at the project root. Each file -> where it lands under <target>/RUN/ (None: nowhere).
DECOYS = {
    "model_input/geodata.csv": None,
    f"model_input/{RUN}_seeding.csv": None,
    "secrets.txt": None,
    f"{OLD}_backend.h5": None,
    f"model_output/sample_None_None/{OLD}/llik/000000002.{OLD}.llik.parquet": None,
}
RUN_FILES = {**PROJECT, **DECOYS}

# protocol filters, note lines the job prints (our rule for -s overrides: the pdf and h5 lines),
# and what else lands under <target>/RUN/ because the protocol itself selects it
FILTERS = [
    # exclude-only ("everything but the big llik files"): FILTERS.md alone would push the whole
    # project minus llik on the pdf/h5 lines (`+ RUN*.pdf, - llik/` has a '-' rule, so no tail);
    # the source override ends them with '- **'. The first line's 's RUN' comes before '- llik/'
    # (first match wins), so that run's llik files are pushed too, as the job means.
    pytest.param(["- llik/"], 2, {}, id="exclude-only"),
    pytest.param(None, 0, {}, id="no-filters"),
    # include-only: on the pdf/h5 lines the source override leaves the protocol's includes out
    # (written for model_output/, they would take the project's parquet files). The first line
    # keeps the protocol's source, so its list is FILTERS.md's 's RUN, + *.parquet, - **': -a
    # prepends (flepiMoP documents --fprefix so), and what the protocol includes is pushed with
    # the run: the protocol's scope, which a protocol meant for the sync job should not widen.
    # The manifest line names one file: the protocol's includes are left out there too (note 3).
    pytest.param(["+ *.parquet"], 3, {
        rel: rel[len("model_output/"):] for rel, dest in RUN_FILES.items()
        if dest is None and rel.startswith("model_output/") and rel.endswith(".parquet")
    }, id="include-only"),
]


@pytest.mark.parametrize("kind", ["rsync", "s3sync"])
@pytest.mark.parametrize("filters, notes, protocol_scope", FILTERS)
def test_sync_job_pushes_that_run_only(kind, filters, notes, protocol_scope, gempyor_client, sshd, s3, tmp_path):
    got, done = run_sync_job(kind, RUN_FILES, filters, gempyor_client, sshd, s3, tmp_path)
    assert got == {dest for dest in {**RUN_FILES, **protocol_scope}.values() if dest}
    noted = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    assert len(noted) == notes, done.stderr
    assert all("-s/--source replaces the protocol's source" in line or "-s/--source names one file" in line
               for line in noted)
    assert "warning: " not in done.stderr, done.stderr
