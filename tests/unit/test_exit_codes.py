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
