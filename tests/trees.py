"""flepiMoP-shaped file trees and random filter lists for the filter tests (and anyone else).

* :func:`make_worked_tree` builds the FILTERS.md section 6 tree (a few hundred small files).
* :func:`make_random_tree` builds a smaller, randomised flepiMoP-shaped tree whose names mix in
  hnpi/llik/RUN/final, dots, spaces, brackets, glob characters and unicode.
* :func:`random_filter_list` draws filter lists whose names come from a tree, so they match.
* :func:`list_files` lists the files (and symlinks) below a directory, relative, '/'-separated.
* :func:`write_tree` writes ``{relative path: content}``; :func:`tree` reads it back.
* :data:`RUN_FILES` is a small flepiMoP run (one file per output type) for end-to-end tests.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Iterable, Mapping

__all__ = [
    "WORKED_RUNS",
    "WORKED_FTYPES",
    "WORKED_CASES",
    "worked_tree_paths",
    "make_worked_tree",
    "make_random_tree",
    "random_tree_paths",
    "random_filter_list",
    "list_files",
    "write_files",
    "RUN_FILES",
    "write_tree",
    "tree",
]

WORKED_SETUPS = ("USA_inference", "USA_baseline")
WORKED_RUNS = ("20240501_120000", "20240601_000000")
WORKED_FTYPES = ("hnpi", "snpi", "seed", "hosp", "llik", "seir", "spar", "hpar", "init")
WORKED_SLOTS = ("000000001", "000000002")
WORKED_BLOCKS = ("000000001",)
WORKED_ITERS = ("000000001", "000000002")

WORKED_TOP = (
    "config.yml",
    "config_RUN_notes.yml",
    "summary.csv",
    "README.md",
    "llik_summary.csv",
    "RUN_manifest.json",
    "model_output/USA_inference/run_summary.csv",
    "model_output/USA_inference/RUNLOG.txt",
    "model_output/USA_baseline/20240601_000000/hosp/global/final/hosp_summary.csv",
    "model_output/USA_baseline/20240601_000000/llik/global/final/llik_totals.csv",
    "model_output/USA_inference/20240501_120000/spar/global/final/notes.txt",
    "data/hnpi_inputs/geodata.csv",
    "data/seeding.csv",
    "data/intermediate_inputs/mobility.txt",
)

# FILTERS.md section 6 (contract version 2), verbatim and in its order.
WORKED_CASES = (
    ["*hnpi*", "*snpi*", "*seed*", "- *"],
    ["+ *.20240501_120000.*"],
    ["+ 20240501_120000"],
    ["+ hnpi/", "+ snpi/", "- *"],
    ["+ /model_output/USA_inference"],
    ["- llik/"],
    ["+ *.csv", "- *"],
    ["s hosp"],
    ["s global/final"],
    ["s RUN", "- *llik*"],
    ["- *llik*", "s RUN"],
    ["+ /model_output/USA_inference/**"],
    ["- /model_output/USA_baseline"],
    ["+ *.parquet", "- *intermediate*"],
    ["s hnpi", "s snpi"],
)


def worked_tree_paths() -> list[str]:
    paths = list(WORKED_TOP)
    for setup in WORKED_SETUPS:
        for run in WORKED_RUNS:
            for ft in WORKED_FTYPES:
                base = f"model_output/{setup}/{run}/{ft}/global"
                for slot in WORKED_SLOTS:
                    paths.append(f"{base}/final/{slot}.{run}.{ft}.parquet")
                    for blk in WORKED_BLOCKS:
                        for it in WORKED_ITERS:
                            paths.append(f"{base}/intermediate/{slot}.{blk}.{it}.{run}.{ft}.parquet")
    return sorted(paths)


def write_files(root: os.PathLike | str, paths: Iterable[str]) -> None:
    root = Path(root)
    for p in paths:
        f = root / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes((p + "\n").encode("utf-8", "surrogateescape"))


def make_worked_tree(root: os.PathLike | str) -> list[str]:
    """The FILTERS.md section 6 tree under ``root`` (created); returns the sorted file paths."""
    paths = worked_tree_paths()
    write_files(root, paths)
    return paths


# --------------------------------------------------------------------------------------------
# random trees

_EXTRA_WORDS = (
    "hnpi", "snpi", "seed", "llik", "hosp", "RUN", "final", "intermediate", "global", "spar",
    "config", "data", "out", "tmp", "x", "a", "b", "USA", "run",
)
_ODD_BITS = (
    " ", ".", "..", "_", "-", "[1]", "[a-b]", "(2)", "é", "ü", "日本", "+", "=", "#", "!", "~",
    "*", "?", "\\", "{x}", "%", "&", "'", ",",
)
_EXTS = (".parquet", ".csv", ".txt", ".json", ".yml", "", ".tar.gz", ".RUN.out")


def _odd_name(rng: random.Random, word_p: float = 0.7) -> str:
    parts = []
    for _ in range(rng.randint(1, 3)):
        if rng.random() < word_p:
            parts.append(rng.choice(_EXTRA_WORDS))
        else:
            parts.append(rng.choice(_ODD_BITS))
    name = "".join(parts).strip(" ")
    if name in ("", ".", "..") or name.startswith("-"):
        name = "n" + name
    return name


def random_tree_paths(rng: random.Random, n_files: int = 100) -> list[str]:
    """A flepiMoP-shaped random listing (no files written)."""
    paths: set[str] = set()
    setups = rng.sample(["USA_inference", "USA_baseline", "CA_RUN", "hnpi_setup", "x y"], k=rng.randint(1, 3))
    runs = rng.sample(["20240501_120000", "20240601_000000", "RUN_1", "final.run", "r[1]"], k=rng.randint(1, 2))
    ftypes = rng.sample(list(WORKED_FTYPES), k=rng.randint(2, 5))
    dirs: list[str] = []
    target_main = max(1, int(n_files * 0.6))
    attempts = 0
    while len(paths) < target_main and attempts < 20 * n_files:
        attempts += 1
        setup, run, ft = rng.choice(setups), rng.choice(runs), rng.choice(ftypes)
        kind = rng.choice(["final", "intermediate"])
        slot = f"{rng.randint(1, 3):09d}"
        if kind == "final":
            name = f"{slot}.{run}.{ft}.parquet"
        else:
            name = f"{slot}.000000001.{rng.randint(1, 6):09d}.{run}.{ft}.parquet"
        d = f"model_output/{setup}/{run}/{ft}/global/{kind}"
        dirs.append(d)
        paths.add(f"{d}/{name}")
    # odd extras: some at the top, some inside new odd directories, some inside existing ones
    dirs.extend(["", "", "data", "model_output"])
    attempts = 0
    while len(paths) < n_files and attempts < 20 * n_files:
        attempts += 1
        r = rng.random()
        if r < 0.35:
            base = rng.choice(dirs)
        else:
            base = "/".join(_odd_name(rng) for _ in range(rng.randint(1, 3)))
            parent = rng.choice(["", "", "model_output", rng.choice(dirs)])
            base = f"{parent}/{base}".strip("/")
            dirs.append(base)
        name = _odd_name(rng) + rng.choice(_EXTS)
        p = f"{base}/{name}".strip("/")
        paths.add(p)
    # a path can't be both a file and a directory
    dir_set = {p.rsplit("/", 1)[0] for p in paths if "/" in p}
    prefixes = set()
    for d in dir_set:
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            prefixes.add("/".join(parts[:i]))
    return sorted(p for p in paths if p not in prefixes)


def make_random_tree(root: os.PathLike | str, rng: random.Random, n_files: int = 100) -> list[str]:
    """Write a random flepiMoP-shaped tree under ``root``; returns the sorted file paths."""
    paths = random_tree_paths(rng, n_files)
    write_files(root, paths)
    return paths


# --------------------------------------------------------------------------------------------
# random filter lists


def _escape(name: str) -> str:
    return "".join("\\" + c if c in "*?[\\" else c for c in name)


def _wildify(rng: random.Random, name: str) -> str:
    """Turn a literal name into a pattern that still matches it."""
    choice = rng.random()
    if choice < 0.25 or len(name) < 3:
        return _escape(name)
    i = rng.randrange(len(name))
    j = min(len(name), i + rng.randint(1, 5))
    if choice < 0.45:  # *middle*
        return "*" + _escape(name[i:j]) + "*"
    if choice < 0.6:  # prefix*
        return _escape(name[:j]) + "*"
    if choice < 0.72:  # *suffix
        return "*" + _escape(name[i:])
    if choice < 0.84:  # one '?'
        k = rng.randrange(len(name))
        if name[k] == "/" or ord(name[k]) > 127:
            return _escape(name)
        return _escape(name[:k]) + "?" + _escape(name[k + 1 :])
    # a set
    k = rng.randrange(len(name))
    c = name[k]
    if not c.isalnum() or ord(c) > 127:
        return _escape(name)
    other = rng.choice("abcxyz019")
    set_text = rng.choice([f"[{c}{other}]", f"[!{other}]" if other != c else f"[{c}]", f"[{min(c, other)}-{max(c, other)}]"])
    return _escape(name[:k]) + set_text + _escape(name[k + 1 :])


def _random_pattern(rng: random.Random, path: str) -> str:
    comps = path.split("/")
    n = len(comps)
    r = rng.random()
    if r < 0.35:  # single component (file name or a directory name)
        k = rng.randrange(n)
        pat = _wildify(rng, comps[k])
        if k < n - 1 and rng.random() < 0.4:
            pat += "/"
        return pat
    if r < 0.5 and n >= 2:  # multi-component tail
        k = rng.randrange(n - 1)
        m = rng.randint(2, min(3, n - k))
        parts = [_wildify(rng, c) if rng.random() < 0.4 else _escape(c) for c in comps[k : k + m]]
        pat = "/".join(parts)
        if k + m < n and rng.random() < 0.3:
            pat += "/"
        return pat
    if r < 0.68:  # anchored
        m = rng.randint(1, n)
        parts = [_escape(c) if rng.random() < 0.7 else _wildify(rng, c) for c in comps[:m]]
        pat = "/" + "/".join(parts)
        if m < n:
            pat += rng.choice(["", "", "/", "/**"])
        return pat
    if r < 0.85:  # '**' forms
        k = rng.randrange(n)
        c = _wildify(rng, comps[k]) if rng.random() < 0.4 else _escape(comps[k])
        return rng.choice([f"**/{c}", f"{c}/**" if k < n - 1 else f"**/{c}", f"**{c}", f"{c}**",
                           f"**/{c}/**" if k < n - 1 else f"**{c}**"])
    return rng.choice(["*", "**", "*.csv", "*.parquet", "*.txt", "*/", "?", "[a-m]*", "*[!a-z]"])


def random_filter_list(rng: random.Random, tree_paths: list[str], max_rules: int = 5) -> list[str]:
    """A random filter list (texts) mixing +, -, s and unprefixed rules drawn from ``tree_paths``."""
    from flepimop_sync.errors import FilterError
    from flepimop_sync.filters import parse_rule

    out: list[str] = []
    want = rng.randint(1, max_rules)
    tries = 0
    while len(out) < want and tries < 100:
        tries += 1
        path = rng.choice(tree_paths)
        kind = rng.random()
        if kind < 0.2:  # substring
            full = "/" + path
            i = rng.randrange(len(full))
            j = min(len(full), i + rng.randint(2, 9))
            text = "s " + full[i:j]
        else:
            pat = _random_pattern(rng, path)
            if kind < 0.55:
                text = "- " + pat
            elif kind < 0.85:
                text = "+ " + pat
            else:
                text = pat
                if text[:2] in ("+ ", "- ", "s ") or text[:1] in "+-":
                    text = "+ " + pat
        try:
            parse_rule(text, "random")
        except FilterError:
            continue
        out.append(text)
    return out


def list_files(root: os.PathLike | str) -> set[str]:
    """Relative '/'-separated paths of every non-directory entry below ``root``."""
    root = os.fspath(root)
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in filenames:
            out.add(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
        for name in dirnames:  # symlinks to directories are entries, not descended
            if os.path.islink(os.path.join(dirpath, name)):
                out.add(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return out


# --------------------------------------------------------------------------------------------
# small literal trees: {relative path: content}

RUN_FILES = {
    "model_output/USA/20240501_120000/hnpi/global/final/000000001.20240501_120000.hnpi.parquet": b"hnpi1",
    "model_output/USA/20240501_120000/hnpi/global/intermediate/000000001.000000001.000000001.20240501_120000.hnpi.parquet": b"hnpi-int",
    "model_output/USA/20240501_120000/snpi/global/final/000000001.20240501_120000.snpi.parquet": b"snpi1",
    "model_output/USA/20240501_120000/seed/global/final/000000001.20240501_120000.seed.csv": b"seed1",
    "model_output/USA/20240501_120000/llik/global/final/000000001.20240501_120000.llik.parquet": b"llik" * 50,
    "model_output/USA/20240501_120000/hosp/global/final/000000001.20240501_120000.hosp.parquet": b"hosp1",
    "model_output/USA/20240501_120000/seir/global/final/000000001.20240501_120000.seir.parquet": b"seir1",
    "model_output/USA/20240501_120000/spar/global/final/000000001.20240501_120000.spar.parquet": b"spar1",
    "model_output/USA/manifest.json": b"{}",
}


def write_tree(root: os.PathLike | str, files: Mapping[str, bytes | str]) -> Path:
    """Write ``{relative path: content}`` below ``root`` (parents created); returns root."""
    root = Path(root)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
    return root


def tree(root: os.PathLike | str, *, links: bool = True) -> dict[str, bytes]:
    """{relative path: content} of the files below ``root``, in path order.

    A symlink to a file counts (with its target's content) unless ``links=False``; symlinked
    directories are not descended.
    """
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and (links or not p.is_symlink())}


def random_trees(base: os.PathLike | str, n_trees: int, lists_per_tree: int,
                 first_seed: int = 20240501) -> list[tuple[int, Path, list[str], list[list[str]]]]:
    """The differential suites' random trees under ``base``: for each, (seed, root, its paths,
    ``lists_per_tree`` random filter lists), seeded so a failure names what to replay."""
    out = []
    for i in range(n_trees):
        seed = first_seed + i
        rng = random.Random(seed)
        root = Path(base) / f"tree{i}"
        paths = make_random_tree(root, rng, n_files=rng.randint(60, 150))
        out.append((seed, root, paths, [random_filter_list(rng, paths) for _ in range(lists_per_tree)]))
    return out
