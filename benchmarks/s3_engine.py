#!/usr/bin/env python3
"""The fast S3 engine against raw ``aws s3 sync``, with the same selection, in alternating pairs.

    python benchmarks/s3_engine.py [--pairs 3] [--quick] [--only up-1k,down-1k,...] [--json FILE]

Brings up the loopback S3 server of tests/testbed.py (``rclone serve s3``) and times, per figure,
``flepimop sync --engine rclone`` (the whole CLI: interpreter start, listings, evaluator, change
detection, rclone) against raw ``aws s3 sync`` moving the same files, run in alternating pairs
(ours, aws, ours, aws, ...) so that the noise of a shared machine hits both alike.  Each figure's
ratio is median(ours) / median(aws); every run is checked to have moved the expected files.

Figures (budget / goal from issue 13):

  up-1k, down-1k       2,000 x 1 KiB upload / download to a fresh place    <= 0.33 (goal 0.2)
  up-5m, down-5m       200 x 5 MiB upload / download                         <= 1.0
  noop-20k             re-sync of 20,000 objects that are already there     <= 0.5
  explicit-100k        100k files over 1,000 directories, rule '+ *hnpi*.*' (no exact aws form; the
                       aws side runs its exact native equivalent '+ *.hnpi.parquet'), a re-sync
                       with nothing to move (the cost of selecting, not of moving)   <= 0.5

``--quick`` shrinks every size (for the smoke test); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.testbed import S3Server, isolated_env  # noqa: E402

BUDGETS = {"up-1k": 0.33, "down-1k": 0.33, "up-5m": 1.0, "down-5m": 1.0, "noop-20k": 0.5, "explicit-100k": 0.5}


def write_tree(root: Path, count: int, size: int, dirs: int) -> list[str]:
    paths = []
    blob = os.urandom(size)
    for i in range(count):
        rel = f"model_output/USA/run/d{i % dirs:04d}/{i:09d}.x.parquet"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob[: size - 8] + i.to_bytes(8, "big") if size >= 8 else blob)
        paths.append(rel)
    return paths


def explicit_tree(root: Path, dirs: int, per_dir: int) -> list[str]:
    """benchmarks/explicit_scale.py's tree: every directory is named hnpi* and holds one stray file
    ('+ *hnpi*.*' leaves it out under contract v2); -> the selected paths."""
    sys.path.insert(0, str(HERE))
    from explicit_scale import make_tree

    return make_tree(root, dirs, per_dir)


def seed_server(s3: S3Server, bucket: str, prefix: str, src: Path, paths: list[str] | None = None) -> None:
    """Put objects straight into the server's directory (rclone serve s3 shows them in ~1 s), newer
    than the sources: a re-sync in either direction has nothing to move, for either tool."""
    dest = s3.data_dir / bucket / prefix
    if paths is None:
        shutil.copytree(src, dest, copy_function=shutil.copyfile)  # copyfile: a new mtime (copy2 keeps it)
    else:
        for rel in paths:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dest / rel)
    time.sleep(2.5)


def s3_count(s3: S3Server, bucket: str, prefix: str) -> int:
    return len(s3.list(bucket, prefix))


def local_count(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root)) if root.exists() else 0


def s3_holds(s3: S3Server, bucket: str, n: int, prefix_of):
    """check(side): does the side's prefix (``prefix_of(side)``) hold n objects?"""
    return lambda side: s3_count(s3, bucket, prefix_of(side)) == n


def local_holds(n: int, last: dict[str, str]):
    """check(side): does the side's last download directory hold n files?  (It is removed after.)"""
    def check(side: str) -> bool:
        ok = local_count(Path(last[side])) == n
        shutil.rmtree(last[side], ignore_errors=True)
        return ok
    return check


class Bench:
    def __init__(self, work: Path, s3: S3Server, pairs: int):
        self.work, self.s3, self.pairs = work, s3, pairs
        self.env = dict(s3.env, PYTHONPATH=str(REPO / "src"))
        # as benchmarks/run.py: bytecode is compiled once, as a pip install does, outside the repository
        # (with PYTHONDONTWRITEBYTECODE=1, set on these machines, every run recompiles our modules)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        self.n = 0

    def fresh(self, kind: str) -> str:
        self.n += 1
        return f"{kind}{self.n}"

    def ours(self, source: str, target: str, *filters: str) -> list[str]:
        cfg = self.work / f"c{self.n}.yml"
        cfg.write_text(json.dumps({"sync": {"p": {"type": "s3sync", "source": source, "target": target,
                                                   **({"filters": list(filters)} if filters else {})}}}))
        return [sys.executable, "-m", "flepimop_sync", "sync", "--engine", "rclone", str(cfg)]

    def aws(self, source: str, target: str, *args: str) -> list[str]:
        return ["aws", "s3", "sync", source, target, "--no-progress", "--only-show-errors", *args]

    def time(self, argv: list[str]) -> float:
        start = time.perf_counter()
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=7200)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{argv[:6]} exit {done.returncode}: {done.stderr[-1500:]}")
        return seconds

    def pair(self, name: str, make, check) -> dict:
        """make(side) -> argv for a fresh run; check(side) -> bool after it."""
        ours, base = [], []
        for _ in range(self.pairs):
            for side, bucket_list in (("ours", ours), ("aws", base)):
                argv = make(side)
                bucket_list.append(self.time(argv))
                if not check(side):
                    raise RuntimeError(f"{name}: {side} did not move the expected files")
        ratio = statistics.median(ours) / statistics.median(base)
        budget = BUDGETS[name]
        result = {"name": name, "ours_s": [round(x, 3) for x in ours], "baseline_s": [round(x, 3) for x in base],
                  "ratio": round(ratio, 3), "budget": budget, "status": "pass" if ratio <= budget else "miss"}
        print(f"{name}: ours {statistics.median(ours):.2f}s  aws {statistics.median(base):.2f}s  "
              f"ratio {ratio:.2f} (budget {budget}) {result['status']}  "
              f"[ours {result['ours_s']}, aws {result['baseline_s']}]", flush=True)
        return result


def run(args) -> dict:
    q = args.quick
    sizes = {"small": (50 if q else 2000, 1024), "large": (4 if q else 200, (64 * 1024) if q else 5 * 1024 * 1024),
             "noop": 200 if q else 20000, "explicit": (10, 10) if q else (1000, 100)}
    only = set(args.only.split(",")) if args.only else set(BUDGETS)
    results = []
    with tempfile.TemporaryDirectory(prefix="flepimop-s3engine-", dir=args.workdir) as tmp:
        work = Path(tmp)
        env = isolated_env(work / "env")
        with S3Server(work / "s3", env, backend="rclone").start() as s3:
            bench = Bench(work, s3, args.pairs)
            bucket = s3.make_bucket("bench")
            last: dict[str, str] = {}

            for label, (count, size) in (("1k", sizes["small"]), ("5m", sizes["large"])):
                if f"up-{label}" not in only and f"down-{label}" not in only:
                    continue
                src = work / f"src-{label}"
                paths = write_tree(src, count, size, dirs=20)
                if f"up-{label}" in only:
                    def make_up(side, src=src):
                        last[side] = bench.fresh(f"up-{side}-")
                        target = f"s3://{bucket}/{last[side]}/"
                        return bench.ours(f"{src}/", target) if side == "ours" else bench.aws(f"{src}/", target)
                    results.append(bench.pair(f"up-{label}", make_up,
                                              s3_holds(s3, bucket, len(paths), lambda side: last[side] + "/")))
                if f"down-{label}" in only:
                    seed_server(s3, bucket, f"all-{label}", src)

                    def make_down(side, label=label):
                        last[side] = str(work / bench.fresh(f"down-{side}-"))
                        source = f"s3://{bucket}/all-{label}/"
                        return bench.ours(source, last[side] + "/") if side == "ours" else bench.aws(source, last[side])

                    results.append(bench.pair(f"down-{label}", make_down, local_holds(len(paths), last)))
                shutil.rmtree(src)

            if "noop-20k" in only:
                src = work / "src-noop"
                paths = write_tree(src, sizes["noop"], 16, dirs=200)
                seed_server(s3, bucket, "noop", src)
                target = f"s3://{bucket}/noop/"
                results.append(bench.pair("noop-20k", lambda side: bench.ours(f"{src}/", target) if side == "ours"
                                          else bench.aws(f"{src}/", target),
                                          s3_holds(s3, bucket, len(paths), lambda _side: "noop/")))

            if "explicit-100k" in only:
                dirs, per_dir = sizes["explicit"]
                src = work / "src-explicit"
                selected = explicit_tree(src, dirs, per_dir)
                seed_server(s3, bucket, "explicit", src, selected)
                target = f"s3://{bucket}/explicit/"
                results.append(bench.pair(
                    "explicit-100k",
                    lambda side: bench.ours(f"{src}/", target, "+ *hnpi*.*") if side == "ours"
                    else bench.aws(f"{src}/", target, "--exclude=*", "--include=*.hnpi.parquet"),
                    s3_holds(s3, bucket, len(selected), lambda _side: "explicit/")))
    return {"results": results, "pairs": args.pairs, "mode": "quick" if q else "full", "sizes": sizes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", help=f"comma-separated figures (of {', '.join(BUDGETS)})")
    parser.add_argument("--json", metavar="FILE", help="write the results (and the machine) as JSON")
    parser.add_argument("--workdir", help="where the trees go (default: the system temp dir)")
    args = parser.parse_args()
    # SIGTERM unwinds like ^C, so the S3 server is stopped and the trees removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for tool in ("aws", "rclone"):
        if not shutil.which(tool):
            print(f"{tool} not installed (pip install 'flepimop-sync[fast,test]')", file=sys.stderr)
            return 2
    sys.path.insert(0, str(HERE))
    from run import machine  # the same machine description as benchmarks/run.py

    info = machine()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    out = run(args)
    out["machine"] = info
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
