"""A source override narrows to what the command line includes, through the CLI and real rsync.

With a protocol that only excludes (``["- llik/"]``), ``-s other/ -a '+ X'`` takes X from the
other tree and nothing else (the list ends with ``- **``, a ``note:`` says why, ``-v`` names the
tail's origin); an append (``-s '+ sub'``) and no ``-s`` keep FILTERS.md section 1 as written
(the list has a ``-`` rule, so no implicit tail: everything but llik). The dry run, --plan and
the real run agree. Rule and table: tests/unit/test_source_override.py.
"""

from __future__ import annotations

import json

import pytest

from trees import list_files

pytestmark = pytest.mark.integration

FILES = [
    "model_output/run1/hosp/1.parquet",
    "model_output/run1/llik/1.parquet",
    "model_output/sub/X_fit.pdf",
    "model_output/sub/Y_fit.pdf",
    "model_output/sub/llik/X_big.pdf",
    "X_fit.pdf",
    "Y_fit.pdf",
    "secrets.txt",
    "model_input/geodata.csv",
]

# -s, expected files at the target (relative to it), note printed. '+ X*.pdf' comes before the
# protocol's '- llik/' (first match wins), so an X pdf under llik/ is taken in every case.
CASES = [
    # override: only what -a includes, from the new tree (the project directory)
    ("./", {"X_fit.pdf", "model_output/sub/X_fit.pdf", "model_output/sub/llik/X_big.pdf"}, True),
    # append: the same source tree, only deeper (model_output/sub/): FILTERS.md as written,
    # the list has a '-' rule so no implicit tail: everything but llik
    ("+ sub", {"X_fit.pdf", "Y_fit.pdf", "llik/X_big.pdf"}, False),
    # no -s: FILTERS.md as written on the protocol's source
    (None, {"run1/hosp/1.parquet", "sub/X_fit.pdf", "sub/Y_fit.pdf", "sub/llik/X_big.pdf"}, False),
]


@pytest.mark.parametrize("source, expected, noted", CASES, ids=[str(c[0]) for c in CASES])
def test_source_override_selects_only_the_includes(tmp_path, run_cli, source, expected, noted):
    project = tmp_path / "project"
    for rel in FILES:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(rel)
    target = tmp_path / "target"
    target.mkdir()
    (project / "c.yml").write_text(
        f"sync:\n  push: {{type: rsync, source: model_output/, target: '{target}/', filters: ['- llik/']}}\n")
    args = ["sync", "-p", "push", "-a", "+ X*.pdf", *(["-s", source] if source else []), "c.yml"]

    plan = run_cli([*args[:1], "--plan", *args[1:]], cwd=project)
    assert plan.returncode == 0, plan.stderr
    plan = json.loads(plan.stdout)
    dry = run_cli([*args[:1], "-n", "-v", "--json", *args[1:]], cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert list_files(target) == set()  # the dry run changed nothing
    real = run_cli([*args[:1], "-v", *args[1:]], cwd=project)
    assert real.returncode == 0, real.stderr
    assert list_files(target) == expected

    tail = ["- **"] if noted else []
    assert plan["filters"] == ["+ X*.pdf", "- llik/", *tail]
    assert json.loads(dry.stdout)["filters"] == plan["filters"]
    assert set(json.loads(dry.stdout)["selection"]) == expected
    for done in (dry, real):
        notes = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
        warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
        assert warnings == []
        if noted:
            assert notes == ["note: protocol 'push': -s/--source replaces the protocol's source, so only what "
                             "-a/-e include (+ X*.pdf) is taken from it: the filters end with '- **'"
                             "; its excludes (- llik/) still apply"]
            assert "  - **      (implicit tail (-s/--source replaced the source: take only what -a/-e include))" \
                in done.stderr.splitlines()
        else:
            assert notes == [] and "implicit tail" not in done.stderr
        assert "  + X*.pdf  (option -a/--fprefix)" in done.stderr.splitlines()
        assert "  - llik/   (c.yml: protocol 'push' key 'filters[0]')" in done.stderr.splitlines()
