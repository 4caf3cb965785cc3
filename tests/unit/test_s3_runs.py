"""The explicit aws mechanism at scale: corrections on the native candidate, and large
selections split into several cheap aws runs that together select exactly the evaluator's set."""

from __future__ import annotations

import random

import pytest

from trees import random_filter_list, random_tree_paths

from flepimop_sync.filters import build_rules
from flepimop_sync.s3filters import (
    aws_select_paths,
    choose_aws_filter_args,
    explicit_aws_runs,
)


def runs_select(runs, paths):
    """What a sequence of aws runs moves: each run sees the paths below its subdir, relative to it."""
    moved = set()
    for run in runs:
        below = [p[len(run.subdir):] for p in paths if p.startswith(run.subdir)]
        moved |= {run.subdir + p for p in aws_select_paths(run.args, below)}
    return moved


@pytest.mark.parametrize("seed", range(40))
def test_split_runs_select_exactly(seed):
    rng = random.Random(seed)
    paths = random_tree_paths(rng, n_files=rng.randint(80, 300))
    texts = random_filter_list(rng, paths)
    rules = build_rules(None, override=texts)
    selected = [p for p, _ in rules.select_paths((p, 0) for p in paths)]
    runs = explicit_aws_runs(selected, paths, process_cost=1)  # cheap processes: force deep splits
    assert runs_select(runs, paths) == set(selected), (seed, texts)
    subdirs = [r.subdir for r in runs]
    assert len(subdirs) == len(set(subdirs)) or all(r.args[:2] == ("--exclude", "*") for r in runs
                                                     if subdirs.count(r.subdir) > 1)


def test_large_explicit_selection_is_split_and_exact():
    """100k files in 1,000 directories, a rule with no exact aws form and a selection with no
    short encoding (a different file wrongly matched in every directory): the choice stays exact
    and is split into per-subtree runs that make far fewer pattern tests than one run would."""
    paths = []
    for d in range(1000):
        base = f"model_output/USA/run{d // 100}/0hnpi{d:04d}"
        paths += [f"{base}/{i:09d}.x.hnpi.parquet" for i in range(95)]
        paths += [f"{base}/notes{d}-{i}.parquet" for i in range(5)]  # below a 0* dir: fnmatch would take them
    rules = build_rules(None, override=["+ 0*.parquet"])
    choice = choose_aws_filter_args(rules, paths)
    assert choice.mechanism == "explicit"
    expected = {p for p in paths if p.rsplit("/", 1)[1].startswith("0")}
    assert runs_select(choice.runs, paths) == expected
    assert len(choice.runs) > 1
    tests = sum(sum(1 for p in paths if p.startswith(r.subdir)) * (len(r.args) // 2) for r in choice.runs)
    assert tests <= 100_000 * 5_000 // 10


def test_wrong_files_of_one_name_are_corrected_by_one_pattern():
    """A file the candidate wrongly takes in every directory: one generalised exclude fixes it."""
    paths = [f"{i}d/hnpi/{j}.hnpi.csv" for i in range(50) for j in range(20)] + [f"{i}d/hnpi/readme.csv"
                                                                                for i in range(50)]
    rules = build_rules(None, override=["+ [0-9]*.csv"])  # fnmatch's '*' crosses '/' from '{i}d'
    choice = choose_aws_filter_args(rules, paths)
    assert choice.mechanism == "explicit" and len(choice.runs) == 1
    assert choice.args[-2:] == ("--exclude", "*/readme.csv")
    assert set(aws_select_paths(choice.args, paths)) == {p for p in paths if p.endswith(".hnpi.csv")}


def test_a_name_that_is_also_selected_elsewhere_is_corrected_per_file():
    paths = ["1a/x.csv", "b/2.csv", "x.csv"]
    rules = build_rules(None, override=["+ [0-9]*.csv", "+ /x.csv"])
    choice = choose_aws_filter_args(rules, paths)
    assert set(aws_select_paths(choice.args, paths)) == {"b/2.csv", "x.csv"}
    assert ("--exclude", "1a/x.csv") == choice.args[-2:]
