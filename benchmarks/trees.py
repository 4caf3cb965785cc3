"""Generators for flepiMoP-shaped trees used by the benchmarks.

Layout (what flepiMoP writes)::

    model_output/<setup>/<run>/<kind>/global/final/<slot>.<run>.<kind>.parquet
    model_output/<setup>/<run>/<kind>/global/intermediate/<slot>.<block>.<iter>.<run>.<kind>.parquet
    model_output/<setup>/<run>/manifest.json

Files hold ~100 bytes of deterministic data.  A tree is written once per parameter set: a stamp
file next to it records the parameters and the file count, so a second call with the same arguments is free.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

KINDS = ("seir", "hosp", "spar", "snpi", "hpar", "hnpi", "llik", "init", "seed")
SETUP = "USA_inference"
STAMP = ".bench-stamp.json"


def _payload(i: int, size: int) -> bytes:
    head = f"PAR1 {i:012d} ".encode()
    return (head * (size // len(head) + 1))[:size]


def _stamp_path(root: Path) -> Path:
    return root.parent / f"{root.name}{STAMP}"  # outside the tree: it must not be synced


def _stamped(root: Path, params: dict) -> bool:
    stamp = _stamp_path(root)
    try:
        return json.loads(stamp.read_text()).get("params") == params
    except (OSError, ValueError):
        return False


def _stamp(root: Path, params: dict, count: int) -> None:
    _stamp_path(root).write_text(json.dumps({"params": params, "files": count}))


def run_name(r: int) -> str:
    return f"2024050{1 + r // 100 % 9}_{r % 100:02d}0000"


def flepimop_tree(root: Path, n_files: int, *, runs: int = 4, iterations: int = 9, size: int = 100,
                  extras: bool = True) -> int:
    """About ``n_files`` parquet files (final + intermediate for every kind) below ``root``.

    With ``extras``, also a few files that realistic filters exclude: ``*.tmp`` scratch files and a
    ``.snakemake/`` directory (written next to model_output/).  Returns the number of parquet files.
    """
    root = Path(root)
    params = {"kind": "flepimop", "n": n_files, "runs": runs, "iterations": iterations, "size": size,
              "extras": extras}
    if _stamped(root, params):
        return json.loads(_stamp_path(root).read_text())["files"]
    if root.exists():
        shutil.rmtree(root)
    per_kind = max(1, n_files // (runs * len(KINDS)))
    slots = max(1, -(-per_kind // (1 + iterations)))
    count = 0
    for r in range(runs):
        run = run_name(r)
        run_dir = root / "model_output" / SETUP / run
        for kind in KINDS:
            final = run_dir / kind / "global" / "final"
            inter = run_dir / kind / "global" / "intermediate"
            final.mkdir(parents=True)
            inter.mkdir(parents=True)
            for s in range(1, slots + 1):
                if count >= n_files:
                    break
                _write(final / f"{s:09d}.{run}.{kind}.parquet", _payload(count, size))
                count += 1
                for it in range(1, iterations + 1):
                    if count >= n_files:
                        break
                    _write(inter / f"{s:09d}.{1:09d}.{it:09d}.{run}.{kind}.parquet", _payload(count, size))
                    count += 1
            if extras:
                _write(inter / f"scratch.{kind}.tmp", b"scratch\n")
        (run_dir / "manifest.json").write_text(json.dumps({"run": run, "setup": SETUP}) + "\n")
    if extras:
        smk = root / ".snakemake" / "log"
        smk.mkdir(parents=True)
        for i in range(20):
            _write(smk / f"{i}.snakemake.log", b"log\n")
    _stamp(root, params, count)
    return count


def slot_tree(root: Path, n_dirs: int, *, slots: int = 5, size: int = 100) -> tuple[int, int]:
    """``n_dirs`` leaf directories (runs x kinds, final/ only), ``slots`` files each.

    Slot numbers only appear as the first component of a name, so ``+ 000000001.*`` and
    ``s 000000001.`` select the same files.  Returns (files, files of slot 1).
    """
    root = Path(root)
    kinds = KINDS[:8]
    params = {"kind": "slots", "dirs": n_dirs, "slots": slots, "size": size}
    if _stamped(root, params):
        info = json.loads(_stamp_path(root).read_text())["files"]
        return tuple(info)  # type: ignore[return-value]
    if root.exists():
        shutil.rmtree(root)
    count = slot1 = 0
    for d in range(n_dirs):
        run, kind = run_name(d // len(kinds)), kinds[d % len(kinds)]
        final = root / "model_output" / SETUP / run / kind / "global" / "final"
        final.mkdir(parents=True)
        for s in range(1, slots + 1):
            _write(final / f"{s:09d}.{run}.{kind}.parquet", _payload(count, size))
            count += 1
            slot1 += s == 1
    _stamp(root, params, [count, slot1])
    return count, slot1


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def count_files(root: Path) -> int:
    """Regular files below ``root`` (0 if it does not exist)."""
    n = 0
    for _dirpath, _dirs, files in os.walk(root):
        n += len(files)
    return n
