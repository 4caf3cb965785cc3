"""slurm_jobs.wait_for against the test bed's real SLURM (no accounting: sacct fails, so final
states come from scontrol while slurmctld keeps the job).

The shapes batch-calibrate submits: an array (one task per chain) and a sync job depending on it
with `afterok` (gempyor/templates/sbatch_submit_command.bash.j2).
"""

import time

import pytest

import slurm_jobs

pytestmark = pytest.mark.integration


def sbatch(slurm, tmp_path, name, body, *extra):
    script = tmp_path / f"{name}.sbatch"
    script.write_text(f"#!/bin/sh\n#SBATCH --job-name={name}\n#SBATCH --ntasks=1\n#SBATCH --mem=100\n"
                      f"#SBATCH --output={tmp_path}/{name}-%A_%a.out\n{body}\n")
    done = slurm.run(["sbatch", "--parsable", f"--chdir={tmp_path}", *extra, str(script)])
    return done.stdout.strip().split(";")[0]


@pytest.fixture()
def env_slurm(slurm, monkeypatch):
    for key, value in slurm.env.items():
        monkeypatch.setenv(key, value)
    return slurm


@pytest.mark.parametrize("array_exit, expected", [
    (0, [("COMPLETED", {"COMPLETED 0:0"}), ("COMPLETED", set())]),
    (3, [("FAILED", {"FAILED 3:0", "COMPLETED 0:0"}), ("CANCELLED", set())]),
])
def test_array_and_dependent_job(env_slurm, tmp_path, array_exit, expected):
    # task 2 exits with array_exit; the dependent job runs only after the whole array succeeded
    array = sbatch(env_slurm, tmp_path, "calib", f'sleep 2; [ "$SLURM_ARRAY_TASK_ID" = 2 ] && exit {array_exit}; exit 0',
                   "--array=1-2")
    dependent = sbatch(env_slurm, tmp_path, "sync", "touch synced", f"--dependency=afterok:{array}")
    started = time.monotonic()
    ends = slurm_jobs.wait_for([array, dependent], poll=1, log=lambda m: None)
    assert time.monotonic() - started >= 2
    got = [(e.state, set(e.tasks.values())) for e in ends]
    assert got == expected, [e.as_dict() for e in ends]
    assert (tmp_path / "synced").exists() == (array_exit == 0)
    assert [e.source for e in ends] == ["scontrol", "scontrol" if array_exit == 0 else "squeue"]
