"""FILTERS.md section 5 for ``aws s3 sync``: translation, emulation and explicit selections.

aws matches every ``--include``/``--exclude`` pattern with :func:`fnmatch.fnmatch` against the
full path (the pattern is joined to the source root): ``*`` crosses ``/``, ``?`` matches any
character, there is no ``**``, and the **last** matching pattern wins (default: include).

:func:`translate_for_aws` reverses the rule order and rewrites each rule into a set of fnmatch
patterns.  For each rule it either proves the set matches exactly the paths the rule matches
(``exact``) or marks the rule inexact.  Under contract version 2 a ``+``/``-`` rule matches a
file or any ancestor directory of it, so both actions translate alike.  Exact forms (``T`` is
the pattern with ``**`` -> ``*``, ``?`` -> ``[!/]``, sets without ``/``, fnmatch specials
escaped):

* left side: anchored -> ``T``; pattern starting with ``*`` -> ``T`` (the star absorbs the rest
  of the path); starting with ``**/`` -> ``*/X`` and ``X``; otherwise ``T`` and ``*/T``
  (a component boundary);
* right side (the file itself, or anything below a matching directory): ``T`` and ``T/*``
  (just ``T`` when T ends with ``*``); dir-only ``P/``: ``T/*`` only.  So ``RUN`` is ``RUN``,
  ``RUN/*``, ``*/RUN``, ``*/RUN/*``, and ``*hnpi*`` is ``*hnpi*``;
* a single ``*`` (cannot cross ``/``) is exact as the first token of an unanchored pattern or
  as the last token (what it would cross is below a match anyway); anywhere else it is inexact
  (``+ a*b``, ``+ **/final/*.parquet``);
* ``s X`` -> ``*X*``, plus ``X[1:]*`` when X starts with ``/`` (matches at the root);
* ``?`` and negated/non-ASCII sets are inexact: the evaluator (like rsync) matches bytes, fnmatch
  matches characters, so they differ on non-ASCII names (a listing decides, see below).

Inexact lists are still translated (best effort, same rules) so the caller can verify the
candidate against a listing (:func:`aws_select_paths`, mechanism ``verified``) and otherwise fall
back to an explicit selection (:func:`explicit_aws_args`, :func:`explicit_aws_runs`): never an
approximation.  :func:`choose_aws_filter_args` makes that choice; its ``mechanism`` is a
``mechanism.Mechanism`` (NONE, NATIVE, VERIFIED or EXPLICIT), the vocabulary ``plan`` reports.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from flepimop_sync.filters import (STARS, Action, AnyByte, ByteSet, DStar, FilterList, Lit, PatternMode, Rule, Slash,
                                   Star, Token, _analyse)
from flepimop_sync.mechanism import Mechanism

__all__ = [
    "AwsFilterPlan",
    "translate_for_aws",
    "aws_selects",
    "aws_select_paths",
    "explicit_aws_args",
    "escape_fnmatch",
    "AwsFilterChoice",
    "choose_aws_filter_args",
]

_EMU_ROOT = "/aws-emulated-root"


def escape_fnmatch(text: str) -> str:
    """Escape fnmatch specials so ``text`` matches itself only."""
    return "".join("[" + c + "]" if c in "[*?" else c for c in text)


@dataclass(frozen=True)
class AwsFilterPlan:
    args: tuple[str, ...]  # "--exclude", "pat", "--include", "pat", ... (aws order: last match wins)
    exact: bool  # every rule has an exact fnmatch form
    inexact_rules: tuple[str, ...]  # rule texts with no exact form


# ---------------------------------------------------------------------------------------
# set rendering

_SET_SPECIAL = set("]-!^[\\")


def _render_set_body(chars: set[str]) -> str:
    normal = sorted(c for c in chars if c not in _SET_SPECIAL)
    parts: list[str] = []
    i = 0
    while i < len(normal):
        j = i
        while j + 1 < len(normal) and ord(normal[j + 1]) == ord(normal[j]) + 1:
            j += 1
        if j - i >= 2:
            parts.append(normal[i] + "-" + normal[j])
        else:
            parts.extend(normal[i : j + 1])
        i = j + 1
    body = ("]" if "]" in chars else "") + "".join(parts)
    for c in "^[\\!":
        if c in chars:
            body += c
    if "-" in chars:
        body += "-"
    if body.startswith("!"):  # only '!' and '-': '[!-]' would read as a negation
        body = "-!"
    return body


def _render_set(tok: ByteSet) -> tuple[str, bool]:
    """fnmatch form of a set token and whether it is exact (one byte == one char)."""
    allowed = tok.allowed
    if not tok.negated:
        chars = {chr(b) for b in allowed if b < 0x80}
        exact = all(b < 0x80 for b in allowed)
        if not chars:
            return "[!\x01-\U0010ffff]", exact  # matches nothing (paths never contain NUL)
        if len(chars) == 1:
            return escape_fnmatch(next(iter(chars))), exact
        return "[" + _render_set_body(chars) + "]", exact
    chars = {chr(b) for b in tok.members if b < 0x80} | {"/"}
    return "[!" + _render_set_body(chars) + "]", False


# ---------------------------------------------------------------------------------------
# per-rule translation


def _fn(tokens: Sequence[Token]) -> tuple[str, bool]:
    """fnmatch text of tokens (any '*' -> '*'), and whether no ?/set made it inexact."""
    out: list[str] = []
    lit = bytearray()
    exact = True

    def flush():
        if lit:
            out.append(escape_fnmatch(bytes(lit).decode("utf-8", "surrogateescape")))
            lit.clear()

    for t in tokens:
        if isinstance(t, Lit):
            lit.append(t.byte)
            continue
        flush()
        if isinstance(t, Slash):
            out.append("/")
        elif isinstance(t, STARS):
            if not (out and out[-1] == "*"):
                out.append("*")
        elif isinstance(t, AnyByte):
            out.append("[!/]")
            exact = False
        else:
            s, ok = _render_set(t)
            out.append(s)
            exact = exact and ok
    flush()
    return "".join(out), exact


def _rule_patterns(rule: Rule) -> tuple[list[str], bool]:
    """fnmatch patterns matching exactly the relative paths the rule matches (files and
    everything below a matching directory), and whether that set is exact."""
    if rule.action == Action.SUBSTRING:
        x = rule.pattern
        pats = ["*" + escape_fnmatch(x) + "*"]
        if x.startswith("/"):
            pats.append(escape_fnmatch(x[1:]) + "*")
        return list(dict.fromkeys(pats)), True
    info = _analyse(rule.pattern)
    toks = list(info.tokens)
    body, ok = _fn(toks)
    exact = _single_stars_exact(toks, info.mode) and ok
    bodies, lefts = _bodies_and_lefts(toks, info.mode, body)
    rights = _rights(toks, info.dir_only)
    pats = [_collapse(left + b + right) for b in bodies for left in lefts for right in rights]
    return list(dict.fromkeys(pats)), exact


def _single_stars_exact(toks: Sequence[Token], mode: PatternMode) -> bool:
    """Can fnmatch's '*' (which crosses '/') stand for each single '*' of the pattern?"""
    for i, t in enumerate(toks):
        if not isinstance(t, Star):
            continue
        if i == 0 and mode is not PatternMode.ANCHORED:
            continue
        if i == len(toks) - 1:
            continue  # a last '*': fnmatch's '*' crossing '/' only reaches paths below a match
        if i >= 2 and isinstance(toks[i - 1], Slash) and isinstance(toks[i - 2], DStar):
            continue  # '**/*...': the fnmatch '*' of '**' absorbs whatever this star would cross
        if i + 2 < len(toks) and isinstance(toks[i + 1], Slash) and isinstance(toks[i + 2], DStar):
            continue  # '...*/**': likewise on the right
        return False
    return True


def _bodies_and_lefts(toks: Sequence[Token], mode: PatternMode, body: str) -> tuple[list[str], list[str]]:
    """The pattern's fnmatch bodies and what may precede them (the left side, module docstring)."""
    bodies = [body]
    if mode is PatternMode.PREFIX2:
        if len(toks) > 1 and isinstance(toks[1], Slash):
            alt, _ = _fn(toks[2:])
            if alt.startswith("*"):
                bodies = [alt]  # '*/' + alt is a subset of alt
            elif alt:
                bodies.append(alt)
        return bodies, [""]
    if mode is PatternMode.ANCHORED or isinstance(toks[0], STARS):
        return bodies, [""]
    return bodies, ["", "*/"]


def _rights(toks: Sequence[Token], dir_only: bool) -> list[str]:
    """What may follow a body: version 2's '+' and '-' alike also match everything below a
    matching directory."""
    if dir_only:
        return ["/*"]
    if isinstance(toks[-1], STARS):
        return [""]
    return ["", "/*"]


def _collapse(p: str) -> str:
    # '**' is the same as '*' for fnmatch; keep patterns short
    return re.sub(r"\*{2,}", "*", p)


def translate_for_aws(filters: FilterList) -> AwsFilterPlan:
    """Reverse the rules and rewrite each into fnmatch patterns (see module docstring)."""
    if not filters:
        return AwsFilterPlan((), True, ())
    args: list[str] = []
    inexact: list[str] = []
    for rule in reversed(filters.rules):
        pats, exact = _rule_patterns(rule)
        if not exact:
            inexact.append(rule.text)
        flag = "--exclude" if rule.action == Action.EXCLUDE else "--include"
        for p in pats:
            args += [flag, p]
    inexact.reverse()
    # a leading '--include *' style catch-all that repeats the default is harmless; keep as is
    return AwsFilterPlan(tuple(args), not inexact, tuple(inexact))


# ---------------------------------------------------------------------------------------
# emulation


def _pairs(args: Sequence[str]) -> list[tuple[bool, str]]:
    if len(args) % 2:
        raise ValueError("aws filter args must come in (--include|--exclude, pattern) pairs")
    out = []
    for flag, pat in zip(args[::2], args[1::2], strict=True):
        if flag not in ("--include", "--exclude"):
            raise ValueError(f"not an aws filter flag: {flag!r}")
        out.append((flag == "--include", pat))
    return out


def aws_selects(args: Sequence[str], relpath: str) -> bool:
    """Emulate aws CLI's filter on a path relative to the source root (root without glob chars)."""
    full = _EMU_ROOT + "/" + relpath
    status = True
    for include, pat in _pairs(args):
        if fnmatch.fnmatch(full, posixpath.join(_EMU_ROOT, pat)):
            status = include
    return status


_GLOB_CHARS = re.compile(r"[*?[]")


def aws_select_paths(args: Sequence[str], paths: Iterable[str]) -> list[str]:
    """:func:`aws_selects` over many paths; sorted selected paths.

    Indexed, since an explicit selection has thousands of patterns and a listing 100k paths:
    the path (relative part) that a pattern without glob characters names is found by one
    lookup, and the patterns ``P*`` with a literal ``P`` (a whole directory: ``*`` crosses
    ``/``) by one lookup per distinct ``P`` length; only the other patterns are matched as
    fnmatch regexes, newest first, and only while they could still beat the best match found.
    """
    pairs = _pairs(args)
    literal: dict[str, int] = {}  # the full path a pattern names -> index of its last such pattern
    prefix: dict[str, int] = {}  # P of a 'P*' pattern (P literal) -> index of its last such pattern
    general: list[tuple[int, Callable[[str], object]]] = []
    for i, (_include, pat) in enumerate(pairs):
        full = posixpath.join(_EMU_ROOT, pat)
        if not _GLOB_CHARS.search(full):
            literal[full] = i
        elif full.endswith("*") and not _GLOB_CHARS.search(full[:-1]):
            prefix[full[:-1]] = i
        else:
            general.append((i, re.compile(fnmatch.translate(full)).match))
    general.reverse()
    lengths = sorted({len(head) for head in prefix})
    out = []
    for p in paths:
        full = _EMU_ROOT + "/" + p
        best = literal.get(full, -1)
        for n in lengths:
            if n > len(full):
                break
            best = max(best, prefix.get(full[:n], -1))
        for i, match in general:
            if i <= best:
                break
            if match(full):
                best = i
                break
        if best < 0 or pairs[best][0]:
            out.append(p)
    out.sort()
    return out


# ---------------------------------------------------------------------------------------
# explicit selection


class _Node:
    __slots__ = ("children", "files")

    def __init__(self):
        self.children: dict[str, _Node] = {}
        self.files: dict[str, bool] = {}


def explicit_aws_args(selected: Sequence[str], all_paths: Sequence[str]) -> tuple[str, ...]:
    """aws args selecting exactly ``selected`` out of ``all_paths`` (a listing of the source).

    Uses as few patterns as a whole-directory encoding allows: a directory whose files are
    mostly selected gets ``--include dir/*`` followed by ``--exclude`` for its exceptions, one
    mostly unselected gets nothing (or ``--exclude dir/*``) followed by ``--include`` for its
    exceptions (a small optimal dynamic programme over the tree; later patterns win).  Returns
    ``()`` when everything is selected, ``("--exclude", "*")`` when nothing is.  For
    ``--delete``, pass the union of source and destination listings.
    """
    sel = set(selected)
    root = _Node()
    for p in set(all_paths) | sel:
        parts = p.split("/")
        node = root
        for part in parts[:-1]:
            node = node.children.setdefault(part, _Node())
        node.files[parts[-1]] = p in sel

    memo: dict[tuple[int, bool], tuple[int, bool]] = {}

    def cost(node: _Node, state: bool) -> int:
        key = (id(node), state)
        got = memo.get(key)
        if got is None:
            stay = sum(1 for s in node.files.values() if s != state) + sum(
                cost(c, state) for c in node.children.values()
            )
            switch = 1 + sum(1 for s in node.files.values() if s == state) + sum(
                cost(c, not state) for c in node.children.values()
            )
            got = (stay, False) if stay <= switch else (switch, True)
            memo[key] = got
        return got[0]

    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 10000))
    try:
        out: list[str] = []

        def emit(node: _Node, prefix: str, state: bool) -> None:
            cost(node, state)
            if memo[(id(node), state)][1]:
                state = not state
                out.extend(["--include" if state else "--exclude", prefix + "*"])
            for name, s in sorted(node.files.items()):
                if s != state:
                    out.extend(["--include" if s else "--exclude", prefix + escape_fnmatch(name)])
            for name, child in sorted(node.children.items()):
                emit(child, prefix + escape_fnmatch(name) + "/", state)

        emit(root, "", True)
    finally:
        sys.setrecursionlimit(old)
    return tuple(out)


# ---------------------------------------------------------------------------------------
# the mechanism (FILTERS.md section 5): native, verified against a listing, or explicit


#: What one more aws process is worth, in pattern tests: aws tests every file against every
#: pattern (measured here: about 11 microseconds a test with a few hundred patterns, see
#: benchmarks/explicit_scale.py) and an aws process costs about 0.8 s to start.
AWS_PROCESS_COST = 70_000


@dataclass(frozen=True)
class AwsRun:
    """One ``aws s3 sync`` of the explicit mechanism: ``subdir`` ("" or "a/b/") below both ends."""

    subdir: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class AwsFilterChoice:
    mechanism: Mechanism  # NONE (no rules), NATIVE, VERIFIED (native args checked on the listing) or EXPLICIT
    args: tuple[str, ...]
    selected: tuple[str, ...] | None  # the evaluator's selection when a listing was used
    inexact_rules: tuple[str, ...] = ()
    runs: tuple[AwsRun, ...] = ()  # explicit only: the selection split into cheap aws runs
    cost: int = 0  # explicit only: estimated pattern tests (extra processes counted as tests)

    def __post_init__(self) -> None:
        if not self.runs:
            object.__setattr__(self, "runs", (AwsRun("", self.args),))


def _corrected_args(candidate: Sequence[str], selected: Sequence[str], emulated: Sequence[str],
                    paths: Sequence[str]) -> tuple[str, ...]:
    """The candidate translation plus corrections for the paths it gets wrong, appended last
    (aws' last match decides).

    A correction is generalised to every file of that name (``*/notes.txt``) when that is exact
    on this listing: no file of that name is selected (for an exclude), or every one is (for an
    include).  flepiMoP trees repeat names across runs and slots, so a wrong candidate is usually
    fixed by a handful of patterns instead of one per file.  Others get one exact per-file pattern.
    """
    sel, emu = set(selected), set(emulated)
    by_name: dict[str, list[str]] = {}
    for p in paths:
        by_name.setdefault(p.rsplit("/", 1)[-1], []).append(p)

    def patterns(wrong: set[str], generalise_ok) -> list[str]:
        out: list[str] = []
        done_names: set[str] = set()
        for p in sorted(wrong):
            name = p.rsplit("/", 1)[-1]
            if name in done_names:
                continue
            if generalise_ok(by_name[name]):
                done_names.add(name)
                same = by_name[name]
                if any("/" in q for q in same):
                    out.append("*/" + escape_fnmatch(name))
                if any("/" not in q for q in same):
                    out.append(escape_fnmatch(name))
            else:
                out.append(escape_fnmatch(p))
        return out

    excludes = patterns(emu - sel, lambda same: not any(q in sel for q in same))
    includes = patterns(sel - emu, lambda same: all(q in sel for q in same))
    out = list(candidate)
    for pattern in excludes:
        out += ["--exclude", pattern]
    for pattern in includes:
        out += ["--include", pattern]
    return tuple(out)


def explicit_aws_runs(selected: Sequence[str], all_paths: Sequence[str],
                      process_cost: int = AWS_PROCESS_COST) -> tuple[AwsRun, ...]:
    """The exact selection as one or more aws runs, each over a subtree with its own patterns.

    A run scans every file below its root against every one of its patterns, so one run over
    100k files with 1,000 patterns costs minutes.  For each directory this picks the cheaper of
    one run (files below x patterns) and one run per child directory plus one for the files
    directly in it (``--exclude *`` then their names), each extra aws process counted as
    ``process_cost`` pattern tests; subtrees with nothing selected get no run at all.
    """
    sel = set(selected)

    def best(prefix: str, paths: list[str]) -> tuple[int, list[AwsRun]]:
        rel_sel = [p[len(prefix):] for p in paths if p in sel]
        if not rel_sel:
            return 0, []
        rel_all = [p[len(prefix):] for p in paths]
        args = explicit_aws_args(rel_sel, rel_all)
        one = (process_cost + len(paths) * max(1, len(args) // 2), [AwsRun(prefix, args)])
        children: dict[str, list[str]] = {}
        direct = []
        for p, rel in zip(paths, rel_all, strict=True):
            head, slash, _ = rel.partition("/")
            if slash:
                children.setdefault(head, []).append(p)
            elif p in sel:
                direct.append(rel)
        if not children or one[0] <= process_cost + len(paths):
            return one  # a leaf, or already as cheap as a run can be
        split_cost, split_runs = 0, []
        if direct:
            include = [x for name in sorted(direct) for x in ("--include", escape_fnmatch(name))]
            split_runs.append(AwsRun(prefix, ("--exclude", "*", *include)))
            split_cost += process_cost + len(paths) * (1 + len(direct))
        for name in sorted(children):
            cost, runs = best(prefix + name + "/", children[name])
            split_cost += cost
            split_runs += runs
            if split_cost >= one[0]:
                return one
        return split_cost, split_runs

    _, runs = best("", sorted(set(all_paths) | sel))
    return tuple(runs) or (AwsRun("", ("--exclude", "*")),)


def choose_aws_filter_args(filters: FilterList, listing: Sequence[str] | None = None, *,
                           process_cost: int = AWS_PROCESS_COST) -> AwsFilterChoice:
    """Pick the aws args that move exactly the section-4 selection.

    ``listing`` is the source's relative paths (for ``--delete``: source and destination).  It is
    only needed when the translation is inexact; without it a ``ValueError`` is raised then.
    When the native candidate is wrong on this listing, the cheaper of (candidate + per-file
    corrections) and the whole-directory encoding is used, split into several aws runs when one
    run would make too many pattern tests.
    """
    if not filters:
        return AwsFilterChoice(Mechanism.NONE, (), None)
    plan = translate_for_aws(filters)
    if plan.exact:
        return AwsFilterChoice(Mechanism.NATIVE, plan.args, None)
    if listing is None:
        raise ValueError("inexact aws translation: a listing of the source is required")
    paths = list(listing)
    selected = [p for p, _ in filters.select_paths((p, 0) for p in paths)]
    emulated = aws_select_paths(plan.args, paths)
    if emulated == selected:
        return AwsFilterChoice(Mechanism.VERIFIED, plan.args, tuple(selected), plan.inexact_rules)
    corrected = _corrected_args(plan.args, selected, emulated, paths)
    explicit = explicit_aws_args(selected, paths)
    single = min((corrected, explicit), key=len)
    single_cost = len(paths) * (len(single) // 2)
    if single_cost <= 2 * process_cost:
        return AwsFilterChoice(Mechanism.EXPLICIT, single, tuple(selected), plan.inexact_rules, cost=single_cost)
    runs = explicit_aws_runs(selected, paths, process_cost=process_cost)
    runs_cost = _runs_cost(runs, paths, process_cost)
    if len(runs) == 1 and not runs[0].subdir or runs_cost >= single_cost:
        return AwsFilterChoice(Mechanism.EXPLICIT, single, tuple(selected), plan.inexact_rules, cost=single_cost)
    return AwsFilterChoice(Mechanism.EXPLICIT, (), tuple(selected), plan.inexact_rules, runs, cost=runs_cost)


def _runs_cost(runs: Sequence[AwsRun], paths: Sequence[str], process_cost: int) -> int:
    """Pattern tests of a split selection, counting each extra aws process as a run's worth."""
    import bisect

    ordered = sorted(paths)
    total = (len(runs) - 1) * process_cost
    for run in runs:
        below = (bisect.bisect_left(ordered, run.subdir + "\U0010ffff") - bisect.bisect_left(ordered, run.subdir)
                 if run.subdir else len(ordered))
        total += below * (len(run.args) // 2)
    return total
