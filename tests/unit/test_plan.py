"""The plan: protocol + options -> resolved ends and argv (pure). Tables like the README."""

from __future__ import annotations

import json

import pytest

from flepimop_sync import plan as planning
from flepimop_sync.cli import flepimop, run_command
from flepimop_sync.config import load_config
from flepimop_sync.errors import UsageError
from flepimop_sync.options import SyncOptions


@pytest.fixture
def config(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "sync:\n"
        "  push: {type: rsync, source: model_output, target: 'hpc:/scratch/runs/', filters: ['- llik/']}\n"
        "  snap: {type: s3sync, source: model_output/, target: 's3://bucket/project', filters: ['+ *.csv', '- *']}\n"
        "  exact: {type: s3sync, source: model_output/, target: 's3://bucket/p/', filters: ['+ *hnpi*.csv']}\n"
        "  code: {type: git}\n"
    )
    return load_config([str(cfg)])


# protocol, options, argv expected (exactly)
ARGV = [
    ("push", {}, ["rsync", "-a", "--prune-empty-dirs", "--stats", "--filter=- llik/", "--filter=+ */",
                  "--", "model_output/", "hpc:/scratch/runs/model_output/"]),
    ("push", {"mkpath": True, "delete": True},
     ["rsync", "-a", "--prune-empty-dirs", "--mkpath", "--delete", "--stats", "--filter=- llik/", "--filter=+ */",
      "--", "model_output/", "hpc:/scratch/runs/model_output/"]),
    ("push", {"reverse": True},
     ["rsync", "-a", "--prune-empty-dirs", "--stats", "--filter=- llik/", "--filter=+ */",
      "--", "hpc:/scratch/runs/model_output/", "model_output/"]),
    ("push", {"no_filter": True, "target": "+ r1"},
     ["rsync", "-a", "--prune-empty-dirs", "--stats", "--", "model_output/", "hpc:/scratch/runs/r1/model_output/"]),
    ("snap", {}, ["aws", "s3", "sync", "model_output/", "s3://bucket/project/", "--exclude=*", "--include=*.csv",
                  "--include=*.csv/*", "--no-progress"]),
    ("snap", {"target": "+ 20240501_120000"},
     ["aws", "s3", "sync", "model_output/", "s3://bucket/project/20240501_120000/", "--exclude=*", "--include=*.csv",
      "--include=*.csv/*", "--no-progress"]),
]


@pytest.mark.parametrize("name,opts,argv", ARGV, ids=[f"{n}-{sorted(o)}" for n, o, _ in ARGV])
def test_argv(config, name, opts, argv):
    plan = planning.build(config.get(name), SyncOptions(protocol=name, **opts))
    assert [list(step.argv) for step in plan.steps] == [argv]


def test_inexact_aws_rule_waits_for_the_listing(config):
    plan = planning.build(config.get("exact"), SyncOptions())
    assert plan.needs_listing and plan.steps == ()
    listing = ["a/hnpi/x.csv", "a/hnpi.csv", "b/y.csv"]
    final = planning.finalize(plan, listing)
    assert final.mechanism in (planning.MECH_AWS_VERIFIED, planning.MECH_AWS_EXPLICIT)
    assert not final.needs_listing and final.steps[0].argv[:5] == ("aws", "s3", "sync", "model_output/",
                                                                    "s3://bucket/p/")


def test_git_protocol_has_no_ends(config):
    with pytest.raises(UsageError):
        planning.resolve(config.get("code"), SyncOptions())


def test_glob_characters_in_an_aws_root_are_refused(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("sync:\n  p: {type: s3sync, source: 'runs[1]/', target: 's3://b/x/', filters: ['+ *.csv']}\n")
    with pytest.raises(UsageError, match="glob characters"):
        planning.build(load_config([str(cfg)]).default, SyncOptions())


def test_cli_plan_prints_the_same_argv(config, capsys):
    code = run_command(flepimop, ["sync", "--plan", "-p", "snap", config.files[0]], prog_name="flepimop")
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    assert body["steps"][0]["argv"] == ARGV[4][2]
    assert body["destination"] == "s3://bucket/project" and body["filters"] == ["+ *.csv", "- *"]
