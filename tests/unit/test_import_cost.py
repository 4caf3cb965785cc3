"""What the CLI imports, checked with ``python -X importtime`` (see docs/performance.md).

The CLI must not import snakemake, boto3/botocore or awscli on any path, `--help` must not load
the config/plan machinery, and a normal run of a valid config must not pay for jsonschema (a small
checker validates; jsonschema is the authority only when a config is invalid).  The checker is
also compared with jsonschema here, on valid and invalid protocols.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("snakemake", "boto3", "botocore", "awscli", "s3transfer", "moto")


def checkout_env() -> dict[str, str]:
    """os.environ with only this checkout's src/ on PYTHONPATH (installed or not, no test helpers)."""
    return dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))


def imported_modules(args: list[str], cwd: Path | None = None) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "flepimop_sync", *args],
                          capture_output=True, text=True, env=checkout_env(), cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    modules = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                modules.add(name)
    assert "flepimop_sync.cli" in modules, done.stderr[-2000:]
    return modules


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_help_imports_nothing_heavy():
    modules = imported_modules(["sync", "--help"])
    assert not heavy_in(modules)
    assert "jsonschema" not in modules
    assert "yaml" not in modules  # the config machinery is deferred until a command runs
    for deferred in ("flepimop_sync.execute", "flepimop_sync.plan", "flepimop_sync.filters",
                     "flepimop_sync.config", "flepimop_sync.s3filters", "flepimop_sync.runner",
                     "flepimop_sync.api", "flepimop_sync.gitsync"):
        assert deferred not in modules, f"--help imported {deferred}"


def _config(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "hnpi").mkdir(parents=True)
    (src / "hnpi" / "a.parquet").write_text("x")
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(
        "sync:\n"
        "  local:\n"
        "    type: rsync\n"
        f"    source: {src}/\n"
        f"    target: {tmp_path / 'dst'}/\n"
        "    filters: ['- llik/', '+ hnpi/**']\n"
        "  s3:\n"
        "    type: s3sync\n"
        f"    source: {src}/\n"
        "    target: s3://bucket/prefix/\n"
        "    endpoint_url: http://127.0.0.1:9\n"
        "    filters: ['+ 000000001.*']\n"
    )
    return cfg


@pytest.mark.parametrize("args", [["--dry-run", "-p", "local"], ["--plan", "-p", "local"], ["--plan", "-p", "s3"]],
                         ids=["dry-run", "plan-rsync", "plan-s3"])
def test_runs_import_nothing_heavy_and_no_jsonschema(tmp_path, args):
    cfg = _config(tmp_path)
    modules = imported_modules(["sync", *args, str(cfg)], cwd=tmp_path)
    assert not heavy_in(modules)
    assert "jsonschema" not in modules, "a valid config must not import jsonschema"


def test_invalid_config_still_gets_jsonschema_error(tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text("sync:\n  p:\n    type: rsync\n    source: a/\n    target: b/\n    mkpath: 'yes'\n")
    done = subprocess.run([sys.executable, "-m", "flepimop_sync", "sync", "--plan", str(cfg)],
                          capture_output=True, text=True, env=checkout_env(), timeout=120)
    assert done.returncode == 2
    assert "mkpath" in done.stderr and "true or false" in done.stderr, done.stderr


# -- the small checker agrees with jsonschema -------------------------------------------------
def _schema():
    from flepimop_sync.config import load_schema

    return load_schema()


VALID = {
    "rsync": {"type": "rsync", "description": "d", "source": "a/", "target": "hpc:/b/", "filters": ["- x/", "+ *"],
              "rsh": "ssh -F cfg", "mkpath": True, "delete": False},
    "s3sync": {"type": "s3sync", "source": "a/", "target": "s3://b/p/", "filters": "+ *.csv",
               "endpoint_url": "http://127.0.0.1:9000", "profile": "p", "region": "us-east-1", "mkpath": False,
               "delete": True},
    "git": {"type": "git", "description": "d", "mode": "push", "remote": "origin", "branch": "main", "path": "."},
}
ODD_VALUES = [None, True, False, 0, 1, 1.0, 1.5, "", "x", "pull", "s3://b/", "http://h:1", "ftp://h", "a b",
              [], ["x"], [1], ["x", None], {}, {"a": 1}]


def _cases():
    for ptype, body in VALID.items():
        yield ptype, body
        for key in list(body) + ["unknown", "filters", "mode", "endpoint_url"]:
            for value in ODD_VALUES:
                case = copy.deepcopy(body)
                case[key] = value
                yield ptype, case
            case = copy.deepcopy(body)
            case.pop(key, None)
            yield ptype, case


def test_small_checker_agrees_with_jsonschema():
    jsonschema = pytest.importorskip("jsonschema")
    from flepimop_sync._schema_check import is_valid

    schema = _schema()
    checked = disagreements = 0
    problems = []
    for ptype, body in _cases():
        sub = {"$defs": schema["$defs"], **schema["$defs"][ptype]}
        expected = jsonschema.Draft202012Validator(sub).is_valid(body)
        got = is_valid(body, sub)
        checked += 1
        if got != expected:
            disagreements += 1
            problems.append((ptype, json.dumps(body), expected, got))
        # the whole document as well (protocol -> allOf/if/then -> $ref)
        doc = {"p": body}
        assert is_valid(doc, schema) == jsonschema.Draft202012Validator(schema).is_valid(doc), json.dumps(doc)
    assert checked > 300
    assert not problems, problems[:5]


@pytest.mark.parametrize("name", ["ok", "a.b-c_d", "_x", "-x", ".x", "a b", "", "x" * 64, "x" * 65, "ok\n", "é"])
def test_small_checker_agrees_on_protocol_names(name):
    jsonschema = pytest.importorskip("jsonschema")
    from flepimop_sync._schema_check import is_valid

    pattern = {"pattern": _schema()["propertyNames"]["pattern"]}
    assert is_valid(name, pattern) == jsonschema.Draft202012Validator(pattern).is_valid(name)
