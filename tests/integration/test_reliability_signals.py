"""Interruption: SIGINT/SIGTERM to `flepimop sync` stops every child tool, leaves no process
behind (locally or on the ssh host), exits 130/143, and the same command run again completes.

Transfers are slowed down (a rate-limiting relay around the test bed's ssh; the aws CLI's own
``s3.max_bandwidth``) so that the signal always lands half-way through.  Children are found by a
unique marker: in their environment (inherited from flepimop) and in the target path (which
also appears on the command line of the remote ``rsync --server``).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from helpers import (
    MARK_VAR,
    assert_no_truncated_final,
    aws_throttle_config,
    cli_running,
    kill_marked,
    make_big_tree,
    marked_pids,
    new_mark,
    put_random_objects,
    received_bytes,
    s3_digests,
    throttled_rsh,
    tree_digest,
    wait_gone,
    write_config,
)

pytestmark = pytest.mark.integration

SIGNALS = [pytest.param(signal.SIGINT, 130, id="SIGINT"), pytest.param(signal.SIGTERM, 143, id="SIGTERM")]
SIGINT_ONLY = [SIGNALS[0]]
SIGTERM_ONLY = [SIGNALS[1]]


def _slow_ssh_env(sshd, tmp_path, marker):
    """The test sshd's env with rsync's remote shell through a 1 MB/s relay, children marked."""
    return dict(sshd.env, RSYNC_RSH=throttled_rsh(tmp_path, sshd.rsh, rate=1_000_000), **{MARK_VAR: marker})


def _slow_s3_env(s3, tmp_path, marker):
    """The S3 server's env with the aws CLI held to 1 MB/s, children marked."""
    return dict(s3.env, AWS_CONFIG_FILE=str(aws_throttle_config(tmp_path, "1MB/s")), **{MARK_VAR: marker})


def _interrupt(args, env, marker, started, signum, expected_code):
    """Run the CLI, wait for ``started()`` (children running, data flowing), signal it, check the end."""
    try:
        with cli_running(args, env, started, what="the transfer to start") as proc:
            children = marked_pids(marker, exclude=[proc.pid])
            assert any("rsync" in c or "aws" in c for c in children.values()), children
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == expected_code, (proc.returncode, out, err)
        assert "interrupted" in err and signal.Signals(signum).name in err, err
        assert "Traceback" not in err, err
        left = wait_gone(marker, timeout=10)
        assert not left, f"processes left behind after {signal.Signals(signum).name}: {left}"
        return out, err
    finally:
        kill_marked(marker)


@pytest.mark.parametrize("signum,code", SIGINT_ONLY)
def test_signal_during_rsync_push_over_ssh(sshd, run_cli, tmp_path, signum, code):
    marker = new_mark()
    src = tmp_path / "src"
    digests = make_big_tree(src, count=8, size=1024 * 1024)
    remote_dir = tmp_path / marker / "dst"  # the marker is on the remote rsync's command line
    remote_dir.mkdir(parents=True)
    cfg = write_config(tmp_path / "c.yml", {"push": {"type": "rsync", "source": f"{src}/",
                                                     "target": f"{sshd.alias}:{remote_dir}/"}})
    env = _slow_ssh_env(sshd, tmp_path, marker)
    _interrupt(["sync", cfg], env, marker, lambda: received_bytes(remote_dir) > 200_000, signum, code)
    assert tree_digest(src) == digests, "the source changed"
    assert_no_truncated_final(remote_dir, digests)
    assert set(tree_digest(remote_dir)) <= set(digests), sorted(tree_digest(remote_dir))  # no temp debris
    # The same command completes, and every file matches the source.
    again = run_cli(["sync", cfg], env=sshd.env)
    assert again.returncode == 0, again.stderr
    assert tree_digest(remote_dir) == digests


@pytest.mark.parametrize("signum,code", SIGTERM_ONLY)
def test_signal_during_rsync_pull_over_ssh(sshd, run_cli, tmp_path, signum, code):
    marker = new_mark()
    remote_src = tmp_path / marker / "src"
    digests = make_big_tree(remote_src, count=8, size=1024 * 1024)
    local = tmp_path / "local"
    local.mkdir()
    cfg = write_config(tmp_path / "c.yml", {"pull": {"type": "rsync", "source": f"{sshd.alias}:{remote_src}/",
                                                     "target": f"{local}/"}})
    env = _slow_ssh_env(sshd, tmp_path, marker)
    _interrupt(["sync", cfg], env, marker, lambda: received_bytes(local) > 200_000, signum, code)
    assert_no_truncated_final(local, digests)
    assert set(tree_digest(local)) <= set(digests), sorted(tree_digest(local))  # no temp debris
    again = run_cli(["sync", cfg], env=sshd.env)
    assert again.returncode == 0, again.stderr
    assert tree_digest(local) == digests
    assert tree_digest(remote_src) == digests


@pytest.mark.parametrize("signum,code", SIGTERM_ONLY)
def test_signal_during_s3_upload(s3, run_cli, tmp_path, signum, code):
    marker = new_mark()
    src = tmp_path / marker / "src"
    digests = make_big_tree(src, count=6, size=1024 * 1024)
    bucket = s3.make_bucket()
    cfg = write_config(tmp_path / "c.yml", {"up": {"type": "s3sync", "source": f"{src}/",
                                                   "target": f"s3://{bucket}/run/"}})
    env = _slow_s3_env(s3, tmp_path, marker)
    _interrupt(["sync", cfg], env, marker,
               lambda: s3.list(bucket) or len(marked_pids(marker)) > 1 and _aws_running(marker), signum, code)
    for key, size in s3.list(bucket).items():  # what landed is whole
        rel = key[len("run/"):]
        assert rel in digests and size == 1024 * 1024, (key, size)
    again = run_cli(["sync", cfg], env=s3.env)
    assert again.returncode == 0, again.stderr
    assert s3_digests(s3, bucket, "") == {f"run/{rel}": digest for rel, digest in digests.items()}


def _aws_running(marker: str) -> bool:
    import time

    procs = marked_pids(marker)
    if any("aws" in cmd and "sync" in cmd for cmd in procs.values()):
        time.sleep(1.5)  # let the upload get going (aws starts in ~0.5 s)
        return True
    return False


@pytest.mark.parametrize("signum,code", [*SIGNALS, pytest.param(signal.SIGHUP, 129, id="SIGHUP")])
def test_signal_during_s3_download(s3, run_cli, tmp_path, signum, code):
    marker = new_mark()
    bucket = s3.make_bucket()
    digests = put_random_objects(s3, bucket, "run/", count=6, size=1024 * 1024)
    local = tmp_path / marker / "local"
    local.mkdir(parents=True)
    cfg = write_config(tmp_path / "c.yml", {"down": {"type": "s3sync", "source": f"s3://{bucket}/run/",
                                                     "target": f"{local}/"}})
    env = _slow_s3_env(s3, tmp_path, marker)
    _interrupt(["sync", cfg], env, marker, lambda: received_bytes(local) > 100_000, signum, code)
    assert not wait_gone(marker, timeout=5)
    assert_no_truncated_final(local, digests)
    # aws downloads to 'name.XXXXXXXX' and renames: an interrupted run must not leave those
    # temps behind (a later push of this directory would upload them).
    assert set(tree_digest(local)) <= set(digests), sorted(tree_digest(local))
    again = run_cli(["sync", cfg], env=s3.env)
    assert again.returncode == 0, again.stderr
    assert tree_digest(local) == digests


# ----------------------------------------------------------------------------------------------
# SIGHUP (the terminal or the ssh session closed) is an interruption like SIGINT/SIGTERM: every
# child stops, locally and on the ssh host, exit 129, and a rerun completes (for S3:
# test_signal_during_s3_download[SIGHUP] above).  A SIGKILLed
# flepimop-sync (no handler can run) still leaves nothing running: its children get
# PR_SET_PDEATHSIG.  Processes are found (helpers.marked_pids, psutil) by the marker in their
# environment (local children) or command line (the remote ``rsync --server`` names the marked
# target path).

@pytest.mark.parametrize("direction", ["push", "pull"])
@pytest.mark.parametrize("how", ["SIGHUP", "SIGKILL"])
def test_hangup_or_kill_during_rsync_over_ssh_leaves_nothing_running(sshd, run_cli, tmp_path, direction, how):
    marker = new_mark()
    here = tmp_path / "here"
    there = tmp_path / marker / "there"  # the marker is on the remote rsync's command line
    src, dst = (here, there) if direction == "push" else (there, here)
    digests = make_big_tree(src, count=8, size=1024 * 1024)
    dst.mkdir(parents=True)
    remote_end = f"{sshd.alias}:{there}/"
    ends = ({"source": f"{here}/", "target": remote_end} if direction == "push"
            else {"source": remote_end, "target": f"{here}/"})
    cfg = write_config(tmp_path / "c.yml", {"p": {"type": "rsync", **ends}})
    env = _slow_ssh_env(sshd, tmp_path, marker)
    try:
        with cli_running(["sync", cfg], env, lambda: received_bytes(dst) > 200_000,
                         what="the transfer to start") as proc:
            running = marked_pids(marker, exclude=[proc.pid])
            assert any("rsync" in c and "--server" in c for c in running.values()), running  # the remote rsync
            proc.send_signal(getattr(signal, how))
            out, err = proc.communicate(timeout=30)
        if how == "SIGHUP":
            assert proc.returncode == 129, (proc.returncode, out, err)
            assert "interrupted by SIGHUP" in err and "Traceback" not in err, err
        else:
            assert proc.returncode == -signal.SIGKILL
        left = wait_gone(marker, timeout=15)
        assert not left, f"processes left behind after {how} (local or remote rsync/ssh): {left}"
    finally:
        kill_marked(marker)
    assert_no_truncated_final(dst, digests)
    again = run_cli(["sync", cfg], env=sshd.env)
    assert again.returncode == 0, again.stderr
    assert tree_digest(dst) == digests


# -- a stop signal after the sync, while the wrapper still works on its receipt ---------------
# The transfer is done, but run_rule still starts processes: `rsync --version` for the receipt's
# tool versions, and the listing of the destination for its audit list.  A signal that lands
# there ends the run like any other (exit 128+n, `<receipt>.failed`, no receipt): taken as a
# failed probe or a missing audit list, it gave exit 0 and a receipt `status: ok` after
# Snakemake had declared the job failed.  The wrapper itself runs (Snakemake's `snakemake`
# object stood in for), so its exit status is checked too.

# A stand-in for rsync on PATH: once the file has arrived (the sync is done) the step named by
# STALL_AT stalls (marks that it started, then sleeps); everything else is the real rsync.
STALLING_RSYNC = r'''#!{python}
import os, sys, time
args = sys.argv[1:]
done = os.path.exists(os.environ["STALL_DONE"])
probe = args == ["--version"]
listing = bool(args) and args[0] == "-n" and "flepimop-sync-list-" in args[-1]
if done and {{"version": probe, "listing": listing}}[os.environ["STALL_AT"]]:
    open(os.environ["STALL_MARK"], "w").close()
    time.sleep(120)
os.execv({rsync!r}, [{rsync!r}, *args])
'''
# A remote shell that runs the remote command here (the destination is 'fakehost:...'), so the
# audit list is made by a process: the rsync listing of a remote end.
LOCAL_RSH = r'''import os, sys
os.execvp("sh", ["sh", "-c", " ".join(sys.argv[2:])])
'''
# run the wrapper as Snakemake does, with its `snakemake` object
RUN_WRAPPER = r'''import runpy, sys
from types import SimpleNamespace
class Named(list):
    def __init__(self, items=(), **named):
        super().__init__(items)
        self.__dict__.update(named)
        self._named = named
    def keys(self):
        return self._named.keys()
    def items(self):
        return self._named.items()
params, receipt, log, wrapper = eval(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
snakemake = SimpleNamespace(params=Named(**params), input=Named(), output=Named([receipt], receipt=receipt),
                            log=Named([log]))
runpy.run_path(wrapper, init_globals={"snakemake": snakemake}, run_name="__main__")
'''


@pytest.mark.parametrize("stall_at", ["version", "listing"], ids=["tool-version probe", "audit listing"])
@pytest.mark.parametrize("signum,code", SIGNALS)
def test_signal_while_the_receipt_is_made_fails_the_run(base_env, tmp_path, stall_at, signum, code):
    import shutil
    import subprocess
    import sys

    from helpers import REPO_ROOT, cli_env, wait_until

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "rsync"
    fake.write_text(STALLING_RSYNC.format(python=sys.executable, rsync=shutil.which("rsync")))
    fake.chmod(0o755)
    (tmp_path / "rsh.py").write_text(LOCAL_RSH)
    (tmp_path / "run_wrapper.py").write_text(RUN_WRAPPER)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.bin").write_bytes(b"x" * 1000)
    config = write_config(tmp_path / "c.yml", {"p": {
        "type": "rsync", "source": f"{tmp_path}/src/", "target": f"fakehost:{tmp_path}/dst/", "mkpath": True,
        "rsh": f"{sys.executable} {tmp_path / 'rsh.py'}"}})
    marker, mark = new_mark(), tmp_path / "stalled"
    env = cli_env(base_env, PATH=f"{bin_dir}:{base_env['PATH']}", STALL_AT=stall_at, STALL_MARK=str(mark),
                  STALL_DONE=str(tmp_path / "dst" / "f.bin"), **{MARK_VAR: marker})
    receipt = tmp_path / "receipts" / "p.json"
    params = {"config_files": [str(config)], "protocol": "p"}
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "run_wrapper.py"), repr(params), str(receipt), str(tmp_path / "p.log"),
         str(REPO_ROOT / "workflow" / "wrappers" / "flepimop-sync" / "wrapper.py")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: proc.poll() is not None or mark.exists(), 60, f"the {stall_at} step after the sync")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        # promptly: the stalled step is stopped (SIGINT, then SIGTERM after 8 s at worst) and no
        # new process is started after the stop (the failure receipt asked `--version` of every
        # tool: another stalled probe held the stop for its 20 s timeout)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == code, (proc.returncode, out, err)
        assert not receipt.exists(), receipt.read_text()  # Snakemake must not take it as done
        failed = json.loads(Path(f"{receipt}.failed").read_text())
        assert (failed["status"], failed["exit_code"]) == ("failed", code), failed
        assert set(failed["tool_versions"]) == {"flepimop-sync", "python"}, failed  # nothing probed after the stop
        assert signal.Signals(signum).name in failed["error"] and signal.Signals(signum).name in err, (failed, err)
        assert "Traceback" not in err, err
        assert not wait_gone(marker, timeout=10, exclude=[proc.pid]), "the stalled step was left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_marked(marker)
