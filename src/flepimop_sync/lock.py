"""Destination locks: one writer per real destination on this machine, whatever its spelling.

A destination is reduced to a canonical place before it is locked:

- local: ``os.path.realpath`` (relative, ``./``, ``..``, trailing slash and symlinked
  directories all become one path);
- remote ``[user@]host:path``: the ssh alias is resolved with ``ssh -G`` (the same ssh and
  options the protocol's rsh uses, run through the runner; it prints the configuration and
  connects nowhere, ~10 ms) into hostname, port and user; ``~/x`` and ``~user/x`` are below that
  user's (or the named user's) home, as a relative path is;
- a host that is this machine (``is_this_machine``: a loopback name or address, whatever the
  port or alias) names this machine's files: a relative or ``~`` path is put below the user's home
  from the local password database (sshd starts the session there), and the whole path is
  resolved as a local one (``realpath``);
- another host: an absolute path is normalised (no symlinks resolved: that would take a
  connection per run); a relative one is ``~user/path`` at hostname:port;
- s3: the endpoint (no scheme, userinfo, trailing slash or default port), the bucket and the key
  prefix split on '/' (empty segments dropped).

The home of another host is not known without asking it, yet ``host:run`` and
``host:/home/u/run`` are one directory.  A run writing below such a home (a relative or ``~``
destination) therefore locks the place under both spellings: ``~u/run`` and, with the home,
``/home/u/run`` (``remote_home``).  The home costs one ssh connection (``BatchMode``, never a
prompt; ~0.27 s to the test sshd on loopback, where a whole small rsync push takes ~0.33 s, and
more to a real cluster), so it is asked once per user and host and remembered in the lock
directory; runs with an absolute destination, dry runs (no lock) and hosts of this machine never
connect. A home that cannot be learnt (host unreachable, key login refused) leaves the ``~u``
spelling alone, as before, and is not asked again for a day (``HOME_RETRY_SECONDS``); a remembered
home that has since moved does too.  Not seen: two spellings of a directory
on another host through a symlink (``/home/u`` and ``/gpfs/u``), and an ssh alias of this
machine reached through its network name rather than a loopback name (both are refused by
nothing; the writes may interleave).  A loopback port forwarded to another machine (``HostName
localhost``, ``Port 2222``) is taken for this machine: locks and nesting checks then compare its
paths with local ones, which may refuse a run that was safe, never let one through.

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
import ipaddress
import os
import pwd
import re
import posixpath
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .endpoints import End, EndKind
from .errors import SafetyHalt, StepFailed, UsageError
from .report import now_iso

if TYPE_CHECKING:  # pragma: no cover
    from .config import Protocol
    from .runner import Runner

_LOOPBACK = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")  # a user name safe to hand a remote shell as ~user
HOME_TIMEOUT = 30.0  # seconds for the one connection that learns a remote home
HOME_RETRY_SECONDS = 24 * 3600  # a home that could not be learnt is asked again after this


def is_this_machine(hostname: str) -> bool:
    """Is ``hostname`` (as ``ssh -G`` prints it) this machine?  A loopback name or address
    (127.0.0.0/8, ::1): no lookup, no DNS.  (The machine's own name on the network is not
    recognised: telling it from another node's would need a lookup.)"""
    if hostname.lower() in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def _local_home(user: str) -> str | None:
    """The home sshd on this machine starts ``user``'s session in (its password database entry);
    ssh's default user (``""``) is this process's user."""
    try:
        return (pwd.getpwnam(user) if user else pwd.getpwuid(os.getuid())).pw_dir or None
    except KeyError:
        return None


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
    words = _ssh_words(rsh, runner)
    if words is None:
        return written
    argv = [*words, "-G", "--", host]
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


def _rsh(protocol: "Protocol | None", runner: "Runner | None") -> str | None:
    """The remote shell rsync would use: the protocol's ``rsh``, else ``$RSYNC_RSH``."""
    env_rsh = runner.base_env.get("RSYNC_RSH") if runner is not None else None
    return (protocol.settings.rsh if protocol is not None else None) or env_rsh


def _ssh_words(rsh: str | None, runner: "Runner") -> list[str] | None:
    try:
        words = shlex.split(rsh) if rsh else ["ssh"]
    except ValueError:
        return None
    start = next((i for i, w in enumerate(words) if os.path.basename(w) == "ssh"), None)
    if start is None or runner.which(words[start]) is None:
        return None
    return words[start:]


def remote_home(host: str, user: str, authority: str, rsh: str | None, runner: "Runner",
                directory: Path) -> str | None:
    """The home directory of ``user`` on ``[login@]host`` (``authority``: its hostname:port), as
    the remote shell expands ``~user``: read from ``directory`` when a run learnt it before, else
    asked over one ssh connection (``BatchMode``: it never prompts) and remembered there.  None
    when it cannot be learnt (no ssh, the host unreachable, an odd user name)."""
    if not _USER.match(user):
        return None
    digest = hashlib.sha256(f"{authority}\0{user}".encode("utf-8", "surrogateescape")).hexdigest()[:16]
    memo = directory / f"home-{digest}"
    try:
        known = memo.read_text(encoding="utf-8").strip()
        if known.startswith("/"):
            return known
        # a failed ask is not repeated for a day: a host that refuses key logins (BatchMode)
        # would otherwise see one more aborted login per run, which intrusion guards such as
        # fail2ban count against the user's address
        if time.time() - memo.stat().st_mtime < HOME_RETRY_SECONDS:
            return None
    except OSError:
        pass
    words = _ssh_words(rsh, runner)
    if words is None:
        return None
    try:
        done = runner.run([*words, "-o", "BatchMode=yes", "--", host, f"printf '%s\\n' ~{user}"],
                          timeout=HOME_TIMEOUT)
    except StepFailed:
        done = None
    lines = [line for line in done.stdout.splitlines() if line.strip()] if done is not None else []
    home = None
    if done is not None and done.returncode == 0 and lines and lines[-1].startswith("/"):
        home = posixpath.normpath(lines[-1].strip())
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = memo.with_name(f"{memo.name}.{os.getpid()}")
        partial.write_text((home or "?") + "\n", encoding="utf-8")
        os.replace(partial, memo)
    except OSError:
        pass  # remembered or not, this run locks both spellings (or, without a home, one)
    return home


def canonical_place(end: End, protocol: "Protocol | None" = None, runner: "Runner | None" = None) -> tuple[str, ...]:
    """The destination as (kind, authority, *path segments): equal for every spelling of one place,
    and a prefix of the place of anything below it."""
    if end.kind == EndKind.LOCAL:
        return (EndKind.LOCAL, "", *_segments(os.path.realpath(end.path or ".")))
    if end.kind == EndKind.REMOTE:
        user, hostname, port = ssh_identity(end.host, _rsh(protocol, runner), runner)
        path = end.path or "."
        if path.startswith("~"):  # '~/x' and '~user/x' are relative to a home directory
            head, _, rest = path.partition("/")
            user, path = (head[1:] or user), rest or "."
        here = is_this_machine(hostname)
        if here and not path.startswith("/"):  # below a home of this machine: its password database knows it
            home = _local_home(user)
            if home:
                path = home.rstrip("/") + "/" + path
        if path.startswith("/"):
            if here:
                return (EndKind.LOCAL, "", *_segments(os.path.realpath(posixpath.normpath(path))))
            return (EndKind.REMOTE, f"{hostname}:{port}", *_segments(posixpath.normpath(path)))
        return (EndKind.REMOTE, f"{hostname}:{port}", f"~{user}", *_segments(posixpath.normpath(path)))
    endpoint = ""
    if protocol is not None and protocol.settings.endpoint_url:
        endpoint = str(protocol.settings.endpoint_url)
    elif runner is not None:
        endpoint = runner.base_env.get("AWS_ENDPOINT_URL_S3") or runner.base_env.get("AWS_ENDPOINT_URL") or ""
    return (EndKind.S3, _endpoint_authority(endpoint), *_segments(end.path))


def _endpoint_authority(endpoint: str) -> str:
    """``[scheme://][userinfo@]host[:port][/path]`` as one spelling: no scheme, no userinfo, no
    trailing '/', lower case, and no port that is the scheme's default (':443' for https or no
    scheme, ':80' for http)."""
    scheme, sep, rest = endpoint.partition("://")
    scheme, rest = (scheme.lower(), rest) if sep else ("", endpoint)
    rest = rest.rpartition("@")[2].rstrip("/").lower()
    netloc, slash, path = rest.partition("/")
    default = {"https": ":443", "": ":443", "http": ":80"}.get(scheme)
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return netloc + slash + path


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
    ``runner`` to resolve remote aliases and S3 endpoints (see ``canonical_place``), and to lock
    a path below the home of another machine under its absolute spelling too (``remote_home``).
    """

    def __init__(self, destination: End, protocol: "Protocol | None" = None, runner: "Runner | None" = None):
        self.place = canonical_place(destination, protocol, runner)
        self.key = _describe(self.place)
        self.directory = lock_dir()
        self.path = self._file(self.place)
        self.places = [self.place]  # every spelling locked: the canonical one first
        absolute = self._absolute_spelling(destination, protocol, runner)
        if absolute is not None and absolute != self.place:
            self.places.append(absolute)
        self._fds: list[int] = []

    def _absolute_spelling(self, destination: End, protocol: "Protocol | None",
                           runner: "Runner | None") -> tuple[str, ...] | None:
        """A place below a remote home (``host:run``, ``host:~/run``) spelled from '/', so that a
        run writing to ``host:/home/u/run`` is refused: the home is asked of the host once
        (``remote_home``) and remembered in the lock directory."""
        kind, authority, *parts = self.place
        if kind != EndKind.REMOTE or not parts or not parts[0].startswith("~") or runner is None:
            return None
        home = remote_home(destination.host, parts[0][1:], authority, _rsh(protocol, runner), runner, self.directory)
        if home is None:
            return None
        return (EndKind.REMOTE, authority, *_segments(posixpath.normpath("/".join([home, *parts[1:]]))))

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
        # for each spelling: its ancestors first, shared; the place itself last, exclusive (a
        # lock file is opened once: two spellings share their first levels)
        wanted: dict[tuple[str, ...], int] = {}
        for kind, authority, *parts in self.places:
            for n in range(len(parts)):
                wanted.setdefault((kind, authority, *parts[:n]), fcntl.LOCK_SH)
            wanted[(kind, authority, *parts)] = fcntl.LOCK_EX
        try:
            for place, mode in wanted.items():
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


__all__ = ["DestinationLock", "canonical_place", "is_this_machine", "lock_dir", "remote_home", "ssh_identity"]
