"""The exit codes, as cli's docstring and the README's --help text list them: each outcome of a
command and the status ``cli.run_command`` (the one place) returns, with at most one line said."""

from __future__ import annotations

import signal

import click
import pytest

from flepimop_sync import cli
from flepimop_sync.errors import ConfigError, FilterError, Interrupted, SafetyHalt, StepFailed, UsageError

# (what the command raises, None: nothing; the exit status)
OUTCOMES = [
    (None, 0),
    (StepFailed("rsync failed"), 1),
    (SafetyHalt("the tree is dirty"), 1),
    (OSError(28, "No space left on device"), 1),
    (RuntimeError("a bug"), 1),
    (UsageError("bad option"), 2),
    (ConfigError("bad key"), 2),
    (FilterError("bad rule"), 2),
    (click.UsageError("no such option"), 2),
    (Interrupted(signal.SIGINT), 130),
    (Interrupted(signal.SIGTERM), 143),
    (Interrupted(signal.SIGHUP), 129),
    (KeyboardInterrupt(), 130),
    (click.exceptions.Abort(), 130),
]


@pytest.mark.parametrize("raised,status", OUTCOMES, ids=[type(r).__name__ for r, _ in OUTCOMES])
def test_each_outcome_has_its_exit_status(capsys, raised, status):
    @click.command()
    def command() -> None:
        if raised is not None:
            raise raised

    assert cli.run_command(command, []) == status
    said = [line for line in capsys.readouterr().err.splitlines() if line]  # (click ends a ^C line first)
    assert said == [] if status == 0 else len(said) == 1 and said[0].startswith("error: "), said


# -- options that name one thing: given twice is a usage error, not "the last one wins" --------------
# (arguments before the config file, the option each names in its one line; None: accepted)
REPEATS = [
    (["-t", "out2/", "-t", "out3/"], "-t/--target given 2 times ('out2/', 'out3/')"),
    (["--target", "out2/", "-t", "+ sub"], "-t/--target given 2 times"),
    (["--target=out2/", "--target=out2/"], "-t/--target given 2 times"),  # even the same value
    (["-s", "src/", "--source", "other/"], "-s/--source given 2 times"),
    (["-p", "p", "-p", "q"], "-p/--protocol given 2 times ('p', 'q')"),
    (["--protocol", "p", "-p", "p", "-p", "q"], "-p/--protocol given 3 times"),
    (["--plan", "-t", "out2/", "-t", "out3/"], "-t/--target given 2 times"),
    (["--json", "-p", "p", "-p", "q"], "-p/--protocol given 2 times"),
    # the rule options stay repeatable, and the single ones once are fine
    (["-f", "+ *.csv", "-f", "- *", "-a", "- x/", "-a", "- y/", "-e", "+ z", "-e", "+ w"], None),
    (["-p", "p", "-s", "src/", "-t", "out2/"], None),
]


@pytest.mark.parametrize("args,said", REPEATS, ids=[" ".join(a) for a, _ in REPEATS])
def test_a_single_option_given_twice_is_a_usage_error(tmp_path, monkeypatch, capsys, args, said):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.csv").write_text("a")
    (tmp_path / "c.yml").write_text("sync:\n  p: {type: rsync, source: src/, target: out/}\n"
                                    "  q: {type: rsync, source: src/, target: elsewhere/}\n")
    code = cli.run_command(cli.flepimop, ["sync", *args, "c.yml"], prog_name="flepimop")
    err = capsys.readouterr().err
    if said is None:
        assert code == 0, err
    else:
        lines = err.splitlines()
        assert code == 2 and len(lines) == 1, err
        assert lines[0].startswith(f"error: {said}") and "give it once" in lines[0], lines[0]
    # refused: nothing was run, nothing changed (accepted: the run synced to its one target)
    created = sorted(p.name for p in tmp_path.iterdir())
    assert created == (["c.yml", "src"] if said else sorted(["c.yml", "src", "out2" if "out2/" in args else "out"]))
