#!/usr/bin/env python3
"""flepimop-sync benchmarks: what the wrapper costs over the tool it drives.

    python benchmarks/run.py [--quick] [--only NAME[,NAME]] [--pairs N] [--json FILE]
                             [--workdir DIR] [--keep] [--list]

Each figure is the ratio of two commands (ours over a baseline), run alternately in the same
process (ours, baseline, ours, baseline, ...) after one untimed warm-up pair; the ratio is the
median of the per-pair ratios. The baselines' argv comes from our own plan
(``flepimop_sync.api.plan_as_json``, the same thing ``flepimop sync --plan`` prints), so both
sides use the same translated filters.

Everything runs on 127.0.0.1: a private sshd and S3 server from tests/testbed.py, ssh only with
the test bed's ``-F`` config, S3 with dummy credentials, an explicit loopback endpoint and a dead
loopback proxy. ``--quick`` shrinks sizes and pairs for the CI smoke test (it checks that every
figure runs, not its numbers). Exit status: 0 when every figure ran (budget misses included;
``--strict`` makes a miss exit 3), 1 when a figure failed to run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import trees  # noqa: E402
from tests.testbed import S3Server, SSHServer, isolated_env  # noqa: E402

PY = sys.executable
BIN = Path(PY).parent
# The installed console script, run by this interpreter directly (no pyenv/venv shim in between:
# a shim's startup is the environment's cost, not ours, and the baselines use the same Python).
FLEPIMOP = [str(BIN / "flepimop")] if (BIN / "flepimop").exists() else [PY, "-m", "flepimop_sync"]
AWS = str(BIN / "aws") if (BIN / "aws").exists() else "aws"
SNAKEMAKE = str(BIN / "snakemake") if (BIN / "snakemake").exists() else "snakemake"

SIZES = {
    "full": {"files": 100_000, "s3_files": 5_000, "dirs": 1_000, "protocols": 50, "pairs": 5, "help_pairs": 21},
    "quick": {"files": 400, "s3_files": 40, "dirs": 10, "protocols": 10, "pairs": 3, "help_pairs": 3},
}
RSYNC_FILTERS = ["- *.tmp", "- .snakemake/"]  # realistic: scratch files and Snakemake state stay home
BUCKET = "bench"


# ---------------------------------------------------------------------------------------------
@dataclass
class Side:
    """One command of a pair: argv factory (run index -> argv), untimed reset before each run."""

    argv: Callable[[int], Sequence[str]]
    reset: Callable[[int], None] | None = None
    check: Callable[[int], str | None] | None = None  # after the run: None, or what went wrong
    cwd: str | None = None


@dataclass
class Figure:
    name: str
    title: str
    baseline: str
    budget: float
    prepare: Callable[["Bench"], tuple[Side, Side]]
    pairs: int | None = None  # override of the run's pair count (cheap figures take more pairs)
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    name: str
    title: str
    baseline: str
    budget: float
    ours: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    status: str = "pending"  # pass / miss / error / skipped
    reason: str = ""
    ours_argv: list[str] = field(default_factory=list)
    base_argv: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [o / b for o, b in zip(self.ours, self.base, strict=False) if b > 0]

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    def to_json(self) -> dict:
        return {
            "name": self.name, "title": self.title, "baseline": self.baseline, "budget": self.budget,
            "status": self.status, "reason": self.reason,
            "median_ours_s": statistics.median(self.ours) if self.ours else None,
            "median_baseline_s": statistics.median(self.base) if self.base else None,
            "ratio": self.ratio, "ratio_of_medians": (statistics.median(self.ours) / statistics.median(self.base)
                                                      if self.ours and self.base else None),
            "ours_s": self.ours, "baseline_s": self.base,
            "ours_argv": self.ours_argv, "baseline_argv": self.base_argv, "notes": self.notes,
        }


class FigureError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
class Bench:
    """Work directory, servers and generated trees, created lazily and shared by the figures."""

    def __init__(self, workdir: Path, sizes: dict, verbose: bool = False):
        self.workdir = workdir
        self.sizes = sizes
        self.verbose = verbose
        self.env = isolated_env(workdir / "env")
        self.env.pop("PYTHONPATH", None)
        # Bytecode as a normal install has it (pip compiles on install): the untimed warm-up pair
        # writes it, to a private prefix so nothing lands in the repository.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        self._ssh: SSHServer | None = None
        self._s3: S3Server | None = None
        self.configs = workdir / "configs"
        self.configs.mkdir(parents=True, exist_ok=True)

    # -- servers ---------------------------------------------------------------------------
    @property
    def ssh(self) -> SSHServer:
        if self._ssh is None:
            self._ssh = SSHServer(self.workdir / "sshd", self.env).start()
            self.ssh.run(["true"])  # first connection (host key, auth) outside any timing
        return self._ssh

    @property
    def s3(self) -> S3Server:
        if self._s3 is None:
            self._s3 = S3Server(self.workdir / "s3", self.env, backend="rclone").start()
            try:
                self._s3.make_bucket(BUCKET)
            except Exception:  # rclone keeps buckets across restarts of a kept workdir
                pass
        return self._s3

    def bucket_dir(self, prefix: str) -> Path:
        """Where rclone's S3 server keeps ``s3://bench/<prefix>`` on disk."""
        return self.s3.data_dir / BUCKET / prefix

    def close(self) -> None:
        for server in (self._s3, self._ssh):
            if server is not None:
                server.stop()

    # -- trees -----------------------------------------------------------------------------
    def tree(self) -> Path:
        root = self.workdir / "trees" / "flepimop"
        self.log(f"generating a flepiMoP-shaped tree of {self.sizes['files']} files in {root} ...")
        trees.flepimop_tree(root, self.sizes["files"])
        return root

    def s3_tree(self) -> Path:
        root = self.workdir / "trees" / "s3"
        trees.flepimop_tree(root, self.sizes["s3_files"])
        return root

    def slot_tree(self) -> tuple[Path, int]:
        root = self.workdir / "trees" / "slots"
        _files, slot1 = trees.slot_tree(root, self.sizes["dirs"])
        return root, slot1

    # -- configs and plans -----------------------------------------------------------------
    def write_config(self, name: str, protocols: dict) -> str:
        import yaml

        path = self.configs / f"{name}.yml"
        path.write_text(yaml.safe_dump({"sync": protocols}, sort_keys=False))
        return str(path)

    def plan_argv(self, config: str, protocol: str, **options) -> list[str]:
        """The argv our plan would run (one step), straight from ``flepimop_sync.api``."""
        from flepimop_sync.api import plan_as_json
        from flepimop_sync.options import SyncOptions

        body = plan_as_json([config], SyncOptions(protocol=protocol, **options))
        if len(body.get("steps", [])) != 1:
            raise FigureError(f"plan of {protocol!r} has {len(body.get('steps', []))} steps: {body}")
        return list(body["steps"][0]["argv"])

    def plan(self, config: str, protocol: str, **options) -> dict:
        from flepimop_sync.api import plan_as_json
        from flepimop_sync.options import SyncOptions

        return plan_as_json([config], SyncOptions(protocol=protocol, **options))

    def log(self, text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)


def _clear(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _expect_files(path: Path, n: int) -> Callable[[int], str | None]:
    def check(_i: int) -> str | None:
        got = trees.count_files(path)
        return None if got == n else f"{path}: expected {n} files, found {got}"
    return check


# ---------------------------------------------------------------------------------------------
# figures
def fig_help(_b: Bench) -> tuple[Side, Side]:
    return (Side(argv=lambda _i: [*FLEPIMOP, "sync", "--help"]),
            Side(argv=lambda _i: [PY, "-c", "import click, yaml"]))


def _rsync_setup(b: Bench, label: str) -> tuple[str, Path, Path, int]:
    src = b.tree()
    n_selected = trees.flepimop_tree(src, b.sizes["files"]) + 4  # + one manifest.json per run
    target = b.workdir / "remote" / label
    _clear(target)
    config = b.write_config(f"rsync_{label}", {"hpc": {
        "type": "rsync", "source": f"{src}/", "target": f"{b.ssh.alias}:{target}/",
        "rsh": b.ssh.rsh, "filters": RSYNC_FILTERS}})
    return config, src, target, n_selected


def fig_dryrun(b: Bench) -> tuple[Side, Side]:
    config, _src, target, _n = _rsync_setup(b, "dryrun")  # an empty target: "what would the first sync do"
    base = b.plan_argv(config, "hpc")
    cut = base.index("--")
    base = [*base[:cut], "--dry-run", *base[cut:]]
    ours = [*FLEPIMOP, "sync", "--dry-run", "-p", "hpc", config]
    empty = _expect_files(target, 0)
    return Side(argv=lambda _i: ours, check=empty), Side(argv=lambda _i: base, check=empty)


def fig_first(b: Bench) -> tuple[Side, Side]:
    config, _src, target, n = _rsync_setup(b, "first")
    base = b.plan_argv(config, "hpc")
    ours = [*FLEPIMOP, "sync", "-p", "hpc", config]
    def reset(_i: int) -> None:  # a fresh empty target, untimed; flushed so that writing back the
        _clear(target)           # previous run's files does not land in the next timed run
        os.sync()
    check = _expect_files(target, n)
    return (Side(argv=lambda _i: ours, reset=reset, check=check),
            Side(argv=lambda _i: base, reset=reset, check=check))


def fig_noop(b: Bench) -> tuple[Side, Side]:
    config, _src, target, n = _rsync_setup(b, "noop")
    base = b.plan_argv(config, "hpc")
    b.log("populating the no-op target ...")
    done = subprocess.run(base, env=b.env, capture_output=True, text=True)
    if done.returncode != 0:
        raise FigureError(f"initial sync failed: {done.stderr[-2000:]}")
    ours = [*FLEPIMOP, "sync", "-p", "hpc", config]
    check = _expect_files(target, n)
    return Side(argv=lambda _i: ours, check=check), Side(argv=lambda _i: base, check=check)


def _s3_config(b: Bench, name: str, src: Path, filters: list[str]) -> str:
    return b.write_config(name, {"s3push": {
        "type": "s3sync", "source": f"{src}/", "target": f"s3://{BUCKET}/unused/",
        "endpoint_url": b.s3.endpoint, "filters": filters}})


def _fresh_prefix_sides(b: Bench, config: str, label: str, n: int, ours_extra=(),
                        base_config: str | None = None) -> tuple[Side, Side]:
    """Every run uploads to its own new prefix (a fresh empty target); old prefixes are dropped."""
    def target(side: str, i: int) -> str:
        return f"s3://{BUCKET}/{label}-{side}-{i}/"

    def reset(side: str):
        def do(i: int) -> None:
            old = b.bucket_dir(f"{label}-{side}-{i - 1}")
            if old.exists():
                shutil.rmtree(old)
            os.sync()
        return do

    def check(side: str):
        return lambda i: (None if (got := trees.count_files(b.bucket_dir(f"{label}-{side}-{i}"))) == n
                          else f"{target(side, i)}: expected {n} objects, found {got}")

    ours = Side(argv=lambda i: [*FLEPIMOP, "sync", "-p", "s3push", *ours_extra, "-t", target("ours", i), config],
                reset=reset("ours"), check=check("ours"))
    base_cfg = base_config or config
    base = Side(argv=lambda i: b.plan_argv(base_cfg, "s3push", target=target("base", i)),
                reset=reset("base"), check=check("base"))
    return ours, base


def fig_s3(b: Bench) -> tuple[Side, Side]:
    src = b.s3_tree()
    n = trees.flepimop_tree(src, b.sizes["s3_files"]) + 4
    config = _s3_config(b, "s3_native", src, RSYNC_FILTERS)
    plan = b.plan(config, "s3push")
    if not plan["mechanism"].startswith("aws native"):
        raise FigureError(f"expected a native aws translation, got {plan['mechanism']!r}")
    return _fresh_prefix_sides(b, config, "up", n)


def fig_s3_exact(b: Bench) -> tuple[Side, Side]:
    src, slot1 = b.slot_tree()
    # contract v2 gives '+ 000000001.*' an exact native form; '.*.parquet' keeps a '*' inside the
    # name (no exact form), selecting the same files, so this figure still measures the listing path
    ours_cfg = _s3_config(b, "s3_exact", src, ["+ 000000001.*.parquet"])
    base_cfg = _s3_config(b, "s3_substring", src, ["s 000000001."])
    ours_plan, base_plan = b.plan(ours_cfg, "s3push"), b.plan(base_cfg, "s3push")
    if ours_plan["steps"]:
        raise FigureError(f"'+ 000000001.*.parquet' was expected to need the source listing: {ours_plan['mechanism']}")
    if not base_plan["mechanism"].startswith("aws native"):
        raise FigureError(f"'s 000000001.' was expected to be native: {base_plan['mechanism']}")
    return _fresh_prefix_sides(b, ours_cfg, "exact", slot1, base_config=base_cfg)


def fig_snakemake(b: Bench) -> tuple[Side, Side]:
    import snakemake_bench

    try:
        ours, base, cwd = snakemake_bench.prepare(b, REPO, SNAKEMAKE, b.sizes["protocols"])
    except snakemake_bench.Skipped as why:
        raise FigureError(f"skipped: {why}") from None
    return Side(argv=lambda _i: ours, cwd=cwd), Side(argv=lambda _i: base, cwd=cwd)


FIGURES = [
    Figure("help", "flepimop sync --help", 'python -c "import click, yaml"', 1.5, fig_help, pairs=-1),
    Figure("dryrun", "flepimop sync --dry-run selection, {files} files", "rsync -n, same translated filters",
           1.0, fig_dryrun),
    Figure("first", "first sync, {files} small files, loopback ssh", "raw rsync -a, same filters", 1.05, fig_first),
    Figure("noop", "no-op re-sync of the same tree", "raw rsync no-op", 1.10, fig_noop),
    Figure("s3", "s3sync upload of {s3_files} files, native filters", "raw aws s3 sync, same arguments",
           1.05, fig_s3),
    Figure("s3exact", "s3sync '+ 000000001.*.parquet', {dirs} directories", "'s 000000001.' via the native path",
           1.5, fig_s3_exact),
    Figure("snakemake", "snakemake -n, {protocols} protocols", "snakemake -n, 1-rule Snakefile", 1.5, fig_snakemake),
]


# ---------------------------------------------------------------------------------------------
def timed(argv: Sequence[str], env: dict, cwd: str | None) -> float:
    start = time.perf_counter()
    done = subprocess.run(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode("utf-8", "replace").strip()[-3000:]
        raise FigureError(f"exit {done.returncode}: {' '.join(map(str, argv))[:400]}\n{tail}")
    return elapsed


def run_figure(b: Bench, fig: Figure, pairs: int, warmup: bool) -> Result:
    title = fig.title.format(**b.sizes)
    res = Result(fig.name, title, fig.baseline, fig.budget)
    try:
        ours, base = fig.prepare(b)
    except ImportError as error:
        res.status, res.reason = "skipped", str(error)
        return res
    except FigureError as error:
        text = str(error)
        res.status, res.reason = ("skipped", text[len("skipped: "):]) if text.startswith("skipped: ") else ("error", text)
        return res
    res.ours_argv, res.base_argv = [str(a) for a in ours.argv(0)], [str(a) for a in base.argv(0)]
    n = pairs if fig.pairs is None else (b.sizes["help_pairs"] if fig.pairs == -1 else fig.pairs)
    schedule = ([-1] if warmup else []) + list(range(n))
    try:
        for i in schedule:
            for side, times in ((ours, res.ours), (base, res.base)):
                if side.reset:
                    side.reset(i)
                t = timed(side.argv(i), b.env, side.cwd)
                if side.check:
                    problem = side.check(i)
                    if problem:
                        raise FigureError(f"wrong result: {problem}")
                if i >= 0:
                    times.append(t)
            if i >= 0 and b.verbose:
                b.log(f"{fig.name} pair {i + 1}/{n}: ours {res.ours[-1]:.3f}s  baseline {res.base[-1]:.3f}s")
    except FigureError as error:
        res.status, res.reason = "error", str(error)
        return res
    res.status = "pass" if res.ratio is not None and res.ratio <= fig.budget else "miss"
    return res


def machine() -> dict:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            text = (done.stdout or done.stderr).strip().splitlines()
            return text[0] if text else "?"
        except (OSError, subprocess.SubprocessError):
            return "not installed"

    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = "?"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
        os_name += f" (debian_version {Path('/etc/debian_version').read_text().strip()})"
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "memory": mem, "os": os_name, "kernel": platform.release(),
        "python": platform.python_version(),
        "rsync": first_line(["rsync", "--version"]), "ssh": first_line(["ssh", "-V"]),
        "aws": first_line([AWS, "--version"]), "snakemake": first_line([SNAKEMAKE, "--version"]),
        "rclone": first_line([_rclone(), "version"]),
        "flepimop-sync": first_line([*FLEPIMOP, "--version"]),
    }


def _rclone() -> str:
    from tests.testbed import _rclone_binary

    return _rclone_binary() or "rclone"


def print_table(results: list[Result], out=sys.stdout) -> None:
    rows = [("figure", "ours (s)", "baseline (s)", "ratio", "budget", "result")]
    for r in results:
        if r.status in ("error", "skipped"):
            rows.append((f"{r.name}: {r.title}", "-", "-", "-", f"<= {r.budget:g}",
                         f"{r.status}: {r.reason.splitlines()[0][:120] if r.reason else ''}"))
            continue
        rows.append((f"{r.name}: {r.title}", f"{statistics.median(r.ours):.3f}", f"{statistics.median(r.base):.3f}",
                     f"{r.ratio:.3f}", f"<= {r.budget:g}", r.status))
    widths = [max(len(row[c]) for row in rows) for c in range(5)]
    for k, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[c]) if c < 5 else cell for c, cell in enumerate(row)).rstrip(), file=out)
        if k == 0:
            print("  ".join("-" * w for w in widths) + "  ------", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and 3 pairs (CI smoke run)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help=f"run only these figures (repeatable or comma-separated): {', '.join(f.name for f in FIGURES)}")
    ap.add_argument("--pairs", type=int, help="timed pairs per figure (default 5; 3 with --quick)")
    ap.add_argument("--json", metavar="FILE", help="write the results (and the machine) as JSON")
    ap.add_argument("--workdir", metavar="DIR", help="work directory (default: a new temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (generated trees are reused)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up pair")
    ap.add_argument("--strict", action="store_true", help="exit 3 when a figure misses its budget")
    ap.add_argument("--list", action="store_true", help="list the figures and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every pair's times")
    args = ap.parse_args(argv)

    if args.list:
        for f in FIGURES:
            print(f"{f.name:10} <= {f.budget:<5g} {f.title.format(**SIZES['full'])}  vs  {f.baseline}")
        return 0
    sizes = dict(SIZES["quick" if args.quick else "full"])
    pairs = args.pairs or sizes["pairs"]
    if args.pairs:
        sizes["help_pairs"] = max(args.pairs, sizes["help_pairs"] if not args.quick else args.pairs)
    only = {n.strip() for item in args.only for n in item.split(",") if n.strip()}
    unknown = only - {f.name for f in FIGURES}
    if unknown:
        ap.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    figures = [f for f in FIGURES if not only or f.name in only]

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="flepimop-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    keep = args.keep or bool(args.workdir)
    info = machine()
    print(f"flepimop-sync benchmarks ({'quick' if args.quick else 'full'}; {pairs} pairs, median of "
          f"per-pair ratios; workdir {workdir})")
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    bench = Bench(workdir, sizes, verbose=args.verbose)
    results: list[Result] = []
    started = time.monotonic()
    try:
        for fig in figures:
            t0 = time.monotonic()
            print(f"- {fig.name}: {fig.title.format(**sizes)} ...", file=sys.stderr, flush=True)
            res = run_figure(bench, fig, pairs, warmup=not args.no_warmup)
            res.notes += fig.notes
            results.append(res)
            extra = f" ratio {res.ratio:.3f}" if res.ratio is not None else f" ({res.reason.splitlines()[0][:200]})" if res.reason else ""
            print(f"  {fig.name}: {res.status}{extra} [{time.monotonic() - t0:.0f}s]", file=sys.stderr, flush=True)
        print()
        print_table(results)
        print(f"\ntotal {time.monotonic() - started:.0f}s", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({
                "mode": "quick" if args.quick else "full", "pairs": pairs, "sizes": sizes, "machine": info,
                "results": [r.to_json() for r in results]}, indent=2) + "\n")
    finally:
        bench.close()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if any(r.status == "error" for r in results):
        return 1
    if args.strict and any(r.status == "miss" for r in results):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
