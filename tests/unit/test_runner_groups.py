"""runner: a stopped run waits for the whole process group of each child, not the child alone
(a git hook may outlive git by a moment; nothing may still write once a pull is rolled back)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time

from flepimop_sync.report import Reporter
from flepimop_sync.runner import Runner, _group_alive


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_group_is_alive_while_a_grandchild_lives():
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & exit 0"], start_new_session=True)
    proc.wait()  # the leader is gone; its child lives on in the group
    try:
        assert _group_alive(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
    assert _wait_until(lambda: not _group_alive(proc.pid), 10)


def test_a_group_that_never_was_is_not_alive():
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait()
    assert not _group_alive(proc.pid)


def test_stop_children_waits_for_a_grandchild_that_outlives_its_parent(tmp_path):
    """The child exits at once on SIGINT; its own child ignores SIGINT, leaves its mark 0.5 s
    later, then exits: stop_children returns only after that."""
    mark = tmp_path / "late-write"
    script = (f"(trap '' INT; sleep 0.5; touch {mark}) & "  # the grandchild: ignores SIGINT
              "trap 'exit 130' INT; while :; do sleep 0.05; done")
    runner = Runner(Reporter(verbosity=0, stream=io.StringIO()), dict(os.environ))
    started = threading.Event()

    def run():
        started.set()
        runner.run(["sh", "-c", script])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait()
    assert _wait_until(lambda: bool(runner._children), 10)
    time.sleep(0.2)  # the grandchild is started
    runner.stop_children()
    assert mark.exists(), "stop_children returned while a grandchild could still write"
    thread.join(10)
