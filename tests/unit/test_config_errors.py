"""Malformed configs: each one is refused with exit 2, one line naming file/protocol/key,
no traceback, and nothing run.  The table reads like the config reference."""

from __future__ import annotations

import os
import textwrap

import pytest

from flepimop_sync.cli import flepimop, run_command

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
]


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


def test_at_least_25_malformed_configs():
    assert len(MALFORMED) >= 25


CLI_ERRORS = [
    (["sync", "missing.yml"], ["missing.yml", "not found"]),
    (["sync"], ["Missing argument"]),
    (["sync", "--no-filter", "-f", "+ x", "{cfg}"], ["--no-filter cannot be combined"]),
    (["sync", "-p", "nope", "{cfg}"], ["no protocol named 'nope'", "available: first, second"]),
    (["sync", "-f", "-x", "{cfg}"], ["-x", "-f/--filter"]),
    (["sync", "-a", "", "{cfg}"], ["-a/--fprefix"]),
    (["sync", "-s", "+ ", "{cfg}"], ["--source", "nothing to append"]),
    (["sync", "--bogus", "{cfg}"], ["No such option"]),
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
