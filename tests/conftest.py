"""Session fixtures for the test bed: real sshd, S3, git and SLURM, all on 127.0.0.1.

Each pytest-xdist worker starts its own servers (lazily, on first use) on kernel-chosen free
ports under its own tmp_path_factory directory, and stops them by PID at session end.
The server classes live in tests/testbed.py (usable without pytest, e.g. by benchmarks).

Fixtures:
  base_env   dict: os.environ copy isolated from the machine's git/AWS/SLURM/proxy settings.
  sshd       testbed.SSHServer: .alias "hpc", .ssh_config, .rsh, .env, .port, .run(), .stop(), .start()
  s3         testbed.S3Server: .endpoint, .env, .make_bucket(), .list(), .get(), .put(), .stop(), .start()
  moto       the same on moto's server (skips without moto): keys rclone serve s3 cannot store
  git_env    testbed.GitHelper: .make_repo(), .bare_remote(), .clone(), .commit(), .git(), .env
  slurm      testbed.SlurmCluster: .env, .bin_dir, .conf, .run(); skips if SLURM is not installed
  hpc_slurm  testbed.SSHServer whose remote sessions have SLURM_CONF + the wrappers on PATH
  run_cli    function(args, env=None, cwd=None, input=None, timeout=300) -> CompletedProcess
             for ``python -m flepimop_sync``

A server a test stopped (fault injection) is started again after that test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import testbed
from testbed import (
    GitHelper,
    S3Server,
    SlurmCluster,
    SSHServer,
    isolated_env,
    slurm_available,
)

from gempyor_fixtures import gempyor_client, gempyor_examples  # noqa: F401 - real flepiMoP client

REPO_ROOT = Path(__file__).resolve().parent.parent
_STARTED: list = []  # session servers of this worker, healed after each test
_PROC_ENV_DIR: str | None = None


def pytest_configure(config):
    """Isolate the pytest process itself, so in-process code can never reach real AWS/git config.

    Every fixture env is derived from this too.  No AWS endpoint is set here.
    """
    global _PROC_ENV_DIR
    if _PROC_ENV_DIR is None:
        _PROC_ENV_DIR = tempfile.mkdtemp(prefix="flepimop-testenv-")
        isolated = isolated_env(Path(_PROC_ENV_DIR))
        for key in list(os.environ):
            if key not in isolated:
                del os.environ[key]
        os.environ.update(isolated)


def pytest_collection_modifyitems(config, items):
    """Under xdist, the long tests first (tests/slow_first.py): both workers finish together."""
    if hasattr(config, "workerinput"):  # an xdist worker: its order is the order tests are handed out
        from slow_first import slow_first

        items[:] = slow_first(items)


def pytest_unconfigure(config):
    global _PROC_ENV_DIR
    if _PROC_ENV_DIR:
        shutil.rmtree(_PROC_ENV_DIR, ignore_errors=True)
        _PROC_ENV_DIR = None


@pytest.fixture(scope="session")
def testbed_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("testbed")


@pytest.fixture(scope="session")
def base_env(testbed_root) -> dict[str, str]:
    """Shared by the whole session: ``dict(base_env)`` before mutating it."""
    return isolated_env(testbed_root / "env")


def _serve(server):
    """Start a session server, let _heal_servers restart it after fault tests, stop it at the end."""
    server.start()
    _STARTED.append(server)
    yield server
    _STARTED.remove(server)
    server.stop()


@pytest.fixture(scope="session")
def sshd(testbed_root, base_env):
    yield from _serve(SSHServer(testbed_root / "ssh", base_env))


@pytest.fixture(scope="session")
def s3(testbed_root, base_env):
    yield from _serve(S3Server(testbed_root / "s3", base_env))


@pytest.fixture(scope="session")
def moto(testbed_root, base_env):
    """A moto S3 server (the ``s3`` fixture is rclone's): for what only moto stores or answers as
    AWS does (keys with empty or dot parts, error bodies).  Skips when moto is not installed."""
    server = S3Server(testbed_root / "moto", base_env, backend="moto")
    try:
        server.start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def git_env(base_env) -> GitHelper:
    return GitHelper(base_env)


@pytest.fixture(scope="session")
def slurm(testbed_root, base_env):
    reason = slurm_available()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(testbed_root / "slurm", base_env)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def hpc_slurm(testbed_root, base_env, slurm):
    """A second sshd (alias "hpc" in its own .ssh_config) whose sessions see the SLURM cluster:
    SLURM_CONF and the wrapper dir on PATH, so ``hpc_slurm.run(["sbatch", ...])`` works."""
    yield from _serve(SSHServer(testbed_root / "ssh-slurm", base_env,
                                set_env={"SLURM_CONF": str(slurm.conf), "PATH": slurm.env["PATH"]}))


@pytest.fixture(autouse=True)
def _heal_servers():
    """Restart any session server a fault-injection test left stopped."""
    yield
    for server in list(_STARTED):
        if not server.running():
            server.start()


def _run_cli(args, env=None, cwd=None, input=None, timeout=300, base=None):
    env = dict(env if env is not None else base)
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run(
        [sys.executable, "-m", "flepimop_sync", *map(str, args)],
        env=env, cwd=cwd, input=input, text=True, capture_output=True, timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def run_cli(base_env):
    """run_cli(args, env=None, cwd=None, input=None, timeout=300) -> CompletedProcess (text)."""

    def run(args, env=None, cwd=None, input=None, timeout=300):
        return _run_cli(args, env=env, cwd=cwd, input=input, timeout=timeout, base=base_env)

    return run


__all__ = ["testbed"]
