"""git protocol, argv level: what is refused before any process starts, and the small parsers.

A fake runner answers scripted git commands; the real behaviour is in
tests/integration/test_git_protocol.py.
"""

from __future__ import annotations

import io
import json

import pytest

from flepimop_sync import gitsync
from flepimop_sync.config import GitSettings, Protocol
from flepimop_sync.errors import ConfigError, StepFailed, UsageError
from flepimop_sync.gitsync import GitAction, GitMode, GitRecord
from flepimop_sync.options import SyncOptions
from flepimop_sync.report import Reporter
from flepimop_sync.runner import Completed


class FakeRunner:
    """Answers git commands by their subcommand; records every argv."""

    def __init__(self, answers=None):
        self.argvs = []
        self.answers = answers or {}

    def run(self, argv, *, cwd=None, env=None, input_text=None):
        self.argvs.append(list(argv))
        assert argv[:4] == ["git", "--no-pager", "-c", "core.quotepath=off"]
        assert env["LC_ALL"] == "C" and env["GIT_TERMINAL_PROMPT"] == "0"
        key = " ".join(argv[4:6])
        for prefix, answer in self.answers.items():
            if key.startswith(prefix):
                rc, out, err = answer(argv) if callable(answer) else answer
                return Completed(tuple(argv), rc, out, err, 0.0)
        return Completed(tuple(argv), 0, "", "", 0.0)


def protocol(**settings):
    return Protocol(name="code", type="git", file="sync.yml", settings=GitSettings(**settings))


def run(proto, runner=None, cwd="/", **opts):
    runner = runner or FakeRunner()
    reporter = Reporter(stream=io.StringIO(), out=io.StringIO())
    return gitsync.run_git_protocol(proto, SyncOptions(**opts), runner, reporter, cwd=cwd), runner


@pytest.mark.parametrize("opts,flag", [
    ({"filters": ("+ *",)}, "-f/--filter"), ({"fprefix": ("+ a",)}, "-a/--fprefix"),
    ({"fsuffix": ("- b",)}, "-e/--fsuffix"), ({"source": "x"}, "-s/--source"), ({"target": "y"}, "-t/--target"),
    ({"no_filter": True}, "--no-filter"), ({"mkpath": True}, "--mkpath"), ({"delete": True}, "--delete"),
])
def test_transfer_options_are_a_usage_error_before_any_process(opts, flag):
    runner = FakeRunner()
    with pytest.raises(UsageError) as info:
        run(protocol(), runner, **opts)
    assert flag in str(info.value) and ".gitignore" in str(info.value) and info.value.exit_code == 2
    assert runner.argvs == []


@pytest.mark.parametrize("settings,key", [
    ({"remote": "-oProxyCommand=x"}, "remote"), ({"remote": "--upload-pack=x"}, "remote"),
    ({"remote": "a b"}, "remote"), ({"branch": "-f"}, "branch"), ({"branch": "refs/heads/x"}, "branch"),
    ({"branch": "x..y"}, "branch"), ({"mode": "sideways"}, "mode"), ({"remote": ""}, "remote"),
    ({"path": 3}, "path"),
])
def test_bad_keys_are_config_errors_before_any_process(settings, key):
    runner = FakeRunner()
    with pytest.raises(ConfigError) as info:
        run(protocol(**settings), runner)
    assert f"key '{key}'" in str(info.value) and info.value.exit_code == 2
    assert runner.argvs == []


def test_transfer_keys_on_a_hand_built_protocol_are_refused():
    bad = Protocol(name="code", type="git", file="sync.yml", filters=(("+ *", "origin"),))
    with pytest.raises(ConfigError, match="key 'filters'"):
        run(bad)


@pytest.mark.parametrize("mode,reverse,effective", [
    (None, False, "pull"), ("pull", False, "pull"), ("pull", True, "push"), ("push", False, "push"),
    ("push", True, "pull"), (None, True, "push"),
])
def test_reverse_swaps_the_mode(mode, reverse, effective):
    settings = {} if mode is None else {"mode": mode}
    assert gitsync._check_protocol(protocol(**settings), SyncOptions(reverse=reverse)) is GitMode(effective)
    if mode is not None:  # the one home of the swap, which api calls too
        assert gitsync.effective_mode(mode, reverse=reverse) is GitMode(effective)
        assert gitsync.effective_mode(GitMode(mode), reverse=reverse) is GitMode(effective)


def test_the_record_as_json_keeps_its_keys_in_order():
    record = GitRecord(protocol="code", mode=GitMode.PUSH, repo="/repo", dry_run=True, remote="origin",
                       branch="main", remote_branch="main", ahead=1, behind=0, action=GitAction.PUSH,
                       commits=[{"sha": "a" * 40, "subject": "mine"}], head_before="a" * 40,
                       head_after="a" * 40, fetched=True)
    as_dict = record.as_dict()
    assert list(as_dict) == ["protocol", "type", "mode", "repo", "remote", "remote_url", "branch",
                             "remote_branch", "ahead", "behind", "action", "commits", "conflicts", "untracked",
                             "warnings", "head_before", "head_after", "fetched", "dry_run"]
    assert (as_dict["type"], as_dict["mode"], as_dict["action"]) == ("git", "push", "push")
    assert json.loads(json.dumps(as_dict)) == as_dict
    as_dict["commits"].append({"sha": "b", "subject": "x"})  # a copy: the record is unchanged
    assert len(record.commits) == 1
    assert GitRecord(protocol="p", mode=GitMode.PULL, repo="/r", dry_run=False).as_dict()["action"] is None


@pytest.mark.parametrize("opts,flags", [
    ({"filters": ("+ *",)}, "-f/--filter"), ({"source": "x", "target": "y"}, "-s/--source, -t/--target"),
    ({"engine": "rclone"}, "--engine"),
])
def test_refuse_transfer_options_words_the_rule_once(opts, flags):
    with pytest.raises(UsageError) as info:
        gitsync.refuse_transfer_options(protocol(), SyncOptions(**opts))
    assert str(info.value) == (f"sync.yml: protocol 'code': {flags} cannot be used with a git protocol "
                               "(git decides what to sync through .gitignore)")
    gitsync.refuse_transfer_options(protocol(), SyncOptions(reverse=True, dry_run=True, verbosity=2))


def _answers_until_fetch(fetch):
    return {
        "rev-parse --show-toplevel": (0, "/repo\n", ""),
        # one (absent) path per --git-path, as git answers
        "rev-parse --git-path": lambda argv: (0, "".join(f".git/none{i}\n" for i in range(argv.count("--git-path"))), ""),
        "hash-object": (0, "4b825dc642cb6eb9a060e54bf8d69288fbee4904\n", ""),
        "symbolic-ref -q": (0, "refs/heads/main\n", ""),
        "remote": (0, "origin\n", ""),
        "for-each-ref": (0, "origin\0refs/heads/main\n", ""),
        "rev-parse -q": (0, "a" * 40 + "\n", ""),
        "fetch": fetch,
    }


def test_unreachable_remote_is_one_line_with_step_and_status():
    err = ("ssh: connect to host 127.0.0.1 port 9: Connection refused\r\n"
           "fatal: Could not read from remote repository.\n\n"
           "Please make sure you have the correct access rights\nand the repository exists.\n")
    runner = FakeRunner(_answers_until_fetch((128, "", err)))
    with pytest.raises(StepFailed) as info:
        run(protocol(), runner)
    text = str(info.value)
    assert text.startswith("git fetch origin failed (exit 128): remote unreachable: "
                           "fatal: Could not read from remote repository.")
    assert "\n" not in text and info.value.returncode == 128
    fetch = next(a for a in runner.argvs if a[4] == "fetch")
    assert fetch[fetch.index("--") + 1:] == ["origin", "+refs/heads/main:refs/remotes/origin/main"]
    assert "--no-write-fetch-head" in fetch


def test_user_strings_follow_double_dash_or_refs_prefix():
    runner = FakeRunner(_answers_until_fetch((128, "", "fatal: boom\n")))
    with pytest.raises(StepFailed):
        run(protocol(remote="origin", branch="main"), runner)
    for argv in runner.argvs:
        for i, arg in enumerate(argv[4:], start=4):
            if arg in ("origin", "main"):
                assert "--" in argv[:i], argv


def test_parsers():
    assert gitsync._name_status("M\0a b.py\0A\0new\0") == [("M", "a b.py"), ("A", "new")]
    assert gitsync._split_z("x\0y/\0") == ["x", "y/"]
    names = [f"f{i}" for i in range(12)]
    assert gitsync._names(names) == "f0, f1, f2, f3, f4, f5, f6, f7, f8, f9 and 2 more"
    assert gitsync._names(["tab\there"]) == repr("tab\there")
    assert gitsync._count(1) == "1 commit" and gitsync._count(0) == "0 commits"
    done = Completed(("git",), 1, "", "hint: x\nerror: failed to push\nhint: y\n", 0.0)
    assert gitsync._stderr_line(done) == "error: failed to push"
    assert gitsync._stderr_line(Completed(("git",), 1, "", "", 0.0)) == "no error message"


@pytest.mark.parametrize("stderr,said", [
    ("remote: Push refused: no tests        \nremote: see CI        \nerror: failed to push some refs\n",
     "Push refused: no tests; see CI"),
    ("remote: \x1b[31mred\x1b[0m\r\nremote:\nremote: red\n", "?[31mred?[0m; red"),
    ("error: failed to push some refs\n", ""),
    ("".join(f"remote: line {i}\n" for i in range(12)),
     "; ".join(f"line {i}" for i in range(8)) + "; ... (4 more line(s))"),
])
def test_remote_says_keeps_the_servers_own_lines(stderr, said):
    assert gitsync._remote_says(Completed(("git",), 1, "", stderr, 0.0)) == said


@pytest.mark.parametrize("stdout,reason", [
    ("To /r.git\n!\trefs/heads/main:refs/heads/main\t[remote rejected] (pre-receive hook declined)\nDone\n",
     "pre-receive hook declined"),
    ("To /r.git\n!\trefs/heads/main:refs/heads/main\t[rejected] (fetch first)\nDone\n", None),
    ("", None),
])
def test_porcelain_reason(stdout, reason):
    assert gitsync._porcelain_reason(stdout, "[remote rejected]") == reason


def test_chunks_keep_argv_small():
    paths = [f"dir/{i:05}.txt" for i in range(20_000)]
    chunks = list(gitsync._chunks(paths, max_bytes=10_000))
    assert [p for c in chunks for p in c] == paths
    assert all(sum(len(p) + 1 for p in c) <= 10_000 for c in chunks)


def test_signals_are_deferred_during_a_roll_back():
    import os
    import signal

    def boom(signum, frame):
        raise AssertionError("handler ran inside the deferred block")

    previous = signal.signal(signal.SIGTERM, boom)
    try:
        with gitsync._signals_deferred() as received:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # let the interpreter run the (recording) handlers
                if len(received) == 2:
                    break
        assert received == [signal.SIGTERM, signal.SIGINT]
        assert signal.getsignal(signal.SIGTERM) is boom
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


# (argv of `flepimop sync --plan`, the options the refusal names): a plan or a rerun digest that
# accepted what a git run refuses would let `--plan` and `snakemake -n` promise a failing run
PLAN_REFUSALS = [
    (["-f", "+ a"], "-f/--filter"), (["-a", "+ a"], "-a/--fprefix"), (["-e", "- b"], "-e/--fsuffix"),
    (["-s", "x"], "-s/--source"), (["-t", "y"], "-t/--target"), (["--no-filter"], "--no-filter"),
    (["--mkpath"], "--mkpath"), (["--delete"], "--delete"), (["--engine", "rclone"], "--engine"),
    (["-t", "x", "-f", "+ a", "--mkpath"], "-t/--target, -f/--filter, --mkpath"),
]


@pytest.mark.parametrize("argv,flags", PLAN_REFUSALS, ids=[" ".join(a) for a, _ in PLAN_REFUSALS])
def test_plan_refuses_what_a_git_run_refuses(tmp_path, capsys, argv, flags):
    from flepimop_sync import cli

    config = tmp_path / "ok.yml"
    config.write_text("sync:\n  g: {type: git, mode: push}\n")
    assert cli.run_command(cli.sync_command, ["--plan", "-p", "g", *argv, str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    said = [line for line in captured.err.splitlines() if line]
    assert len(said) == 1 and said[0].startswith("error: ") and flags in said[0], said
    assert "cannot be used with a git protocol" in said[0]


@pytest.mark.parametrize("opts,flag", [
    ({"filters": ("+ *",)}, "-f/--filter"), ({"source": "x"}, "-s/--source"), ({"target": "y"}, "-t/--target"),
    ({"mkpath": True}, "--mkpath"), ({"delete": True}, "--delete"), ({"engine": "rclone"}, "--engine"),
])
def test_meaning_and_plan_refuse_what_a_git_run_refuses(tmp_path, opts, flag):
    """The rerun digest (``api.meaning``, what ``rule_params`` hashes) refuses as the run does."""
    from flepimop_sync import api

    config = tmp_path / "ok.yml"
    config.write_text("sync:\n  g: {type: git, mode: push}\n")
    for describe in (api.meaning, api.plan_as_json, api.resolved_digest):
        with pytest.raises(UsageError, match=flag):
            describe([str(config)], SyncOptions(protocol="g", **opts))
    assert api.meaning([str(config)], SyncOptions(protocol="g", reverse=True))["mode"] == "pull"


def _git_paths(argv):
    """``git rev-parse --git-path A --git-path B...`` -> one path a line, below .git."""
    return 0, "".join(f".git/{argv[i + 1]}\n" for i, word in enumerate(argv) if word == "--git-path"), ""


# symlinks journalled, the repository's hash, link0 edited since the killed pull (to what)?
ROLLBACK_LINKS = [(1, "sha1", None), (3, "sha1", None), (12, "sha256", None),
                  # local work, never rolled back over: a link to nowhere, or to an empty file (the
                  # beginning of every blob), is not a link git was stopped while writing
                  (5, "sha256", "nowhere"), (2, "sha1", "empty")]


@pytest.mark.parametrize("links,algorithm,edited", ROLLBACK_LINKS)
def test_the_roll_back_guard_asks_the_object_format_once_per_run(tmp_path, links, algorithm, edited):
    """The guard hashes each journalled symlink's target itself: git is asked for the repository's
    hash once, however many links there are (the answer is the run's, not a module's)."""
    import hashlib
    import os

    from flepimop_sync.errors import SafetyHalt

    def blob(target: bytes) -> str:
        return hashlib.new(algorithm, b"blob %d\0" % len(target) + target).hexdigest()

    blobs = {}
    for i in range(links):
        os.symlink(f"target{i}", tmp_path / f"link{i}")
        blobs[f"link{i}"] = [blob(b"before"), blob(f"target{i}".encode())]
    if edited:
        (tmp_path / "empty").write_bytes(b"")
        os.remove(tmp_path / "link0")
        os.symlink(edited, tmp_path / "link0")
    runner = FakeRunner({"rev-parse --git-path": _git_paths,
                         "rev-parse --show-object-format": (0, f"{algorithm}\n", "")})
    journal = gitsync._Journal(gitsync._Git(runner, str(tmp_path)))
    record = {"blobs": blobs, "remove": [], "restore": [], "new_dirs": []}
    if edited:
        with pytest.raises(SafetyHalt, match="link0"):
            journal._check_untouched(record)
    else:
        journal._check_untouched(record)
    asked = [argv for argv in runner.argvs if "--show-object-format" in argv]
    assert len(asked) == 1, runner.argvs
