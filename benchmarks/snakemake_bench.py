"""The Snakemake figure: ``snakemake -n`` on the workflow with N protocols vs a 1-rule Snakefile.

The workflow (workflow/Snakefile) makes one rule ``sync_<name>`` per protocol of the sync
configs listed in its config.  We generate a flepiMoP config with N rsync protocols, a workflow
config that lists it (and asks ``rule all`` for every sync rule, the calibration steps off), and
run both Snakefiles from the same scratch working directory (never the repository).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

BASELINE_SNAKEFILE = """\
rule all:
    output:
        "baseline.done"
    shell:
        "touch {output}"
"""


class Skipped(Exception):
    pass


def prepare(bench, repo: Path, snakemake: str, n_protocols: int) -> tuple[list[str], list[str], str]:
    """(ours argv, baseline argv, cwd).  Raises Skipped(reason) when the workflow is unusable."""
    snakefile = repo / "workflow" / "Snakefile"
    template = repo / "config" / "config.yaml"
    if shutil.which(snakemake) is None and not Path(snakemake).exists():
        raise Skipped("snakemake is not installed")
    if not snakefile.exists() or not template.exists():
        raise Skipped(f"the workflow is not there yet ({snakefile} / {template})")

    root = bench.workdir / "snakemake"
    if root.exists():
        shutil.rmtree(root)
    (root / "config").mkdir(parents=True)
    data = root / "data"
    protocols = {}
    kinds = ("hnpi", "snpi", "seed", "hosp", "seir")
    for i in range(n_protocols):
        kind = kinds[i % len(kinds)]
        protocols[f"p{i:02d}"] = {
            "type": "rsync",
            "description": f"generated protocol {i}",
            "source": f"{data}/model_output/run{i:02d}/",
            "target": f"{data}/archive/run{i:02d}/",
            "filters": [f"+ {kind}/**", "- intermediate/", "+ *.parquet"] if i % 2 else ["- llik/", "- *.tmp"],
            "mkpath": True,
        }
    flepimop_cfg = root / "config" / "flepimop.yml"
    flepimop_cfg.write_text(yaml.safe_dump({"name": "bench", "sync": protocols}, sort_keys=False))

    config = yaml.safe_load(template.read_text())
    config["sync_configs"] = [str(flepimop_cfg)]
    config["model_config"] = str(flepimop_cfg)
    config["sync_in_all"] = list(protocols)
    for step in ("resume_fetch", "calibrate", "snapshot"):
        if isinstance(config.get(step), dict):
            config[step]["enabled"] = False
    workflow_cfg = root / "config" / "config.yaml"  # the Snakefile's own `configfile:` path, relative to cwd
    workflow_cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "Snakefile.baseline").write_text(BASELINE_SNAKEFILE)

    common = ["-n", "--cores", "1", "--quiet", "rules"]
    ours = [snakemake, *common, "-s", str(snakefile), "--configfile", str(workflow_cfg)]
    base = [snakemake, *common, "-s", str(root / "Snakefile.baseline")]
    # Check once (untimed) that the workflow plans every generated rule.
    done = subprocess.run([snakemake, "-n", "--cores", "1", "-s", str(snakefile), "--configfile", str(workflow_cfg)],
                          cwd=root, env=bench.env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
        raise Skipped("the workflow does not plan yet (snakemake -n exit "
                          f"{done.returncode}): " + " | ".join(tail))
    planned = sum(1 for name in protocols if f"sync_{name}" in done.stdout + done.stderr)
    if planned != n_protocols:
        raise Skipped(f"snakemake -n planned {planned} of {n_protocols} sync rules")
    return ours, base, str(root)
