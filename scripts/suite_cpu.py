"""Where a command's CPU goes, by program: the suite's time budget measured, not guessed.

    python3 scripts/suite_cpu.py                  # the main leg as scripts/test.sh runs it
    python3 scripts/suite_cpu.py -- python3 -m pytest -n 2 tests/integration/test_s3sync_protocol.py

Runs the command under the kernel's process accounting (acct(2): root only, Linux), then prints
the CPU seconds of every program that ended meanwhile, by name (a Python script started by its
own name counts as that name: ``aws``, ``snakemake``; ``python3 -m ...`` as ``python3``, split by
size: our CLI runs are the small ones, Snakemake's the large), and what they add up to on the
machine's CPUs.  Why: issue 14 asks for the suite within 8 minutes on 2 workers and 2 cores; the
real tools the suite exists to run (aws, rclone, rsync, ssh, git, Snakemake) have a CPU cost of
their own that no change to our code removes, and this shows it.

Accounting is machine-wide: every process that ends while it runs is counted, ours or not (run it
on a quiet machine), and only one accounting file exists at a time (the kernel's: this replaces
whatever else was accounting, e.g. a psacct service, until the command ends).  The command gets
FLEPIMOP_SYNC_SUITE_CPU=1, so the suite's own test of this script stays out of a measured run.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The main leg of scripts/test.sh (the Python 3.10 leg and the linters aside).
MAIN_LEG = [sys.executable, "-m", "pytest", "-n", "2", "--maxschedchunk", "1", "--timeout=900", "-q",
            "-p", "no:cacheprovider"]
#: struct acct_v3 (linux/acct.h): flag, version, tty, exitcode, uid, gid, pid, ppid, btime, etime,
#: utime, stime, mem, io, rw, minflt, majflt, swaps (comp_t), comm[16].
ACCT_V3 = struct.Struct("<BBHIIIIIIf8H16s")
AHZ = 100  # comp_t times are in these ticks per second
PYTHON_NAMES = ("python", "python3")
#: Python processes by CPU each: our CLI's runs are in the first band, Snakemake's in the last.
PYTHON_BANDS = ((0.5, "< 0.5 s each"), (1.0, "0.5-1 s each"), (float("inf"), ">= 1 s each"))


@dataclass(frozen=True)
class Ended:
    """One process that ended: its name (the kernel's comm), pid, parent and CPU seconds."""

    name: str
    pid: int
    ppid: int
    cpu: float


def comp_t(value: int) -> int:
    """The kernel's comp_t: a 13-bit mantissa and a 3-bit base-8 exponent."""
    return (value & 0x1FFF) << (3 * (value >> 13))


def parse_records(data: bytes) -> list[Ended]:
    """The acct_v3 records of an accounting file (a trailing partial record is left out)."""
    out = []
    for offset in range(0, len(data) - ACCT_V3.size + 1, ACCT_V3.size):
        fields = ACCT_V3.unpack_from(data, offset)
        if fields[1] & 0x0F != 3:  # ac_version (its high bit: big-endian hosts)
            raise ValueError(f"accounting record {offset // ACCT_V3.size}: version {fields[1]}, expected 3")
        utime, stime, comm = fields[10], fields[11], fields[18]
        out.append(Ended(name=comm.split(b"\0", 1)[0].decode("utf-8", "replace"), pid=fields[6],
                         ppid=fields[7], cpu=(comp_t(utime) + comp_t(stime)) / AHZ))
    return out


def group(ended: list[Ended]) -> dict[str, tuple[int, float]]:
    """CPU by program name: name -> (processes, CPU seconds); Python ones split by size."""
    rows: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for e in ended:
        name = e.name
        if name.rstrip("0123456789.") in PYTHON_NAMES:
            band = next(label for limit, label in PYTHON_BANDS if e.cpu < limit)
            name = f"{name} ({band})"
        rows[name][0] += 1
        rows[name][1] += e.cpu
    return {name: (int(n), cpu) for name, (n, cpu) in rows.items()}


def render(rows: dict[str, tuple[int, float]], wall: float, cpus: int, top: int = 25) -> str:
    total = sum(cpu for _, cpu in rows.values())
    lines = [f"{'program':<34} {'processes':>9} {'CPU s':>9} {'share':>6}"]
    ordered = sorted(rows.items(), key=lambda item: -item[1][1])
    for name, (n, cpu) in ordered[:top]:
        lines.append(f"{name:<34} {n:>9} {cpu:>9.1f} {cpu / total if total else 0:>6.1%}")
    rest = ordered[top:]
    if rest:
        lines.append(f"{f'({len(rest)} more)':<34} {sum(n for _, (n, _) in rest):>9} "
                     f"{sum(c for _, (_, c) in rest):>9.1f}")
    lines.append(f"all: {total:.0f} CPU s in {wall:.0f} s of wall time on {cpus} CPUs "
                 f"({total / cpus:.0f} s of wall at the least; {max(0.0, 1 - total / (wall * cpus)):.0%} idle)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=25, help="programs listed (default 25)")
    parser.add_argument("command", nargs="*", help="the command to measure (after --); default: the main leg")
    args = parser.parse_args(argv)
    command = args.command or MAIN_LEG
    libc = ctypes.CDLL(None, use_errno=True)
    with tempfile.TemporaryDirectory(prefix="suite-cpu-") as tmp:
        accounting = Path(tmp) / "acct"
        accounting.touch()
        if libc.acct(str(accounting).encode()) != 0:
            print(f"suite_cpu: error: process accounting is not available here "
                  f"(acct: {os.strerror(ctypes.get_errno())}; it needs root)", file=sys.stderr)
            return 2
        start = time.monotonic()
        try:
            status = subprocess.call(command, cwd=REPO, env=dict(os.environ, FLEPIMOP_SYNC_SUITE_CPU="1"))
        finally:
            wall = time.monotonic() - start
            libc.acct(None)
        ended = parse_records(accounting.read_bytes())
    print(render(group(ended), wall, os.cpu_count() or 1, args.top))
    return status


if __name__ == "__main__":
    sys.exit(main())
