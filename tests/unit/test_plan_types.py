"""The plan's types and the small argv builders execute runs through the runner (issue 14):
a draft cannot run, one mechanism vocabulary, progress flags in one place, probe argv in plan."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from flepimop_sync import api, plan as planning
from flepimop_sync.config import load_config
from flepimop_sync.errors import StepFailed, UsageError
from flepimop_sync.mechanism import Engine, Mechanism
from flepimop_sync.options import SyncOptions
from flepimop_sync.report import Reporter
from flepimop_sync.runner import Runner
from flepimop_sync.s3filters import choose_aws_filter_args
from flepimop_sync.filters import build_rules


@pytest.fixture
def config(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "sync:\n"
        "  push: {type: rsync, source: model_output, target: 'hpc:/scratch/runs/', rsh: 'ssh -F cfg'}\n"
        "  file: {type: rsync, source: data/x.csv, target: 'hpc:/scratch/new/'}\n"
        "  snap: {type: s3sync, source: model_output/, target: 's3://bucket/p', endpoint_url: 'http://127.0.0.1:9'}\n"
        "  exact: {type: s3sync, source: model_output/, target: 's3://bucket/p/', filters: ['+ *hnpi*.csv']}\n"
    )
    return load_config([str(cfg)])


def test_a_draft_has_no_steps_and_finalize_makes_a_plan(config):
    draft = planning.build(config.get("exact"), SyncOptions())
    assert type(draft) is planning.DraftPlan and not hasattr(draft, "steps")
    assert draft.to_json()["steps"] == [] and draft.to_json()["mechanism"] == Mechanism.EXPLICIT.text
    final = planning.finalize(draft, ["a/hnpi.csv", "b/y.csv"])
    assert type(final) is planning.Plan and final.steps and final.stage is None


def test_a_large_explicit_upload_is_staged(config, tmp_path):
    draft = planning.build(config.get("exact"), SyncOptions())
    # '*' stops at '/' for the rules, not for aws' fnmatch: d0/hnpi/x.csv is not selected
    listing = [f"d{i}/hnpi{i}.csv" for i in range(30)] + [f"d{i}/hnpi/x.csv" for i in range(30)]
    final = planning.finalize(draft, listing, stage_dir=str(tmp_path), stage_above=0)
    assert final.mechanism is Mechanism.STAGED and final.stage == planning.Stage(
        directory=str(tmp_path), files=tuple(f"d{i}/hnpi{i}.csv" for i in sorted(range(30), key=str)))
    assert final.steps[0].argv[3] == str(tmp_path) + "/" and "--no-follow-symlinks" not in final.steps[0].argv


@pytest.mark.parametrize("rules,mechanism", [
    ((), Mechanism.NONE), (("+ *.csv", "- *"), Mechanism.NATIVE), (("+ a?c",), Mechanism.VERIFIED),
    (("+ a?c", "- *"), Mechanism.EXPLICIT),
])
def test_s3filters_and_plan_share_one_mechanism_vocabulary(rules, mechanism):
    paths = ["abc", "a\u00e9c", "x.csv"] if mechanism is not Mechanism.VERIFIED else ["abc", "x.csv"]
    if mechanism is Mechanism.EXPLICIT:
        paths = ["abc", "a\u00e9c/x", "a\u00e9c"]
    got = choose_aws_filter_args(build_rules(None, override=rules), paths).mechanism
    assert got is mechanism and got == mechanism.value and {got} == {mechanism.value}


@pytest.mark.parametrize("value", [Mechanism.RCLONE, "rclone"])
def test_a_plans_mechanism_is_a_member_given_its_name(config, value):
    plan = replace(planning.build(config.get("snap"), SyncOptions()), mechanism=value)
    assert plan.mechanism is Mechanism.RCLONE and f"{plan.mechanism}" == "rclone"
    with pytest.raises(ValueError):
        replace(plan, mechanism=Mechanism.RCLONE.text)  # a user's words are not a plan's


# protocol, --engine, the engine (or the whole refusal, the config's directory left out): plan.engine_for is
# the one home of the choice
ENGINE_CHOICES = [
    ("snap", None, Engine.AWS),                  # the schema's default
    ("snap", "rclone", Engine.RCLONE),
    ("snap", "aws", Engine.AWS),
    ("fast", None, Engine.RCLONE),               # the protocol's engine key
    ("fast", "aws", Engine.AWS),                 # --engine wins
    ("push", None, Engine.AWS),                  # rsync moves its own files
    ("push", "aws", Engine.AWS),
    ("push", "rclone", "c.yml: protocol 'push': --engine applies to s3sync protocols only"),
    ("push", "ftp", "c.yml: protocol 'push': --engine applies to s3sync protocols only"),
    ("snap", "ftp", "c.yml: protocol 'snap' key 'engine': unknown engine 'ftp' (known: aws, rclone)"),
]


@pytest.mark.parametrize("name,engine,expected", ENGINE_CHOICES, ids=[f"{n}-{e}" for n, e, _ in ENGINE_CHOICES])
def test_one_home_chooses_the_engine_for_runs_and_for_meaning(tmp_path, name, engine, expected):
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "sync:\n"
        "  push: {type: rsync, source: model_output, target: 'hpc:/scratch/runs/'}\n"
        "  snap: {type: s3sync, source: model_output/, target: 's3://bucket/p/'}\n"
        "  fast: {type: s3sync, source: model_output/, target: 's3://bucket/p/', engine: rclone}\n")
    (tmp_path / "model_output").mkdir()
    protocol, options = load_config([str(cfg)]).get(name), SyncOptions(protocol=name, engine=engine)
    if isinstance(expected, Engine):
        assert planning.engine_for(protocol, options) is expected
        plan = planning.build(protocol, options)
        assert plan.engine is (expected if protocol.type == "s3sync" else Engine.AWS)
        tool = api.meaning([str(cfg)], options)["tool"]
        assert tool == (expected.value if protocol.type == "s3sync" else "rsync")
        if protocol.type == "s3sync":
            assert plan.to_json()["engine"] == expected.value and type(plan.to_json()["engine"]) is str
        return
    for refused in (lambda: planning.engine_for(protocol, options), lambda: planning.build(protocol, options),
                    lambda: api.meaning([str(cfg)], options)):
        with pytest.raises(UsageError) as err:
            refused()
        assert str(err.value).replace(str(tmp_path) + "/", "") == expected


# protocol, options, argv on a terminal (with_progress), argv otherwise
PROGRESS = [
    ("push", {}, ["rsync", "-a", "--prune-empty-dirs", "--rsh=ssh -F cfg", "--stats", "--info=progress2", "--",
                  "model_output/", "hpc:/scratch/runs/model_output/"]),
    ("push", {"verbosity": 2}, ["rsync", "-a", "--prune-empty-dirs", "--rsh=ssh -F cfg", "--stats",
                                "--info=progress2", "--itemize-changes", "--", "model_output/",
                                "hpc:/scratch/runs/model_output/"]),
    ("snap", {}, ["aws", "s3", "sync", "model_output/", "s3://bucket/p/", "--endpoint-url=http://127.0.0.1:9",
                  "--no-follow-symlinks"]),
]


@pytest.mark.parametrize("name,opts,tty_argv", PROGRESS)
def test_progress_flags_come_from_one_place(config, name, opts, tty_argv):
    plan = planning.build(config.get(name), SyncOptions(protocol=name, **opts))
    plain = list(plan.steps[0].argv)
    assert list(planning.with_progress(plan).steps[0].argv) == tty_argv
    assert "--info=progress2" not in plain and (plain[0] != "aws" or plain[-1] == "--no-progress")


def test_probe_argv_are_built_in_plan(config):
    push = config.get("push")
    resolved = planning.resolve(push, SyncOptions())
    assert planning.rsync_probe_dir_argv(push, resolved.target.with_path("/scratch/")) == (
        "rsync", "--list-only", "-d", "--exclude=*", "--rsh=ssh -F cfg", "--", "hpc:/scratch/")
    assert planning.rsync_make_dir_argv(resolved, source_is_file=False) == (
        "rsync", "-d", "--exclude=*", "--rsh=ssh -F cfg", "--", "model_output/", "hpc:/scratch/runs/")
    single = planning.resolve(config.get("file"), SyncOptions(), source_is_file=True)
    assert planning.rsync_make_dir_argv(single, source_is_file=True) == (
        "rsync", "-d", "--exclude=*", "--", "data/", "hpc:/scratch/new/")
    snap = config.get("snap")
    assert planning.aws_ls_argv(snap, planning.resolve(snap, SyncOptions()).target) == (
        "aws", "s3", "ls", "s3://bucket/p/", "--endpoint-url=http://127.0.0.1:9")


def test_preview_argv_are_built_in_plan(config):
    rsync = planning.with_progress(planning.build(config.get("push"), SyncOptions(protocol="push", verbosity=2)))
    assert planning.rsync_preview_argv(rsync.steps[0].argv) == (
        "rsync", "-a", "--prune-empty-dirs", "--rsh=ssh -F cfg", "--stats", "--dry-run", "--out-format=%i %l %n",
        "--", "model_output/", "hpc:/scratch/runs/model_output/")
    aws = planning.build(config.get("snap"), SyncOptions(protocol="snap")).steps[0].argv
    assert planning.aws_preview_argv(aws) == (*aws, "--dryrun")
    assert planning.aws_preview_argv((*aws, "--dryrun")) == (*aws, "--dryrun")


@pytest.mark.parametrize("opts", [{"filters": ("+ a",)}, {"fprefix": ("- b",)}, {"fsuffix": ("- c",)}])
def test_no_filter_with_rules_is_refused_when_the_options_are_made(opts):
    with pytest.raises(UsageError, match="--no-filter cannot be combined"):
        SyncOptions(no_filter=True, **opts)
    with pytest.raises(UsageError, match="--no-filter cannot be combined"):
        SyncOptions.from_mapping({"no_filter": True, **opts})


def test_runner_timeout_kills_the_child():
    with Runner(Reporter()) as runner:
        start = time.monotonic()
        with pytest.raises(StepFailed, match="no answer within 0.5s") as info:
            runner.run(["sleep", "30"], timeout=0.5)
        assert info.value.returncode == 124 and time.monotonic() - start < 10


# a missing tool -> the hint the one message carries (every step, probe and listing starts through the runner)
MISSING_TOOLS = [
    ("rsync", "install rsync: apt-get install rsync (or your system's package manager)"),
    ("aws", "install the AWS CLI: pip install awscli"),
    ("git", None),
]


@pytest.mark.parametrize("tool,hint", MISSING_TOOLS)
def test_a_missing_tool_is_named_with_how_to_install_it(tmp_path, tool, hint):
    with Runner(Reporter(), env={"PATH": str(tmp_path)}) as runner:
        for start in (runner.run, runner.stream):
            with pytest.raises(StepFailed) as info:
                start([tool, "--version"])
            assert info.value.message == f"{tool}: command not found"
            assert info.value.hint == hint and info.value.returncode == 127


def test_runner_inheriting_passes_the_descriptors_for_one_block(tmp_path):
    fd = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    try:
        with Runner(Reporter()) as runner:
            probe = ["sh", "-c", f"[ -e /proc/self/fd/{fd} ] && echo held || echo closed"]
            with runner.inheriting((fd,)):
                assert runner.run(probe).stdout.strip() == "held"
            assert runner.inherit_fds == () and runner.run(probe).stdout.strip() == "closed"
    finally:
        os.close(fd)
