"""The README's map of the package (Development: one row a module, its job, what it may import)
is the code's: every module has exactly one row, and the imports a row names are exactly the
package modules that module imports (issue 14 point 7).

Imports are read from the source with ``ast``: module level and inside functions (``cli`` imports
the rest only when a command runs), but not under ``if TYPE_CHECKING:`` (the table's header says
type-only imports aside).  ``__init__`` (the version) and ``__main__`` (``python -m``) have no job
of their own and no row.  In the table's import column, words in parentheses say why an import is
there; ``nothing`` means no import of the package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Sequence

import pytest

from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "flepimop_sync"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
HEADER = "| module | job | may import"


def readme_map() -> dict[str, list[str]]:
    """module -> the names in its row's import column (in the order written)."""
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADER))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, f"README map: a row is module | job | imports: {line!r}"
        names = re.findall(r"`([^`]+)`", cells[0])
        assert len(names) == 1, f"README map: one module a row: {line!r}"
        assert names[0] not in rows, f"README map: {names[0]} has two rows"
        imports = re.sub(r"\([^)]*\)", "", cells[2])  # "(its mode flip)": why, not what
        rows[names[0]] = re.findall(r"`([^`]+)`", imports)
        if not rows[names[0]]:
            assert imports.strip() == "nothing", f"README map: no import is written 'nothing': {line!r}"
    return rows


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def package_imports(module: str, package: Path = PACKAGE, modules: Sequence[str] = MODULES) -> set[str]:
    """The package modules ``module`` imports (``from .x import``, ``from . import x``,
    ``from flepimop_sync.x import``), type-only imports aside."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for other in node.orelse:
                visit(other)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.level == 1 or node.module == "flepimop_sync":  # from . import x
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("flepimop_sync."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("flepimop_sync."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse((package / f"{module}.py").read_text(encoding="utf-8")))
    return found & set(modules)


def test_every_module_has_one_row_and_no_row_names_a_missing_module():
    rows = readme_map()
    assert sorted(rows) == MODULES
    for module, imports in rows.items():
        unknown = [name for name in imports if name not in MODULES]
        assert not unknown, f"README map: {module} may import {unknown}, which are not modules of the package"
        assert len(set(imports)) == len(imports), f"README map: {module} names an import twice"


@pytest.mark.parametrize("module", MODULES)
def test_each_row_names_exactly_what_the_module_imports(module):
    written = set(readme_map()[module])
    actual = package_imports(module)
    assert actual == written, (
        f"README map, {module}: imported but not written {sorted(actual - written)}, "
        f"written but not imported {sorted(written - actual)}")


@pytest.mark.parametrize("source, expected", [
    ("from .plan import Plan", {"plan"}),
    ("from . import report", {"report"}),
    ("from flepimop_sync.errors import SyncError", {"errors"}),
    ("import flepimop_sync.runner", {"runner"}),
    ("def f():\n    from .api import run\n", {"api"}),  # lazy imports count
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .config import Protocol\n", set()),
    ("import typing\nif typing.TYPE_CHECKING:\n    from .config import Protocol\nelse:\n    from .lock import x\n", {"lock"}),
    ("from .. import elsewhere\nimport json", set()),
])
def test_the_import_reader(tmp_path, source, expected):
    """The reader itself, on a table of import forms (so a form it missed cannot hide an import)."""
    (tmp_path / "probe.py").write_text(source)
    assert package_imports("probe", package=tmp_path, modules=[*MODULES, "probe"]) == expected


# What starts a process, by the module that offers it: importing subprocess (or a module built to
# start processes), or calling one of os's spawning functions.
SPAWNING_MODULES = ("subprocess", "multiprocessing", "pty", "asyncio", "concurrent.futures.process")
SPAWNING_OS = ("system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp")
SPAWNING_OS_PREFIXES = ("exec", "spawn")
# concurrent.futures offers its process pool by name from the package itself, not only from
# concurrent.futures.process
SPAWNING_NAMES = ("ProcessPoolExecutor",)


def process_starts(source: str) -> list[str]:
    """What in ``source`` could start a process (imports of spawning modules, calls of os's)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith(SPAWNING_MODULES)]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.startswith(SPAWNING_MODULES):
                found.append(f"from {node.module} import ...")
            elif node.module == "os":
                found += [f"from os import {a.name}" for a in node.names
                          if a.name in SPAWNING_OS or a.name.startswith(SPAWNING_OS_PREFIXES)]
            else:
                found += [f"from {node.module} import {a.name}" for a in node.names if a.name in SPAWNING_NAMES]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
              and (node.attr in SPAWNING_OS or node.attr.startswith(SPAWNING_OS_PREFIXES))):
            found.append(f"os.{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr in SPAWNING_NAMES:
            found.append(f".{node.attr}")
    return found


@pytest.mark.parametrize("module", MODULES)
def test_only_the_runner_starts_processes(module):
    """README map: `runner` is the only place that starts processes (issue 14 point 1)."""
    starts = process_starts((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    if module == "runner":
        assert "import subprocess" in starts  # the scan sees the one place that does
    else:
        assert starts == [], f"{module} could start a process without the runner: {starts}"


@pytest.mark.parametrize("source, expected", [
    ("import subprocess", ["import subprocess"]),
    ("from subprocess import run", ["from subprocess import ..."]),
    ("def f():\n    import multiprocessing.pool\n", ["import multiprocessing.pool"]),
    ("import os\nos.system('x')", ["os.system"]),
    ("import os\nos.execvp('x', ['x'])", ["os.execvp"]),
    ("import os\nf = os.posix_spawn", ["os.posix_spawn"]),
    ("from os import spawnlp", ["from os import spawnlp"]),
    ("from concurrent.futures import ProcessPoolExecutor", ["from concurrent.futures import ProcessPoolExecutor"]),
    ("import concurrent.futures\nconcurrent.futures.ProcessPoolExecutor()", [".ProcessPoolExecutor"]),
    ("from concurrent.futures import ThreadPoolExecutor", []),
    ("import os\nos.environ.get('X'); os.path.join('a')", []),
    ("from .runner import Runner", []),
])
def test_the_process_start_reader(source, expected):
    assert process_starts(source) == expected
