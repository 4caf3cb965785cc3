"""The flepiMoP docs' run-index command, typed exactly as the docs write it (issue 12 point 1).

    flepimop sync -f'+ $FLEPI_RUN_INDEX' --target=model_output/$FLEPI_RUN_INDEX myconfig.yml

"would fetch only the results associated with the defined $FLEPI_RUN_INDEX".  The single quotes
keep ``$FLEPI_RUN_INDEX`` away from the shell, so the tool expands it (FILTERS.md section 1), and
``+ RUN`` selects the whole subtree of every directory named RUN (contract version 2).  The
command runs through ``bash -c`` with that literal text, against a protocol that pulls a
model_output tree over the suite's sshd (rsync) and from its S3 server (s3sync).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trees import list_files, write_tree

pytestmark = pytest.mark.integration

DOCS_COMMAND = "flepimop sync -f'+ $FLEPI_RUN_INDEX' --target=model_output/$FLEPI_RUN_INDEX myconfig.yml"
RUN = "20240501_120000"
OTHER = "20240601_000000"
SRC = Path(__file__).resolve().parents[2] / "src"

# the remote model_output tree (relative to model_output/)
REMOTE = [
    f"USA_inference/{RUN}/hnpi/global/final/000000001.{RUN}.hnpi.parquet",
    f"USA_inference/{RUN}/hnpi/global/intermediate/000000001.000000001.000000001.{RUN}.hnpi.parquet",
    f"USA_inference/{RUN}/llik/global/final/000000001.{RUN}.llik.parquet",
    f"USA_inference/{RUN}/run_notes.txt",
    f"USA_baseline/{RUN}/seed/global/final/000000002.{RUN}.seed.csv",
    f"USA_inference/{OTHER}/hnpi/global/final/000000001.{OTHER}.hnpi.parquet",
    f"USA_inference/{OTHER}/notes_{RUN}.txt",  # RUN in a name, not a run directory
    f"USA_inference/{OTHER}/x.{RUN}.parquet",
    f"USA_inference/{RUN}x/y.parquet",  # a directory that merely starts with RUN
    "USA_inference/run_summary.csv",
]
# what lands: the run directories' subtrees, below the target the command names
EXPECTED = {f"model_output/{RUN}/{p}" for p in REMOTE if f"/{RUN}/" in f"/{p}"}


@pytest.fixture
def flepimop_on_path(tmp_path) -> str:
    """A ``flepimop`` shim that runs this worktree's ``python -m flepimop_sync``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "flepimop"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={SRC} exec {sys.executable} -m flepimop_sync "$@"\n')
    shim.chmod(0o755)
    return str(bin_dir)


def _docs_command(cwd: Path, env: dict, bin_dir: str) -> subprocess.CompletedProcess:
    env = dict(env)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["FLEPI_RUN_INDEX"] = RUN
    return subprocess.run(["bash", "-c", DOCS_COMMAND], cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def _project(tmp_path: Path, protocol: dict) -> Path:
    project = tmp_path / "project"
    (project / "model_output").mkdir(parents=True)  # a flepiMoP project already has model_output/
    (project / "myconfig.yml").write_text(yaml.safe_dump({"sync": {"fetch": protocol}}, sort_keys=False))
    return project


def test_docs_run_index_command_over_rsync(sshd, base_env, flepimop_on_path, tmp_path):
    remote = tmp_path / "hpc" / "project" / "model_output"
    write_tree(remote, {rel: rel.encode() for rel in REMOTE})
    project = _project(tmp_path, {"type": "rsync", "source": f"{sshd.alias}:{remote}/", "target": "model_output/"})
    env = dict(base_env)
    env.update(sshd.env)
    done = _docs_command(project, env, flepimop_on_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert list_files(project) - {"myconfig.yml"} == EXPECTED, (done.stdout, done.stderr)
    assert "$FLEPI_RUN_INDEX" not in done.stderr


def test_docs_run_index_command_over_s3sync(s3, base_env, flepimop_on_path, tmp_path):
    bucket = s3.make_bucket()
    for rel in REMOTE:
        s3.client.put_object(Bucket=bucket, Key=f"project/model_output/{rel}", Body=rel.encode())
    project = _project(tmp_path, {"type": "s3sync", "source": f"s3://{bucket}/project/model_output/",
                                  "target": "model_output/"})
    env = dict(base_env)
    env.update(s3.env)
    done = _docs_command(project, env, flepimop_on_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert list_files(project) - {"myconfig.yml"} == EXPECTED, (done.stdout, done.stderr)
    assert not done.stderr.strip() or "warning" not in done.stderr.lower(), done.stderr


def test_docs_run_index_command_without_the_variable_is_refused(base_env, flepimop_on_path, tmp_path):
    """Unset, the rule cannot mean anything: exit 2 naming the variable, the rule and the option."""
    remote = tmp_path / "remote" / "model_output"
    write_tree(remote, {rel: rel.encode() for rel in REMOTE})
    project = _project(tmp_path, {"type": "rsync", "source": f"{remote}/", "target": "model_output/"})
    env = dict(base_env)
    env["PATH"] = flepimop_on_path + os.pathsep + env.get("PATH", "")
    env.pop("FLEPI_RUN_INDEX", None)
    done = subprocess.run(["bash", "-c", DOCS_COMMAND], cwd=project, env=env, text=True, capture_output=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "FLEPI_RUN_INDEX" in done.stderr and "'+ $FLEPI_RUN_INDEX'" in done.stderr and "-f" in done.stderr
    assert list_files(project) == {"myconfig.yml"}  # nothing landed, not even an empty target
