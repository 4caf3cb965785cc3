"""The one filter language of flepimop-sync (FILTERS.md is the contract).

A filter list is parsed once into :class:`Rule` objects, normalised into a
:class:`FilterList` (regexes compiled once) and then

* evaluated in-process (``selects``, ``select_local``, ``select_paths``): the
  reference semantics of FILTERS.md section 4, used by ``--dry-run`` and to
  build explicit selections;
* translated for rsync (``rsync_args``, FILTERS.md section 5);
* translated for ``aws s3 sync`` (:mod:`flepimop_sync.s3filters`).

Matching is done on the UTF-8 bytes of the path, exactly like rsync's
wildmatch: ``?`` and ``[set]`` match one *byte* (so ``??`` matches ``é``).  This
keeps the evaluator and the native rsync transfer identical on every name; the
aws translation treats ``?``/negated sets as inexact for that reason.

How a pattern is matched (mirrors rsync's ``rule_matches``), on the subject
``"/" + path``:

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
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from flepimop_sync.errors import FilterError, UsageError

__all__ = [
    "Rule",
    "FilterList",
    "parse_rule",
    "build_rules",
    "ORIGIN_OVERRIDE",
    "ORIGIN_PREFIX",
    "ORIGIN_SUFFIX",
    "ORIGIN_IMPLICIT",
]

ORIGIN_OVERRIDE = "option -f/--filter"
ORIGIN_PREFIX = "option -a/--fprefix"
ORIGIN_SUFFIX = "option -e/--fsuffix"
ORIGIN_IMPLICIT = "implicit tail (FILTERS.md section 1: include what matches, exclude everything else)"

_SLASH = 0x2F
_BACKSLASH = 0x5C
_STAR = 0x2A

# pattern modes (see module docstring)
ANCHORED = "anchored"
NAME = "name"
TAIL = "tail"  # inner '/', no '**': last k+1 components
ANY_BOUNDARY = "any-boundary"  # '**' inside, not first
PREFIX2 = "prefix-**"  # starts with '**'


@dataclass(frozen=True)
class Rule:
    """One filter rule as written (FILTERS.md section 1)."""

    action: str  # "+", "-" or "s"
    pattern: str  # without the prefix
    origin: str  # where it came from
    text: str  # the rule as written
    implicit: bool = False  # True for the implicit "- **" tail

    @property
    def dir_only(self) -> bool:
        return self.action != "s" and len(self.pattern) > 1 and self.pattern.endswith("/")

    def __str__(self) -> str:
        return self.text


# --------------------------------------------------------------------------------------
# parsing


def _fail(text: str, origin: str, reason: str) -> FilterError:
    return FilterError(f"invalid filter {text!r} ({origin}): {reason}")


def parse_rule(text: str, origin: str) -> Rule:
    """Parse one rule; raise :class:`FilterError` naming the rule and its origin."""
    if not isinstance(text, str):
        raise _fail(str(text), origin, f"a filter must be a string, not {type(text).__name__}")
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
        action, pattern = text[0], text[2:]
    elif text.startswith("s "):
        action, pattern = "s", text[2:]
    else:
        action, pattern = "+", text
    if pattern == "":
        raise _fail(text, origin, "empty pattern")
    if pattern != pattern.strip():
        raise _fail(text, origin, "exactly one space must follow the prefix (pattern starts or ends with white space)")
    if action != "s":
        try:
            _analyse(pattern)
        except ValueError as exc:
            raise _fail(text, origin, str(exc)) from None
    return Rule(action, pattern, origin, text)


# --------------------------------------------------------------------------------------
# pattern analysis (shared with s3filters)

# tokens: ("lit", byte) ("slash",) ("star",) ("dstar",) ("q",) ("set", negated, frozenset[int])


def _tokenize(pat: bytes) -> list[tuple]:
    toks: list[tuple] = []
    n = len(pat)
    i = 0
    while i < n:
        c = pat[i]
        if c == _BACKSLASH:
            if i + 1 >= n:
                raise ValueError("dangling '\\' at the end of the pattern")
            nxt = pat[i + 1]
            if nxt == _SLASH:
                raise ValueError("'\\/' (escaped '/') is not supported")
            toks.append(("lit", nxt))
            i += 2
        elif c == _STAR:
            j = i
            while j < n and pat[j] == _STAR:
                j += 1
            toks.append(("dstar",) if j - i >= 2 else ("star",))
            i = j
        elif c == 0x3F:  # ?
            toks.append(("q",))
            i += 1
        elif c == 0x5B:  # [
            tok, i = _parse_set(pat, i)
            toks.append(tok)
        elif c == _SLASH:
            toks.append(("slash",))
            i += 1
        else:
            toks.append(("lit", c))
            i += 1
    return toks


def _parse_set(pat: bytes, i: int) -> tuple[tuple, int]:
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
            raise ValueError("unterminated '[' set")
        ch = pat[j]
        if ch == 0x5D and not first:  # ]
            break
        first = False
        if ch == _BACKSLASH:
            j += 1
            if j >= n:
                raise ValueError("unterminated '[' set")
            ch = pat[j]
            if ch == _SLASH:
                raise ValueError("'/' inside a '[...]' set can never match")
            members.add(ch)
            prev = ch
        elif ch == 0x2D and prev is not None and j + 1 < n and pat[j + 1] != 0x5D:  # range
            j += 1
            hi = pat[j]
            if hi == _BACKSLASH:
                j += 1
                if j >= n:
                    raise ValueError("unterminated '[' set")
                hi = pat[j]
            if hi == _SLASH:
                raise ValueError("'/' inside a '[...]' set can never match")
            members.update(range(prev, hi + 1))
            prev = None
        elif ch == 0x5B and j + 1 < n and pat[j + 1] in (0x3A, 0x2E, 0x3D):  # [: [. [=
            raise ValueError("character classes like '[[:alpha:]]' are not part of the filter language")
        elif ch == _SLASH:
            raise ValueError("'/' inside a '[...]' set can never match")
        else:
            members.add(ch)
            prev = ch
        j += 1
    return ("set", negated, frozenset(members)), j + 1


@dataclass(frozen=True)
class PatternInfo:
    """A +/- pattern analysed once: anchor, dir-only flag, tokens and matching mode."""

    anchored: bool
    dir_only: bool
    tokens: tuple
    mode: str
    core: bytes  # the pattern bytes without anchor and trailing '/'


def _analyse(pattern: str) -> PatternInfo:
    raw = os.fsencode(pattern)
    anchored = raw.startswith(b"/")
    dir_only = len(raw) > 1 and raw.endswith(b"/")
    if dir_only and (len(raw) - len(raw[:-1].rstrip(b"\\")) - 1) % 2 == 1:
        raise ValueError("'\\/' (escaped '/') is not supported")
    core = raw[1 if anchored else 0 : len(raw) - 1 if dir_only else len(raw)]
    if not core:
        raise ValueError("empty pattern")
    if b"//" in core or core.startswith(b"/") or core.endswith(b"/"):
        raise ValueError("empty path component ('//')")
    toks = _tokenize(core)
    has_slash = any(t[0] == "slash" for t in toks)
    has_dstar = any(t[0] == "dstar" for t in toks)
    if anchored:
        mode = ANCHORED
    elif toks[0][0] == "dstar":
        mode = PREFIX2
    elif has_dstar:
        mode = ANY_BOUNDARY
    elif has_slash:
        mode = TAIL
    else:
        mode = NAME
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


def set_allowed(tok: tuple) -> frozenset[int]:
    """The bytes a set token matches (never '/')."""
    _, negated, members = tok
    allowed = (frozenset(range(256)) - members) if negated else members
    return allowed - {_SLASH}


def _tokens_regex(toks: Sequence[tuple]) -> bytes:
    out = []
    for t in toks:
        k = t[0]
        if k == "lit":
            out.append(re.escape(bytes([t[1]])))
        elif k == "slash":
            out.append(b"/")
        elif k == "star":
            out.append(b"[^/]*")
        elif k == "dstar":
            out.append(b".*")
        elif k == "q":
            out.append(b"[^/]")
        else:
            out.append(_byte_class(set_allowed(t)))
    return b"".join(out)


def _subject_regex(info: PatternInfo) -> bytes:
    """Regex (fullmatch on b'/' + path) of the pattern against one path (file or directory)."""
    body = _tokens_regex(info.tokens)
    if info.mode == ANCHORED:
        return b"/" + body
    if info.mode == PREFIX2:
        return body
    return b".*/" + body


# --------------------------------------------------------------------------------------
# the list


@dataclass(frozen=True)
class _Compiled:
    action: str
    file_re: bytes | None  # matches the file itself (None: never matches a file)
    dir_re: bytes | None  # '-' rules: matches a directory (for the ancestor test)


def _compile_rule(rule: Rule) -> _Compiled:
    if rule.action == "s":
        return _Compiled("s", b".*" + re.escape(os.fsencode(rule.pattern)) + b".*", None)
    info = _analyse(rule.pattern)
    rx = _subject_regex(info)
    file_re = None if info.dir_only else rx
    dir_re = rx if rule.action == "-" else None
    return _Compiled(rule.action, file_re, dir_re)


class _Decider:
    """Per-directory state, memoised: the first '-' rule that matches an ancestor directory."""

    def __init__(self, compiled: Sequence[_Compiled]):
        self.compiled = tuple(compiled)
        self.n = len(self.compiled)
        lead = 0
        while lead < self.n and self.compiled[lead].action == "-":
            lead += 1
        self.lead = lead
        self._file_alt: dict[int, tuple] = {}
        self._dir_alt: dict[int, tuple] = {}
        self._dir_state: dict[bytes, int] = {b"": self.n}

    def file_decider(self, a: int):
        """(fullmatch or None, include-by-group list, default) for files in a directory with state a."""
        got = self._file_alt.get(a)
        if got is None:
            alts, incl = [], [None]
            for i, c in enumerate(self.compiled[:a]):
                if c.file_re is not None:
                    alts.append(b"(" + c.file_re + b")")
                    incl.append(c.action != "-")
            fm = re.compile(b"|".join(alts), re.S).fullmatch if alts else None
            got = (fm, incl, a >= self.n)
            self._file_alt[a] = got
        return got

    def child_state(self, a: int, sub: bytes) -> int:
        """State of directory ``sub`` (b'/dir/path') whose parent has state ``a``."""
        got = self._dir_alt.get(a)
        if got is None:
            alts, idx = [], [None]
            for i, c in enumerate(self.compiled[:a]):
                if c.dir_re is not None:
                    alts.append(b"(" + c.dir_re + b")")
                    idx.append(i)
            got = (re.compile(b"|".join(alts), re.S).fullmatch if alts else None, idx)
            self._dir_alt[a] = got
        fm, idx = got
        if fm is None:
            return a
        m = fm(sub)
        return a if m is None else idx[m.lastindex]

    def dir_state(self, d: bytes) -> int:
        """State of directory d (b'' for the root, else b'/a/b'), memoised."""
        st = self._dir_state.get(d)
        if st is None:
            parent = d[: d.rfind(b"/")]
            st = self.child_state(self.dir_state(parent), d)
            self._dir_state[d] = st
        return st

    def decide(self, subject: bytes) -> bool:
        """subject = b'/' + path of a file."""
        a = self.dir_state(subject[: subject.rfind(b"/")])
        fm, incl, default = self.file_decider(a)
        if fm is None:
            return default
        m = fm(subject)
        return default if m is None else incl[m.lastindex]


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
    _decider: _Decider = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        object.__setattr__(self, "rules", rules)
        warns = list(self.warnings)
        for r in rules:
            if r.action == "+" and r.dir_only:
                w = (
                    f"filter {r.text!r} ({r.origin}) selects nothing: a trailing '/' matches directories only "
                    f"and include rules select files (directories are always descended); "
                    f"use '+ {r.pattern}**' for the files below it"
                )
                if w not in warns:
                    warns.append(w)
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

    def select_local(self, root: str | os.PathLike) -> list[tuple[str, int]]:
        """Walk a local directory; sorted (relpath, size) of the selected files.

        Regular files carry their size; symlinks (never followed, like ``rsync -a``) and other
        non-directory entries are listed with size 0.  Directories excluded by the leading run
        of '-' rules are not descended.
        """
        d = _Decider(self._decider.compiled)
        n, lead = d.n, d.lead
        enc = sys.getfilesystemencoding()
        out: list[tuple[str, int]] = []
        append = out.append
        stat = os.stat
        child_state = d.child_state
        stack = [(os.fsencode(os.fspath(root)), b"/", n)]
        while stack:
            dpath, rel, a = stack.pop()
            fm, incl, default = d.file_decider(a)
            fd = os.open(dpath, os.O_RDONLY | os.O_DIRECTORY)
            try:
                with os.scandir(dpath) as it:
                    for e in it:
                        name = e.name
                        if e.is_dir(follow_symlinks=False):
                            sub = rel + name
                            ca = child_state(a, sub)
                            if ca < lead:
                                continue  # excluded by the leading '-' run: prune the subtree
                            stack.append((dpath + b"/" + name, sub + b"/", ca))
                            continue
                        subj = rel + name
                        if fm is None:
                            sel = default
                        else:
                            m = fm(subj)
                            sel = default if m is None else incl[m.lastindex]
                        if sel:
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
        while i < len(self.rules) and self.rules[i].action == "-":
            args.append("--filter=- " + _rsync_escape_literal(self.rules[i].pattern))
            i += 1
        args.append("--filter=+ */")
        for r in self.rules[i:]:
            if r.action == "s":
                args.append("--filter=+ **" + _rsync_escape_substring(r.pattern) + "**")
            elif r.action == "+":
                args.append("--filter=+ " + _rsync_escape_literal(r.pattern))
            else:
                args.append("--filter=- " + _rsync_escape_literal(r.pattern))
                p = r.pattern[:-1] if r.dir_only else r.pattern
                args.append("--filter=- " + p + "/**")
        return args


def _as_pairs(items: Sequence, origin: str) -> list[tuple[str, str]]:
    out = []
    for it in items:
        if isinstance(it, tuple):
            out.append((it[0], it[1]))
        else:
            out.append((it, origin))
    return out


def build_rules(
    config_rules: Sequence[tuple[str, str]] | None,
    override: Sequence[str] = (),
    prefix: Sequence[str] = (),
    suffix: Sequence[str] = (),
    no_filter: bool = False,
) -> FilterList:
    """prefix (-a) + (override -f, else the config's filters) + suffix (-e), then the implicit tail.

    ``override``/``prefix``/``suffix`` items are rule texts (or ``(text, origin)`` pairs).
    """
    if no_filter and (override or prefix or suffix):
        raise UsageError("--no-filter cannot be combined with -f/-a/-e")
    rules: list[Rule] = [parse_rule(t, o) for t, o in _as_pairs(prefix, ORIGIN_PREFIX)]
    if override:
        rules += [parse_rule(t, o) for t, o in _as_pairs(override, ORIGIN_OVERRIDE)]
    elif config_rules and not no_filter:
        rules += [parse_rule(t, o) for t, o in config_rules]
    rules += [parse_rule(t, o) for t, o in _as_pairs(suffix, ORIGIN_SUFFIX)]
    if rules and (all(r.action != "-" for r in rules) or any(r.action == "s" for r in rules)):
        rules.append(Rule("-", "**", ORIGIN_IMPLICIT, "- **", implicit=True))
    return FilterList(tuple(rules))
