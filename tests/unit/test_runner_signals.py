"""runner: a stop signal that lands while a child is being started still stops that child.

Between the fork and the moment the runner records the child, a signal handler that raised at
once would leave the new child untracked: it would go on running (and writing) after the run
said it had stopped its children -- for a pull, while its roll-back runs.  The signal is real
and so are the children; only its timing is forced, by sending it from inside
``subprocess.Popen`` right after the child started (the handler then runs before ``Popen``
returns, the window a loaded machine opens by chance).  Likewise a signal that lands while the
runner holds its own lock: the handler takes it again and must not hang.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time

import pytest

from flepimop_sync.errors import Interrupted
from flepimop_sync.report import Reporter
from flepimop_sync.runner import Runner


def _signalled_while_starting(signum: int, started: list[int], *, before_fork: bool = False):
    real = subprocess.Popen

    class SignalledWhileStarting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            if before_fork:
                self._signal()
            super().__init__(*args, **kwargs)  # the child runs from here on
            started.append(self.pid)
            if not before_fork:
                self._signal()

        def _signal(self):
            os.kill(os.getpid(), signum)
            self.signalled = True  # bytecode after the kill: where Python runs the handler, inside Popen

    return SignalledWhileStarting


@pytest.mark.parametrize("before_fork", [False, True], ids=["after-fork", "before-fork"])
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_while_a_child_is_being_started_stops_that_child(tmp_path, monkeypatch, signum, code, before_fork):
    assert threading.current_thread() is threading.main_thread()  # where the runner handles signals
    mark = tmp_path / "late-write"
    started: list[int] = []
    monkeypatch.setattr(subprocess, "Popen", _signalled_while_starting(signum, started, before_fork=before_fork))
    runner = Runner(Reporter(verbosity=0, stream=io.StringIO()), dict(os.environ))
    begun = time.monotonic()
    with pytest.raises(Interrupted) as caught:
        with runner:
            runner.run(["sh", "-c", f"sleep 0.5; touch {mark}"])
    assert caught.value.exit_code == code
    assert len(started) == 1 or before_fork  # a signal before the fork may come before the child or not
    time.sleep(max(0.0, 1.5 - (time.monotonic() - begun)))
    assert not mark.exists(), "the child started as the signal landed kept running after the stop"
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # nothing left in its process group


def test_a_run_after_a_deferred_signal_is_not_interrupted_by_it(monkeypatch):
    """The signal deferred while one child started is acted on for that run only: the next
    run of the same runner (as a roll-back's git commands are) is not stopped by it again."""
    started: list[int] = []
    monkeypatch.setattr(subprocess, "Popen", _signalled_while_starting(signal.SIGTERM, started))
    runner = Runner(Reporter(verbosity=0, stream=io.StringIO()), dict(os.environ))
    with runner:
        with pytest.raises(Interrupted):
            runner.run(["sleep", "5"])
        monkeypatch.undo()
        done = runner.run(["sh", "-c", "echo after"])
    assert done.returncode == 0 and done.stdout == "after\n"


def test_a_signal_while_a_missing_tool_is_being_started_is_the_interruption(monkeypatch):
    """No child starts (the tool is missing), but the stop the user asked for is still what the
    run reports: exit 143, not 'command not found'."""
    started: list[int] = []
    monkeypatch.setattr(subprocess, "Popen", _signalled_while_starting(signal.SIGTERM, started, before_fork=True))
    runner = Runner(Reporter(verbosity=0, stream=io.StringIO()), dict(os.environ))
    with pytest.raises(Interrupted) as caught:
        with runner:
            runner.run(["flepimop-sync-no-such-tool"])
    assert caught.value.exit_code == 143 and started == []


@pytest.mark.timeout(20, method="thread")  # a deadlock: pytest-timeout reports the stacks and fails
def test_a_signal_while_the_runner_holds_its_lock_does_not_hang():
    """The handler stops the children under the runner's lock; a signal that lands while the
    main thread holds that lock (forgetting a finished child) must not wait for it for ever."""
    runner = Runner(Reporter(verbosity=0, stream=io.StringIO()), dict(os.environ))
    with runner:
        with runner._lock, pytest.raises(Interrupted) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            runner.signalled = True  # the handler runs here, the lock held
    assert caught.value.exit_code == 143
