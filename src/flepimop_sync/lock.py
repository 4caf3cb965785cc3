"""Destination locks: one writer per real destination on this machine, whatever its spelling.

A destination is reduced to a canonical place before it is locked:

- local: ``os.path.realpath`` (relative, ``./``, ``..``, trailing slash and symlinked
  directories all become one path);
- remote ``[user@]host:path``: the ssh alias is resolved with ``ssh -G`` (the same ssh and
  options the protocol's rsh uses, run through the runner; it prints the configuration and
  connects nowhere) into hostname, port and user; an absolute path is normalised, a relative one
  is taken below that user's home; a loopback host with an absolute path is this machine's path;
- s3: the endpoint, the bucket and the key prefix split on '/' (empty segments dropped).

Nested destinations overlap (a ``--delete`` run on ``T/`` removes what a run on ``T/sub/`` writes),
so a run takes an exclusive ``flock`` on its canonical place and a shared one on each ancestor:
two runs on the same place, or on a place and one below it, cannot both hold their locks; runs on
siblings can.  The second run refuses at once (``SafetyHalt``, exit 1) naming the holder.

Lock files live in ``$FLEPIMOP_SYNC_LOCK_DIR`` (else ``$XDG_RUNTIME_DIR``, else /tmp), in a
per-user subdirectory.  ``flock`` locks die with the last process holding the descriptor: the
runner passes them to every child (``Runner.inheriting``), so the lock stays held while any
writer lives, and is released when the last one exits -- also after a SIGKILL of flepimop-sync.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import posixpath
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .endpoints import End, EndKind
from .errors import SafetyHalt, StepFailed, UsageError
from .report import now_iso

if TYPE_CHECKING:  # pragma: no cover
    from .config import Protocol
    from .runner import Runner

_LOOPBACK = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}


def lock_dir() -> Path:
    base = os.environ.get("FLEPIMOP_SYNC_LOCK_DIR") or os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"flepimop-sync-locks-{os.getuid()}"


def _segments(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part and part != ".")


def ssh_identity(host: str, rsh: str | None, runner: "Runner | None") -> tuple[str, str, str]:
    """(user, hostname, port) that ``ssh`` would connect to for ``[user@]host``.

    Asked of ``ssh -G`` with the ssh words of the remote shell (so ``-F config``, ``-p``, ``-l``
    count); without a runner, or when the remote shell is not ssh, the host as written.
    """
    user, _, name = host.rpartition("@")
    written = (user, name, "")
    if runner is None:
        return written
    try:
        words = shlex.split(rsh) if rsh else ["ssh"]
    except ValueError:
        return written
    start = next((i for i, w in enumerate(words) if os.path.basename(w) == "ssh"), None)
    if start is None or runner.which(words[start]) is None:
        return written
    argv = [*words[start:], "-G", "--", host]
    try:
        done = runner.run(argv)
    except StepFailed:
        return written
    if done.returncode != 0:
        return written
    seen: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in ("user", "hostname", "port") and key not in seen:
            seen[key] = value.strip()
    return (seen.get("user", user), seen.get("hostname", name).lower(), seen.get("port", ""))


def canonical_place(end: End, protocol: "Protocol | None" = None, runner: "Runner | None" = None) -> tuple[str, ...]:
    """The destination as (kind, authority, *path segments): equal for every spelling of one place,
    and a prefix of the place of anything below it."""
    if end.kind == EndKind.LOCAL:
        return (EndKind.LOCAL, "", *_segments(os.path.realpath(end.path or ".")))
    if end.kind == EndKind.REMOTE:
        env_rsh = runner.base_env.get("RSYNC_RSH") if runner is not None else None
        rsh = (protocol.settings.rsh if protocol is not None else None) or env_rsh
        user, hostname, port = ssh_identity(end.host, rsh, runner)
        path = end.path or "."
        if path.startswith("~"):  # '~/x' and '~user/x' are relative to a home directory
            head, _, rest = path.partition("/")
            user, path = (head[1:] or user), rest or "."
        if path.startswith("/"):
            if hostname in _LOOPBACK:
                return (EndKind.LOCAL, "", *_segments(os.path.realpath(posixpath.normpath(path))))
            return (EndKind.REMOTE, f"{hostname}:{port}", *_segments(posixpath.normpath(path)))
        return (EndKind.REMOTE, f"{hostname}:{port}", f"~{user}", *_segments(posixpath.normpath(path)))
    endpoint = ""
    if protocol is not None and protocol.settings.endpoint_url:
        endpoint = str(protocol.settings.endpoint_url)
    elif runner is not None:
        endpoint = runner.base_env.get("AWS_ENDPOINT_URL_S3") or runner.base_env.get("AWS_ENDPOINT_URL") or ""
    endpoint = endpoint.rpartition("@")[2] if "://" not in endpoint else endpoint.split("://", 1)[1].rpartition("@")[2]
    return (EndKind.S3, endpoint.rstrip("/").lower(), *_segments(end.path))


def _describe(place: Sequence[str]) -> str:
    kind, authority, *parts = place
    path = "/".join(parts)
    if kind == EndKind.LOCAL:
        return "/" + path
    if kind == EndKind.REMOTE:
        return f"{authority}:{path if parts and parts[0].startswith('~') else '/' + path}"
    return f"s3://{path}" + (f" at {authority}" if authority else "")


class DestinationLock:
    """One writer per destination (and none below or above it) on this machine.

    ``DestinationLock(end)`` locks the canonical place of ``end``; pass ``protocol`` and
    ``runner`` to resolve remote aliases and S3 endpoints (see ``canonical_place``).
    """

    def __init__(self, destination: End, protocol: "Protocol | None" = None, runner: "Runner | None" = None):
        self.place = canonical_place(destination, protocol, runner)
        self.key = _describe(self.place)
        self.directory = lock_dir()
        self.path = self._file(self.place)
        self._fds: list[int] = []

    def _file(self, place: Sequence[str]) -> Path:
        digest = hashlib.sha256("\0".join(place).encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return self.directory / f"{digest}.lock"

    def _make_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            variable = next((v for v in ("FLEPIMOP_SYNC_LOCK_DIR", "XDG_RUNTIME_DIR") if os.environ.get(v)), None)
            where = f" (from ${variable})" if variable else ""
            error = UsageError if variable else StepFailed
            raise error(f"cannot use lock directory {str(self.directory)!r}{where}: {exc.strerror or exc}; "
                        "set FLEPIMOP_SYNC_LOCK_DIR to a writable directory") from None

    def __enter__(self) -> "DestinationLock":
        self._make_directory()
        kind, authority, *parts = self.place
        # ancestors first, shared; the place itself last, exclusive
        ancestors = [(kind, authority, *parts[:n]) for n in range(len(parts))]
        try:
            for place, mode in [*((a, fcntl.LOCK_SH) for a in ancestors), (self.place, fcntl.LOCK_EX)]:
                self._take(place, mode)
        except BaseException:
            self._release()
            raise
        return self

    def _take(self, place: Sequence[str], mode: int) -> None:
        path = self._file(place)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StepFailed(f"cannot open lock file {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip().split("\n")[0]
            os.close(fd)
            raise SafetyHalt(
                f"another flepimop sync is writing to {self.key!r}"
                + ("" if tuple(place) == tuple(self.place) else f" or a place overlapping it ({_describe(place)!r})")
                + f" ({holder or 'unknown process'}); lock {path} is held, try again when it finishes"
            ) from None
        self._fds.append(fd)
        note = f"pid {os.getpid()} since {now_iso()}, writing to {self.key}"
        if mode == fcntl.LOCK_EX:
            os.ftruncate(fd, 0)
        # (shared: several runs may hold it; the last one's note is the one a refused run sees)
        os.pwrite(fd, (note + "\n").encode("utf-8", "replace"), 0)

    @property
    def fds(self) -> tuple[int, ...]:
        return tuple(self._fds)

    def _release(self) -> None:
        for fd in reversed(self._fds):
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._fds = []

    def __exit__(self, *exc: Any) -> None:
        self._release()


__all__ = ["DestinationLock", "canonical_place", "lock_dir", "ssh_identity"]
