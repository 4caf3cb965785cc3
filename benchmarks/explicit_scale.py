#!/usr/bin/env python3
"""The exact aws path at scale: 100k files in 1,000 directories, a rule with no exact fnmatch form
whose native candidate is wrong in every directory (`+ *hnpi*.*`: fnmatch's `*` crosses `/`, so it
takes the non-matching file inside each `hnpi*` directory), so the explicit mechanism must run.

    python benchmarks/explicit_scale.py [--files-per-dir 100] [--dirs 1000]

Measures, against the loopback S3 server of tests/testbed.py (no data is moved: the aws runs are
``--dryrun``, which still lists the source and tests every file against every pattern, i.e. all of
the filtering cost):

* ours: listing + evaluator + choosing the mechanism (in-process, as ``flepimop sync`` does; for
  a large upload that includes linking the selected files into a stage directory), then every
  planned ``aws s3 sync`` step with ``--dryrun``;
* baseline: one ``aws s3 sync --dryrun`` with the exact native translation of a rule selecting the
  same files (``+ *.hnpi.parquet``).

Prints both times, the ratio, the number of aws runs and pattern tests, and checks that both
sides select the same files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.testbed import S3Server, isolated_env, _run  # noqa: E402

from flepimop_sync import plan as planning  # noqa: E402
from flepimop_sync.config import load_config  # noqa: E402
from flepimop_sync.execute import _stage_links  # noqa: E402
from flepimop_sync.filters import build_rules  # noqa: E402
from flepimop_sync.options import SyncOptions  # noqa: E402
from flepimop_sync.report import Reporter  # noqa: E402


def make_tree(root: Path, dirs: int, per_dir: int, unique_names: bool = False) -> list[str]:
    paths = []
    for d in range(dirs):
        base = root / f"model_output/USA/run{d // 100:02d}/hnpi{d:04d}"
        base.mkdir(parents=True)
        for i in range(per_dir - 1):
            (base / f"{i:09d}.x.hnpi.parquet").write_bytes(b"x")
        # the same stray name everywhere (as in real trees), or a different one in every directory
        # (the worst case: no correction generalises, the selection must be split)
        (base / (f"notes{d}.txt" if unique_names else "notes.txt")).write_bytes(b"n")
        paths += [f"{base.relative_to(root)}/{i:09d}.x.hnpi.parquet" for i in range(per_dir - 1)]
    return paths


def dryrun_selection(argv: list[str], env: dict) -> tuple[float, int]:
    start = time.perf_counter()
    done = _run([*argv, "--dryrun"], env=env, check=True, timeout=3600)
    return time.perf_counter() - start, sum(1 for line in done.stdout.splitlines() if line.startswith("(dryrun)"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dirs", type=int, default=1000)
    parser.add_argument("--files-per-dir", type=int, default=100)
    parser.add_argument("--unique-names", action="store_true",
                        help="a differently named stray file in every directory (worst case)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flepimop-explicit-") as tmp:
        work = Path(tmp)
        env = isolated_env(work / "env")
        print(f"generating {args.dirs} x {args.files_per_dir} files ...", flush=True)
        expected = make_tree(work / "src", args.dirs, args.files_per_dir, args.unique_names)
        with S3Server(work / "s3", env, backend="rclone").start() as s3:
            bucket = s3.make_bucket("explicit")
            cfg = work / "c.yml"
            cfg.write_text(f"sync:\n  ours: {{type: s3sync, source: '{work}/src/', target: 's3://{bucket}/x/', "
                           f"filters: ['+ *hnpi*.*']}}\n  base: {{type: s3sync, source: '{work}/src/', "
                           f"target: 's3://{bucket}/x/', filters: ['+ *.hnpi.parquet']}}\n")
            config = load_config([str(cfg)])

            start = time.perf_counter()
            plan = planning.build(config.get("ours"), SyncOptions())
            listing = [p for p, _ in build_rules(None).select_local(work / "src")]
            stage_dir = tempfile.mkdtemp(prefix="flepimop-sync-stage-", dir=work)
            plan = planning.finalize(plan, listing, stage_dir=stage_dir)
            if plan.stage:  # as execute does before the transfer
                _stage_links(plan, Reporter())
            planned = time.perf_counter() - start
            ours_aws, ours_n = 0.0, 0
            for step in plan.steps:
                seconds, n = dryrun_selection(list(step.argv), s3.env)
                ours_aws += seconds
                ours_n += n
            tests = 0
            for step in plan.steps:
                root = step.argv[3]
                below = (sum(1 for p in listing if p.startswith(root[len(f"{work}/src/"):]))
                         if root.startswith(f"{work}/src/") else len(plan.stage.files))
                tests += below * sum(1 for a in step.argv if a.startswith(("--include=", "--exclude=")))

            base_plan = planning.build(config.get("base"), SyncOptions())
            base_seconds, base_n = dryrun_selection(list(base_plan.steps[0].argv), s3.env)
        ours = planned + ours_aws
        print(f"files: {len(listing)} in {args.dirs} directories; selected: {len(expected)}")
        print(f"ours: {plan.mechanism_text}; {len(plan.steps)} aws run(s), {tests:,} pattern tests; "
              f"planning {planned:.2f}s + aws {ours_aws:.2f}s = {ours:.2f}s; {ours_n} files")
        print(f"baseline (native '+ *.hnpi.parquet'): {base_seconds:.2f}s; {base_n} files")
        print(f"ratio: {ours / base_seconds:.2f}")
        if ours_n != len(expected) or base_n != len(expected):
            print("MISMATCH: the two sides did not select the expected files", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
