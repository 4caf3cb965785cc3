"""Table tests for the filter language (FILTERS.md is the contract)."""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import random
import sys

import pytest

from trees import (
    WORKED_CASES,
    list_files,
    make_random_tree,
    make_worked_tree,
    random_filter_list,
    random_tree_paths,
    worked_tree_paths,
)

from flepimop_sync.errors import FilterError, UsageError
from flepimop_sync.filters import (
    ORIGIN_IMPLICIT,
    ByteSet,
    FilterList,
    Rule,
    build_rules,
    parse_rule,
    written_canonical,
)
from flepimop_sync.s3filters import (
    _render_set,
    aws_select_paths,
    aws_selects,
    escape_fnmatch,
    explicit_aws_args,
    translate_for_aws,
)


def fl(*texts: str) -> FilterList:
    return build_rules(None, override=list(texts))


# ------------------------------------------------------------------------------------------
# parsing

ORIGIN = "config.yml: protocol 'resume' key 'filters[2]'"


@pytest.mark.parametrize(
    "text, action, pattern",
    [
        ("- llik/", "-", "llik/"),
        ("+ *.csv", "+", "*.csv"),
        ("s global/final", "s", "global/final"),
        ("s /final/", "s", "/final/"),
        ("*hnpi*", "+", "*hnpi*"),
        ("model_output/", "+", "model_output/"),
        ("/model_output/USA_baseline", "+", "/model_output/USA_baseline"),
        ("- /model_output/USA_baseline", "-", "/model_output/USA_baseline"),
        ("+ a b", "+", "a b"),
        ("s a b", "s", "a b"),
        ("sx", "+", "sx"),
        ("s", "+", "s"),
        ("+ [!a]x", "+", "[!a]x"),
        ("+ []a]", "+", "[]a]"),
        ("+ [a-c]", "+", "[a-c]"),
        ("- a\\*b", "-", "a\\*b"),
        ("- **", "-", "**"),
        ("+ !", "+", "!"),
        ("s [x", "s", "[x"),  # substring rules are literal
        ("+ é*", "+", "é*"),
    ],
)
def test_parse_accepts(text, action, pattern):
    r = parse_rule(text, ORIGIN)
    assert (r.action, r.pattern, r.origin, r.text, r.implicit) == (action, pattern, ORIGIN, text, False)


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "empty"),
        (" - x", "white space"),
        ("- x ", "white space"),
        ("x\t", "white space"),
        ("+x", "followed by exactly one space"),
        ("-x", "followed by exactly one space"),
        ("+", "followed by exactly one space"),
        ("-", "followed by exactly one space"),
        ("+,merge x", "followed by exactly one space"),
        ("+  x", "one space"),
        ("-  x", "one space"),
        ("s  x", "one space"),
        ("s ", "white space"),
        ("- ", "white space"),
        ("+ [^a]", "[^...]"),
        ("+ [[:alpha:]]", "character classes"),
        ("+ x[[:digit:]]", "character classes"),
        ("- [abc", "unterminated"),
        ("- []", "unterminated"),
        ("- a\\", "dangling"),
        ("- a\\/b", "escaped '/'"),
        ("- a\\/", "escaped '/'"),
        ("- a[/]b", "'/' inside"),
        ("- /", "empty pattern"),
        ("- a//b", "empty path component"),
        ("- a\nb", "line breaks"),
    ],
)
def test_parse_rejects(text, why):
    with pytest.raises(FilterError) as ei:
        parse_rule(text, ORIGIN)
    msg = str(ei.value)
    assert repr(text) in msg and ORIGIN in msg and why in msg
    assert "\n" not in msg
    assert ei.value.exit_code == 2


def test_parse_rejects_non_string():
    with pytest.raises(FilterError, match="must be a string"):
        parse_rule(3, ORIGIN)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# building the list

TAIL = "- **"


@pytest.mark.parametrize(
    "config, kw, expected",
    [
        (None, {}, []),
        ([], {}, []),
        (["- llik/"], {}, ["- llik/"]),  # has a '-' rule, no 's': no tail
        (["*hnpi*"], {}, ["*hnpi*", TAIL]),
        (["*hnpi*", "- *"], {}, ["*hnpi*", "- *"]),
        (["s RUN", "- *llik*"], {}, ["s RUN", "- *llik*", TAIL]),  # 's' always gets the tail
        (["- a"], {"override": ["+ b"]}, ["+ b", TAIL]),
        (["- a"], {"prefix": ["+ p1", "+ p2"]}, ["+ p1", "+ p2", "- a"]),
        (["- a"], {"suffix": ["- e"]}, ["- a", "- e"]),
        (["+ a"], {"prefix": ["- p"], "override": ["+ o"], "suffix": ["+ e"]}, ["- p", "+ o", "+ e"]),
        (["+ a"], {"no_filter": True}, []),
        (None, {"prefix": ["s x"]}, ["s x", TAIL]),
        (None, {"suffix": ["+ x"]}, ["+ x", TAIL]),
    ],
)
def test_build_rules(config, kw, expected):
    cfg = None if config is None else [(t, f"cfg[{i}]") for i, t in enumerate(config)]
    f = build_rules(cfg, **kw)
    assert f.as_texts() == expected
    assert bool(f) == bool(expected)
    if expected and expected[-1] == TAIL and TAIL not in (config or []):
        tail = f.rules[-1]
        assert tail.implicit and tail.origin == ORIGIN_IMPLICIT and (tail.action, tail.pattern) == ("-", "**")
    assert all(not r.implicit for r in f.rules[:-1])


def test_build_rules_origins():
    f = build_rules([("- a", "config.yml: protocol 'p' key 'filters[0]'")], prefix=["+ b"], suffix=["+ c"])
    origins = [r.origin for r in f.rules]
    assert origins == ["option -a/--fprefix", "config.yml: protocol 'p' key 'filters[0]'", "option -e/--fsuffix"]
    f = build_rules([("- a", "x")], override=["+ b", ("+ c", "custom")])
    assert [r.origin for r in f.rules[:2]] == ["option -f/--filter", "custom"]


@pytest.mark.parametrize("kw", [{"override": ["+ a"]}, {"prefix": ["+ a"]}, {"suffix": ["+ a"]}])
def test_no_filter_conflicts(kw):
    with pytest.raises(UsageError, match="--no-filter"):
        build_rules([("- x", "cfg")], no_filter=True, **kw)


def test_build_rules_error_names_origin():
    with pytest.raises(FilterError, match=r"'\+x'.*config.yml: protocol 'resume' key 'filters\[1\]'"):
        build_rules([("- a", "cfg0"), ("+x", "config.yml: protocol 'resume' key 'filters[1]'")])
    with pytest.raises(FilterError, match="option -f/--filter"):
        build_rules(None, override=["[^a]"])


def test_no_warning_for_include_dir():
    """Contract v2: '+ dir/' selects the directory's subtree, so the v1 warning is gone."""
    f = fl("+ model_output/", "- *.csv")
    assert f.warnings == ()
    assert f.selects("model_output/a/b.csv") and not f.selects("x.csv")
    assert fl("- llik/").warnings == ()


def test_filterlist_is_immutable():
    f = fl("- a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.rules = ()  # type: ignore[misc]
    assert isinstance(f.rules, tuple) and isinstance(f.rules[0], Rule)


# ------------------------------------------------------------------------------------------
# the worked cases (FILTERS.md section 6), expected sets from plain descriptions


def _name(p: str) -> str:
    return p.rsplit("/", 1)[-1]


def _comps(p: str) -> list[str]:
    return p.split("/")


# FILTERS.md section 6 "selects" column, as plain predicates on the path (contract version 2)
WORKED_EXPECT = {
    ("*hnpi*", "*snpi*", "*seed*", "- *"): lambda p: any(s in p for s in ("hnpi", "snpi", "seed")),
    ("+ *.20240501_120000.*",): lambda p: ".20240501_120000." in _name(p),
    ("+ 20240501_120000",): lambda p: "20240501_120000" in _comps(p),
    ("+ hnpi/", "+ snpi/", "- *"): lambda p: "hnpi" in _comps(p)[:-1] or "snpi" in _comps(p)[:-1],
    ("+ /model_output/USA_inference",): lambda p: p.startswith("model_output/USA_inference/"),
    ("- llik/",): lambda p: "llik" not in _comps(p)[:-1],
    ("+ *.csv", "- *"): lambda p: p.endswith(".csv"),
    ("s hosp",): lambda p: "hosp" in p,
    ("s global/final",): lambda p: "global/final" in p,
    ("s RUN", "- *llik*"): lambda p: "RUN" in p,
    ("- *llik*", "s RUN"): lambda p: "RUN" in p and not any("llik" in c for c in _comps(p)),
    ("+ /model_output/USA_inference/**",): lambda p: p.startswith("model_output/USA_inference/"),
    ("- /model_output/USA_baseline",): lambda p: not p.startswith("model_output/USA_baseline/"),
    # all parquet files, plus non-parquet files outside anything named *intermediate*
    ("+ *.parquet", "- *intermediate*"):
        lambda p: p.endswith(".parquet") or not any("intermediate" in c for c in _comps(p)),
    ("s hnpi", "s snpi"): lambda p: "hnpi" in p or "snpi" in p,
}
SELECTS_ALMOST_ALL = {("- llik/",), ("- /model_output/USA_baseline",), ("+ *.parquet", "- *intermediate*")}


def test_worked_expectations_cover_the_contract():
    assert [tuple(c) for c in WORKED_CASES] == list(WORKED_EXPECT)


@pytest.fixture(scope="module")
def worked_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("worked")
    paths = make_worked_tree(root)
    return root, paths


def test_worked_tree_shape(worked_tree):
    root, paths = worked_tree
    assert 200 <= len(paths) <= 400
    assert list_files(root) == set(paths)
    assert set(paths) == set(worked_tree_paths())


@pytest.mark.parametrize("i", range(len(WORKED_CASES)), ids=[str(c) for c in WORKED_CASES])
def test_worked_cases(worked_tree, i):
    root, paths = worked_tree
    case = tuple(WORKED_CASES[i])
    f = fl(*case)
    expected = sorted(p for p in paths if WORKED_EXPECT[case](p))
    assert expected, "every worked case selects something on the worked tree"
    if case not in SELECTS_ALMOST_ALL:
        assert len(expected) < len(paths)
    assert [p for p in paths if f.selects(p)] == expected
    assert [p for p, _ in f.select_local(root)] == expected
    assert [p for p, _ in f.select_paths((p, 1) for p in paths)] == expected


def test_worked_case_sizes(worked_tree):
    root, paths = worked_tree
    got = dict(fl("+ *.csv", "- *").select_local(root))
    for p, size in got.items():
        assert size == len((p + "\n").encode())


# ------------------------------------------------------------------------------------------
# pattern semantics

SEM = [
    # (rules, path, selected)
    # '*' does not cross '/', matched against the name when there is no '/'
    (["+ *.csv", "- *"], "a.csv", True),
    (["+ *.csv", "- *"], "d/e/a.csv", True),
    (["+ *.csv", "- *"], "d.csv/x", True),  # v2: the directory d.csv matches, so its subtree does
    (["+ a*", "- *"], "ab/x", True),  # v2: likewise the directory ab
    (["+ a*", "- *"], "b/x", False),
    (["+ a*", "- *"], "x/ab", True),
    # '**' crosses '/'
    (["+ a**", "- **"], "ab/x", True),
    (["+ a**", "- **"], "x/ab/y", True),
    (["+ **/x", "- **"], "x", True),  # rsync matches a leading '**' against '/' + path
    (["+ **/x", "- **"], "a/b/x", True),
    (["+ **/x", "- **"], "a/bx", False),
    (["+ a/**/b", "- **"], "a/b", False),
    (["+ a/**/b", "- **"], "a/x/b", True),
    (["+ a/**/b", "- **"], "q/a/x/y/b", True),
    (["+ a/**", "- **"], "q/a/x", True),
    # '?' is one character except '/' (one byte, like rsync)
    (["+ a?c", "- *"], "abc", True),
    (["+ a?c", "- **"], "a/c", False),
    (["+ a?c", "- *"], "ac", False),
    (["+ a??c", "- *"], "aéc", True),
    (["+ a?c", "- *"], "aéc", False),
    # sets
    (["+ [ab]x", "- *"], "bx", True),
    (["+ [ab]x", "- *"], "cx", False),
    (["+ [!ab]x", "- *"], "cx", True),
    (["+ [!ab]x", "- *"], "ax", False),
    (["+ [a-c]x", "- *"], "bx", True),
    (["+ [a-c]x", "- *"], "dx", False),
    (["+ []]x", "- *"], "]x", True),
    (["+ [a-]x", "- *"], "-x", True),
    (["+ d[!x]e", "- **"], "d/e", False),  # a negated set never matches '/'
    (["+ [.-0]", "- **"], "/", False),
    # escapes
    (["+ a\\*", "- *"], "a*", True),
    (["+ a\\*", "- *"], "ab", False),
    (["+ a\\b", "- *"], "ab", True),
    (["+ \\[1]", "- *"], "[1]", True),
    # anchoring
    (["+ /a", "- **"], "a", True),
    (["+ /a", "- **"], "x/a", False),
    (["+ /a/*", "- **"], "a/b", True),
    (["+ /a/*", "- **"], "a/b/c", True),  # v2: a/b matches, c is below it
    (["+ /a/*", "- **"], "b/a/c", False),
    (["- /a"], "a/b/c", False),
    (["- /a"], "x/a", True),  # unanchored? no: '- /a' only the top 'a'
    # multi-component, unanchored: exactly the last k+1 components
    (["+ b/c", "- **"], "a/b/c", True),
    (["+ b/c", "- **"], "b/c", True),
    (["+ b/c", "- **"], "a/xb/c", False),
    (["+ b/*", "- **"], "a/b/c", True),
    (["+ b/*", "- **"], "b/c/d", True),  # v2: b/c matches, d is below it
    (["+ b/*", "- **"], "c/d", False),
    (["+ *b/c", "- **"], "a/xb/c", True),
    # trailing '/': directories only
    (["- llik/"], "llik", True),  # a file named llik is not excluded
    (["- llik/"], "a/llik/x", False),
    (["- llik/"], "llik/x", False),
    (["- llik"], "a/llik", False),
    (["- llik"], "a/llik/x", False),
    (["+ llik/", "- **"], "llik/x", True),  # v2: '+ P/' selects the directory's subtree
    (["+ llik/", "- **"], "a/llik/b/x", True),
    (["+ llik/", "- **"], "llik", False),  # a file named llik is not a directory
    (["+ llik/", "- **"], "a/llikx/y", False),
    (["- a/b/"], "x/a/b/c", False),
    (["- a/b/"], "x/a/b", True),
    # v2: '+' and '-' rules alike match through any ancestor directory
    (["+ 20240501_120000"], "model_output/USA/20240501_120000/hnpi/global/final/x.parquet", True),
    (["+ 20240501_120000"], "20240501_120000", True),
    (["+ 20240501_120000"], "model_output/USA/20240601_000000/x.parquet", False),
    (["+ 20240501_120000"], "model_output/x.20240501_120000.parquet", False),
    (["+ /model_output/USA_inference"], "model_output/USA_inference/a/b", True),
    (["+ /model_output/USA_inference"], "x/model_output/USA_inference/a", False),
    (["+ hnpi/", "- *"], "a/hnpi/global/x", True),
    (["+ a/b", "- **"], "x/a/b/c/d", True),
    (["+ a/b", "- **"], "a/x/b/c", False),
    (["+ *hnpi*", "- *"], "x/USA_hnpi_run/y/z", True),
    (["- x", "+ *"], "x/y", False),
    (["+ a", "- b"], "a/b", True),  # the include on the ancestor comes first
    (["- b", "+ a"], "a/b", False),
    (["- *llik*"], "x/llik_dir/y/z", False),
    (["- /model_output/USA_baseline"], "model_output/USA_baseline/x/y", False),
    (["- /model_output/USA_baseline"], "model_output/USA_baseline2/x", True),
    # first match wins
    (["+ *.csv", "- *intermediate*"], "intermediate/x.csv", True),
    (["- *intermediate*", "+ *.csv"], "intermediate/x.csv", False),
    (["- *intermediate*", "+ *.csv"], "x.csv", True),
    # no match: included; the implicit tail excludes
    (["- *.csv"], "x.txt", True),
    (["+ *.csv"], "x.txt", False),
    # substring rules see '/' + path
    (["s /final/"], "final/x", True),
    (["s /final/"], "a/final/x", True),
    (["s /final/"], "a/xfinal/x", False),
    (["s /final/"], "a/final", False),
    (["s al/x"], "a/final/x", True),
    (["s *"], "a*b", True),
    (["s *"], "ab", False),
    (["s /a"], "a", True),
    (["s RUN", "- *llik*"], "llik/RUN", True),
    (["- *llik*", "s RUN"], "llik/RUN", False),
    # no rules
    ([], "anything/at/all", True),
]


@pytest.mark.parametrize("rules, path, expected", SEM, ids=[f"{r}|{p}" for r, p, _ in SEM])
def test_semantics(rules, path, expected):
    f = fl(*rules)
    assert f.selects(path) is expected
    assert (f.select_paths([(path, 0)]) == [(path, 0)]) is expected


def test_select_local_matches_selects_on_random_trees(tmp_path):
    for seed in range(6):
        rng = random.Random(seed)
        root = tmp_path / f"t{seed}"
        paths = make_random_tree(root, rng, n_files=80)
        assert list_files(root) == set(paths)
        for _ in range(20):
            f = fl(*random_filter_list(rng, paths))
            expect = sorted(p for p in paths if f.selects(p))
            assert [p for p, _ in f.select_local(root)] == expect, (seed, f.as_texts())
            assert [p for p, _ in f.select_paths((p, 0) for p in paths)] == expect, (seed, f.as_texts())


def test_select_local_symlinks_and_pruning(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.csv").write_text("abc")
    (tmp_path / "llik").mkdir()
    (tmp_path / "llik" / "f.csv").write_text("x")
    os.symlink("d", tmp_path / "link_to_d")
    os.symlink("nowhere", tmp_path / "dangling.csv")
    got = fl().select_local(tmp_path)
    assert got == [("d/f.csv", 3), ("dangling.csv", 0), ("link_to_d", 0), ("llik/f.csv", 1)]
    assert fl("- llik/").select_local(tmp_path) == [("d/f.csv", 3), ("dangling.csv", 0), ("link_to_d", 0)]
    assert fl("+ *.csv", "- *").select_local(tmp_path) == [("d/f.csv", 3), ("dangling.csv", 0), ("llik/f.csv", 1)]
    # a pruned directory is never opened: opening "locked" fails as for an unreadable directory
    # (chmod 0 cannot stop root, so the refusal is made here, for any user)
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "x").write_text("")
    locked = os.fsencode(tmp_path / "locked")
    real_open, real_scandir = os.open, os.scandir

    def refuse(real):
        def opener(path, *args, **kwargs):
            if os.fsencode(path).rstrip(b"/") == locked:
                raise PermissionError(13, "Permission denied", path)
            return real(path, *args, **kwargs)
        return opener

    monkeypatch.setattr(os, "open", refuse(real_open))
    monkeypatch.setattr(os, "scandir", refuse(real_scandir))
    assert fl("- /locked").select_local(tmp_path)[-1] == ("llik/f.csv", 1)
    with pytest.raises(PermissionError):  # not pruned: it is opened
        fl("- /nothing").select_local(tmp_path)


# FilterList.selects_nothing_below: may a destination below the source stay out of the transfer?
# True only when proven (the project files' push into a snapshot directory below the project).
NOTHING_BELOW = [
    (["+ /r3*.pdf", "+ /r3*.h5"], "hpc/runs/r3", True),  # anchored at the top: nothing deeper
    (["- snap/"], "snap", True),
    (["- snap/"], "snap/x/y", True),  # an excluded ancestor decides the subtree
    (["- /snap/", "+ **"], "snap/r1", True),
    (["+ /hnpi/**"], "snapshots", True),  # ... then the tail's '- **' takes 'snapshots'
    (["+ /model_output/**"], "snapshots/r1", True),
    (["+ /model_output/**"], "model_output/snap", False),  # the include decides that subtree
    (["+ hnpi/**"], "snap", False),  # unanchored: snap/hnpi/x is taken
    (["+ **.pdf"], "snap", False),
    (["+ */"], "snap", False),  # a directory rule takes the subtree (version 2)
    (["s r3"], "snap", False),  # a file named 'r3' below would be taken
    (["- intermediate/"], "snap", False),  # no '- **' tail: everything else is taken
    ([], "snap", False),
    (["+ /r3*.pdf"], "", False),  # the source itself is never 'below'
    (["- /snap/x/", "+ /snap/**"], "snap", False),  # only part of the subtree is excluded
]


@pytest.mark.parametrize("rules, directory, expected", NOTHING_BELOW,
                         ids=[f"{r}|{d}" for r, d, _ in NOTHING_BELOW])
def test_selects_nothing_below(rules, directory, expected):
    assert fl(*rules).selects_nothing_below(directory) is expected


def test_selects_nothing_below_agrees_with_the_evaluator_on_random_trees():
    """Never a false 'nothing': every directory of random trees, random lists; and not vacuous."""
    proven = 0
    for seed in range(30):
        rng = random.Random(seed)
        paths = sorted({"/".join(rng.choice(["a", "b", "hnpi", "r1", "x.csv", "r1.pdf"])
                                 for _ in range(rng.randint(1, 4))) for _ in range(60)})
        dirs = {p.rsplit("/", i)[0] for p in paths for i in range(1, p.count("/") + 1)}
        for _ in range(20):
            f = fl(*random_filter_list(rng, paths))
            for d in dirs:
                if f.selects_nothing_below(d):
                    proven += 1
                    taken = [p for p in paths if p.startswith(d + "/") and f.selects(p)]
                    assert not taken, (f.as_texts(), d, taken)
    assert proven > 100


def test_select_paths_unicode_and_order():
    f = fl("+ *é*", "- *")
    assert f.select_paths([("b/é.txt", 2), ("a/xéy", 1), ("a/x", 3)]) == [("a/xéy", 1), ("b/é.txt", 2)]


# ------------------------------------------------------------------------------------------
# rsync translation (FILTERS.md section 5)

RSYNC = [
    ([], []),
    (["- llik/"], ["- llik/", "+ */"]),
    (["- /model_output/USA_baseline"], ["- /model_output/USA_baseline", "+ */"]),
    # v2: after '+ */', every '+ P'/'- P' is followed by its subtree form 'P/**'
    (["*hnpi*", "- *"], ["+ */", "+ *hnpi*", "+ *hnpi*/**", "- *", "- */**"]),
    (["+ *.csv"], ["+ */", "+ *.csv", "+ *.csv/**", "- **", "- **/**"]),
    (["+ 20240501_120000"], ["+ */", "+ 20240501_120000", "+ 20240501_120000/**", "- **", "- **/**"]),
    (["+ hnpi/", "- *"], ["+ */", "+ hnpi/", "+ hnpi/**", "- *", "- */**"]),
    (["s hosp"], ["+ */", "+ **hosp**", "- **", "- **/**"]),
    (["s /final/"], ["+ */", "+ **/final/**", "- **", "- **/**"]),
    (["s a*b?c[d\\e"], ["+ */", "+ **a\\*b\\?c\\[d\\\\e**", "- **", "- **/**"]),
    (["- *llik*", "s RUN"], ["- *llik*", "+ */", "+ **RUN**", "- **", "- **/**"]),
    (["s RUN", "- *llik*"], ["+ */", "+ **RUN**", "- *llik*", "- *llik*/**", "- **", "- **/**"]),
    (["+ *.parquet", "- int/"], ["+ */", "+ *.parquet", "+ *.parquet/**", "- int/", "- int/**"]),
    (["+ x", "- /a/b/"], ["+ */", "+ x", "+ x/**", "- /a/b/", "- /a/b/**"]),
    # rsync matches a pattern without *?[ literally: escapes are resolved for it
    (["- a\\b"], ["- ab", "+ */"]),
    (["- a\\*b"], ["- a\\*b", "+ */"]),
    (["+ x", "- a\\b"], ["+ */", "+ x", "+ x/**", "- ab", "- a\\b/**"]),
    # a lone '!' would clear rsync's list
    (["- !"], ["- [\\!]", "+ */"]),
    (["+ !", "- *"], ["+ */", "+ [\\!]", "+ !/**", "- *", "- */**"]),
]


@pytest.mark.parametrize("rules, expected", RSYNC, ids=[str(r) for r, _ in RSYNC])
def test_rsync_args(rules, expected):
    args = fl(*rules).rsync_args()
    assert args == ["--filter=" + e for e in expected]


# ------------------------------------------------------------------------------------------
# aws translation

AWS = [
    # rules, aws args (pairs, aws order), exact
    (["- llik/"], [("x", "llik/*"), ("x", "*/llik/*")], True),
    (["- llik"], [("x", "llik"), ("x", "llik/*"), ("x", "*/llik"), ("x", "*/llik/*")], True),
    (["- *llik*"], [("x", "*llik*")], True),
    (["- *.csv"], [("x", "*.csv"), ("x", "*.csv/*")], True),
    (["- llik*"], [("x", "llik*"), ("x", "*/llik*")], True),
    # v2: an include also matches everything below a matching directory
    (["+ *.csv", "- *"], [("x", "*"), ("i", "*.csv"), ("i", "*.csv/*")], True),
    (["+ data.csv", "- *"],
     [("x", "*"), ("i", "data.csv"), ("i", "data.csv/*"), ("i", "*/data.csv"), ("i", "*/data.csv/*")], True),
    (["+ 20240501_120000"],
     [("x", "*"), ("i", "20240501_120000"), ("i", "20240501_120000/*"), ("i", "*/20240501_120000"),
      ("i", "*/20240501_120000/*")], True),
    (["+ /model_output/USA_inference"],
     [("x", "*"), ("i", "model_output/USA_inference"), ("i", "model_output/USA_inference/*")], True),
    (["+ /model_output/USA_inference/**"], [("x", "*"), ("i", "model_output/USA_inference/*")], True),
    (["- /model_output/USA_baseline"],
     [("x", "model_output/USA_baseline"), ("x", "model_output/USA_baseline/*")], True),
    (["- /a/b/"], [("x", "a/b/*")], True),
    (["s hosp"], [("x", "*"), ("i", "*hosp*")], True),
    (["s /final/"], [("x", "*"), ("i", "*/final/*"), ("i", "final/*")], True),
    (["s a*[b"], [("x", "*"), ("i", "*a[*][[]b*")], True),
    (["+ **/x"], [("x", "*"), ("i", "*/x"), ("i", "*/x/*"), ("i", "x"), ("i", "x/*")], True),
    (["+ **/*.csv"], [("x", "*"), ("i", "*.csv"), ("i", "*.csv/*")], True),
    (["- a/**/b"], [("x", "a/*/b"), ("x", "a/*/b/*"), ("x", "*/a/*/b"), ("x", "*/a/*/b/*")], True),
    (["+ b/c", "- **"], [("x", "*"), ("i", "b/c"), ("i", "b/c/*"), ("i", "*/b/c"), ("i", "*/b/c/*")], True),
    (["+ [abc]x", "- *"],
     [("x", "*"), ("i", "[a-c]x"), ("i", "[a-c]x/*"), ("i", "*/[a-c]x"), ("i", "*/[a-c]x/*")], True),
    (["+ a\\*b", "- *"],
     [("x", "*"), ("i", "a[*]b"), ("i", "a[*]b/*"), ("i", "*/a[*]b"), ("i", "*/a[*]b/*")], True),
    (["+ d/", "- *"], [("x", "*"), ("i", "d/*"), ("i", "*/d/*")], True),
    # v2: the common component patterns are exact (a first or last '*')
    (["*hnpi*", "- *"], [("x", "*"), ("i", "*hnpi*")], True),
    (["+ config*"], [("x", "*"), ("i", "config*"), ("i", "*/config*")], True),
    (["+ *.RUN.*"], [("x", "*"), ("i", "*.RUN.*")], True),
    # inexact: a '*' inside a component, '?' and negated sets
    (["+ **/final/*.parquet"],
     [("x", "*"), ("i", "*/final/*.parquet"), ("i", "*/final/*.parquet/*"), ("i", "final/*.parquet"),
      ("i", "final/*.parquet/*")], False),
    (["+ a*b"], [("x", "*"), ("i", "a*b"), ("i", "a*b/*"), ("i", "*/a*b"), ("i", "*/a*b/*")], False),
    (["- a*b"], [("x", "a*b"), ("x", "a*b/*"), ("x", "*/a*b"), ("x", "*/a*b/*")], False),
    (["- /a/*.csv"], [("x", "a/*.csv"), ("x", "a/*.csv/*")], False),
    (["- a?c"], [("x", "a[!/]c"), ("x", "a[!/]c/*"), ("x", "*/a[!/]c"), ("x", "*/a[!/]c/*")], False),
    (["- [!a]"], [("x", "[!/a]"), ("x", "[!/a]/*"), ("x", "*/[!/a]"), ("x", "*/[!/a]/*")], False),
]


@pytest.mark.parametrize("rules, expected, exact", AWS, ids=[str(r) for r, _, _ in AWS])
def test_translate_for_aws(rules, expected, exact):
    f = fl(*rules)
    plan = translate_for_aws(f)
    want = []
    for kind, pat in expected:
        want += ["--exclude" if kind == "x" else "--include", pat]
    assert list(plan.args) == want
    assert plan.exact is exact
    if exact:
        assert plan.inexact_rules == ()
    else:
        assert plan.inexact_rules and all(t in f.as_texts() for t in plan.inexact_rules)


def test_translate_for_aws_no_rules():
    plan = translate_for_aws(fl())
    assert plan.args == () and plan.exact and plan.inexact_rules == ()


def test_translate_worked_cases_exactness():
    exact = {tuple(c): translate_for_aws(fl(*c)).exact for c in WORKED_CASES}
    # v2: every worked case, the flepiMoP resume list included, runs natively
    assert [tuple(c) for c in WORKED_CASES if not exact[tuple(c)]] == []


def test_exact_translations_agree_with_evaluator():
    """Property: when the plan says exact, emulated aws == evaluator on any tree."""
    checked = 0
    for seed in range(60):
        rng = random.Random(1000 + seed)
        paths = random_tree_paths(rng, 120)
        for _ in range(15):
            f = fl(*random_filter_list(rng, paths))
            plan = translate_for_aws(f)
            a = aws_select_paths(plan.args, paths)
            ev = [p for p in sorted(paths) if f.selects(p)]
            if plan.exact:
                checked += 1
                assert a == ev, (seed, f.as_texts(), plan.args)
            ex = explicit_aws_args(ev, paths)
            assert aws_select_paths(ex, paths) == ev, (seed, f.as_texts(), ex)
    assert checked > 300


def test_render_set_exhaustive():
    rng = random.Random(7)
    alphabet = [chr(c) for c in range(0x20, 0x7F) if chr(c) != "/"]
    for _ in range(400):
        chars = set(rng.sample(alphabet, rng.randint(1, 8)))
        if rng.random() < 0.5:
            chars |= set(rng.sample("]-!^[\\", rng.randint(1, 3)))
        tok = ByteSet(False, frozenset(ord(c) for c in chars))
        rendered, exact = _render_set(tok)
        assert exact
        got = {c for c in alphabet + ["/"] if fnmatch.fnmatchcase(c, rendered)}
        assert got == chars, (sorted(chars), rendered)
        neg, exact = _render_set(ByteSet(True, frozenset(ord(c) for c in chars)))
        assert not exact
        got = {c for c in alphabet + ["/"] if fnmatch.fnmatchcase(c, neg)}
        assert got == set(alphabet) - chars, (sorted(chars), neg)


# ------------------------------------------------------------------------------------------
# aws emulation and explicit selections

AWS_SEL = [
    (["--exclude", "*"], "a", False),
    (["--exclude", "*", "--include", "*.csv"], "d/x.csv", True),
    (["--include", "*.csv", "--exclude", "*"], "d/x.csv", False),  # last match wins
    (["--exclude", "*.csv"], "x.txt", True),  # default include
    (["--exclude", "d/"], "d/x", True),  # 'dir/' never matches a file
    (["--exclude", "d/*"], "d/e/x", False),  # '*' crosses '/'
    (["--exclude", "a?c"], "a/c", False),  # '?' matches '/'
    (["--exclude", "[[]1]"], "[1]", False),
    (["--exclude", "/d/*"], "d/x", True),  # a leading '/' breaks the pattern
    (["--exclude", "**"], "d/x", False),
]


@pytest.mark.parametrize("args, path, expected", AWS_SEL, ids=[f"{a}|{p}" for a, p, _ in AWS_SEL])
def test_aws_selects(args, path, expected):
    assert aws_selects(args, path) is expected
    assert (aws_select_paths(args, [path]) == [path]) is expected


def test_aws_select_paths_is_aws_selects_on_random_patterns():
    """The indexed emulation (literal paths and literal 'P*' looked up, the rest matched) selects
    what fnmatch pattern by pattern selects (``aws_selects``), on random paths and patterns that
    mix the three kinds, repeat, shadow each other and use fnmatch's specials."""
    rng = random.Random(11)
    names = ["a", "b", "ab", "x.csv", "[1]", "*", "a?", "final", "é"]
    checked = 0
    for _ in range(300):
        paths = sorted({"/".join(rng.choice(names) for _ in range(rng.randint(1, 4))) for _ in range(30)})
        args: list[str] = []
        for _ in range(rng.randint(0, 12)):
            kind = rng.random()
            p = rng.choice(paths)
            if kind < 0.3:
                pat = escape_fnmatch(p)  # one path, as the explicit encoding names it
            elif kind < 0.5:
                pat = escape_fnmatch(p.rsplit("/", 1)[0] + "/") + "*" if "/" in p else "*"  # a whole directory
            elif kind < 0.6:
                pat = p  # unescaped: '[1]', '*', 'a?' are globs
            else:
                pat = rng.choice(["*", "*.csv", "a*", "*/a", "?", "a/*/b", "[ab]*", "/a/*", "**", "a/", "*b"])
            args += [rng.choice(["--include", "--exclude"]), pat]
        assert aws_select_paths(args, paths) == [p for p in paths if aws_selects(args, p)], args
        checked += 1
    assert checked == 300


def test_escape_fnmatch():
    for name in ["a[1]*?b", "plain", "x]y", "é*", "\\["]:
        assert fnmatch.fnmatchcase(name, escape_fnmatch(name))
        assert not fnmatch.fnmatchcase(name + "x", escape_fnmatch(name))
    assert escape_fnmatch("a[b*c?") == "a[[]b[*]c[?]"


EXPLICIT_ALL = [
    "a/1", "a/2", "a/b/1", "a/b/2", "c/1", "c/2", "c/3", "d[x]/*1", "d[x]/2", "top.txt",
]


@pytest.mark.parametrize(
    "selected, expected",
    [
        (EXPLICIT_ALL, ()),
        ([], ("--exclude", "*")),
        (["a/1", "a/2", "a/b/1", "a/b/2"], ("--exclude", "*", "--include", "a/*")),
        (["a/b/1", "a/b/2", "top.txt"], ("--exclude", "*", "--include", "top.txt", "--include", "a/b/*")),
        (["d[x]/*1", "d[x]/2"], ("--exclude", "*", "--include", "d[[]x]/*")),
        (["d[x]/*1"], ("--exclude", "*", "--include", "d[[]x]/[*]1")),
        # mostly selected: exclude the exceptions
        ([p for p in EXPLICIT_ALL if p != "c/2"], ("--exclude", "c/2")),
        (["c/1", "c/3"], ("--exclude", "*", "--include", "c/1", "--include", "c/3")),  # tie: no switch
    ],
)
def test_explicit_aws_args(selected, expected):
    args = explicit_aws_args(selected, EXPLICIT_ALL)
    assert args == expected
    assert aws_select_paths(args, EXPLICIT_ALL) == sorted(selected)


def test_explicit_aws_args_compresses_worked_tree():
    paths = worked_tree_paths()
    for case in WORKED_CASES:
        sel = [p for p in paths if fl(*case).selects(p)]
        args = explicit_aws_args(sel, paths)
        assert aws_select_paths(args, paths) == sel
        parents = {p.rsplit("/", 1)[0] for p in sel}
        assert len(args) // 2 <= len(parents) + 2, (case, len(args) // 2)
    # whole subtree -> one include
    sel = [p for p in paths if p.startswith("model_output/USA_inference/")]
    assert explicit_aws_args(sel, paths) == ("--exclude", "*", "--include", "model_output/USA_inference/*")


def _explicit_case(n: int) -> tuple[list[str], list[str]]:
    paths = [f"d{i // 1000}/s{(i // 50) % 20}/f{i}.parquet" for i in range(n)]
    return [p for i, p in enumerate(paths) if (i // 50) % 3 == 0 or i == 7], paths


class _CountedStr(str):
    """A path that counts its equality tests: a membership test against a list (one hidden
    quadratic step) compares the path with every element and shows up here, where Python-line
    counting cannot see it."""

    comparisons = 0

    def __eq__(self, other):
        _CountedStr.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _python_lines(call) -> int:
    """Python lines executed by ``call()``: the same count on every machine and under any load,
    so growth is asserted without timing anything (a timed ratio failed CI once on a GC pause)."""
    lines = 0

    def trace(frame, event, arg):
        nonlocal lines
        if event == "line":
            lines += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(previous)
    return lines


def test_explicit_aws_args_scale_linearly():
    """4x the paths is 4x the work (a quadratic step would be 16x): Python lines executed and
    comparisons of the paths, both exact counts."""

    def work(n: int) -> tuple[int, int]:
        sel, paths = _explicit_case(n)
        counted = {p: _CountedStr(p) for p in paths}
        sel, paths = [counted[p] for p in sel], [counted[p] for p in paths]
        _CountedStr.comparisons = 0
        lines = _python_lines(lambda: explicit_aws_args(sel, paths))
        return lines, _CountedStr.comparisons

    (small, small_eq), (large, large_eq) = work(3_000), work(12_000)
    assert large < 4.5 * small, (small, large)
    assert large_eq <= 4.5 * small_eq + 100, (small_eq, large_eq)
    # and the encoding stays compact and exact at a real run's size
    sel, paths = _explicit_case(50_000)
    args = explicit_aws_args(sel, paths)
    assert len(args) // 2 < 500
    head = set(paths[:3000])
    assert aws_select_paths(args, head) == sorted(p for p in sel if p in head)


# ------------------------------------------------------------------------------------------
# environment variables in rules (FILTERS.md section 1)

ENV = {"FLEPI_RUN_INDEX": "20240501_120000", "SLOT": "000000001", "EMPTY": "", "SPACE": "a b", "DOLLAR": "$X"}


@pytest.mark.parametrize(
    "text, expanded",
    [
        ("+ $FLEPI_RUN_INDEX", "+ 20240501_120000"),
        ("+ ${FLEPI_RUN_INDEX}", "+ 20240501_120000"),
        ("- *.${FLEPI_RUN_INDEX}.*", "- *.20240501_120000.*"),
        ("$FLEPI_RUN_INDEX/$SLOT*", "20240501_120000/000000001*"),
        ("s /$SLOT.", "s /000000001."),
        ("+ ${SLOT}x", "+ 000000001x"),
        ("+ $SLOTx", None),  # the name is SLOTx: unset
        ("+ a$$b", "+ a$b"),
        ("+ $$SLOT", "+ $SLOT"),
        ("+ $$$SLOT", "+ $000000001"),
        ("+ x$SPACE", "+ xa b"),
        ("+ $DOLLAR", "+ $X"),  # values are not expanded again
        ("+ no_variables", "+ no_variables"),
        # a '$' that starts no name stays itself, as in the shell
        ("+ a$", "+ a$"),
        ("+ $1", "+ $1"),
        ("+ dollar$(touch CANARY)", "+ dollar$(touch CANARY)"),
        ("+ a$.csv", "+ a$.csv"),
    ],
)
def test_env_expansion(text, expanded):
    if expanded is None:
        with pytest.raises(FilterError, match=r"\$SLOTx is not set"):
            parse_rule(text, ORIGIN, ENV)
        return
    r = parse_rule(text, ORIGIN, ENV)
    assert r.text == expanded and r.origin == ORIGIN


@pytest.mark.parametrize(
    "text, why",
    [
        ("+ $NOT_SET_ANYWHERE", r"environment variable \$NOT_SET_ANYWHERE is not set"),
        ("+ ${NOT_SET_ANYWHERE}", r"environment variable \$NOT_SET_ANYWHERE is not set"),
        ("+ ${SLOT", r"'\$\{' must be followed"),
        ("+ ${}", r"'\$\{' must be followed"),
        # set but empty: refused whatever it would read ('+ ', '+ /**', '+ a'), as in ends
        ("+ $EMPTY", r"\$EMPTY is set but empty: the rule would read '\+ '"),
        ("+ $EMPTY/**", r"\$EMPTY is set but empty: the rule would read '\+ /\*\*', another selection"),
        ("+ a${EMPTY}", r"\$EMPTY is set but empty: the rule would read '\+ a'"),
        ("s $EMPTY$SLOT", r"\$EMPTY is set but empty"),
    ],
)
def test_env_expansion_errors_name_variable_rule_and_origin(text, why):
    with pytest.raises(FilterError, match=why) as exc:
        parse_rule(text, ORIGIN, ENV)
    assert ORIGIN in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("a*.csv", "+ a*.csv"),  # no '$': Rule.canonical
        ("cost$$USD.csv", "+ cost$$USD.csv"),  # '$$' kept: parsed again later, it is a '$'
        ("- x$SLOT", "- x$SLOT"),
        ("s ${SLOT}", "s ${SLOT}"),
        ("sub$$", "+ sub$$"),
        ("$SLOT/x", "$SLOT/x"),  # the prefix may come from the value: kept as written
        ("s$SLOT", "s$SLOT"),
        ("+ a$", "+ a$"),
    ],
)
def test_written_canonical_leaves_variables_for_the_one_later_expansion(text, canonical):
    assert written_canonical(text, ORIGIN, ENV) == canonical
    # parsed again, the same rule as the text written
    assert parse_rule(canonical, ORIGIN, ENV).canonical == parse_rule(text, ORIGIN, ENV).canonical


@pytest.mark.parametrize("text, why", [("+ $NOT_SET_ANYWHERE", "is not set"), ("+x$SLOT", "exactly one space")])
def test_written_canonical_checks_the_rule(text, why):
    with pytest.raises(FilterError, match=why):
        written_canonical(text, ORIGIN, ENV)


@pytest.mark.parametrize("where", ["override", "prefix", "suffix", "config"])
def test_env_expansion_everywhere(where):
    env = {"RUN": "r1"}
    if where == "config":
        f = build_rules([("+ $RUN", "c.yml: protocol 'p' key 'filters[0]'")], env=env)
    else:
        f = build_rules(None, env=env, **{where: ["+ ${RUN}"]})
    assert f.as_texts() == ["+ r1", "- **"]
    assert f.selects("model_output/r1/x/y.parquet") and not f.selects("model_output/r2/x/y.parquet")
    with pytest.raises(FilterError, match=r"\$RUN is not set"):
        if where == "config":
            build_rules([("+ $RUN", "c.yml: protocol 'p' key 'filters[0]'")], env={})
        else:
            build_rules(None, env={}, **{where: ["+ ${RUN}"]})


# through the CLI, with --delete: one line naming the rule and where it came from, exit 2, and the
# target keeps its files (read as '+ /**', the rule selected every file and the run deleted them)
@pytest.mark.parametrize("filters,argv,where", [(["+ $RUN/**"], [], "filters[0]"),
                                                (None, ["-f", "+ $RUN/**"], "-f/--filter"),
                                                (["- *.tmp"], ["-a", "+ ${RUN}/**"], "-a/--fprefix")],
                         ids=["config", "-f", "-a"])
def test_a_rule_with_a_variable_set_but_empty_is_refused_before_anything_changes(tmp_path, capsys, monkeypatch,
                                                                                  filters, argv, where):
    import yaml

    from flepimop_sync.cli import flepimop, run_command

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUN", "")
    (tmp_path / "src" / "r1").mkdir(parents=True)
    (tmp_path / "src" / "r1" / "a.txt").write_text("a")
    (tmp_path / "out" / "r0").mkdir(parents=True)
    (tmp_path / "out" / "r0" / "keep.txt").write_text("another run's file")
    protocol = {"type": "rsync", "source": "src/", "target": "out/", **({"filters": filters} if filters else {})}
    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump({"sync": {"p": protocol}}))
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for dry in ([], ["-n"]):
        code = run_command(flepimop, ["sync", "--delete", *dry, *argv, str(cfg)], prog_name="flepimop")
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
        assert "$RUN is set but empty: the rule would read '+ /**'" in lines[0] and where in lines[0], lines[0]
        assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "out" / "r0" / "keep.txt").read_text() == "another run's file"


def test_env_expansion_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("FLEPI_RUN_INDEX", "r9")
    assert parse_rule("+ $FLEPI_RUN_INDEX", ORIGIN).text == "+ r9"
    monkeypatch.delenv("FLEPI_RUN_INDEX")
    with pytest.raises(FilterError, match="FLEPI_RUN_INDEX is not set"):
        build_rules(None, override=["+ $FLEPI_RUN_INDEX"])


# ------------------------------------------------------------------------------------------
# warnings only when the user must act (issue 12 point 5)

TAIL_WARN = [
    # config, kw, warns
    ([("+ *.csv", "c.yml")], {"suffix": ["- foo"]}, True),
    ([("+ *.csv", "c.yml")], {"prefix": ["- foo"]}, True),
    (None, {"override": ["+ *.csv"], "suffix": ["- foo"]}, True),
    ([("+ *.csv", "c.yml")], {"suffix": ["+ *.txt"]}, False),  # still include-only: tail kept
    ([("+ *.csv", "c.yml"), ("- *", "c.yml")], {"suffix": ["- foo"]}, False),  # had no tail
    ([("s hnpi", "c.yml")], {"suffix": ["- foo"]}, False),  # an 's' rule keeps the tail
    (None, {"suffix": ["- foo"]}, False),  # nothing to flip
    ([("+ *.csv", "c.yml")], {}, False),
]


@pytest.mark.parametrize("config, kw, warns", TAIL_WARN, ids=[f"{c}|{k}" for c, k, _ in TAIL_WARN])
def test_warning_when_an_added_exclude_removes_the_implicit_tail(config, kw, warns):
    f = build_rules(config, **kw)
    if not warns:
        assert f.warnings == ()
        return
    assert len(f.warnings) == 1
    w = f.warnings[0]
    assert "'+ *.csv'" in w and "'- foo'" in w and "implicit '- **'" in w and "\n" not in w
    assert f.selects("x.txt")  # what the warning says: everything except what is excluded


# ------------------------------------------------------------------------------------------
# bounded cost for hostile input (issue 15 point 7)

HOSTILE = [
    "+ *a*a*a*a*a*a*ab",
    "- *a*a*a*a*a*a*a*ab",
    "+ **a**a**a**a**ab",
    "+ x/**a*a*a*a*a*ab",
    "+ /*a*a*a*a*a*a*ab",
    "+ **/*a*?a*[ab]*a*a*ab",
]


@pytest.mark.parametrize("rule", HOSTILE)
def test_hostile_patterns_match_in_bounded_time(rule):
    import time

    f = fl(rule, "- *")
    names = ["a" * 5000, "x/" + "a" * 5000, "/".join(["a" * 10] * 500), "/".join("a" * 2500)]
    start = time.process_time()
    for name in names:
        f.selects(name)
    f.select_paths((n, 0) for n in names)
    elapsed = time.process_time() - start
    # CPU time (a loaded machine does not count); exponential backtracking takes minutes here
    assert elapsed < 1.0, (rule, elapsed)
    assert f.selects("a" * 5000 + "b") is (rule.startswith("+") and not rule.startswith("+ x/"))


def test_hostile_pattern_in_select_local(tmp_path):
    import time

    (tmp_path / ("a" * 200)).mkdir()
    (tmp_path / ("a" * 200) / ("a" * 200)).write_text("x")
    (tmp_path / ("a" * 200 + "b")).write_text("y")
    start = time.process_time()
    got = fl("+ *a*a*a*a*a*a*a*a*ab", "- *").select_local(tmp_path)
    assert time.process_time() - start < 1.0
    assert got == [("a" * 200 + "b", 1)]


def test_long_rule_parses_in_linear_time():
    """4x the rule length is 4x the Python lines executed (exact counts, never 16x); the 100,000
    character rule also parses in seconds of CPU (~1 s here; a bound against work in C)."""
    import time

    def work(n: int) -> None:
        f = build_rules(None, override=["+ " + "ab*" * (n // 3), "- " + "x" * n, "s " + "y" * n])
        f.selects("ab" * 50)

    small, large = _python_lines(lambda: work(2_500)), _python_lines(lambda: work(10_000))
    assert large < 4.5 * small, (small, large)
    start = time.process_time()
    work(100_000)
    assert time.process_time() - start < 5.0, "a 100,000 character rule took more than 5 s of CPU"


def test_nfa_agrees_with_the_regex_on_random_patterns():
    """The linear matcher used for risky patterns is the same language as the regex."""
    import re as _re

    from flepimop_sync.filters import _Nfa, _analyse, _subject_regex, _subject_tokens

    rng = random.Random(7)
    alphabet = ["a", "b", "/", "*", "**", "?", "[ab]", "[!a]", "\\*"]
    checked = 0
    for _ in range(400):
        pat = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))
        try:
            info = _analyse(pat)
        except ValueError:
            continue
        rx = _re.compile(_subject_regex(info), _re.S)
        nfa = _Nfa(_subject_tokens(info))
        for _ in range(30):
            subj = "/" + "".join(rng.choice("ab/*") for _ in range(rng.randint(0, 9)))
            b = subj.encode()
            assert (rx.fullmatch(b) is not None) == nfa(b), (pat, subj)
            checked += 1
    assert checked > 5000


# Issue 12 point 5: a dry run warns about an include rule that matches nothing at the source.
# (filters, listing, the rule texts reported as matching nothing)
UNMATCHED = [
    (["+ hnpi/", "- *"], ["a/hnpi/f.parquet", "b/g.csv"], []),
    (["+ 20240501_120000"], ["model_output/USA/20240501_120000/hnpi/f.parquet"], []),
    (["+ 20990101_000000"], ["model_output/USA/20240501_120000/hnpi/f.parquet"], ["+ 20990101_000000"]),
    (["s zzz", "s hnpi"], ["a/hnpi/f.parquet"], ["s zzz"]),
    (["- llik/", "- nothing"], ["a/hnpi/f.parquet"], []),  # excludes that match nothing are harmless
    (["*.csv", "+ *.parquet", "- *"], ["a/f.parquet"], ["*.csv"]),
    ([], ["a/f.parquet"], []),
]


@pytest.mark.parametrize("rules,paths,expected", UNMATCHED)
def test_unmatched_includes(rules, paths, expected):
    fl = build_rules([(r, "config") for r in rules])
    assert [r.text for r in fl.unmatched_includes(paths)] == expected
