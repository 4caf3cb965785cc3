"""flepimop_sync.smk (rule text) and the Snakemake glue of flepimop_sync.api (params, digests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flepimop_sync import api, smk
from flepimop_sync.errors import ConfigError, UsageError
from flepimop_sync.options import SyncOptions

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, protocols: dict) -> str:
    path.write_text(yaml.safe_dump({"name": "x", "sync": protocols}, sort_keys=False))
    return str(path)


@pytest.fixture()
def cfg(tmp_path):
    (tmp_path / "src").mkdir()
    return write(tmp_path / "c.yml", {
        "resume": {"type": "rsync", "source": str(tmp_path / "src") + "/", "target": str(tmp_path / "out") + "/",
                   "filters": ["- llik/"], "description": "first"},
        "s3-push.v2": {"type": "s3sync", "source": str(tmp_path / "src") + "/", "target": "s3://b/runs/",
                       "endpoint_url": "http://127.0.0.1:9"},
        "code": {"type": "git"},
    })


def test_rule_names():
    assert smk.rule_name("resume") == "sync_resume"
    assert smk.rule_name("s3-push.v2") == "sync_s3_push_v2"
    assert smk.rule_names(["a", "b-c"]) == {"a": "sync_a", "b-c": "sync_b_c"}
    with pytest.raises(ConfigError, match="both be Snakemake rule 'sync_a_b'"):
        smk.rule_names(["a-b", "a.b"])


def test_render_rules_shape(cfg):
    text = smk.render_rules([cfg])
    for name in ("sync_resume", "sync_s3_push_v2", "sync_code"):
        assert f"\nrule {name}:\n" in text
        assert f'"results/receipts/{name}.json"' in text and f'"logs/{name}.log"' in text
    assert 'protocol="s3-push.v2"' in text
    assert text.count("**flepimop_sync_api.rule_params(FLEPIMOP_SYNC_CONFIGS") == 3
    call = "status = flepimop_sync_api.run_rule_status(dict(params.items()), receipt=output[0], log=log[0])"
    assert text.count(call) == 3
    assert text.count("        if status:\n            raise WorkflowError(f\"rule sync_") == 3
    assert "localrule: True" in text
    assert f"FLEPIMOP_SYNC_CONFIGS = [\"{cfg}\"]" in text
    assert "--" not in text.split("FLEPIMOP_SYNC_CONFIGS", 1)[1]  # no flag in a rule
    assert smk.render_rules([cfg]) == text  # deterministic
    other = smk.render_rules([cfg], results_dir="r", logs_dir="l", local=False)
    assert '"r/receipts/sync_code.json"' in other and "localrule: False" in other


def test_render_rules_bad_config(tmp_path):
    bad = write(tmp_path / "bad.yml", {"x": {"type": "rsync", "source": "a/"}})
    with pytest.raises(ConfigError, match="target"):
        smk.render_rules([bad])


def test_cli_snakemake_rules_and_smk_do_not_import_snakemake(cfg):
    code = ("import sys; from flepimop_sync.cli import main; import flepimop_sync.smk\n"
            "try:\n    main(['sync', '--snakemake-rules', sys.argv[1]])\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'snakemake' not in sys.modules, 'snakemake imported'")
    done = subprocess.run([sys.executable, "-c", code, cfg], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO / "src")))  # this checkout, installed or not
    assert done.returncode == 0, done.stderr
    assert "rule sync_resume:" in done.stdout


# (options given with --snakemake-rules, the names the refusal gives): the rules run every protocol and
# nothing is run now, so each of these could only be ignored
WITH_SNAKEMAKE_RULES = [
    (["-p", "resume"], "-p/--protocol"),
    (["-p", ""], "-p/--protocol"),
    (["-s", "+ sub"], "-s/--source"),
    (["-t", "/elsewhere/"], "-t/--target"),
    (["-f", "+ a/**"], "-f/--filter"),
    (["-a", "- x/", "-e", "- y/"], "-a/--fprefix, -e/--fsuffix"),
    (["--no-filter"], "--no-filter"),
    (["--reverse"], "--reverse"),
    (["--mkpath"], "--mkpath"),
    (["--delete"], "--delete"),
    (["--engine", "rclone"], "--engine"),
    (["-n"], "-n/--dry-run"),
    (["-v"], "-v/--verbose"),
    (["--json"], "--json"),
    (["--plan"], "--plan"),
    (["--json", "-p", "resume", "--plan"], "-p/--protocol, --json, --plan"),
]


@pytest.mark.parametrize("given,named", WITH_SNAKEMAKE_RULES, ids=[" ".join(g) for g, _ in WITH_SNAKEMAKE_RULES])
def test_snakemake_rules_refuses_the_options_it_cannot_honour(cfg, capsys, given, named):
    from flepimop_sync import cli

    assert cli.run_command(cli.sync_command, ["--snakemake-rules", *given, cfg]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no rules printed
    assert err.startswith(f"error: --snakemake-rules takes only config files, not {named}: ") and err.count("\n") == 1, err


def test_snakemake_rules_with_config_files_only(cfg, capsys):
    from flepimop_sync import cli

    assert cli.run_command(cli.sync_command, ["--snakemake-rules", cfg, cfg]) == 0
    out, err = capsys.readouterr()
    assert out.count("\nrule sync_") == 3 and err == ""


def test_options_from_params():
    opts = api.options_from_params({"config_files": ["c.yml"], "digest": "x", "extra_files": ["m.json"],
                                    "protocol": "p", "target": "+ run", "filters": ["+ a/**"], "source": None})
    assert opts == SyncOptions(protocol="p", target="+ run", filters=("+ a/**",))
    assert api.options_from_params({"fprefix": "- x"}).fprefix == ("- x",)
    with pytest.raises(UsageError, match="unknown sync option.*bogus"):
        api.options_from_params({"bogus": 1})
    with pytest.raises(UsageError, match="dry_run"):
        api.options_from_params({"dry_run": True})
    assert api.config_files_from_params({"config_files": "a.yml"}) == ["a.yml"]
    with pytest.raises(UsageError, match="config_files"):
        api.config_files_from_params({})


# (what the rule's params ask for, its exit status, the start of the one line said, which receipt):
# api.run_rule_status is the outcome of every sync rule, the wrapper's and --snakemake-rules' alike
RULE_OUTCOMES = [
    ({"protocol": "resume"}, 0, None, "receipt"),
    ({"protocol": "resume", "target": "+ no/such/deep/"},
     1, "flepimop-sync: protocol 'resume': rsync failed (rsync exit ", ".failed"),
    ({"protocol": "nope"}, 2, "flepimop-sync: no protocol named 'nope' in ", ".failed"),
    ({"protocol": "resume", "bogus": 1}, 2, "flepimop-sync: unknown sync option", None),
    ({"protocol": "resume", "dry_run": True}, 2, "flepimop-sync: dry_run cannot be used in a Snakemake rule", None),
]


@pytest.mark.parametrize("params,status,line,written", RULE_OUTCOMES,
                         ids=["ok", "rsync fails", "unknown protocol", "unknown option", "dry run"])
def test_run_rule_status(cfg, tmp_path, params, status, line, written):
    import io

    (tmp_path / "src" / "a.csv").write_text("a")
    receipt = tmp_path / "results" / "r.json"
    said = io.StringIO()
    assert api.run_rule_status({"config_files": [cfg], **params}, receipt=receipt, stream=said) == status
    if line is None:
        assert said.getvalue() == ""
    else:
        assert said.getvalue().startswith(line) and said.getvalue().count("\n") == 1, said.getvalue()
    assert receipt.exists() is (written == "receipt")
    assert Path(f"{receipt}.failed").exists() is (written == ".failed")
    if written == ".failed":
        assert json.loads(Path(f"{receipt}.failed").read_text())["exit_code"] == status


def test_rule_params_and_digest(cfg, tmp_path):
    p = api.rule_params([cfg], protocol="resume", target="+ r1", filters=None, fprefix=(), mkpath=True)
    assert p["config_files"] == [cfg] and p["protocol"] == "resume" and p["target"] == "+ r1"
    assert "filters" not in p and "fprefix" not in p and p["mkpath"] is True
    assert len(p["digest"]) == 16 and p["digest"] == api.rule_digest(p)
    assert api.rule_params(cfg, protocol="resume", target="+ r1", mkpath=True) == p  # stable
    assert api.rule_params([cfg], protocol="resume", target="+ r2", mkpath=True)["digest"] != p["digest"]
    with_extra = api.rule_params([cfg], protocol="resume", target="+ r1", mkpath=True, extra_files=["m.json"])
    assert with_extra["digest"] != p["digest"]

    def digest_after(change) -> tuple[str, str]:
        doc = yaml.safe_load(Path(cfg).read_text())
        change(doc["sync"]["resume"])
        edited = tmp_path / "edited.yml"
        edited.write_text(yaml.safe_dump(doc, sort_keys=False))
        own = api.rule_params([str(edited)], protocol="resume")["digest"]
        override = api.rule_params([str(edited)], protocol="resume", filters=["+ hnpi/**"])["digest"]
        return own, override

    base_own = api.rule_params([cfg], protocol="resume")["digest"]
    base_override = api.rule_params([cfg], protocol="resume", filters=["+ hnpi/**"])["digest"]
    # editing the filters changes the resolved definition, unless the rule replaces them
    own, override = digest_after(lambda p: p.update(filters=["- llik/", "- hosp/"]))
    assert own != base_own and override == base_override
    # a description is not behaviour
    assert digest_after(lambda p: p.update(description="second")) == (base_own, base_override)
    # the target is
    own, override = digest_after(lambda p: p.update(target=str(tmp_path / "elsewhere") + "/"))
    assert own != base_own and override != base_override
    # other protocols' digests do not move when one protocol changes
    s3 = api.rule_params([cfg], protocol="s3-push.v2")["digest"]
    doc = yaml.safe_load(Path(cfg).read_text())
    doc["sync"]["resume"]["filters"] = ["- x/"]
    Path(cfg).write_text(yaml.safe_dump(doc, sort_keys=False))
    assert api.rule_params([cfg], protocol="s3-push.v2")["digest"] == s3


def test_git_protocol_digest(cfg):
    p = api.rule_params([cfg], protocol="code")
    assert p["protocol"] == "code" and len(p["digest"]) == 16


def test_workflow_schema_is_the_cli_schema():
    from flepimop_sync.config import schema_path

    link = REPO / "workflow" / "schemas" / "sync.schema.json"
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    assert link.resolve() == schema_path().resolve()


def test_example_config_matches_workflow_schema():
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(config)
    documented = (REPO / "config/README.md").read_text()
    for key, spec in schema["properties"].items():
        assert f"`{key}`" in documented, key
        for sub in spec.get("properties", {}):
            assert f"`{key}.{sub}`" in documented, f"{key}.{sub}"


# -- reruns follow meaning (api.meaning / resolved_digest) ------------------------------------------

def _digest(path: str, protocol: str = "resume", **options) -> str:
    return api.rule_params([path], protocol=protocol, **options)["digest"]


def _edited(tmp_path, cfg: str, change) -> str:
    doc = yaml.safe_load(Path(cfg).read_text())
    change(doc["sync"])
    out = tmp_path / f"edited{len(list(tmp_path.glob('edited*')))}.yml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(out)


@pytest.mark.parametrize(("what", "change", "reruns"), [
    ("a description", lambda s: s["resume"].update(description="other words"), False),
    ("an edited filter", lambda s: s["resume"].update(filters=["- llik/", "- hosp/"]), True),
    ("the target", lambda s: s["resume"].update(target="/elsewhere/"), True),
    ("mkpath", lambda s: s["resume"].update(mkpath=True), True),
    ("delete", lambda s: s["resume"].update(delete=True), True),
    ("the remote shell", lambda s: s["resume"].update(rsh="ssh -F cfg"), True),
    ("the protocol type (and so the tool)",
     lambda s: s["resume"].update(type="s3sync", target="s3://b/t/", filters=["- llik/"]), True),
])
def test_digest_table(cfg, tmp_path, what, change, reruns):
    base = _digest(cfg)
    edited = _digest(_edited(tmp_path, cfg, change))
    assert (edited != base) is reruns, what


def test_digest_same_rules_spelled_differently(cfg, tmp_path):
    a = _digest(_edited(tmp_path, cfg, lambda s: s["resume"].update(filters=["+ hnpi/**", "- *"])))
    b = _digest(_edited(tmp_path, cfg, lambda s: s["resume"].update(filters=["hnpi/**", "- *"])))
    c = _digest(_edited(tmp_path, cfg, lambda s: s["resume"].update(filters=["- *", "+ hnpi/**"])))
    assert a == b and a != c
    # an override spelled either way is one meaning too
    assert _digest(cfg, filters=["+ x/**"]) == _digest(cfg, filters=["x/**"])


def test_digest_ignores_the_argv_builders(cfg, monkeypatch):
    """Two argv builders (today's, and one that adds a flag as an upgrade might): same digest."""
    from flepimop_sync import plan as planning

    before = {p: _digest(cfg, p) for p in ("resume", "s3-push.v2")}
    argv_before = api.plan_as_json([cfg], SyncOptions(protocol="resume"))["steps"][0]["argv"]
    rsync, aws = planning.rsync_argv, planning.aws_sync_argv
    monkeypatch.setattr(planning, "rsync_argv", lambda *a, **k: ("rsync", "--no-motd", *rsync(*a, **k)[1:]))
    monkeypatch.setattr(planning, "aws_sync_argv", lambda *a, **k: (*aws(*a, **k), "--only-show-errors"))
    argv_after = api.plan_as_json([cfg], SyncOptions(protocol="resume"))["steps"][0]["argv"]
    assert argv_after != argv_before and "--no-motd" in argv_after
    assert {p: _digest(cfg, p) for p in before} == before


def test_meaning_record(cfg, tmp_path):
    record = api.meaning([cfg], SyncOptions(protocol="resume", target="+ r1", fprefix=("hnpi/**",)))
    assert record == {
        "type": "rsync", "tool": "rsync",
        "source": str(tmp_path / "src") + "/", "target": str(tmp_path / "out") + "/r1/",
        "destination": str(tmp_path / "out") + "/r1/",
        "filters": ["+ hnpi/**", "- llik/"], "options": {"mkpath": False, "delete": False}, "where": {},
    }
    s3 = api.meaning([cfg], SyncOptions(protocol="s3-push.v2"))
    assert s3["tool"] == "aws" and s3["where"] == {"endpoint_url": "http://127.0.0.1:9"}
    assert api.meaning([cfg], SyncOptions(protocol="code"))["tool"] == "git"


# (rule params, the direction they ask for): Snakemake refuses a param named `reverse` (list.reverse
# of its params container), so rule_params writes `reverse_direction`; a mapping built by hand may
# still say `reverse`
REVERSE_PARAMS = [
    ({"reverse_direction": True}, True),
    ({"reverse_direction": False}, False),
    ({"reverse": True}, True),
    ({"reverse": True, "reverse_direction": True}, True),
    ({}, False),
]


@pytest.mark.parametrize("params,reverse", REVERSE_PARAMS, ids=[str(p) for p, _ in REVERSE_PARAMS])
def test_reverse_reaches_the_options_under_a_name_snakemake_takes(params, reverse):
    assert api.options_from_params(params).reverse is reverse


def test_rule_params_write_reverse_under_a_name_snakemake_takes(cfg):
    p = api.rule_params([cfg], protocol="resume", reverse=True)
    assert "reverse" not in p and p["reverse_direction"] is True
    assert p["digest"] != api.rule_params([cfg], protocol="resume")["digest"]  # the direction is meaning
    with pytest.raises(UsageError, match="disagree"):
        api.options_from_params({"reverse": True, "reverse_direction": False})


# -- the workflow config's one-line errors (smk.describe_config_error) ------------------------------

def _schema_error(change):
    """The JSON Schema error of config/config.yaml with ``change`` applied (the workflow's schema)."""
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    doc = yaml.safe_load((REPO / "config/config.yaml").read_text())
    change(doc)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    assert len(errors) == 1, [e.message for e in errors]
    return errors[0]


def _filter_error(text):
    from flepimop_sync.errors import FilterError
    from flepimop_sync.filters import parse_rule

    with pytest.raises(FilterError) as caught:
        parse_rule(text, "config")
    return caught.value


# (file, key path, problem, values) -> the one line; schema errors carry their own path
CONFIG_ERRORS = [
    ("unknown key in a run", ("config/config.yaml", (), _schema_error(lambda d: d["runs"][0].update(colour="red")), {}),
     "config/config.yaml: runs[0].colour: unknown key (allowed: calibrate, model_config, name, resume_fetch, snapshot)"),
    ("unknown top-level key", ("config/config.yaml", (), _schema_error(lambda d: d.update(colour="red")), {}),
     "config/config.yaml: colour: unknown key (allowed: calibrate, gempyor_source, local_sync, model_config, "
     "results_dir, resume_fetch, runs, slurm_status_max_interval, slurm_status_timeout, snapshot, sync_configs, "
     "sync_in_all)"),
    ("missing runs", ("config/config.yaml", (), _schema_error(lambda d: d.pop("runs")), {}),
     "config/config.yaml: runs: required"),
    ("a run without name", ("config/config.yaml", (), _schema_error(lambda d: d["runs"][0].pop("name")), {}),
     "config/config.yaml: runs[0].name: required"),
    ("wrong type", ("c.yaml", (), _schema_error(lambda d: d["calibrate"].update(threads="x")), {}),
     "c.yaml: calibrate.threads: must be an integer, got string 'x'"),
    ("a boolean from --config", ("--config", (), _schema_error(lambda d: d.update(local_sync="maybe")), {}),
     "--config: local_sync: must be true or false, got string 'maybe'"),
    ("below a minimum", ("c.yaml", (), _schema_error(lambda d: d["calibrate"].update(threads=0)), {}),
     "c.yaml: calibrate.threads: must be at least 1, got number 0"),
    ("an exclusive minimum", ("c.yaml", (), _schema_error(lambda d: d["calibrate"]["wait"].update(timeout_hours=0)),
                              {}),
     "c.yaml: calibrate.wait.timeout_hours: must be more than 0, got number 0"),
    ("not in the enum", ("c.yaml", (), _schema_error(lambda d: d["calibrate"].update(mode="fast")), {}),
     "c.yaml: calibrate.mode: 'fast' is not one of batch-calibrate, command, null"),
    ("a run name", ("c.yaml", (), _schema_error(lambda d: d["runs"][0].update(name="a b")), {}),
     "c.yaml: runs[0].name: 'a b' does not match ^[A-Za-z0-9_][A-Za-z0-9_.-]*$"),
    ("an empty list", ("c.yaml", (), _schema_error(lambda d: d.update(sync_configs=[])), {}),
     "c.yaml: sync_configs: must not be empty"),
    ("braces in results_dir", ("c.yaml", ("results_dir",), "braces", {"value": "r/{x}"}),
     "c.yaml: results_dir: 'r/{x}' has braces, which Snakemake reads as wildcards; choose a directory name "
     "without '{' or '}'"),
    ("results_dir the root", ("c.yaml", ("results_dir",), "root", {"value": "//"}),
     "c.yaml: results_dir: '//' is the root directory"),
    ("a run listed twice", ("c.yaml", ("runs", 3, "name"), "listed_twice", {"value": "r1", "first": "runs[0]"}),
     "c.yaml: runs[3].name: 'r1' is listed twice (also runs[0])"),
    ("a resource a run adds", ("c.yaml", ("runs", 1, "calibrate", "resources", "mem_mb"), "resource_not_in_campaign",
                               {}),
     "c.yaml: runs[1].calibrate.resources.mem_mb: not a key of the campaign's calibrate.resources (a run may "
     "change the value of a resource, not add one: add it there)"),
    ("a bad filter", ("c.yaml", ("runs", 1, "resume_fetch", "filters", 0), _filter_error("+bad"), {"value": "+bad"}),
     "c.yaml: runs[1].resume_fetch.filters[0]: invalid filter '+bad': '+' must be followed by exactly one space "
     "and a pattern (rsync would read '+b...' as a modifier or merge rule)"),
    ("a filter as written, '{run}' unfilled", ("c.yaml", ("resume_fetch", "filters", 1), _filter_error("- r1/[x"),
                                               {"value": "- {run}/[x"}),
     "c.yaml: resume_fetch.filters[1]: invalid filter '- {run}/[x': unterminated '[' set"),
    ("flepimop-sync's words", ("c.yaml", ("runs", 2, "snapshot", "protocol"),
                               ConfigError("no protocol named 'x' in f.yml; available: a, b"), {}),
     "c.yaml: runs[2].snapshot.protocol: no protocol named 'x' in f.yml; available: a, b"),
    ("a secret in a value", ("c.yaml", ("results_dir",), "braces", {"value": "https://u:hunter2@h/{x}"}),
     "c.yaml: results_dir: 'https://***@h/{x}' has braces, which Snakemake reads as wildcards; choose a "
     "directory name without '{' or '}'"),
    ("no key", ("c.yaml", (), "a line\nof its own", {}), "c.yaml: a line of its own"),
]


@pytest.mark.parametrize("args,line", [row[1:] for row in CONFIG_ERRORS], ids=[row[0] for row in CONFIG_ERRORS])
def test_describe_config_error(args, line):
    where, path, problem, values = args
    assert smk.describe_config_error(where, path, problem, **values) == line
