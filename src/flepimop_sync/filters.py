"""The one filter language of flepimop-sync (FILTERS.md, version 2, is the contract).

A filter list is parsed once into :class:`Rule` objects (environment variables ``$NAME`` /
``${NAME}`` expanded first, :func:`expand_env`; the variable grammar's one home,
:func:`substitute_variables`, reads the ends' variables too), normalised into a :class:`FilterList`
(matchers compiled once) and then

* evaluated in-process (``selects``, ``select_local``, ``select_paths``): the
  reference semantics of FILTERS.md section 4, used by ``--dry-run`` and to
  build explicit selections.  Version 2: a ``+``/``-`` rule matches a file when
  its pattern matches the file's path **or any ancestor directory** of it (a
  rule that matches a directory applies to everything under it);
* translated for rsync (``rsync_args``, FILTERS.md section 5: the leading ``-`` run
  as is, ``+ */``, then every other rule plus its ``P/**`` subtree form);
* translated for ``aws s3 sync`` (:mod:`flepimop_sync.s3filters`).

A rule that is handed on as text to be parsed again later (the workflow's params) is
normalised by :func:`written_canonical`, its variables left as written: expanded once only.

A rule's prefix is an :class:`Action`; a ``+``/``-`` pattern is analysed once
(:class:`PatternInfo`) into typed tokens (:class:`Lit`, :class:`Slash`, :class:`Star`,
:class:`DStar`, :class:`AnyByte`, :class:`ByteSet`) and a :class:`PatternMode`, which
``s3filters`` reads too.

Matching is done on the UTF-8 bytes of the path, exactly like rsync's
wildmatch: ``?`` and ``[set]`` match one *byte* (so ``??`` matches ``é``).  This
keeps the evaluator and the native rsync transfer identical on every name; the
aws translation treats ``?``/negated sets as inexact for that reason.

How a pattern is matched (mirrors rsync's ``rule_matches``), on the subject
``"/" + path`` of the file and of each of its ancestor directories:

=============================  =========================================
pattern (after removing a      regex (fullmatch on ``"/" + path``)
leading ``/`` anchor and a
trailing ``/``)
=============================  =========================================
anchored ``/P``                ``/P``
no ``/`` and no ``**``         ``.*/P`` (P cannot cross ``/``: last component)
inner ``/``, no ``**``         ``.*/P`` (exactly the last k+1 components)
contains ``**`` (not first)    ``.*/P`` (tail starting at any component boundary)
starts with ``**``             ``P`` (rsync matches ``"/" + path``)
=============================  =========================================

Bounded cost: a pattern whose regex could backtrack polynomially in a high degree (three or
more unbounded ``*``/``**`` runs, counting the implicit ``.*/`` where the body can cross ``/``)
is matched by a bit-parallel NFA instead (:class:`_Nfa`, linear in the subject), never by
Python's backtracking ``re``; all others keep the fast combined regex.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Iterable, Mapping, Sequence, Union

from flepimop_sync.errors import FilterError, UsageError

__all__ = [
    "Action",
    "Rule",
    "expand_env",
    "substitute_noting_empty",
    "substitute_variables",
    "VariableSyntaxError",
    "FilterList",
    "parse_rule",
    "written_canonical",
    "build_rules",
    "check_no_filter",
    "ORIGIN_OVERRIDE",
    "ORIGIN_PREFIX",
    "ORIGIN_SUFFIX",
    "ORIGIN_IMPLICIT",
    "ORIGIN_SOURCE_OVERRIDE",
]

ORIGIN_OVERRIDE = "option -f/--filter"
ORIGIN_PREFIX = "option -a/--fprefix"
ORIGIN_SUFFIX = "option -e/--fsuffix"
ORIGIN_IMPLICIT = "implicit tail (FILTERS.md section 1: include what matches, exclude everything else)"
# Our rule where FILTERS.md is silent about -s (see build_rules): a replaced source is narrowed
# to what -a/-e include, even when the protocol's own filters have '-' rules.
ORIGIN_SOURCE_OVERRIDE = "implicit tail (-s/--source replaced the source: take only what -a/-e include)"

_SLASH = 0x2F
_BACKSLASH = 0x5C
_STAR = 0x2A

class Action(str, Enum):
    """What a rule does with what it matches (its prefix as written; FILTERS.md section 1)."""

    INCLUDE = "+"
    EXCLUDE = "-"
    SUBSTRING = "s"  # include every path containing the text

    def __str__(self) -> str:  # f-strings and str() give the prefix on every Python (3.12 changed format())
        return self.value


class PatternMode(Enum):
    """How a ``+``/``-`` pattern is matched (the table in the module docstring)."""

    ANCHORED = "anchored"  # '/P'
    NAME = "name"  # no '/' and no '**': the last component
    TAIL = "tail"  # inner '/', no '**': last k+1 components
    ANY_BOUNDARY = "any-boundary"  # '**' inside, not first
    PREFIX2 = "prefix-**"  # starts with '**'


@dataclass(frozen=True)
class Rule:
    """One filter rule as written (FILTERS.md section 1)."""

    action: Action
    pattern: str  # without the prefix
    origin: str  # where it came from
    text: str  # the rule as written
    implicit: bool = False  # True for the implicit "- **" tail

    @property
    def dir_only(self) -> bool:
        return self.action != Action.SUBSTRING and len(self.pattern) > 1 and self.pattern.endswith("/")

    @property
    def canonical(self) -> str:
        """The rule as ``<action> <pattern>``, however it was written (``P`` and ``+ P`` are one
        rule): what rerun digests and the workflow's params hold."""
        return f"{self.action} {self.pattern}"

    def __str__(self) -> str:
        return self.text


# --------------------------------------------------------------------------------------
# parsing


def _fail(text: str, origin: str, reason: str) -> FilterError:
    return FilterError(f"invalid filter {text!r} ({origin}): {reason}", rule=text, reason=reason)


_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Why a ``${`` is refused, in a rule as in an end.
MALFORMED_BRACE = "'${' must be followed by a variable name and '}' (write '$$' for a literal '$')"


class VariableSyntaxError(ValueError):
    """A malformed ``${`` (its text: :data:`MALFORMED_BRACE`); callers word where it was written."""


def substitute_variables(text: str, value: Callable[[str], str]) -> str:
    """The one home of the variable grammar of rules and ends (FILTERS.md section 1): ``$NAME`` and
    ``${NAME}`` become ``value(NAME)``, ``$$`` is a literal ``$``, and a ``$`` that starts no name
    stays itself, as in the shell (``a$``, ``$(x)``, ``$1``).  A ``${`` not followed by a name and
    ``}`` (``${RUN``, ``${}``, ``${1X}``) raises :class:`VariableSyntaxError`.  One pass, left to
    right: values are not expanded again."""
    if "$" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if text.startswith("$$", j):
            out.append("$")
            i = j + 2
            continue
        if text.startswith("${", j):
            end = text.find("}", j + 2)
            name = text[j + 2 : end] if end >= 0 else ""
            if end < 0 or not _VAR_NAME.fullmatch(name):
                raise VariableSyntaxError(MALFORMED_BRACE)
            i = end + 1
        else:
            m = _VAR_NAME.match(text, j + 1)
            if not m:
                out.append("$")
                i = j + 1
                continue
            name = m.group(0)
            i = m.end()
        out.append(value(name))
    return "".join(out)


def substitute_noting_empty(text: str, value: Callable[[str], str]) -> tuple[str, list[str]]:
    """:func:`substitute_variables`, and the names whose value is set but empty, each once in the
    order used: the one check behind refusing them in a rule (:func:`expand_env`) and in an end
    (``endpoints.check_empty_variables``), each worded where it was written."""
    empty: list[str] = []

    def noted(name: str) -> str:
        found = value(name)
        if found == "" and name not in empty:
            empty.append(name)
        return found

    return substitute_variables(text, noted), empty


def expand_env(text: str, origin: str, env: Mapping[str, str] | None = None) -> str:
    """Replace ``$NAME`` and ``${NAME}`` by their values in ``env`` (default ``os.environ``), by
    :func:`substitute_variables`: an unset variable, one set but empty, or a malformed ``${`` is
    a :class:`FilterError` naming the variable, the rule and where it came from.  Empty is
    refused as in ends (``endpoints.check_empty_variables``): ``+ $RUN/**`` with ``RUN=''``
    reads ``+ /**``, every file, and a --delete would delete across the whole target.
    """
    if "$" not in text:
        return text
    environment = os.environ if env is None else env

    def value(name: str) -> str:
        found = environment.get(name)
        if found is None:
            raise _fail(text, origin, f"environment variable ${name} is not set")
        return found

    try:
        expanded, empty = substitute_noting_empty(text, value)
    except VariableSyntaxError as error:
        raise _fail(text, origin, str(error)) from None
    if empty:
        names = ", ".join(f"${name}" for name in empty)
        raise _fail(text, origin, f"environment variable {names} is set but empty: the rule would read "
                                  f"{expanded!r}, another selection than the one meant (set {'/'.join(empty)}, "
                                  "or write the rule without it)")
    return expanded


def parse_rule(text: str, origin: str, env: Mapping[str, str] | None = None) -> Rule:
    """Parse one rule, environment variables expanded first (:func:`expand_env`, ``env``
    defaults to ``os.environ``); raise :class:`FilterError` naming the rule and its origin."""
    if not isinstance(text, str):
        raise _fail(str(text), origin, f"a filter must be a string, not {type(text).__name__}")
    if "$" not in text:
        return _parse_literal(text, origin)
    expanded = expand_env(text, origin, env)
    # errors in the expanded text also show the rule as written
    shown = origin if expanded == text else f"{origin}; written {text!r}"
    return _parse_expanded(expanded, shown, origin)


def written_canonical(text: str, origin: str, env: Mapping[str, str] | None = None) -> str:
    """:attr:`Rule.canonical` of a rule with its ``$NAME``, ``${NAME}`` and ``$$`` left as written,
    for texts that are parsed again later (the workflow's params: the sync run expands them, once;
    expanded here too, ``$$`` would reach it as a lone ``$`` and be read as a variable). The rule
    is checked as :func:`parse_rule` checks it (``env`` as there). A ``$`` in the first two
    characters may expand into the prefix: such a rule is kept exactly as written."""
    rule = parse_rule(text, origin, env)
    if "$" not in text:
        return rule.canonical
    if "$" in text[:2] or text[:2] in ("+ ", "- ", "s "):
        return text
    return f"+ {text}"  # a bare pattern (parse_rule refused '+x' and '-x')


@functools.lru_cache(maxsize=4096)
def _parse_literal(text: str, origin: str) -> Rule:
    """A rule without ``$`` is the same whatever the environment: parsed once (the config's
    syntax check at load and the rule list at run time share it; a Rule is immutable)."""
    return _parse_expanded(text, origin, origin)


def _parse_expanded(text: str, origin: str, rule_origin: str) -> Rule:
    if text == "":
        raise _fail(text, origin, "empty filter")
    if any(c in text for c in "\n\r\0"):
        raise _fail(text, origin, "line breaks and NUL characters are not allowed")
    if text != text.strip():
        raise _fail(text, origin, "leading or trailing white space")
    if text[0] in "+-":
        if len(text) < 2 or text[1] != " ":
            raise _fail(
                text,
                origin,
                f"'{text[0]}' must be followed by exactly one space and a pattern "
                f"(rsync would read '{text[:2]}...' as a modifier or merge rule)",
            )
        action, pattern = Action(text[0]), text[2:]
    elif text.startswith("s "):
        action, pattern = Action.SUBSTRING, text[2:]
    else:
        action, pattern = Action.INCLUDE, text
    if pattern == "":
        raise _fail(text, origin, "empty pattern")
    if pattern != pattern.strip():
        raise _fail(text, origin, "exactly one space must follow the prefix (pattern starts or ends with white space)")
    if action != Action.SUBSTRING:
        try:
            _analyse(pattern)
        except ValueError as exc:
            raise _fail(text, origin, str(exc)) from None
    return Rule(action, pattern, rule_origin, text)


# --------------------------------------------------------------------------------------
# pattern analysis (shared with s3filters)

# A pattern is a list of tokens, each matching bytes of the path as rsync's wildmatch does.


@dataclass(frozen=True)
class Lit:
    """One literal byte."""

    byte: int


@dataclass(frozen=True)
class Slash:
    """A '/'."""


@dataclass(frozen=True)
class Star:
    """``*``: any run of bytes within one component (never '/')."""


@dataclass(frozen=True)
class DStar:
    """``**`` (or a longer run of stars): any run of bytes, '/' included."""


@dataclass(frozen=True)
class AnyByte:
    """``?``: one byte, never '/'."""


@dataclass(frozen=True)
class ByteSet:
    """``[...]`` (``negated``: ``[!...]``): one byte of ``allowed``."""

    negated: bool
    members: frozenset[int]

    @property
    def allowed(self) -> frozenset[int]:
        """The bytes the set matches (never '/')."""
        allowed = (frozenset(range(256)) - self.members) if self.negated else self.members
        return allowed - {_SLASH}


Token = Union[Lit, Slash, Star, DStar, AnyByte, ByteSet]
SLASH, STAR, DSTAR, ANY_BYTE = Slash(), Star(), DStar(), AnyByte()
#: The unbounded tokens (each a backtracking point for a regex).
STARS = (Star, DStar)


_ESCAPED_SLASH = "'\\/' (escaped '/') is not supported"


def _tokenize(pat: bytes) -> list[Token]:
    toks: list[Token] = []
    n = len(pat)
    i = 0
    while i < n:
        c = pat[i]
        if c == _BACKSLASH:
            if i + 1 >= n:
                raise ValueError("dangling '\\' at the end of the pattern")
            nxt = pat[i + 1]
            if nxt == _SLASH:
                raise ValueError(_ESCAPED_SLASH)
            toks.append(Lit(nxt))
            i += 2
        elif c == _STAR:
            j = i
            while j < n and pat[j] == _STAR:
                j += 1
            toks.append(DSTAR if j - i >= 2 else STAR)
            i = j
        elif c == 0x3F:  # ?
            toks.append(ANY_BYTE)
            i += 1
        elif c == 0x5B:  # [
            tok, i = _parse_set(pat, i)
            toks.append(tok)
        elif c == _SLASH:
            toks.append(SLASH)
            i += 1
        else:
            toks.append(Lit(c))
            i += 1
    return toks


def _parse_set(pat: bytes, i: int) -> tuple[ByteSet, int]:
    """Parse ``[...]`` starting at ``pat[i] == '['`` exactly like rsync's wildmatch."""
    n = len(pat)
    j = i + 1
    if j < n and pat[j] == 0x5E:  # ^
        raise ValueError("'[^...]' is not part of the filter language (use '[!...]')")
    negated = False
    if j < n and pat[j] == 0x21:  # !
        negated = True
        j += 1
    members: set[int] = set()
    prev: int | None = None
    first = True
    while True:
        if j >= n:
            raise ValueError(_UNTERMINATED_SET)
        ch = pat[j]
        if ch == 0x5D and not first:  # ]
            break
        first = False
        if ch == 0x2D and prev is not None and j + 1 < n and pat[j + 1] != 0x5D:  # range
            hi, j = _set_byte(pat, j + 1)
            members.update(range(prev, hi + 1))
            prev = None
        elif ch == 0x5B and j + 1 < n and pat[j + 1] in (0x3A, 0x2E, 0x3D):  # [: [. [=
            raise ValueError("character classes like '[[:alpha:]]' are not part of the filter language")
        else:
            prev, j = _set_byte(pat, j)
            members.add(prev)
        j += 1
    return ByteSet(negated, frozenset(members)), j + 1


_UNTERMINATED_SET = "unterminated '[' set"


def _set_byte(pat: bytes, j: int) -> tuple[int, int]:
    """The byte a set names at ``pat[j]`` (a backslash escapes the next byte) and the index of the
    last byte read; a '/' is refused, escaped or not."""
    if pat[j] == _BACKSLASH:
        j += 1
        if j >= len(pat):
            raise ValueError(_UNTERMINATED_SET)
    if pat[j] == _SLASH:
        raise ValueError("'/' inside a '[...]' set can never match")
    return pat[j], j


@dataclass(frozen=True)
class PatternInfo:
    """A +/- pattern analysed once: anchor, dir-only flag, tokens and matching mode."""

    anchored: bool
    dir_only: bool
    tokens: tuple[Token, ...]
    mode: PatternMode
    core: bytes  # the pattern bytes without anchor and trailing '/'


def _analyse(pattern: str) -> PatternInfo:
    raw = os.fsencode(pattern)
    anchored = raw.startswith(b"/")
    dir_only = len(raw) > 1 and raw.endswith(b"/")
    if dir_only and (len(raw) - len(raw[:-1].rstrip(b"\\")) - 1) % 2 == 1:
        raise ValueError(_ESCAPED_SLASH)
    core = raw[1 if anchored else 0 : len(raw) - 1 if dir_only else len(raw)]
    if not core:
        raise ValueError("empty pattern")
    if b"//" in core or core.startswith(b"/") or core.endswith(b"/"):
        raise ValueError("empty path component ('//')")
    toks = _tokenize(core)
    has_slash = any(isinstance(t, Slash) for t in toks)
    has_dstar = any(isinstance(t, DStar) for t in toks)
    if anchored:
        mode = PatternMode.ANCHORED
    elif isinstance(toks[0], DStar):
        mode = PatternMode.PREFIX2
    elif has_dstar:
        mode = PatternMode.ANY_BOUNDARY
    elif has_slash:
        mode = PatternMode.TAIL
    else:
        mode = PatternMode.NAME
    return PatternInfo(anchored, dir_only, tuple(toks), mode, core)


def _byte_class(allowed: Iterable[int]) -> bytes:
    vals = sorted(set(allowed))
    if not vals:
        return b"(?!)"
    parts = []
    start = prev = vals[0]
    for v in vals[1:] + [None]:  # type: ignore[operator]
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev))
        if v is not None:
            start = prev = v
    return b"[" + b"".join(parts) + b"]"


def _tokens_regex(toks: Sequence[Token]) -> bytes:
    out = []
    for t in toks:
        if isinstance(t, Lit):
            out.append(re.escape(bytes([t.byte])))
        elif isinstance(t, Slash):
            out.append(b"/")
        elif isinstance(t, Star):
            out.append(b"[^/]*")
        elif isinstance(t, DStar):
            out.append(b".*")
        elif isinstance(t, AnyByte):
            out.append(b"[^/]")
        else:
            out.append(_byte_class(t.allowed))
    return b"".join(out)


def _subject_regex(info: PatternInfo) -> bytes:
    """Regex (fullmatch on b'/' + path) of the pattern against one path (file or directory)."""
    body = _tokens_regex(info.tokens)
    if info.mode is PatternMode.ANCHORED:
        return b"/" + body
    if info.mode is PatternMode.PREFIX2:
        return body
    return b".*/" + body


# --------------------------------------------------------------------------------------
# the list


def _subject_tokens(info: PatternInfo) -> tuple[Token, ...]:
    """The tokens of :func:`_subject_regex` (the implicit ``.*/`` as ``DSTAR``, ``SLASH``)."""
    if info.mode is PatternMode.ANCHORED:
        return (SLASH,) + info.tokens
    if info.mode is PatternMode.PREFIX2:
        return info.tokens
    return (DSTAR, SLASH) + info.tokens


def _risky(info: PatternInfo) -> bool:
    """Whether Python's backtracking ``re`` could take super-quadratic time on this pattern.

    Each unbounded run (``*``, ``**``) is a backtracking point; the implicit ``.*/`` only counts
    when the body can cross ``/`` (with ``**`` inside), since otherwise it can only stop at the
    few positions where the last k+1 components start.
    """
    unbounded = sum(1 for t in info.tokens if isinstance(t, STARS))
    if info.mode is PatternMode.ANY_BOUNDARY:
        unbounded += 1
    return unbounded >= 3


class _Nfa:
    """A wildmatch token list as a bit-parallel NFA: linear in the subject, no backtracking.

    State j means "the first j tokens are matched".  Star tokens loop on themselves and can be
    skipped (the tokenizer merges runs of ``*``, so no two star tokens are adjacent: one skip
    step is the whole epsilon closure).  Per-byte masks are built lazily, so a long pattern
    costs nothing until it is matched.
    """

    __slots__ = ("toks", "accept", "stars", "star1", "lits", "anyq", "sets", "_adv", "_stay")

    def __init__(self, toks: Sequence[Token]):
        self.toks = tuple(toks)
        self.accept = 1 << len(self.toks)
        stars = star1 = anyq = 0
        lits: dict[int, int] = {}
        sets: list[tuple[int, frozenset[int]]] = []
        for j, t in enumerate(self.toks):
            bit = 1 << j
            if isinstance(t, STARS):
                stars |= bit
                if isinstance(t, Star):
                    star1 |= bit
            elif isinstance(t, Lit):
                lits[t.byte] = lits.get(t.byte, 0) | bit
            elif isinstance(t, Slash):
                lits[_SLASH] = lits.get(_SLASH, 0) | bit
            elif isinstance(t, AnyByte):
                anyq |= bit
            else:
                sets.append((bit, t.allowed))
        self.stars, self.star1, self.lits, self.anyq, self.sets = stars, star1, lits, anyq, tuple(sets)
        self._adv: dict[int, int] = {}
        self._stay: dict[int, int] = {}

    def _masks(self, c: int) -> tuple[int, int]:
        adv = self.lits.get(c, 0)
        if c != _SLASH:
            adv |= self.anyq
            for bit, allowed in self.sets:
                if c in allowed:
                    adv |= bit
        stay = self.stars if c != _SLASH else self.stars & ~self.star1  # '*' never crosses '/'
        self._adv[c], self._stay[c] = adv, stay
        return adv, stay

    @property
    def start(self) -> int:
        """The state set before any byte (the epsilon closure of state 0)."""
        return 1 | ((1 & self.stars) << 1)

    def accepts(self, d: int) -> bool:
        return bool(d & self.accept)

    def __call__(self, subject: bytes) -> bool:
        return self.accepts(self.feed(self.start, subject))

    def feed(self, d: int, subject: bytes) -> int:
        """The state set after reading ``subject`` from state set ``d`` (0: dead)."""
        stars = self.stars
        adv_cache, stay_cache = self._adv, self._stay
        for c in subject:
            adv = adv_cache.get(c)
            if adv is None:
                adv, stay = self._masks(c)
            else:
                stay = stay_cache[c]
            d = ((d & adv) << 1) | (d & stay)
            if not d:
                return 0
            d |= (d & stars) << 1
        return d


@dataclass(frozen=True)
class _Compiled:
    action: Action
    file_re: bytes | None  # regex matching the file itself (None: never, or matched by nfa)
    dir_re: bytes | None  # regex matching an ancestor directory (None: never, or matched by nfa)
    nfa: Callable[[bytes], bool] | None = None  # risky patterns: the linear matcher instead
    on_files: bool = True  # whether the rule can match a file itself (not dir-only)
    on_dirs: bool = True  # whether the rule can match an ancestor directory (not 's')


def _compile_rule(rule: Rule) -> _Compiled:
    if rule.action == Action.SUBSTRING:
        return _Compiled(Action.SUBSTRING, b".*" + re.escape(os.fsencode(rule.pattern)) + b".*", None, on_dirs=False)
    info = _analyse(rule.pattern)
    if _risky(info):
        return _Compiled(rule.action, None, None, _Nfa(_subject_tokens(info)), on_files=not info.dir_only)
    rx = _subject_regex(info)
    # version 2: '+' and '-' alike match a file through any ancestor directory
    return _Compiled(rule.action, None if info.dir_only else rx, rx, on_files=not info.dir_only)


class _Decider:
    """Per-directory state, memoised: the first rule that matches an ancestor directory.

    A directory's state is ``(a, nfa)``: ``a`` the index of the first rule matching it or an
    ancestor (``n``: none), ``nfa`` the state sets of the risky rules' NFAs after reading the
    directory's subject, so a child is matched by feeding only ``/name`` (linear overall).
    """

    def __init__(self, compiled: Sequence[_Compiled]):
        self.compiled = tuple(compiled)
        self.n = len(self.compiled)
        lead = 0
        while lead < self.n and self.compiled[lead].action == Action.EXCLUDE:
            lead += 1
        self.lead = lead
        self.include = [c.action != Action.EXCLUDE for c in self.compiled] + [True]
        self.risky = tuple((i, c) for i, c in enumerate(self.compiled) if c.nfa is not None)
        self.root = (self.n, tuple(c.nfa.start for _, c in self.risky))
        self._file_alt: dict[int, tuple] = {}
        self._dir_alt: dict[int, tuple] = {}
        self._dir_state: dict[bytes, tuple[int, tuple]] = {b"": self.root}

    def _combined(self, a: int, dirs: bool) -> tuple:
        """(combined fullmatch or None, group -> rule index) of the regex rules among rules[:a]."""
        alts, idx = [], [None]
        for i, c in enumerate(self.compiled[:a]):
            rx = c.dir_re if dirs else c.file_re
            if rx is not None:
                alts.append(b"(" + rx + b")")
                idx.append(i)
        return (re.compile(b"|".join(alts), re.S).fullmatch if alts else None), idx

    def _first(self, a: int, got: tuple, subject: bytes, nfa: tuple, tail: bytes, dirs: bool) -> tuple[int, tuple]:
        """(index of the first rule below ``a`` matching ``subject``, the NFA states after it)."""
        fm, idx = got
        first = a
        if fm is not None:
            m = fm(subject)
            if m is not None:
                first = idx[m.lastindex]
        if not self.risky:
            return first, nfa
        fed = tuple(c.nfa.feed(d, tail) if d else 0 for (_, c), d in zip(self.risky, nfa, strict=True))
        for (i, c), d in zip(self.risky, fed, strict=True):
            if i >= first:
                break
            if (c.on_dirs if dirs else c.on_files) and c.nfa.accepts(d):
                return i, fed
        return first, fed

    def file_selected(self, state: tuple[int, tuple], subject: bytes, tail: bytes) -> bool:
        """Whether a file (``subject`` b'/' + path, ``tail`` b'/' + name) in a directory with
        ``state`` is selected."""
        a = state[0]
        got = self._file_alt.get(a)
        if got is None:
            got = self._file_alt[a] = self._combined(a, dirs=False)
        if got[0] is None and not self.risky:
            return self.include[a]
        return self.include[self._first(a, got, subject, state[1], tail, False)[0]]

    def child_state(self, state: tuple[int, tuple], sub: bytes, tail: bytes) -> tuple[int, tuple]:
        """State of directory ``sub`` (b'/dir/path', ``tail`` b'/name') below one with ``state``."""
        a = state[0]
        got = self._dir_alt.get(a)
        if got is None:
            got = self._dir_alt[a] = self._combined(a, dirs=True)
        if got[0] is None and not self.risky:
            return state
        return self._first(a, got, sub, state[1], tail, True)

    def dir_state(self, d: bytes) -> tuple[int, tuple]:
        """State of directory d (b'' for the root, else b'/a/b'), memoised."""
        memo = self._dir_state
        st = memo.get(d)
        if st is not None:
            return st
        missing = [d]  # iterative, not recursive: paths may be thousands of components deep
        while True:
            parent = missing[-1][: missing[-1].rfind(b"/")]
            st = memo.get(parent)
            if st is not None:
                break
            missing.append(parent)
        for sub in reversed(missing):
            cut = sub.rfind(b"/")
            st = memo[sub] = self.child_state(st, sub, sub[cut:])
        return st

    def decide(self, subject: bytes) -> bool:
        """subject = b'/' + path of a file."""
        cut = subject.rfind(b"/")
        return self.file_selected(self.dir_state(subject[:cut]), subject, subject[cut:])


def _rsync_escape_literal(pattern: str) -> str:
    """rsync matches a pattern without ``*?[`` literally (no backslash escapes): unescape it."""
    if "\\" in pattern and not any(c in pattern for c in "*?["):
        out, i = [], 0
        while i < len(pattern):
            if pattern[i] == "\\" and i + 1 < len(pattern):
                out.append(pattern[i + 1])
                i += 2
            else:
                out.append(pattern[i])
                i += 1
        pattern = "".join(out)
    if pattern in ("!", "!/"):  # a lone '!' clears rsync's filter list
        pattern = "[\\!]" + pattern[1:]
    return pattern


def _rsync_escape_substring(x: str) -> str:
    return "".join("\\" + c if c in "*?[\\" else c for c in x)


@dataclass(frozen=True)
class FilterList:
    """An immutable, normalised filter list (FILTERS.md sections 1-5)."""

    rules: tuple[Rule, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # facts about how the list was built, worth one line (not warnings)
    _decider: _Decider = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        object.__setattr__(self, "rules", rules)
        warns = list(dict.fromkeys(self.warnings))
        object.__setattr__(self, "warnings", tuple(warns))
        object.__setattr__(self, "_decider", _Decider([_compile_rule(r) for r in rules]))

    # -- basics
    def __bool__(self) -> bool:
        return bool(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def as_texts(self) -> list[str]:
        return [r.text for r in self.rules]

    # -- evaluation (FILTERS.md section 4)
    def selects(self, path: str) -> bool:
        """Whether the rules select the regular file at ``path`` (relative, '/'-separated)."""
        if not self.rules:
            return True
        return self._decider.decide(b"/" + os.fsencode(path.strip("/")))

    def select_paths(self, items: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        """Filter a listing of (relative path, size); sorted result."""
        if not self.rules:
            return sorted((p, s) for p, s in items)
        d = _Decider(self._decider.compiled)  # fresh memo per listing
        decide = d.decide
        fsencode = os.fsencode
        out = [(p, s) for p, s in items if decide(b"/" + fsencode(p))]
        out.sort()
        return out

    def selects_nothing_below(self, directory: str) -> bool:
        """Whether the rules select no file below ``directory`` (relative, '/'-separated), whatever
        the tree holds: a destination there is kept out of its own source's transfer.

        Proven, not guessed (False when unsure): in list order, a rule matching the directory or an
        ancestor decides the whole subtree (version 2), unless an earlier rule matches deeper; a
        rule that could still match some deeper path (its NFA alive after ``/<directory>/``) is
        harmless only when it excludes.  So ``+ /run*.pdf`` then ``- **`` select nothing below
        ``snapshots/run1``; ``+ **.pdf`` may."""
        parts = os.fsencode(directory.strip("/")).split(b"/")
        if not self.rules or parts == [b""]:
            return False
        ancestors = [b"/" + b"/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        below = ancestors[-1] + b"/"
        for rule in self.rules:
            if rule.action == Action.SUBSTRING:
                return False  # 's TEXT' takes a file named with the text, wherever it lies
            nfa = _Nfa(_subject_tokens(_analyse(rule.pattern)))
            if any(nfa(a) for a in ancestors):
                return rule.action == Action.EXCLUDE
            if rule.action != Action.EXCLUDE and nfa.feed(nfa.start, below):
                return False
        return False  # nothing decides the subtree: without a '- **' tail it is taken

    def unmatched_includes(self, paths: Sequence[str]) -> list[Rule]:
        """The include rules (``+``/``s``, as written) that match no path of a listing and no
        directory above one: a surprise worth a warning (a mistyped run name selects nothing).
        Exclude rules that match nothing are harmless and are not reported."""
        tail = Rule(Action.EXCLUDE, "**", ORIGIN_IMPLICIT, "- **", implicit=True)
        items = [(p, 0) for p in paths]
        out = []
        for rule in self.rules:
            if rule.implicit or rule.action == Action.EXCLUDE:
                continue
            if not FilterList((rule, tail)).select_paths(items):
                out.append(rule)
        return out

    def select_local(self, root: str | os.PathLike) -> list[tuple[str, int]]:
        """Walk a local directory; sorted (relpath, size) of the selected files.

        Regular files carry their size; symlinks (never followed, like ``rsync -a``) and other
        non-directory entries are listed with size 0.  Directories excluded by the leading run
        of '-' rules are not descended.
        """
        d = _Decider(self._decider.compiled)
        lead = d.lead
        enc = sys.getfilesystemencoding()
        out: list[tuple[str, int]] = []
        append = out.append
        stat = os.stat
        child_state, file_selected = d.child_state, d.file_selected
        stack = [(os.fsencode(os.fspath(root)), b"/", d.root)]
        while stack:
            dpath, rel, state = stack.pop()
            fd = os.open(dpath, os.O_RDONLY | os.O_DIRECTORY)
            try:
                with os.scandir(dpath) as it:
                    for e in it:
                        name = e.name
                        if e.is_dir(follow_symlinks=False):
                            sub = rel + name
                            cs = child_state(state, sub, b"/" + name)
                            if cs[0] < lead:
                                continue  # excluded by the leading '-' run: prune the subtree
                            stack.append((dpath + b"/" + name, sub + b"/", cs))
                            continue
                        subj = rel + name
                        if file_selected(state, subj, b"/" + name):
                            if e.is_file(follow_symlinks=False):
                                size = stat(name, dir_fd=fd, follow_symlinks=False).st_size
                            else:
                                size = 0
                            append((subj[1:].decode(enc, "surrogateescape"), size))
            finally:
                os.close(fd)
        out.sort()
        return out

    # -- rsync (FILTERS.md section 5)
    def rsync_args(self) -> list[str]:
        if not self.rules:
            return []
        args: list[str] = []
        i = 0
        while i < len(self.rules) and self.rules[i].action == Action.EXCLUDE:
            args.append("--filter=- " + _rsync_escape_literal(self.rules[i].pattern))
            i += 1
        args.append("--filter=+ */")
        for r in self.rules[i:]:
            if r.action == Action.SUBSTRING:
                args.append("--filter=+ **" + _rsync_escape_substring(r.pattern) + "**")
                continue
            # version 2: the rule also applies to everything below a directory it matches
            args.append(f"--filter={r.action} " + _rsync_escape_literal(r.pattern))
            p = r.pattern[:-1] if r.dir_only else r.pattern
            args.append(f"--filter={r.action} " + p + "/**")
        return args


def _as_pairs(items: Sequence, origin: str) -> list[tuple[str, str]]:
    out = []
    for it in items:
        if isinstance(it, tuple):
            out.append((it[0], it[1]))
        else:
            out.append((it, origin))
    return out


def check_no_filter(no_filter: bool, override: Sequence = (), prefix: Sequence = (), suffix: Sequence = ()) -> None:
    """``--no-filter`` empties the config's part of the list: given with -f/-a/-e it contradicts them."""
    if no_filter and (override or prefix or suffix):
        raise UsageError("--no-filter cannot be combined with -f/--filter, -a/--fprefix or -e/--fsuffix")


def build_rules(
    config_rules: Sequence[tuple[str, str]] | None,
    override: Sequence[str] = (),
    prefix: Sequence[str] = (),
    suffix: Sequence[str] = (),
    no_filter: bool = False,
    env: Mapping[str, str] | None = None,
    *,
    source_replaced: bool = False,
    source_is_file: bool = False,
) -> FilterList:
    """prefix (-a) + (override -f, else the config's filters) + suffix (-e), then the implicit tail.

    ``override``/``prefix``/``suffix`` items are rule texts (or ``(text, origin)`` pairs).
    Environment variables in every rule are expanded from ``env`` (default ``os.environ``).

    ``source_replaced``: ``-s/--source`` replaced the protocol's source (not a ``+ `` append).
    Then, when there is no ``-f`` and the ``-a``/``-e`` rules are non-empty with no ``-`` rule,
    the list is the command line's includes, the config's ``-`` rules in their places, and
    ``- **``: a replaced source is a different tree, so what to take from it is what was typed
    for it, while the protocol's protections (its excludes) still apply and its scope (its
    includes, written for its own source) does not.  flepiMoP's sync job pushes
    ``--fprefix '+ RUN*.pdf' --source <project>/``: with FILTERS.md's list an exclude-only
    protocol would push the whole project, an include-only one the project's files it includes.
    Dropping ``+``/``s`` rules in front of a ``- **`` tail and adding that tail can only narrow
    the selection (first match wins).  Where the result differs from FILTERS.md's list, the
    tail's origin is :data:`ORIGIN_SOURCE_OVERRIDE` and the list carries a note saying so.
    ``source_is_file``: that replaced source is one file, named (the sync job's
    ``--source manifest.json``); with no ``-f/-a/-e``, the protocol's includes are left out the
    same way and its excludes still apply: naming the file is the selection.
    """
    check_no_filter(no_filter, override, prefix, suffix)
    head: list[Rule] = [parse_rule(t, o, env) for t, o in _as_pairs(prefix, ORIGIN_PREFIX)]
    if override:
        base = [parse_rule(t, o, env) for t, o in _as_pairs(override, ORIGIN_OVERRIDE)]
    elif config_rules and not no_filter:
        base = [parse_rule(t, o, env) for t, o in config_rules]
    else:
        base = []
    tail = [parse_rule(t, o, env) for t, o in _as_pairs(suffix, ORIGIN_SUFFIX)]
    rules = head + base + tail
    if source_replaced and not override and base:
        narrowed = None
        if _only_includes(head + tail):
            narrowed = _narrowed_to_command_line(head, base, tail)
        elif source_is_file and not head and not tail:
            narrowed = _narrowed_to_named_file(base)
        if narrowed is not None:
            return narrowed
    warnings: list[str] = []
    if rules and (all(r.action != Action.EXCLUDE for r in rules) or any(r.action == Action.SUBSTRING for r in rules)):
        rules.append(Rule(Action.EXCLUDE, "**", ORIGIN_IMPLICIT, "- **", implicit=True))
    elif base and all(r.action == Action.INCLUDE for r in base):
        # the base alone meant "only what it includes"; an added exclude silently flips that
        added = next(r for r in head + tail if r.action == Action.EXCLUDE)
        warnings.append(
            f"filters {[r.text for r in base]} ({base[0].origin}) select only what they include, but "
            f"{added.text!r} ({added.origin}) removes the implicit '- **' tail: the list now selects "
            f"everything except what it excludes; add '- **' at the end (e.g. -e '- **') to keep "
            f"'only what is included'"
        )
    return FilterList(tuple(rules), tuple(warnings))


def _narrowed_to_command_line(head: list[Rule], base: list[Rule], tail: list[Rule]) -> FilterList | None:
    """The list for a replaced source (see :func:`build_rules`), or None when it is FILTERS.md's."""
    kept = [r for r in base if r.action == Action.EXCLUDE]
    left_out = [r for r in base if r.action != Action.EXCLUDE]
    plain = head + base + tail
    plain_tail = all(r.action != Action.EXCLUDE for r in plain) or any(r.action == Action.SUBSTRING for r in plain)
    if not left_out and plain_tail:
        return None  # FILTERS.md's own tail ends the same list
    typed = ", ".join(r.text for r in head + tail)
    parts = [f"-s/--source replaces the protocol's source, so only what -a/-e include ({typed}) is "
             f"taken from it: the filters end with '- **'"]
    if left_out:
        parts.append(f"the protocol's own includes ({', '.join(r.text for r in left_out)}) are left out")
    if kept:
        parts.append(f"its excludes ({', '.join(r.text for r in kept)}) still apply")
    rules = head + kept + tail + [Rule(Action.EXCLUDE, "**", ORIGIN_SOURCE_OVERRIDE, "- **", implicit=True)]
    return FilterList(tuple(rules), (), ("; ".join(parts),))


def _narrowed_to_named_file(base: list[Rule]) -> FilterList | None:
    """The list for a replaced source that names one file (see :func:`build_rules`)."""
    left_out = [r for r in base if r.action != Action.EXCLUDE]
    if not left_out:
        return None  # only excludes: FILTERS.md's list as it is
    kept = [r for r in base if r.action == Action.EXCLUDE]
    note = (f"-s/--source names one file, so the protocol's own includes "
            f"({', '.join(r.text for r in left_out)}) are left out")
    if kept:
        note += f"; its excludes ({', '.join(r.text for r in kept)}) still apply"
    return FilterList(tuple(kept), (), (note,))


def _only_includes(rules: Sequence[Rule]) -> bool:
    """Rules given on the command line that are there and only include (``+``, plain, ``s``)."""
    return bool(rules) and all(r.action != Action.EXCLUDE for r in rules)
