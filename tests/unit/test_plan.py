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
     # no '--delete': deletion is a second step removing exactly the listed files (issue 15.8)
     ["rsync", "-a", "--prune-empty-dirs", "--mkpath", "--stats", "--filter=- llik/", "--filter=+ */",
      "--", "model_output/", "hpc:/scratch/runs/model_output/"]),
    ("push", {"reverse": True},
     ["rsync", "-a", "--prune-empty-dirs", "--stats", "--filter=- llik/", "--filter=+ */",
      "--", "hpc:/scratch/runs/model_output/", "model_output/"]),
    ("push", {"no_filter": True, "target": "+ r1"},
     ["rsync", "-a", "--prune-empty-dirs", "--stats", "--", "model_output/", "hpc:/scratch/runs/r1/model_output/"]),
    ("snap", {}, ["aws", "s3", "sync", "model_output/", "s3://bucket/project/", "--exclude=*", "--include=*.csv",
                  "--include=*.csv/*", "--no-follow-symlinks", "--no-progress"]),  # links skipped, never followed (15.2)
    ("snap", {"target": "+ 20240501_120000"},
     ["aws", "s3", "sync", "model_output/", "s3://bucket/project/20240501_120000/", "--exclude=*", "--include=*.csv",
      "--include=*.csv/*", "--no-follow-symlinks", "--no-progress"]),
]


@pytest.mark.parametrize("name,opts,argv", ARGV, ids=[f"{n}-{sorted(o)}" for n, o, _ in ARGV])
def test_argv(config, name, opts, argv):
    plan = planning.build(config.get(name), SyncOptions(protocol=name, **opts))
    assert [list(step.argv) for step in plan.steps] == [argv]


def test_inexact_aws_rule_waits_for_the_listing(config):
    plan = planning.build(config.get("exact"), SyncOptions())
    assert type(plan) is planning.DraftPlan and not hasattr(plan, "steps")
    listing = ["a/hnpi/x.csv", "a/hnpi.csv", "b/y.csv"]
    final = planning.finalize(plan, listing)
    assert type(final) is planning.Plan
    assert final.mechanism in (planning.Mechanism.VERIFIED, planning.Mechanism.EXPLICIT)
    assert final.steps[0].argv[:5] == ("aws", "s3", "sync", "model_output/",
                                                                    "s3://bucket/p/")


# options, how an error in the ends they made names them (the options given, and only those)
AFTER_OPTIONS = [
    ({"target": "local/"}, " (after --target): "),
    ({"source": "other/", "target": "local/"}, " (after --source, --target): "),
    ({"target": "local/", "reverse": True}, " (after --target, --reverse): "),
]


@pytest.mark.parametrize("opts,named", AFTER_OPTIONS, ids=[str(sorted(o)) for o, _ in AFTER_OPTIONS])
def test_an_end_error_names_the_options_that_made_the_ends(config, opts, named):
    with pytest.raises(UsageError) as refused:
        planning.build(config.get("snap"), SyncOptions(**opts))
    message = str(refused.value)
    assert "protocol 'snap' key 'source'" + named in message and "needs at least one end" in message, message


def test_git_protocol_has_no_ends(config):
    with pytest.raises(UsageError):
        planning.resolve(config.get("code"), SyncOptions())


# An S3 prefix with '[' or '*' cannot be made glob-free: filters below it are refused (exit 2).
# A local root can: it is linked from a glob-free place at run time (alias_glob_roots).
@pytest.mark.parametrize("source,target", [("runs/", "s3://b/x[1]/"), ("s3://b/a*b/", "local/")])
def test_glob_characters_in_an_s3_prefix_are_refused(tmp_path, source, target):
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"sync:\n  p: {{type: s3sync, source: '{source}', target: '{target}', filters: ['+ *.csv']}}\n")
    with pytest.raises(UsageError, match="glob characters"):
        planning.build(load_config([str(cfg)]).default, SyncOptions())


# working directory, source -> is the local root aliased?
ALIASED = [
    ("/w[1]", "runs/", True),  # the working directory counts: aws uses the absolute path
    ("/w*x", "runs/", True),
    ("/w?x", "runs/", True),
    ("/w]x y", "runs/", False),
    ("/w", "/abs/ok/", False),
]


@pytest.mark.parametrize("cwd,source,aliased", ALIASED)
def test_local_aws_roots_with_glob_characters_are_aliased(tmp_path, cwd, source, aliased):
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"sync:\n  p: {{type: s3sync, source: '{source}', target: 's3://b/x/', filters: ['+ *.csv', '- *']}}\n")
    plan = planning.build(load_config([str(cfg)]).default, SyncOptions())
    final = planning.alias_glob_roots(plan, cwd, "/tmp/alias")
    root = planning.os.path.normpath(planning.os.path.join(cwd, source))
    if not aliased:
        assert final == plan
        return
    # the link leads to the root's parent: the root stays a real directory (--no-follow-symlinks)
    assert final.aliases == (("/tmp/alias/0", planning.os.path.dirname(root)),)
    assert final.steps[0].argv[3:5] == ("/tmp/alias/0/runs/", "s3://b/x/")
    assert planning.aws_glob_roots(final, cwd) == []


def test_a_root_named_with_glob_characters_is_refused(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("sync:\n  p: {type: s3sync, source: 'runs[1]/', target: 's3://b/x/', filters: ['+ *.csv', '- *']}\n")
    plan = planning.build(load_config([str(cfg)]).default, SyncOptions())
    with pytest.raises(UsageError, match="glob characters"):
        planning.alias_glob_roots(plan, "/w", "/tmp/alias")


def test_no_filters_need_no_alias(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("sync:\n  p: {type: s3sync, source: 'runs[1]/', target: 's3://b/x[1]/'}\n")
    plan = planning.build(load_config([str(cfg)]).default, SyncOptions())
    assert planning.alias_glob_roots(plan, "/w", "/tmp/alias") == plan


def test_remote_rsync_source_is_escaped_in_argv(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("sync:\n  p: {type: rsync, source: 'hpc:/r/a[1]/', target: 'local/'}\n")
    plan = planning.build(load_config([str(cfg)]).default, SyncOptions())
    assert plan.steps[0].argv[-2:] == ("hpc:/r/a\\[1\\]/", "local/")


@pytest.mark.parametrize("filters, refused", [
    ([], True),
    (["+ /r1*.pdf"], False),  # the filters never take 'b/...': the destination stays out of the transfer
    (["+ r1*.pdf"], True),  # unanchored: 'b/r1.pdf' would be taken
    (["- /b/"], False),  # everything but b/ into b/: the rsync idiom for a copy beside the tree
    (["- /b/x/"], True),  # b/ itself would be taken
])
def test_target_inside_the_source_is_refused_unless_the_filters_never_take_it(tmp_path, filters, refused):
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"sync:\n  p: {{type: rsync, source: '{tmp_path}/a/', target: '{tmp_path}/a/b',"
                   f" filters: {filters!r}}}\n")
    protocol = load_config([str(cfg)]).default
    if refused:
        with pytest.raises(UsageError, match="inside the source"):
            planning.build(protocol, SyncOptions())
    else:
        assert planning.build(protocol, SyncOptions()).steps[0].argv[-1].rstrip("/") == f"{tmp_path}/a/b"


def test_x_x_landing_is_a_plan_warning(tmp_path):
    cfg = tmp_path / "c.yml"
    cfg.write_text("sync:\n  p: {type: s3sync, source: model_output, target: 's3://b/p/model_output'}\n")
    plan = planning.build(load_config([str(cfg)]).default, SyncOptions())
    assert len(plan.warnings) == 1 and "model_output/model_output" in plan.warnings[0]


def test_cli_plan_prints_the_same_argv(config, capsys):
    code = run_command(flepimop, ["sync", "--plan", "-p", "snap", config.files[0]], prog_name="flepimop")
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    assert body["steps"][0]["argv"] == ARGV[4][2]
    assert body["destination"] == "s3://bucket/project" and body["filters"] == ["+ *.csv", "- *"]


# an end -> the rsync operands of every step that names it: 'hpc:' is the remote home, as rsync
# reads it; 'hpc:/' would be the remote root (files put in '/', --delete and listings run there)
REMOTE_HOME = [
    # source, target, transfer operands, deletion target, listing of the target
    ("src/", "hpc:", ("src/", "hpc:"), "hpc:", "hpc:"),
    ("src", "hpc:", ("src/", "hpc:src/"), "hpc:src/", "hpc:src/"),
    ("hpc:", "got/", ("hpc:", "got/"), "got/", "got/"),
    ("src/", "hpc:/", ("src/", "hpc:/"), "hpc:/", "hpc:/"),  # the root, when written so
]


@pytest.mark.parametrize("source,target,operands,deleted,listed", REMOTE_HOME)
def test_an_empty_remote_path_is_the_remote_home(tmp_path, source, target, operands, deleted, listed):
    from flepimop_sync.listing import rsync_listing_argv

    cfg = tmp_path / "c.yml"
    cfg.write_text(f"sync:\n  p: {{type: rsync, source: '{source}', target: '{target}'}}\n")
    protocol = load_config([str(cfg)]).default
    plan = planning.build(protocol, SyncOptions(delete=True))
    assert plan.steps[0].argv[-2:] == operands
    assert planning.rsync_delete_argv(plan.resolved, "/tmp/skel", "/tmp/list")[-1] == deleted
    assert rsync_listing_argv(plan.resolved.destination, protocol, "/tmp/e")[-2] == listed
    if plan.resolved.source.kind.value == "remote":
        assert rsync_listing_argv(plan.resolved.source, protocol, "/tmp/e")[-2] == "hpc:"


# source, target -> where its contents land: a source ending in '.' or '..' has no name, so it is
# copied as contents (like rsync), never into '<target>/..' (which would write, and delete, above it)
LANDING = [
    ("..", "out/T", "out/T"),
    ("../", "out/T", "out/T"),
    ("a/..", "out/T", "out/T"),
    (".", "out/T", "out/T"),
    ("a/.", "s3://b/p", "s3://b/p"),
    ("hpc:..", "out/T", "out/T"),
    ("a/b", "out/T", "out/T/b"),
    ("a/b/", "out/T", "out/T"),
]


@pytest.mark.parametrize("source,target,destination", LANDING)
def test_a_source_ending_in_dot_or_dotdot_lands_in_the_target(source, target, destination):
    from flepimop_sync.endpoints import parse_end

    assert planning.landing(parse_end(source), parse_end(target), source_is_file=False).text == destination


# -- deletion: the config's `delete` is for the configured pairing (plan.deletion) ----------------
# The protocol pairs model_output/ with the target.  A run that -s/-t moved off that pairing (a
# replaced end, or an append to one end only: `-t '+ sub'` copies all of model_output/ into the
# target's sub/) would mirror files the config never paired: its `delete` is not applied there (a
# note says so), only --delete deletes.  A run that mirrors a part of the configured source into
# the same part of the target (`-s '+ sub/' -t '+ sub/'`; an append keeps the configured end's
# trailing '/', so `-s '+ sub'` alone is sub's contents onto the whole target) keeps it.  Under --reverse the same holds of the reversed ends.
# the protocol's delete key, options, does the run delete, the options the note names (None: no note)
DELETE_RULE = [
    (True, {}, True, None),
    (True, {"target": "other/"}, False, "-t/--target"),  # the replaced target keeps its files
    (True, {"target": "other/", "delete": True}, True, None),  # ... unless --delete asks
    (True, {"target": "{target}"}, True, None),  # -t naming the configured target replaces nothing
    (True, {"target": "+ sub/", "source": "+ sub/"}, True, None),  # a part, into the same part
    (True, {"source": "+ sub/", "target": "+ sub"}, True, None),  # (an append keeps the end's trailing '/')
    (True, {"target": "+ sub"}, False, "-t/--target"),  # the whole source into sub/: not the pairing
    (True, {"source": "+ sub/"}, False, "-s/--source"),  # sub's contents onto the whole target
    (True, {"source": "+ sub"}, False, "-s/--source"),  # (the same: model_output/sub/, as configured)
    (True, {"source": "+ a/", "target": "+ b/"}, False, "-s/--source and -t/--target"),
    (True, {"target": "+ sub", "source": "elsewhere/"}, False, "-s/--source and -t/--target"),
    (True, {"source": "elsewhere/"}, False, "-s/--source"),  # another source mirrored onto the target
    (True, {"reverse": True}, False, None),  # 'true': the configured direction only
    (True, {"reverse": True, "source": "elsewhere/"}, False, None),  # (no delete to leave out: no note)
    ("both", {"reverse": True}, True, None),
    ("both", {"reverse": True, "source": "elsewhere/"}, False, "-s/--source"),  # the end written to
    ("both", {"reverse": True, "source": "elsewhere/", "delete": True}, True, None),
    ("both", {"reverse": True, "source": "+ sub"}, False, "-s/--source"),  # the whole target into sub/
    ("both", {"reverse": True, "source": "+ sub/", "target": "+ sub/"}, True, None),
    ("both", {"reverse": True, "target": "elsewhere/"}, False, "-t/--target"),  # another place onto the source
    ("both", {"target": "other/"}, False, "-t/--target"),
    ("reverse", {"target": "other/"}, False, None),  # forward: the key deletes nothing anyway
    ("reverse", {"reverse": True, "source": "elsewhere/"}, False, "-s/--source"),
    (False, {"target": "other/"}, False, None),
    (False, {"target": "other/", "delete": True}, True, None),
]


@pytest.mark.parametrize("key,opts,deletes,noted", DELETE_RULE,
                         ids=[f"{k}-{sorted(o.items())}" for k, o, _, _ in DELETE_RULE])
@pytest.mark.parametrize("ptype", ["rsync", "s3sync"])
def test_the_configs_delete_is_for_the_configured_pairing(tmp_path, ptype, key, opts, deletes, noted):
    from flepimop_sync import api

    target = "s3://b/runs/" if ptype == "s3sync" else "/data/runs/"
    ends = {k: v.format(target=target) for k, v in opts.items() if k in ("source", "target")}
    if ptype == "s3sync" and ends.get("target") in ("other/", "elsewhere/"):
        ends["target"] = "s3://b/" + ends["target"]
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"sync:\n  p: {{type: {ptype}, source: model_output/, target: '{target}', "
                   f"delete: {json.dumps(key)}}}\n")
    options = SyncOptions(**{**opts, **ends})
    protocol = load_config([str(cfg)]).get("p")
    resolved = planning.resolve(protocol, options)
    assert resolved.delete is deletes
    assert planning.deletion(protocol, options, resolved.source, resolved.destination) == (
        deletes, resolved.notes[0] if resolved.notes else None)
    if noted:
        (note,) = resolved.notes
        assert note.startswith(f"'delete: {str(key).lower()}' is not applied: with {noted}"
                               + (" and --reverse" if options.reverse else "") + " this run copies "), note
        assert note.endswith("nothing is deleted there; --delete asks for it")
    else:
        assert resolved.notes == ()
    # the one rule everywhere: the steps (aws' own --delete), --plan/--json, the Snakemake rerun digest
    plan = planning.build(protocol, options)
    if ptype == "s3sync":
        assert ("--delete" in plan.steps[0].argv) is deletes
    shown = api.plan_as_json([str(cfg)], options)
    assert shown["delete"] is deletes and shown["notes"] == list(resolved.notes)
    assert api.meaning([str(cfg)], options)["options"]["delete"] is deletes
