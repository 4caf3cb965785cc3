"""Concurrency: two runs writing to one target never interleave.

The first run holds a lock on its destination (``$FLEPIMOP_SYNC_LOCK_DIR``) while its steps run;
a second run of the same protocol -- or of another protocol, or another spelling of the same
place -- refuses at once with exit 1 and a message naming the lock, and writes nothing.  The
first run then completes normally, and the lock is free again afterwards (also after a run was
killed: flock locks die with their process).
"""

from __future__ import annotations

import os

import pytest

from helpers import (
    MARK_VAR,
    aws_throttle_config,
    cli_running,
    kill_marked,
    make_big_tree,
    marked_pids,
    new_mark,
    paused,
    received_bytes,
    s3_digests,
    start_cli,
    throttled_rsh,
    tree_digest,
    wait_gone,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration


def _refused(done, lock_dir):
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: another flepimop sync is writing to"), line
    assert f"lock {lock_dir}" in line and ".lock is held" in line, line
    assert "pid " in line, line  # names the holder
    return line


@pytest.fixture
def slow_pull(sshd, tmp_path):
    """A slow rsync pull from hpc into tmp/local (20 x 256 KiB through a 1 MB/s relay: long enough
    for a second CLI to start on a loaded machine)."""
    remote = tmp_path / "remote"
    digests = make_big_tree(remote, count=20, size=256 * 1024)
    local = tmp_path / "local"
    local.mkdir()
    return remote, local, digests, *_lock_envs(sshd, tmp_path)


def _lock_envs(sshd, tmp_path):
    """(lock dir, sshd env using it, the same env through a 1 MB/s relay for the slow first run,
    which runs at full speed after ``_full_speed(tmp_path)``)."""
    lock_dir = tmp_path / "locks"
    env = dict(sshd.env, FLEPIMOP_SYNC_LOCK_DIR=str(lock_dir))
    return lock_dir, env, dict(env, RSYNC_RSH=throttled_rsh(tmp_path, sshd.rsh, rate=1_000_000,
                                                             release=_release_file(tmp_path)))


def _release_file(tmp_path):
    return tmp_path / "throttle-released"


def _full_speed(tmp_path):
    """The second runs are done: the slow first run need not stay slow to the end."""
    _release_file(tmp_path).touch()


def _clobbering_source(root):
    """A source whose one file has the name of one of the first run's files: ``root/``."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "part000.bin").write_bytes(b"would clobber the first run's file")
    return root


def test_second_run_of_same_protocol_refuses_naming_the_lock(slow_pull, sshd, run_cli, tmp_path):
    remote, local, digests, lock_dir, env, slow_env = slow_pull
    cfg = write_config(tmp_path / "c.yml", {"pull": {"type": "rsync", "source": f"{sshd.alias}:{remote}/",
                                                     "target": f"{local}/"}})
    with cli_running(["sync", cfg], slow_env, lambda: received_bytes(local) > 300_000) as first:
        with paused(first):
            before = tree_digest(local)
            second = run_cli(["sync", cfg], env=env)
            _refused(second, lock_dir)
            # a dry run writes nothing, so it does not need the lock
            dry = run_cli(["sync", "-n", cfg], env=env)
            assert dry.returncode == 0, dry.stderr
        _full_speed(tmp_path)
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert tree_digest(local) == digests
    assert set(before) <= set(digests) | {p for p in before if "/." in "/" + p}
    # the lock is free again
    third = run_cli(["sync", cfg], env=env)
    assert third.returncode == 0, third.stderr


def test_other_spelling_or_protocol_for_the_same_target_refuses(slow_pull, sshd, run_cli, tmp_path):
    remote, local, digests, lock_dir, env, slow_env = slow_pull
    other_src = _clobbering_source(tmp_path / "other")
    cfg = write_config(tmp_path / "c.yml", {
        "pull": {"type": "rsync", "source": f"{sshd.alias}:{remote}/", "target": "local"},
        "same_place": {"type": "rsync", "source": f"{other_src}/", "target": f"{tmp_path}/x/../local/"},
    })
    with cli_running(["sync", cfg], slow_env, lambda: received_bytes(local) > 300_000, cwd=tmp_path) as first:
        (tmp_path / "x").mkdir()
        with paused(first):
            second = run_cli(["sync", "-p", "same_place", cfg], env=env, cwd=tmp_path)
        _refused(second, lock_dir)
        _full_speed(tmp_path)
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert tree_digest(local) == digests


def test_s3_killed_run_leaves_no_writer_holding_the_lock(s3, run_cli, tmp_path):
    """SIGKILL of flepimop-sync (no handler runs): its aws child is not orphaned for ever -- it
    gets PR_SET_PDEATHSIG (SIGINT) and stops -- so the lock, which the child inherits (a second
    run refuses while the writer lives), is released and the same command then completes.

    (This replaced a test pinning the opposite: that the orphaned writer kept running.)
    """
    src = tmp_path / "src"
    digests = make_big_tree(src, count=6, size=1024 * 1024)
    bucket = s3.make_bucket()
    lock_dir = tmp_path / "locks"
    cfg = write_config(tmp_path / "c.yml", {
        "up": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/run"},
        "up2": {"type": "s3sync", "source": str(src) + "/", "target": f"s3://{bucket}/run/"},
        # a prefix below it ('//run/...', an empty key part, is refused outright since round 20)
        "nested": {"type": "s3sync", "source": str(src) + "/", "target": f"s3://{bucket}/run/data/"},
    })
    env = dict(s3.env)
    env["FLEPIMOP_SYNC_LOCK_DIR"] = str(lock_dir)
    marker = new_mark()
    slow = dict(env)
    slow["AWS_CONFIG_FILE"] = str(aws_throttle_config(tmp_path, "1MB/s"))
    slow[MARK_VAR] = marker
    first = start_cli(["sync", cfg], slow)
    try:
        wait_until(lambda: first.poll() is not None or any(
            "aws" in c for c in marked_pids(marker, exclude=[first.pid]).values()), 30, "aws to start")
        for protocol in ("up2", "nested"):  # another protocol, same prefix; a prefix below it
            _refused(run_cli(["sync", "-p", protocol, cfg], env=env), lock_dir)
        first.kill()  # SIGKILL: no handler runs
        first.wait()
        left = wait_gone(marker, timeout=20)
        assert not left, f"children outlived a SIGKILLed flepimop-sync: {left}"
        wait_until(lambda: not _held(lock_dir), 10, "the lock to be released")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        kill_marked(marker)
    again = run_cli(["sync", cfg], env=env)
    assert again.returncode == 0, again.stderr
    assert s3_digests(s3, bucket, "run/") == digests


def _held(lock_dir) -> bool:
    import fcntl

    for path in lock_dir.glob("*.lock"):
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return False


# ----------------------------------------------------------------------------------------------
# One lock per real destination: every spelling of a place, and places nested in one another,
# share one lock; siblings do not.  (lock.py: canonical place, exclusive on it, shared above it.)

def _second_config(tmp_path, sshd):
    """An ssh config with a second alias ("other") for the same test server."""
    text = sshd.ssh_config.read_text()
    other = tmp_path / "ssh_config_two_aliases"
    other.write_text(text + "\n" + text.replace(f"Host {sshd.alias}", "Host other", 1))
    return other


def _local_spellings(tmp_path, local):
    (tmp_path / "link").symlink_to(local, target_is_directory=True)
    (tmp_path / "x").mkdir(exist_ok=True)
    return [
        pytest.param(f"{local}/", id="absolute"),
        pytest.param("./local", id="dot-slash"),
        pytest.param("x/../local/", id="dot-dot"),
        pytest.param(f"{tmp_path}/link/", id="symlinked directory"),
        pytest.param(f"{local}/data/", id="nested below"),
        pytest.param(f"{tmp_path}/", id="parent above"),
        pytest.param(f"{tmp_path}/link/data/sub", id="nested through a symlink"),
    ]


LOCAL_SPELLINGS = ["absolute", "dot-slash", "dot-dot", "symlinked directory", "nested below", "parent above",
                   "nested through a symlink"]


@pytest.mark.parametrize("spelling", LOCAL_SPELLINGS)
def test_local_spellings_and_nested_destinations_share_one_lock(slow_pull, sshd, run_cli, tmp_path, spelling):
    remote, local, digests, lock_dir, env, slow_env = slow_pull
    target = {p.id: p.values[0] for p in _local_spellings(tmp_path, local)}[spelling]
    # beside tmp_path, not in it: a target above its own source is refused before any lock (issue 12)
    other_src = _clobbering_source(tmp_path.parent / f"{tmp_path.name}-other")
    cfg = write_config(tmp_path / "c.yml", {
        "pull": {"type": "rsync", "source": f"{sshd.alias}:{remote}/", "target": f"{local}/"},
        "second": {"type": "rsync", "source": f"{other_src}/", "target": target, "mkpath": True},
    })
    with cli_running(["sync", cfg], slow_env, lambda: received_bytes(local) > 300_000, cwd=tmp_path) as first:
        with paused(first):
            for extra in ([], ["--delete"]):
                second = run_cli(["sync", "-p", "second", *extra, cfg], env=env, cwd=tmp_path)
                _refused(second, lock_dir)
        _full_speed(tmp_path)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert tree_digest(local) == digests  # nothing of the second run landed


def test_sibling_destinations_do_not_block_each_other(slow_pull, sshd, run_cli, tmp_path):
    remote, local, digests, lock_dir, env, slow_env = slow_pull
    sibling = tmp_path / "sibling"
    other_src = tmp_path / "other"
    other_src.mkdir()
    (other_src / "f.txt").write_text("x")
    cfg = write_config(tmp_path / "c.yml", {
        "pull": {"type": "rsync", "source": f"{sshd.alias}:{remote}/", "target": f"{local}/"},
        "sibling": {"type": "rsync", "source": f"{other_src}/", "target": f"{sibling}/"},
    })
    with cli_running(["sync", cfg], slow_env, lambda: received_bytes(local) > 300_000) as first:
        second = run_cli(["sync", "-p", "sibling", cfg], env=env)
        assert second.returncode == 0, second.stderr
        _full_speed(tmp_path)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert (sibling / "f.txt").read_text() == "x"


REMOTE_SPELLINGS = ["alias", "user@alias", "other alias", "user@other alias", "trailing dot", "nested below",
                    "parent above", "below the home"]


@pytest.mark.parametrize("spelling", REMOTE_SPELLINGS)
def test_remote_spellings_and_nested_destinations_share_one_lock(sshd, run_cli, tmp_path, spelling):
    """A slow push to hpc:T/ holds the lock; a second push to the same directory spelled with a
    user, through another ssh alias of the same server, or nested in it, refuses."""
    src = tmp_path / "src"
    digests = make_big_tree(src, count=20, size=256 * 1024)
    remote = tmp_path / "remote"
    remote.mkdir()
    lock_dir, env, slow_env = _lock_envs(sshd, tmp_path)
    two_aliases = _second_config(tmp_path, sshd)
    target = {
        "alias": f"hpc:{remote}/", "user@alias": f"root@hpc:{remote}", "other alias": f"other:{remote}/",
        "user@other alias": f"root@other:{remote}//", "trailing dot": f"hpc:{remote}/./",
        "nested below": f"other:{remote}/data/deeper", "parent above": f"root@hpc:{tmp_path}/",
        "below the home": f"other:{os.path.relpath(remote, os.path.expanduser('~root'))}/",
    }[spelling]
    # beside tmp_path, not in it: 'parent above' would otherwise hold this source, a nesting
    # refused (exit 2) before the lock is asked
    other_src = _clobbering_source(tmp_path.parent / f"{tmp_path.name}-other_src")
    cfg = write_config(tmp_path / "c.yml", {
        "push": {"type": "rsync", "source": f"{src}/", "target": f"{sshd.alias}:{remote}/"},
        "second": {"type": "rsync", "source": f"{other_src}/", "target": target, "mkpath": True,
                   "rsh": f"ssh -F {two_aliases}"},
    })
    with cli_running(["sync", "-p", "push", cfg], slow_env, lambda: received_bytes(remote) > 300_000) as first:
        with paused(first):
            second = run_cli(["sync", "-p", "second", "--delete", cfg], env=env)
        _refused(second, lock_dir)
        _full_speed(tmp_path)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert tree_digest(remote) == digests


def test_canonical_place_resolves_ssh_aliases_without_connecting(sshd, tmp_path):
    """lock.canonical_place asks `ssh -G` (it prints the configuration and connects nowhere)."""
    from flepimop_sync.endpoints import parse_end
    from flepimop_sync.lock import canonical_place
    from flepimop_sync.report import Reporter
    from flepimop_sync.runner import Runner

    config = tmp_path / "ssh_config"
    config.write_text("Host alpha beta\n  HostName far.example.org\n  User alice\n  Port 2201\n"
                      "Host gamma\n  HostName far.example.org\n  User bob\n  Port 2201\n")
    env = dict(sshd.env)
    env["RSYNC_RSH"] = f"ssh -F {config}"
    with Runner(Reporter(), env=env) as runner:
        def place(text):
            return canonical_place(parse_end(text), None, runner)

        same = ["alpha:/data/run/", "beta:/data/run", "alice@beta:/data//run/.", "gamma:/data/run",
                "bob@alpha:/data/x/../run/"]
        assert len({place(t) for t in same}) == 1, {t: place(t) for t in same}
        # relative paths are below the login user's home: alice's and bob's differ
        assert place("alpha:run") == place("beta:./run") == place("alice@gamma:run")
        assert place("alpha:run") != place("gamma:run")
        assert place("alpha:run") == place("gamma:~alice/run")
        nested = place("beta:/data/run/sub")
        assert nested[:len(place("alpha:/data/run"))] == place("alpha:/data/run")
        assert place("s3://b/run") == place("s3://b/run/") == place("s3://b//run/")


def test_canonical_place_of_a_loopback_host_is_the_local_path(sshd, tmp_path):
    from flepimop_sync.endpoints import parse_end
    from flepimop_sync.lock import canonical_place
    from flepimop_sync.report import Reporter
    from flepimop_sync.runner import Runner

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with Runner(Reporter(), env=sshd.env) as runner:
        assert canonical_place(parse_end(f"{sshd.alias}:{tmp_path}/link/x"), None, runner) == \
            canonical_place(parse_end(f"{tmp_path}/real/x/"), None, runner)


# ----------------------------------------------------------------------------------------------
# A place below the login home, spelled relative to it or from '/': one lock (lock.py).  In
# process, with the test server's ssh config: `ssh -G` only, except where the host is taken for
# another machine ("far": lock.is_this_machine answers no), whose home is asked once over ssh.

def _home_spellings(name):
    import pwd

    home = pwd.getpwnam("root").pw_dir.rstrip("/")  # the test server logs in as root
    return {"rel": f"hpc:{name}/", "tilde": f"hpc:~/{name}", "tilde user": f"hpc:~root/{name}/.",
            "user@ dot": f"root@hpc:./{name}", "dotdot": f"hpc:{name}/x/../", "abs": f"hpc:{home}/{name}",
            "abs user@": f"root@hpc:{home}//{name}/", "local": f"{home}/{name}", "below rel": f"hpc:{name}/sub",
            "below abs": f"hpc:{home}/{name}/sub", "sibling abs": f"hpc:{home}/{name}-sibling"}


# first (holds the lock), second, does the second refuse?, host taken as another machine?
HOME_LOCKS = [
    ("abs", "rel", True, False),
    ("rel", "abs user@", True, False),
    ("tilde", "local", True, False),
    ("local", "dotdot", True, False),
    ("tilde user", "below abs", True, False),
    ("below rel", "abs", True, False),
    ("rel", "sibling abs", False, False),
    ("rel", "abs", True, True),
    ("abs", "tilde", True, True),
    ("user@ dot", "below abs", True, True),
    ("below rel", "abs user@", True, True),
    ("tilde user", "sibling abs", False, True),
]


@pytest.mark.parametrize("first,second,refused,far", HOME_LOCKS)
def test_home_relative_and_absolute_spellings_share_one_lock(sshd, tmp_path, monkeypatch, first, second,
                                                             refused, far):
    from flepimop_sync import lock
    from flepimop_sync.endpoints import parse_end
    from flepimop_sync.errors import SafetyHalt
    from flepimop_sync.report import Reporter
    from flepimop_sync.runner import Runner

    monkeypatch.setenv("FLEPIMOP_SYNC_LOCK_DIR", str(tmp_path / "locks"))
    if far:
        monkeypatch.setattr(lock, "is_this_machine", lambda hostname: False)
    ends = _home_spellings(f"flepimop-lock-test-{tmp_path.name}")  # never created: locks touch no end
    with Runner(Reporter(), env=sshd.env) as runner:
        with lock.DestinationLock(parse_end(ends[first]), None, runner):
            second_lock = lock.DestinationLock(parse_end(ends[second]), None, runner)
            if refused:
                with pytest.raises(SafetyHalt, match="another flepimop sync is writing"):
                    second_lock.__enter__()
            else:
                with second_lock:
                    pass


def test_a_remote_home_is_asked_once_and_remembered(sshd, tmp_path, monkeypatch):
    """Another machine's home costs one ssh connection per user and host, remembered in the lock
    directory; absolute destinations never connect."""
    from flepimop_sync import lock
    from flepimop_sync.endpoints import parse_end
    from flepimop_sync.report import Reporter
    from flepimop_sync.runner import Runner

    monkeypatch.setenv("FLEPIMOP_SYNC_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(lock, "is_this_machine", lambda hostname: False)
    ends = _home_spellings("flepimop-lock-test-once")
    with Runner(Reporter(), env=sshd.env) as runner:
        argvs = []
        run = runner.run
        monkeypatch.setattr(runner, "run", lambda argv, **kw: argvs.append(list(argv)) or run(argv, **kw))
        for spelling in ("abs", "rel", "tilde", "rel", "abs"):
            with lock.DestinationLock(parse_end(ends[spelling]), None, runner):
                pass
    connections = [argv for argv in argvs if "-G" not in argv]
    assert len(connections) == 1, connections
    assert "BatchMode=yes" in connections[0]
    import pwd

    remembered = [p.read_text() for p in (tmp_path / "locks").rglob("home-*")]
    assert remembered == [pwd.getpwnam("root").pw_dir.rstrip("/") + "\n"]


def test_a_home_that_cannot_be_learnt_is_not_asked_again_for_a_day(sshd, tmp_path, monkeypatch):
    """A host that refuses the key login (here: nothing listens on the port) is asked once: each
    aborted login is what intrusion guards count, so the failure is remembered for a day, and the
    run locks the home-relative spelling alone, as it did before it knew homes."""
    import os
    import time

    from flepimop_sync import lock
    from flepimop_sync.endpoints import parse_end
    from flepimop_sync.report import Reporter
    from flepimop_sync.runner import Runner

    monkeypatch.setenv("FLEPIMOP_SYNC_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(lock, "is_this_machine", lambda hostname: False)
    env = dict(sshd.env, RSYNC_RSH=f"{sshd.rsh} -o Port=9")  # 127.0.0.1:9: connection refused at once
    with Runner(Reporter(), env=env) as runner:
        argvs = []
        run = runner.run
        monkeypatch.setattr(runner, "run", lambda argv, **kw: argvs.append(list(argv)) or run(argv, **kw))
        for _ in range(3):
            with lock.DestinationLock(parse_end("hpc:flepimop-lock-test-unknown/"), None, runner) as held:
                assert len(held.places) == 1, held.places
        asks = [argv for argv in argvs if "-G" not in argv]
        assert len(asks) == 1, asks
        memo, = (tmp_path / "locks").rglob("home-*")
        assert memo.read_text() == "?\n"
        day_old = time.time() - lock.HOME_RETRY_SECONDS - 60
        os.utime(memo, (day_old, day_old))
        with lock.DestinationLock(parse_end("hpc:flepimop-lock-test-unknown/"), None, runner):
            pass
        assert len([argv for argv in argvs if "-G" not in argv]) == 2, argvs
