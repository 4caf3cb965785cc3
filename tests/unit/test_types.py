"""Types instead of strings (issue 14 point 3): end kinds, rule actions, pattern modes and pattern
tokens.  The enums that reach output (an end's kind, a rule's action) are ``str`` members whose
text is the old word, so --json, --plan, receipts and the workflow's params read as before."""

from __future__ import annotations

import json

import pytest

from flepimop_sync.endpoints import EndKind, parse_end
from flepimop_sync.filters import (DSTAR, SLASH, STAR, Action, AnyByte, ByteSet, Lit, PatternMode, _analyse,
                                   parse_rule)

# (end as written, its kind, the kind's text)
KINDS = [
    ("model_output/", EndKind.LOCAL, "local"),
    ("./a:b", EndKind.LOCAL, "local"),
    ("hpc:/scratch/x", EndKind.REMOTE, "remote"),
    ("s3://bucket/p/", EndKind.S3, "s3"),
]


@pytest.mark.parametrize("text,kind,word", KINDS)
def test_end_kind_is_an_enum_that_reads_as_its_word(text, kind, word):
    end = parse_end(text)
    assert end.kind is kind
    assert end.kind == word and str(end.kind) == word and f"{end.kind}" == word
    assert json.dumps({"kind": end.kind}) == json.dumps({"kind": word})


# (rule as written, action, the action's text, pattern mode or None for 's')
ACTIONS = [
    ("+ *.csv", Action.INCLUDE, "+", PatternMode.NAME),
    ("*.csv", Action.INCLUDE, "+", PatternMode.NAME),
    ("- /model_output/x", Action.EXCLUDE, "-", PatternMode.ANCHORED),
    ("- a/b", Action.EXCLUDE, "-", PatternMode.TAIL),
    ("+ a/**/b", Action.INCLUDE, "+", PatternMode.ANY_BOUNDARY),
    ("+ **/b", Action.INCLUDE, "+", PatternMode.PREFIX2),
    ("s hnpi", Action.SUBSTRING, "s", None),
]


@pytest.mark.parametrize("text,action,word,mode", ACTIONS)
def test_rule_actions_and_pattern_modes_are_enums(text, action, word, mode):
    rule = parse_rule(text, "test")
    assert rule.action is action and rule.action == word
    assert rule.canonical == f"{word} {rule.pattern}"  # api and common.smk write rules so
    if mode is not None:
        assert _analyse(rule.pattern).mode is mode


# (pattern, its tokens)
TOKENS = [
    ("a*", (Lit(0x61), STAR)),
    ("**/x", (DSTAR, SLASH, Lit(0x78))),
    ("?\\*", (AnyByte(), Lit(0x2A))),
    ("[!a-c]", (ByteSet(True, frozenset(b"abc")),)),
    ("[x]y", (ByteSet(False, frozenset(b"x")), Lit(0x79))),
]


@pytest.mark.parametrize("pattern,tokens", TOKENS)
def test_patterns_tokenize_into_typed_tokens(pattern, tokens):
    assert _analyse(pattern).tokens == tokens


def test_a_byte_set_allows_what_it_names_and_never_a_slash():
    assert ByteSet(False, frozenset(b"a/")).allowed == frozenset(b"a")
    assert ByteSet(True, frozenset(b"a")).allowed == frozenset(range(256)) - frozenset(b"a/")


# One home for quoting a value in a message (errors.show_value; config, endpoints and execute call it).
# (value, limit, expected)
SHOWN = [
    ("abc", 120, "'abc'"),
    ("it's", 120, '"it\'s"'),
    ("x" * 118, 120, "'" + "x" * 118 + "'"),
    ("x" * 300, 120, "'" + "x" * 99 + "...' (300 characters)"),
    ("it's" + "x" * 300, 40, '"it\'s' + "x" * 15 + '..." (304 characters)'),
    (3, 120, "3"),
    (list(range(50)), 20, "[0, 1, 2, 3, 4, 5..."),
]


@pytest.mark.parametrize("value,limit,expected", SHOWN)
def test_show_value_quotes_and_shortens(value, limit, expected):
    from flepimop_sync.errors import show_value

    assert show_value(value, limit) == expected
