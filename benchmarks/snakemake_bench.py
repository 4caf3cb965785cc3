"""The Snakemake figure: ``snakemake -n`` on a campaign of N runs vs the same DAG from a plain Snakefile.

The workflow (workflow/Snakefile) makes one node per step and run (resume_fetch_run,
calibrate_run, snapshot_run, each with a {run} wildcard) plus ``all``. We generate a campaign
config with N runs (rsync protocols on generated paths) and a plain Snakefile with the same
three rules, trivial (``touch``), over the same N runs: the same 3N+1 jobs. Both are planned with
``snakemake -n`` from the same scratch working directory (never the repository), alternately in
one process; the figure is the median of the per-pair ratios (budget: 1.5).

    python benchmarks/snakemake_bench.py                 # 1, 100 and 1,000 runs, 3 pairs each
    python benchmarks/snakemake_bench.py --runs 100 --pairs 5

``benchmarks/run.py`` also uses ``prepare`` (its ``snakemake`` figure, N = its "protocols" size).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BUDGET = 1.5

BASELINE_SNAKEFILE = """\
RUNS = [line.strip() for line in open("runs.txt") if line.strip()]


rule all:
    input:
        expand("results/{run}/receipts/snapshot.json", run=RUNS),
    default_target: True


rule resume_fetch_run:
    output:
        "results/{run}/receipts/resume_fetch.json",
    shell:
        "touch {output}"


rule calibrate_run:
    input:
        "results/{run}/receipts/resume_fetch.json",
    output:
        "results/{run}/receipts/calibrate.json",
    shell:
        "touch {output}"


rule snapshot_run:
    input:
        "results/{run}/receipts/calibrate.json",
    output:
        "results/{run}/receipts/snapshot.json",
    shell:
        "touch {output}"
"""


class Skipped(Exception):
    pass


def prepare(bench, repo: Path, snakemake: str, n_runs: int) -> tuple[list[str], list[str], str]:
    """(ours argv, baseline argv, cwd). Raises Skipped(reason) when the workflow is unusable."""
    snakefile = repo / "workflow" / "Snakefile"
    if shutil.which(snakemake) is None and not Path(snakemake).exists():
        raise Skipped("snakemake is not installed")
    if not snakefile.exists():
        raise Skipped(f"the workflow is not there ({snakefile})")

    root = bench.workdir / "snakemake"
    if root.exists():
        shutil.rmtree(root)
    (root / "config").mkdir(parents=True)
    data = root / "data"
    protocols = {
        "resume": {"type": "rsync", "source": f"{data}/previous/model_output/", "target": f"{data}/model_output/",
                   "mkpath": True},
        "snapshot": {"type": "rsync", "source": f"{data}/model_output/", "target": f"{data}/archive/",
                     "filters": ["- intermediate/", "- *.tmp"], "mkpath": True},
    }
    flepimop_cfg = root / "config" / "flepimop.yml"
    flepimop_cfg.write_text(yaml.safe_dump({"name": "bench", "sync": protocols}, sort_keys=False))
    runs = [f"run{i:04d}" for i in range(n_runs)]
    config = {
        "sync_configs": [str(flepimop_cfg)],
        "resume_fetch": {"protocol": "resume", "source": "+ USA_inference/{run}/", "target": "+ {run}/"},
        "calibrate": {"command": "true", "outputs": "data/model_output/{run}"},
        "snapshot": {"protocol": "snapshot", "source": "+ {run}/", "manifest": None},
        # a few runs with overrides, as campaigns have
        "runs": [{"name": name, **({"snapshot": {"filters": ["- llik/"]}} if i % 10 == 0 else {})}
                 for i, name in enumerate(runs)],
    }
    workflow_cfg = root / "config" / "config.yaml"  # the Snakefile's own `configfile:` path, relative to cwd
    workflow_cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "runs.txt").write_text("\n".join(runs) + "\n")
    (root / "Snakefile.baseline").write_text(BASELINE_SNAKEFILE)

    common = ["-n", "--cores", "1", "--quiet", "rules"]
    ours = [snakemake, *common, "-s", str(snakefile), "--configfile", str(workflow_cfg)]
    base = [snakemake, *common, "-s", str(root / "Snakefile.baseline")]
    # Check once (untimed) that both plan the same jobs: 3 per run and `all`.
    for argv in (ours, base):
        done = subprocess.run([a for a in argv if a not in ("--quiet", "rules")], cwd=root, env=bench.env,
                              capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
            raise Skipped(f"snakemake -n exit {done.returncode}: " + " | ".join(tail))
        total = [line.split() for line in (done.stdout + done.stderr).splitlines() if line.startswith("total")]
        if not total or int(total[0][1]) != 3 * n_runs + 1:
            raise Skipped(f"{argv[-1]}: expected {3 * n_runs + 1} jobs, planned {total}")
    return ours, base, str(root)


class _Bench:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.env = dict(os.environ)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")


def _timed(argv, env, cwd) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"exit {done.returncode}: {' '.join(argv)}\n{done.stderr.decode()[-2000:]}")
    return time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, nargs="+", default=[1, 100, 1000])
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    snakemake = str(Path(sys.executable).parent / "snakemake")
    if not Path(snakemake).exists():
        snakemake = "snakemake"
    print(f"snakemake -n, campaign of N runs vs a plain Snakefile with the same 3N+1 jobs; "
          f"{args.pairs} pairs after a warm-up pair; budget {BUDGET}")
    print("| runs | ours (median s) | plain (median s) | ratio (median of pairs) | result |")
    print("|---|---|---|---|---|")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="fms-smk-bench-") as tmp:
        bench = _Bench(Path(tmp))
        env = dict(bench.env, PYTHONPATH=str(repo / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
        bench.env = env
        for n in args.runs:
            ours, base, cwd = prepare(bench, repo, snakemake, n)
            _timed(ours, env, cwd), _timed(base, env, cwd)  # warm-up pair (bytecode, caches)
            pairs = [(_timed(ours, env, cwd), _timed(base, env, cwd)) for _ in range(args.pairs)]
            ratio = statistics.median(o / b for o, b in pairs)
            worst = max(worst, ratio)
            print(f"| {n:,} | {statistics.median(o for o, _ in pairs):.2f} | "
                  f"{statistics.median(b for _, b in pairs):.2f} | {ratio:.2f} | "
                  f"{'pass' if ratio <= BUDGET else 'MISS'} |", flush=True)
    return 0 if worst <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
