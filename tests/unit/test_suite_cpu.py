"""scripts/suite_cpu.py: the kernel's accounting records read right, and a real run measured."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from suite_cpu import ACCT_V3, AHZ, Ended, comp_t, group, parse_records, render

# comp_t as the kernel encodes it (13-bit mantissa, base-8 exponent), and its value
COMP_T = [
    (0, 0),
    (1, 1),
    (0x1FFF, 8191),
    (1 << 13 | 1, 8),  # exponent 1: times 8
    (2 << 13 | 0x1000, 0x1000 << 6),
    (7 << 13 | 1, 1 << 21),
]


@pytest.mark.parametrize("encoded,value", COMP_T)
def test_comp_t(encoded, value):
    assert comp_t(encoded) == value


def record(name: bytes, pid: int, ppid: int, utime: int, stime: int, version: int = 3) -> bytes:
    return ACCT_V3.pack(0, version, 0, 0, 0, 0, pid, ppid, 0, 0.5, utime, stime, 0, 0, 0, 0, 0, 0, name)


def test_records_parse_with_name_parent_and_cpu():
    data = record(b"aws", 10, 1, 50, 20) + record(b"python3", 11, 10, 1 << 13 | 25, 0) + b"\0" * 7
    assert parse_records(data) == [Ended("aws", 10, 1, 0.7), Ended("python3", 11, 10, 200 / AHZ)]


def test_an_unknown_record_version_is_refused():
    with pytest.raises(ValueError, match="version 2"):
        parse_records(record(b"x", 1, 0, 0, 0, version=2))


# Python processes by size (ours are small, Snakemake's large); other programs by name
GROUPS = [
    ([Ended("aws", 1, 0, 0.6), Ended("aws", 2, 0, 0.8)], {"aws": (2, 1.4)}),
    ([Ended("python3", 1, 0, 0.2), Ended("python3.11", 2, 0, 0.3), Ended("python3", 3, 0, 2.0)],
     {"python3 (< 0.5 s each)": (1, 0.2), "python3.11 (< 0.5 s each)": (1, 0.3), "python3 (>= 1 s each)": (1, 2.0)}),
    ([Ended("python", 1, 0, 0.7), Ended("snakemake", 2, 0, 2.5)],
     {"python (0.5-1 s each)": (1, 0.7), "snakemake": (1, 2.5)}),
]


@pytest.mark.parametrize("ended,expected", GROUPS)
def test_group(ended, expected):
    got = group(ended)
    assert {k: (n, round(c, 6)) for k, (n, c) in got.items()} == expected


def test_render_names_the_floor_on_the_cpus():
    text = render({"aws": (2, 300.0), "rsync": (4, 100.0)}, wall=500, cpus=2, top=1)
    assert text.splitlines()[1].split()[:3] == ["aws", "2", "300.0"]
    assert "(1 more)" in text
    assert "all: 400 CPU s in 500 s of wall time on 2 CPUs (200 s of wall at the least; 60% idle)" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="process accounting needs root")
@pytest.mark.skipif(bool(os.environ.get("FLEPIMOP_SYNC_SUITE_CPU")),
                    reason="inside a measured run: a second accounting would end the first")
def test_a_real_run_is_measured():
    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "suite_cpu.py")
    command = "rsync --version >/dev/null; exit 3"
    done = subprocess.run([sys.executable, script, "--", "bash", "-c", command], capture_output=True, text=True,
                          timeout=60)
    if done.returncode == 2 and "process accounting is not available" in done.stderr:
        pytest.skip(done.stderr.strip())  # a kernel built without BSD process accounting
    assert done.returncode == 3, done.stderr  # the command's own status
    rows = {line.split()[0] for line in done.stdout.splitlines()[1:-1]}
    assert "rsync" in rows, done.stdout
    assert done.stdout.splitlines()[-1].startswith("all: "), done.stdout
