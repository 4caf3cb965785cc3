"""Each message has one home (issue 14, point 2): no sentence of the package's is written in two
places.

A sentence is a string or f-string template in the code (not a docstring, not an annotation)
with three words or more (a word: letters, digits and inner marks, like "S3" or "read-only");
an f-string's placeholders read as ``{}``.  Its home is the function (or module table) that
writes it: one function may use its own step label twice, but two functions writing the same
sentence are two homes of one message, which drift apart; one calls the other instead.
"""

from __future__ import annotations

import ast
import collections
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "flepimop_sync"

# sentence -> why it may have two homes (none today: a reason has to be written here first)
MAY_REPEAT: dict[str, str] = {}

_WORD = re.compile(r"^[(\"'`]*[A-Za-z][A-Za-z0-9'-]*[)\"'`.,:;!?]*$")


def _skipped(tree: ast.AST) -> set[int]:
    """Nodes that are not messages: docstrings, annotations, the parts of an f-string."""
    out: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            out.add(id(body[0].value))
        annotations = []
        if isinstance(node, ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in filter(None, annotations):
            out.update(id(n) for n in ast.walk(annotation))
        if isinstance(node, ast.JoinedStr):
            out.update(id(part) for part in node.values)
    return out


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
    return None


def sentences(source: str) -> list[tuple[str, str]]:
    """(sentence, its home: the enclosing function's name, or "<module>") for a module's source."""
    tree = ast.parse(source)
    skipped = _skipped(tree)
    found = []

    def visit(node: ast.AST, home: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            home = node.name if home == "<module>" else f"{home}.{node.name}"
        text = None if id(node) in skipped else _text(node)
        if text is not None and sum(1 for w in text.split() if _WORD.match(w)) >= 3:
            found.append((" ".join(text.split()), home))
        for child in ast.iter_child_nodes(node):
            visit(child, home)

    visit(tree, "<module>")
    return found


# source -> the sentences found, with their homes (the reader's own table)
READS = [
    ('x = "one two three"', [("one two three", "<module>")]),
    ('x = "two words"', []),
    ('x = "{} -> {} (a b)"', []),
    ('def f(a: "one two three") -> "four five six":\n    """A docstring of words."""', []),
    ('v: "p | q | r" = 1', []),
    ('def f():\n    x = f"{a} was not {b} found"', [("{} was not {} found", "f")]),
    ('class C:\n    def m(self):\n        raise E("the bucket  does\\nnot exist")', [("the bucket does not exist", "C.m")]),
    ('x = "checking the S3 source"', [("checking the S3 source", "<module>")]),
]


@pytest.mark.parametrize("source,expected", READS)
def test_the_reader_finds_messages_and_their_homes(source, expected):
    assert sentences(source) == expected


def test_no_message_has_two_homes():
    homes = collections.defaultdict(set)
    for path in sorted(SRC.glob("*.py")):
        for text, home in sentences(path.read_text(encoding="utf-8")):
            homes[text].add(f"{path.stem}.{home}")
    twice = {text: where for text, where in homes.items() if len(where) > 1 and text not in MAY_REPEAT}
    assert not twice, "one message, several homes (call one from the others):\n" + "\n".join(
        f"  {text!r}: {', '.join(sorted(where))}" for text, where in sorted(twice.items()))
    stale = [text for text in MAY_REPEAT if len(homes.get(text, ())) < 2]
    assert not stale, f"MAY_REPEAT names messages that no longer have two homes: {stale}"
