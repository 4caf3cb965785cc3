"""Shared helpers of the suite: configs, files, S3 objects, background CLI runs and processes,
and `build_once` (a cached build shared by xdist workers under a lock).

File trees themselves (building and reading them) live in tests/trees.py.  Both are found through
pytest's ``pythonpath`` (pyproject.toml).  Nothing here talks to anything but 127.0.0.1: ssh
always goes through the test bed's ``-F`` config (``sshd.env``), S3 through the test bed's
loopback endpoint with dummy credentials.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import psutil
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
MARK_VAR = "FLEPIMOP_RELIABILITY_MARK"

# A relay that rate-limits both directions of a remote shell (used as RSYNC_RSH prefix), so a
# transfer lasts long enough to be killed or interrupted half-way, deterministically.  Once the
# file named by RELIABILITY_RELEASE exists it relays at full speed: a test that has seen what it
# needed half-way lets the transfer finish without waiting out the throttle.
THROTTLE = r'''
import os, subprocess, sys, threading, time
rate = float(os.environ.get("RELIABILITY_RATE", "4000000"))
release = os.environ.get("RELIABILITY_RELEASE")
os.set_blocking(0, True)  # rsync may hand us non-blocking pipe ends: EAGAIN is not EOF
os.set_blocking(1, True)
child = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
def pump(src, dst, close):
    start, sent = time.monotonic(), 0
    while True:
        try:
            data = os.read(src, 65536)
        except OSError:
            data = b""
        if not data:
            break
        sent += len(data)
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0 and not (release and os.path.exists(release)):
            time.sleep(ahead)
        try:
            _write_all(dst, data)
        except OSError:
            break
    close()
def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
up = threading.Thread(target=pump, args=(0, child.stdin.fileno(), child.stdin.close), daemon=True)
up.start()
pump(child.stdout.fileno(), 1, lambda: None)
sys.exit(child.wait())
'''


def build_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """``build(folder)`` unless a previous build completed; ``folder`` either way.

    xdist workers (and concurrent runs sharing the cache) build once: the first to take the
    folder's lock builds, the others wait for it and find the completion mark.  A build that
    raises (or skips) leaves no mark, so the next caller tries again."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".complete").exists():
            build(folder)
            (folder / ".complete").touch()
    return folder


def write_config(path: Path, protocols: dict) -> Path:
    """A flepiMoP config at ``path`` whose ``sync:`` section is ``protocols``; returns path."""
    path.write_text(yaml.safe_dump({"sync": protocols}, sort_keys=False, allow_unicode=True))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every regular file below root (final names and temp names)."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = sha(p)
    return out


def put_random_objects(s3, bucket: str, prefix: str, count: int, size: int,
                       sub: str = "data") -> dict[str, str]:
    """``count`` objects of ``size`` random bytes at ``prefix + sub/pI.bin``; their digests by
    the path below the prefix (as a download lands them)."""
    digests = {}
    for i in range(count):
        data = os.urandom(size)
        s3.put(bucket, f"{prefix}{sub}/p{i}.bin", data)
        digests[f"{sub}/p{i}.bin"] = hashlib.sha256(data).hexdigest()
    return digests


def s3_digests(s3, bucket: str, prefix: str) -> dict[str, str]:
    """{key below prefix: sha256} of the objects under ``prefix``."""
    return {k[len(prefix):]: hashlib.sha256(s3.get(bucket, k)).hexdigest() for k in s3.list(bucket, prefix)}


def make_big_tree(root: Path, count: int = 20, size: int = 5 * 1024 * 1024, sub: str = "data") -> dict[str, str]:
    """``count`` files of ``size`` random bytes under root/sub; returns their digests (rel to root)."""
    digests = {}
    for i in range(count):
        rel = f"{sub}/part{i:03d}.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        digests[rel] = hashlib.sha256(data).hexdigest()
    return digests


def throttled_rsh(tmp: Path, rsh: str, rate: int, release: Path | None = None) -> str:
    """An RSYNC_RSH value: our throttling relay around ``rsh`` (the test bed's ``ssh -F ...``);
    once the file ``release`` exists (``release.touch()``) the relay runs at full speed."""
    script = tmp / "throttle_relay.py"
    script.write_text(THROTTLE)
    released = f"RELIABILITY_RELEASE={release} " if release else ""
    return f"env RELIABILITY_RATE={rate} {released}{sys.executable} {script} {rsh}"


def aws_throttle_config(tmp: Path, bandwidth: str = "2MB/s", multipart_threshold: str = "64MB",
                        concurrency: int = 10) -> Path:
    """An AWS config file that limits the CLI's S3 bandwidth (no credentials in it).

    Note: the limit is applied by the client as it reads; a server can still push a whole object
    into the kernel's socket buffers, so a fault test needs more data than the requests in flight.
    """
    path = tmp / "aws_throttle.cfg"
    path.write_text(f"[default]\ns3 =\n  max_bandwidth = {bandwidth}\n"
                    f"  multipart_threshold = {multipart_threshold}\n  multipart_chunksize = 5MB\n"
                    f"  max_concurrent_requests = {concurrency}\n")
    return path


def cli_env(env: Mapping[str, str], **extra: str) -> dict[str, str]:
    out = dict(env)
    src = str(REPO_ROOT / "src")
    out["PYTHONPATH"] = src + (os.pathsep + out["PYTHONPATH"] if out.get("PYTHONPATH") else "")
    out.update(extra)
    return out


def start_cli(args: Iterable[str], env: Mapping[str, str], cwd: Path | None = None) -> subprocess.Popen:
    """Start ``python -m flepimop_sync ...`` in the background (its own session), text pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", "flepimop_sync", *map(str, args)], env=cli_env(env), cwd=cwd,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )


@contextmanager
def cli_running(args: Iterable[str], env: Mapping[str, str], until: Callable[[], object], *,
                cwd: Path | None = None, what: str = "the first run", timeout: float = 30
                ) -> Iterator[subprocess.Popen]:
    """A background CLI run (start_cli) caught half-way: yields once ``until()`` holds while it
    still runs (it must not have finished: then nothing could be tested against it), and kills
    it on the way out if the test left it running."""
    proc = start_cli(args, env, cwd)
    try:
        wait_until(lambda: proc.poll() is not None or until(), timeout, what)
        assert proc.poll() is None, f"finished before it could be caught running: {proc.communicate()}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextmanager
def paused(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """``proc`` stopped (SIGSTOP; the process only, its children go on) for the block: a run
    caught holding its destination lock keeps holding it however long the block takes on a
    loaded machine, instead of racing it to the end of its transfer."""
    proc.send_signal(signal.SIGSTOP)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGCONT)


def new_mark() -> str:
    return f"rel-{uuid.uuid4().hex}"


def marked_pids(marker: str, exclude: Iterable[int] = ()) -> dict[int, str]:
    """Live processes whose environment or command line contains ``marker`` -> their cmdline."""
    skip = {os.getpid(), *exclude}
    out = {}
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.pid in skip or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(proc.info["cmdline"] or ())
            if marker in cmd or any(marker in f"{k}={v}" for k, v in proc.environ().items()):
                out[proc.pid] = cmd
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_gone(marker: str, timeout: float = 10, exclude: Iterable[int] = ()) -> dict[int, str]:
    """Wait until no process carries ``marker``; return what is left (empty when all gone)."""
    deadline = time.monotonic() + timeout
    left = marked_pids(marker, exclude)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = marked_pids(marker, exclude)
    return left


def kill_marked(marker: str) -> None:
    """Test clean-up: SIGKILL anything still carrying the marker (only our own processes)."""
    for pid in marked_pids(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def received_bytes(root: Path) -> int:
    """Bytes present below root (temp files included): has the target started receiving?"""
    total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def assert_no_truncated_final(target: Path, expected: Mapping[str, str], prefix: str = "") -> None:
    """Every file at ``target`` under a final name (one the source has) has the source's content.

    Temp names (rsync's ``.name.XXXXXX``, aws' ``name.XXXXXXXX``) are not final names and are not
    checked here: a test that cares whether they were left behind looks for them itself.
    """
    for rel, digest in tree_digest(target).items():
        key = prefix + rel
        if key in expected:
            assert digest == expected[key], f"{rel} at the target is truncated or corrupt under its final name"


def secret_free(texts: Mapping[str, str], secrets: Iterable[str]) -> list[str]:
    """Names of the texts that contain one of the secrets."""
    return [f"{name} contains {secret[:6]}..." for name, text in texts.items() for secret in secrets if secret in text]


def show(proc: subprocess.CompletedProcess) -> str:
    """A finished process for an assertion message: exit status and the tails of its output."""
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-8000:]}"


def dry_summary(done: subprocess.CompletedProcess) -> str:
    """The one ``selected ...`` line a dry run's summary prints."""
    lines = [line for line in done.stdout.splitlines() if line.startswith("selected ")]
    assert len(lines) == 1, (done.stdout, done.stderr)
    return lines[0]
