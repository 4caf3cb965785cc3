"""Malformed configs: each one is refused with exit 2, one line naming file/protocol/key,
no traceback, and nothing run.  The table reads like the config reference."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from flepimop_sync.cli import flepimop, run_command
from flepimop_sync.errors import ConfigError

# (id, yaml text, fragments the one-line message must contain)
# "{file}" stands for the config file's path.
MALFORMED = [
    ("empty file", "", ["{file}", "empty"]),
    ("whitespace only", "   \n\n", ["{file}", "empty"]),
    ("yaml syntax", "sync:\n  a: [1, 2\n", ["{file}", "YAML syntax error", "line"]),
    ("yaml tab indent", "sync:\n\ta: 1\n", ["{file}", "YAML syntax error", "line 2"]),
    ("top level list", "- 1\n- 2\n", ["{file}", "top level must be a mapping"]),
    ("top level scalar", "hello\n", ["{file}", "top level must be a mapping"]),
    ("no sync section", "name: x\nseir: {}\n", ["{file}", "no 'sync:' section"]),
    ("sync null", "sync:\n", ["{file}", "no protocols"]),
    ("sync empty mapping", "sync: {}\n", ["{file}", "no protocols"]),
    ("sync is a list", "sync: [a, b]\n", ["{file}", "key 'sync'", "mapping"]),
    ("protocol not mapping", "sync:\n  p1: rsync\n", ["{file}", "protocol 'p1'", "mapping"]),
    ("missing type", "sync:\n  p1: {source: a, target: b}\n", ["{file}", "protocol 'p1'", "'type'"]),
    ("unknown type", "sync:\n  p1: {type: ftp, source: a, target: b}\n",
     ["{file}", "protocol 'p1'", "key 'type'", "'ftp'"]),
    ("type not string", "sync:\n  p1: {type: 3, source: a, target: b}\n", ["{file}", "protocol 'p1'", "key 'type'"]),
    ("rsync missing source", "sync:\n  p1: {type: rsync, target: b}\n",
     ["{file}", "protocol 'p1'", "key 'source'", "required"]),
    ("rsync missing target", "sync:\n  p1: {type: rsync, source: a}\n",
     ["{file}", "protocol 'p1'", "key 'target'", "required"]),
    ("s3 missing target", "sync:\n  s3: {type: s3sync, source: a}\n", ["{file}", "protocol 's3'", "key 'target'"]),
    ("unknown key", "sync:\n  p1: {type: rsync, source: a, target: b, sauce: c}\n",
     ["{file}", "protocol 'p1'", "key 'sauce'", "unknown key"]),
    ("git with filters", "sync:\n  code: {type: git, filters: ['- x']}\n",
     ["{file}", "protocol 'code'", "key 'filters'"]),
    ("git with source", "sync:\n  code: {type: git, source: a}\n", ["{file}", "protocol 'code'", "key 'source'"]),
    ("git bad mode", "sync:\n  code: {type: git, mode: sideways}\n",
     ["{file}", "protocol 'code'", "key 'mode'", "'sideways'"]),
    ("source not string", "sync:\n  p1: {type: rsync, source: [a], target: b}\n",
     ["{file}", "protocol 'p1'", "key 'source'", "string"]),
    ("source empty", "sync:\n  p1: {type: rsync, source: '', target: b}\n",
     ["{file}", "protocol 'p1'", "key 'source'", "empty"]),
    ("filters a number", "sync:\n  p1: {type: rsync, source: a, target: b, filters: 3}\n",
     ["{file}", "protocol 'p1'", "key 'filters'"]),
    ("filters list of numbers", "sync:\n  p1: {type: rsync, source: a, target: b, filters: [1]}\n",
     ["{file}", "protocol 'p1'", "key 'filters[0]'"]),
    ("filter empty", "sync:\n  p1: {type: rsync, source: a, target: b, filters: ['']}\n",
     ["{file}", "protocol 'p1'", "filters[0]"]),
    ("filter leading space", "sync:\n  p1: {type: rsync, source: a, target: b, filters: ['*.csv', ' - x']}\n",
     ["{file}", "protocol 'p1'", "filters[1]"]),
    ("filter modifier", "sync:\n  p1: {type: rsync, source: a, target: b, filters: ['-x']}\n",
     ["{file}", "protocol 'p1'", "filters[0]", "-x"]),
    ("filter char class", "sync:\n  p1: {type: rsync, source: a, target: b, filters: ['+ [[:alpha:]]*']}\n",
     ["{file}", "protocol 'p1'", "filters[0]"]),
    ("filter caret set", "sync:\n  p1: {type: rsync, source: a, target: b, filters: '+ [^a]*'}\n",
     ["{file}", "protocol 'p1'", "key 'filters'"]),
    ("source equals target", "sync:\n  p1: {type: rsync, source: /x/y, target: /x/y/}\n",
     ["{file}", "protocol 'p1'", "same place"]),
    ("s3sync without s3 end", "sync:\n  s3: {type: s3sync, source: a, target: b}\n",
     ["{file}", "protocol 's3'", "s3://"]),
    ("rsync to s3", "sync:\n  p1: {type: rsync, source: a, target: 's3://b/p'}\n",
     ["{file}", "protocol 'p1'", "key 'target'", "s3sync"]),
    ("rsync remote to remote", "sync:\n  p1: {type: rsync, source: 'h1:a', target: 'h2:b'}\n",
     ["{file}", "protocol 'p1'", "two remote hosts"]),
    ("s3 without bucket", "sync:\n  s3: {type: s3sync, source: a, target: 's3://'}\n",
     ["{file}", "protocol 's3'", "key 'target'", "bucket"]),
    ("host option injection", "sync:\n  p1: {type: rsync, source: a, target: '-oProxyCommand=x:path'}\n",
     ["{file}", "protocol 'p1'", "key 'target'", "host"]),
    ("bad protocol name", "sync:\n  'a b': {type: rsync, source: a, target: b}\n", ["{file}", "'a b'", "invalid name"]),
    ("duplicate protocol", "sync:\n  p1: {type: rsync, source: a, target: b}\n  p1: {type: rsync, source: a, target: c}\n",
     ["{file}", "duplicate key 'p1'"]),
    ("mkpath not bool", "sync:\n  p1: {type: rsync, source: a, target: b, mkpath: yes please}\n",
     ["{file}", "protocol 'p1'", "key 'mkpath'"]),
    ("endpoint not url", "sync:\n  s3: {type: s3sync, source: a, target: 's3://b', endpoint_url: 'ftp://x'}\n",
     ["{file}", "protocol 's3'", "key 'endpoint_url'"]),
    # line breaks: never in names, URLs, hosts, options (a local path may hold one: a legal name)
    ("name ends in line break", 'sync:\n  "p1\\n": {type: rsync, source: a, target: b}\n', ["{file}", "invalid name"]),
    ("name with CR", 'sync:\n  "p\\r1": {type: rsync, source: a, target: b}\n', ["{file}", "invalid name"]),
    ("endpoint ends in line break",
     'sync:\n  s3: {type: s3sync, source: a, target: "s3://b", endpoint_url: "http://h:9000\\n"}\n',
     ["{file}", "protocol 's3'", "key 'endpoint_url'", "line break"]),
    ("endpoint from a | block", "sync:\n  s3:\n    type: s3sync\n    source: a\n    target: s3://b\n"
     "    endpoint_url: |\n      http://h:9000\n", ["{file}", "protocol 's3'", "key 'endpoint_url'", "line break"]),
    ("s3 end ends in line break", 'sync:\n  s3: {type: s3sync, source: a, target: "s3://b/x\\n"}\n',
     ["{file}", "protocol 's3'", "key 'target'", "line break"]),
    ("profile with line break", 'sync:\n  s3: {type: s3sync, source: a, target: "s3://b", profile: "p\\nq"}\n',
     ["{file}", "protocol 's3'", "key 'profile'", "line break"]),
    ("region with line break", 'sync:\n  s3: {type: s3sync, source: a, target: "s3://b", region: "us\\n"}\n',
     ["{file}", "protocol 's3'", "key 'region'", "line break"]),
    ("rsh with line break", 'sync:\n  p1: {type: rsync, source: a, target: "h:x", rsh: "ssh\\n-x"}\n',
     ["{file}", "protocol 'p1'", "key 'rsh'", "line break"]),
    ("remote end with line break", 'sync:\n  p1: {type: rsync, source: a, target: "h:x\\n"}\n',
     ["{file}", "protocol 'p1'", "key 'target'"]),
    ("git remote with line break", 'sync:\n  code: {type: git, remote: "origin\\n"}\n',
     ["{file}", "protocol 'code'", "key 'remote'", "line break"]),
    ("git branch with line break", 'sync:\n  code: {type: git, branch: "main\\r"}\n',
     ["{file}", "protocol 'code'", "key 'branch'", "line break"]),
    # merge keys work; duplicate keys are still refused with line and column, also beside a merge
    ("duplicate key beside a merge", "base: &b {type: rsync, source: a, target: b}\nsync:\n  p1:\n    <<: *b\n"
     "    target: c\n    target: d\n", ["{file}", "duplicate key 'target'", "line 6, column 5"]),
    ("duplicate key in merged mapping", "base: &b {type: rsync, type: git}\nsync:\n  p1:\n    <<: *b\n",
     ["{file}", "duplicate key 'type'", "line 1"]),
    ("merge of a scalar", "sync:\n  p1:\n    <<: 3\n    type: git\n", ["{file}", "YAML syntax error", "line 3"]),
]

# Hostile YAML: refused quickly (exit 2, one line naming the file), whatever the parser.
_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + \
    "sync:\n  p: {type: rsync, source: a, target: b, filters: *i}\n"
_MERGE_BOMB = "m0: &m0 {k: 1}\n" + "".join(
    f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], x{i}: 1}}\n" for i in range(1, 40)) + \
    "sync:\n  p: {type: rsync, source: a, target: b}\n"
_OK = "sync:\n  p: {type: rsync, source: a, target: b}\n"
HOSTILE_YAML = [
    ("alias bomb", _BOMB, ["{file}", "aliases", "alias bomb"]),
    ("alias bomb outside sync", _BOMB.replace("filters: *i", "description: x") + "other: *i\n",
     ["{file}", "alias bomb"]),
    ("merge key bomb", _MERGE_BOMB, ["{file}", "alias bomb"]),
    ("deep flow sequence", _OK + "x: " + "[" * 100_000 + "]" * 100_000 + "\n", ["{file}", "nested deeper than 100"]),
    ("deep flow mapping", _OK + "x: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n", ["{file}", "nested deeper"]),
    ("deep block sequence", _OK + "x:\n" + "- " * 100_000 + "x\n", ["{file}", "nested deeper than 100"]),
    ("deep block mapping", _OK + "".join(" " * i + f"k{i}:\n" for i in range(300)) + " " * 300 + "v\n",
     ["{file}", "nested deeper than 100"]),
    ("50 MB config", _OK + "x: [" + "1," * (25 * 1024 * 1024) + "1]\n", ["{file}", "larger than 2 MiB"]),
    ("many values", _OK + "x: [" + ",".join(["[1]"] * 200_000) + "]\n", ["{file}", "more than 250,000 YAML values"]),
]


@pytest.mark.parametrize("name,text,fragments", HOSTILE_YAML, ids=[m[0] for m in HOSTILE_YAML])
def test_hostile_yaml_is_refused_quickly(run, tmp_path, name, text, fragments):
    import time

    cfg = tmp_path / "hostile.yml"
    cfg.write_text(text)
    start = time.monotonic()
    code, out, err = run("sync", "-n", str(cfg))
    elapsed = time.monotonic() - start
    assert code == 2, (name, out, err[-500:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "internal error" not in err, err[-500:]
    for fragment in fragments:
        assert fragment.format(file=cfg) in lines[0], (fragment, lines[0])
    assert elapsed < 30, f"{name}: {elapsed:.1f}s"  # minutes (or a crash) before; ~1-3 s on a loaded machine


MERGE_KEYS = [
    ("merge one mapping", "base: &b {type: rsync, source: a/, target: b}\nsync:\n  p1:\n    <<: *b\n    target: c\n",
     {"type": "rsync", "source": "a/", "target": "c"}),
    ("merge a list of mappings (first wins)",
     "x: &x {type: rsync, source: a/}\ny: &y {source: z/, target: t}\nsync:\n  p1:\n    <<: [*x, *y]\n",
     {"type": "rsync", "source": "a/", "target": "t"}),
    ("merge in flow style", "d: &d {type: s3sync, endpoint_url: 'http://127.0.0.1:9'}\n"
     "sync:\n  p1: {<<: *d, source: a, target: 's3://b/p'}\n",
     {"type": "s3sync", "source": "a", "target": "s3://b/p", "endpoint_url": "http://127.0.0.1:9"}),
    ("merge a whole protocol", "sync:\n  p1: &p {type: rsync, source: a/, target: b}\n  p2: {<<: *p, target: c}\n",
     {"type": "rsync", "source": "a/", "target": "c"}),
]


@pytest.mark.parametrize("name,text,expected", MERGE_KEYS, ids=[m[0] for m in MERGE_KEYS])
def test_yaml_merge_keys_work(tmp_path, name, text, expected):
    from flepimop_sync.config import load_config

    cfg = tmp_path / "c.yml"
    cfg.write_text(text)
    protocol = load_config([str(cfg)]).get(None if "p2" not in text else "p2")
    assert protocol.definition() == expected


def test_c_loader_is_used_and_agrees_with_the_python_loader():
    """libyaml's loader is used when PyYAML has it (issue 14.5); both refuse duplicates the same way."""
    import yaml

    from flepimop_sync import config

    if getattr(yaml, "CSafeLoader", None) is not None:
        assert issubclass(config._FastLoader, yaml.CSafeLoader)
    text = "base: &b {type: rsync, source: a/, target: b}\nsync:\n  p1: {<<: *b, target: c}\n"
    assert yaml.load(text, Loader=config._FastLoader) == yaml.load(text, Loader=config._PyLoader)  # noqa: S506
    for loader in (config._FastLoader, config._PyLoader):
        with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'a'") as info:
            yaml.load("x: 1\na: 1\na: 2\n", Loader=loader)  # noqa: S506
        assert (info.value.problem_mark.line, info.value.problem_mark.column) == (2, 0)


LOAD_YAML = [
    # (what, file text, parsed document or the fragments of the one-line error)
    ("a mapping", "a: 1\nb: [x, y]\n", {"a": 1, "b": ["x", "y"]}),
    ("duplicate key", "a: 1\na: 2\n", ["{file}", "duplicate key 'a'", "line 2, column 1"]),
    ("not YAML", "a: [1\n", ["{file}"]),
    ("empty", "", ["{file}", "empty"]),
]


@pytest.mark.parametrize("what,text,expected", LOAD_YAML, ids=[r[0] for r in LOAD_YAML])
def test_load_yaml_reads_one_file_as_config_files_are_read(tmp_path, what, text, expected):
    """config.load_yaml, the config files' own reader (libyaml, duplicate keys refused, one-line
    errors naming the file), for the other YAML files the package reads."""
    from flepimop_sync.config import load_yaml

    path = tmp_path / "f.yaml"
    path.write_text(text)
    if isinstance(expected, dict):
        assert load_yaml(path) == expected
        return
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment.format(file=path) in message, message


def test_the_workflow_schema_loads_through_load_yaml():
    """The workflow reads its schema with config.load_yaml (rules/common.smk), not PyYAML's
    pure-Python safe_load."""
    from flepimop_sync.config import load_yaml

    root = Path(__file__).resolve().parents[2]
    assert load_yaml(root / "workflow" / "schemas" / "config.schema.yaml")["type"] == "object"
    assert "load_yaml(schema_file)" in (root / "workflow" / "rules" / "common.smk").read_text()


@pytest.fixture
def run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def _run(*args: str) -> tuple[int, str, str]:
        code = run_command(flepimop, list(args), prog_name="flepimop")
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


@pytest.mark.parametrize("name,text,fragments", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_config_is_refused(run, tmp_path, name, text, fragments):
    cfg = tmp_path / "bad config.yml"
    cfg.write_text(textwrap.dedent(text))
    before = sorted(os.listdir(tmp_path))
    code, out, err = run("sync", "-n", str(cfg))
    assert code == 2, (name, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment.format(file=cfg) in lines[0], (fragment, lines[0])
    assert sorted(os.listdir(tmp_path)) == before  # nothing on disk changed


def test_malformed_configs_are_refused_for_25_different_reasons(run, tmp_path):
    """The table is broad: at least 25 different one-line refusals, not one message 25 times."""
    cfg = tmp_path / "bad config.yml"
    reasons = set()
    for name, text, _ in MALFORMED:
        cfg.write_text(textwrap.dedent(text))
        code, _, err = run("sync", "-n", str(cfg))
        assert code == 2, (name, err)
        reasons.add(err.strip().replace(str(cfg), "{file}"))
    assert len(reasons) >= 25, sorted(reasons)


CLI_ERRORS = [
    (["sync", "missing.yml"], ["missing.yml", "not found"]),
    (["sync"], ["Missing argument"]),
    (["sync", "--no-filter", "-f", "+ x", "{cfg}"], ["--no-filter cannot be combined"]),
    (["sync", "-p", "nope", "{cfg}"], ["no protocol named 'nope'", "available: first, second"]),
    (["sync", "-f", "-x", "{cfg}"], ["-x", "-f/--filter"]),
    (["sync", "-a", "", "{cfg}"], ["-a/--fprefix"]),
    (["sync", "-s", "+ ", "{cfg}"], ["--source", "nothing to append"]),
    (["sync", "--bogus", "{cfg}"], ["No such option", "--bogus", "flepimop sync --help"]),
    (["sync", "-p"], ["-p", "requires an argument"]),
    (["sync", "-v=3", "{cfg}"], ["No such option"]),
    (["sync", "--json=yes", "{cfg}"], ["--json"]),
    (["nosuchcommand"], ["nosuchcommand"]),
    (["sync", "-t", "s3://b/x", "{cfg}"], ["protocol 'first'", "target", "s3sync"]),
]


@pytest.mark.parametrize("args,fragments", CLI_ERRORS, ids=[" ".join(a) for a, _ in CLI_ERRORS])
def test_usage_errors_exit_2(run, tmp_path, args, fragments):
    cfg = tmp_path / "ok.yml"
    (tmp_path / "src").mkdir()
    cfg.write_text("sync:\n  first: {type: rsync, source: src/, target: dst/}\n"
                   "  second: {type: rsync, source: src, target: other}\n")
    code, out, err = run(*[a.format(cfg=cfg) for a in args])
    assert code == 2, (out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err  # one line, like every error
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "dst").exists()


def test_later_file_wins_and_first_is_default(tmp_path):
    from flepimop_sync.config import load_config

    a = tmp_path / "a.yml"
    b = tmp_path / "b.yml"
    a.write_text("sync:\n  one: {type: rsync, source: x, target: y}\n  two: {type: rsync, source: x, target: z}\n")
    b.write_text("sync:\n  two: {type: rsync, source: x, target: w}\n  three: {type: git}\n")
    config = load_config([str(a), str(b)])
    assert list(config.protocols) == ["one", "two", "three"]
    assert config.default.name == "one"
    assert config.get("two").target == "w"
    assert config.get("two").file == str(b)
    assert config.get("three").type == "git"


def test_minimal_git_protocol_is_valid(tmp_path):
    from flepimop_sync.config import load_config

    cfg = tmp_path / "c.yml"
    cfg.write_text("sync:\n  checkcode: {type: git}\n")
    assert load_config([str(cfg)]).default.type == "git"


def test_filters_as_string_is_one_rule(tmp_path):
    from flepimop_sync.config import load_config

    cfg = tmp_path / "c.yml"
    cfg.write_text("sync:\n  p: {type: rsync, source: a, target: b, filters: '- llik/'}\n")
    assert load_config([str(cfg)]).default.filters == (("- llik/", f"{cfg}: protocol 'p' key 'filters'"),)


# A variable in one protocol's filters is expanded when that protocol runs, not when the config
# loads: running another protocol never needs it; a malformed '${' is still refused at load.
ENV_IN_FILTERS = [
    # (filters of protocol 'needs_var', variables set, expected exit of running 'other', of 'needs_var')
    (["+ $RUN_ID_UNSET_X"], {}, 0, 2),
    (["+ $RUN_ID_SET_X"], {"RUN_ID_SET_X": "r1"}, 0, 0),
    (["+ ${RUN_ID_UNSET_X"], {}, 2, 2),
]


@pytest.mark.parametrize("filters,env,other_rc,needs_rc", ENV_IN_FILTERS)
def test_filter_variables_are_expanded_when_their_protocol_runs(tmp_path, monkeypatch, filters, env, other_rc,
                                                                needs_rc):
    import yaml

    (tmp_path / "src").mkdir()
    (tmp_path / "src/r1").write_text("x")
    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump({"sync": {
        "other": {"type": "rsync", "source": str(tmp_path / "src") + "/", "target": str(tmp_path / "dst") + "/"},
        "needs_var": {"type": "rsync", "source": str(tmp_path / "src") + "/", "target": str(tmp_path / "dst") + "/",
                      "filters": filters},
    }}))
    monkeypatch.delenv("RUN_ID_UNSET_X", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert run_command(flepimop, ["sync", "-n", "-p", "other", str(cfg)]) == other_rc
    assert run_command(flepimop, ["sync", "-n", "-p", "needs_var", str(cfg)]) == needs_rc
