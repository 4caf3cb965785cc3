"""Hostile strings in protocol names, paths, hosts, filters, other config keys and CLI options.

Every value is either handled literally (the files really land under that exact name) or
rejected with exit 2 and a one-line message; a few fail at run time with exit 1 when the literal
value cannot work (a host that does not exist, a name longer than the filesystem allows).  None
is ever executed: the injected commands would create a canary file (``CANARY`` in the working
directory or the ssh user's home, or an absolute path) and no canary ever appears.  An
option-like value (``-e ...``, ``--rsh=...``) never becomes an option of rsync, aws or git.

Most cases run in-process through ``cli.run_command`` (the same entry point as the ``flepimop``
executable; the child tools are real), which keeps ~100 cases fast; a representative subset runs
the real executable.  Everything that could be a host goes through the test bed's ssh config, so
nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import io
import os
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from helpers import write_config
from trees import tree, write_tree

pytestmark = pytest.mark.integration

CANARY = "CANARY"


@pytest.fixture
def bed(tmp_path, sshd, monkeypatch):
    """cwd = tmp/work; ssh through the test bed; canary locations known."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for key in ("RSYNC_RSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT"):
        monkeypatch.setenv(key, sshd.env[key])
    monkeypatch.setenv("FLEPIMOP_SYNC_LOCK_DIR", str(tmp_path / "locks"))
    abs_canary = tmp_path / "ABS_CANARY"
    canaries = [work / CANARY, Path.home() / CANARY, abs_canary, Path("/") / CANARY]
    for c in canaries:
        assert not c.exists(), f"stale canary {c}"

    class Bed:
        pass

    b = Bed()
    b.tmp, b.work, b.sshd, b.abs_canary, b.canaries = tmp_path, work, sshd, abs_canary, canaries
    yield b
    found = [str(c) for c in canaries if c.exists()]
    for c in canaries:
        if c.exists():
            c.unlink()
    assert not found, f"an injected command was executed: {found}"


def invoke(args):
    """Run `flepimop sync ARGS` in-process; returns (exit code, stdout, stderr)."""
    from flepimop_sync.cli import run_command, sync_command

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_command(sync_command, [str(a) for a in args], prog_name="flepimop sync")
    return code, out.getvalue(), err.getvalue()


def expect_usage_error(code, err, *needles):
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    assert "internal error" not in err and "Traceback" not in err


def expect_clean_failure(code, err):
    """Exit 1 at run time: one clear line, no traceback."""
    assert code == 1, (code, err)
    assert err.strip().splitlines()[-1].startswith("error: protocol "), err
    assert "internal error" not in err and "Traceback" not in err


def seed(root: Path) -> dict[str, bytes]:
    files = {"f.txt": b"payload\n", "sub/g.csv": b"1,2\n"}
    write_tree(root, files)
    return files


# ----------------------------------------------------------------------------------------------
# paths: local directory names, used relative to the cwd (so a leading '-' reaches the tools'
# argv position unless we guard it) -- all must be copied literally
HOSTILE_NAMES = [
    "with space", "it's", 'say "hi"', "$(touch CANARY)", "`touch CANARY`", "x; touch CANARY",
    "x | touch CANARY", "x && touch CANARY", "x\ntouch CANARY", "-e touch CANARY", "--rsh=touch CANARY",
    "--rsh=sh -c 'touch CANARY'", "-e", "--delete", "ünïcödé 名前 🚀", "tab\there", "glob*?[ab]",
    "${IFS}touch${IFS}CANARY", "~root", "#hash", "> CANARY", "a/b:c", "back\\slash", "!bang",
    "L" * 200, ".hidden", "%s%n%x", "\u202eRTL",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n)[:40])
def test_local_path_names_are_literal_rsync(bed, name):
    files = seed(bed.work / name)
    # issue 12: ends expand $NAME ($$ is a literal $) and a leading ~ (./~ is literal)
    written = ("./" + name if name.startswith("~") else name).replace("$", "$$")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": f"{written}/", "target": f"{written}.copy"}})
    code, out, err = invoke([cfg])
    assert code == 0, err
    assert tree(bed.work / f"{name}.copy") == files
    # and through --source/--target, and with the directory itself (no trailing slash)
    code, out, err = invoke(["-s", written, "-t", f"{written}.again", "--mkpath", cfg])
    assert code == 0, err
    assert tree(bed.work / f"{name}.again" / Path(name).name) == files


@pytest.mark.parametrize("name", ["a b:c", "x\ny:z", "$(touch CANARY):x", "-e touch CANARY:x", "a;b:x"],
                         ids=lambda n: repr(n)[:40])
def test_colon_in_first_component_is_a_host_unless_written_with_dot_slash(bed, name):
    """rsync reads 'a b:c' as host 'a b': refused (exit 2, with the './' hint); './a b:c' is literal."""
    files = seed(bed.work / name)
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    code, out, err = invoke(["-s", f"{name}/", "-t", "out", cfg])
    expect_usage_error(code, err, "invalid host name", "--source", "for a local path, write './")
    code, out, err = invoke(["-s", f"./{name}/", "-t", f"./{name}.copy", cfg])
    assert code == 0, err
    assert tree(bed.work / f"{name}.copy") == files


REMOTE_NAMES = ["with space", "$(touch CANARY)", "`touch CANARY`", "x; touch CANARY", "x\rcr",
                "-e touch CANARY", "--rsh=touch CANARY", "ünïcödé 名前", "a b:c", "'quoted'", "back\\slash"]


def test_remote_path_with_a_line_break_is_refused(bed):
    """rsync escapes remote paths with backslashes, and backslash-newline is a line continuation
    for the remote shell: such a path would silently land elsewhere.  Refused up front."""
    seed(bed.work / "src")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    code, out, err = invoke(["-t", f"hpc:{bed.tmp}/x\ntouch CANARY/", cfg])
    expect_usage_error(code, err, "line break", "--target")


@pytest.mark.parametrize("name", REMOTE_NAMES, ids=lambda n: repr(n)[:40])
def test_remote_path_names_are_literal_over_ssh(bed, name):
    files = seed(bed.work / "src")
    remote_dir = bed.tmp / "remote"
    remote_dir.mkdir()
    cfg = write_config(bed.tmp / "c.yml", {
        "push": {"type": "rsync", "source": "src/", "target": f"hpc:{remote_dir}/{name}/", "mkpath": True},
        "pull": {"type": "rsync", "source": f"hpc:{remote_dir}/{name}/", "target": "back/"},
    })
    code, out, err = invoke(["-p", "push", cfg])
    assert code == 0, err
    assert tree(remote_dir / name) == files
    code, out, err = invoke(["-p", "pull", "-n", "-v", cfg])  # remote listing
    assert code == 0, err
    assert "selected 2 file(s)" in out and "would transfer 2 " in out, out
    code, out, err = invoke(["-p", "pull", cfg])
    assert code == 0, err
    assert tree(bed.work / "back") == files


S3_NAMES = ["with space", "$(touch CANARY)", "-e touch CANARY", "--rsh=touch CANARY", "--delete",
            "ünïcödé 名前", "x; touch CANARY"]


@pytest.mark.parametrize("name", S3_NAMES, ids=lambda n: repr(n)[:40])
def test_s3_paths_and_keys_are_literal(bed, s3, monkeypatch, name):
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setenv(key, s3.env[key])
    files = seed(bed.work / name)
    bucket = s3.make_bucket()
    cfg = write_config(bed.tmp / "c.yml", {
        "up": {"type": "s3sync", "source": f"{name}/", "target": f"s3://{bucket}/{name}/"},
        "down": {"type": "s3sync", "source": f"s3://{bucket}/{name}/", "target": f"{name}.back"},
    })
    code, out, err = invoke(["-p", "up", cfg])
    assert code == 0, err
    assert s3.list(bucket) == {f"{name}/{rel}": len(data) for rel, data in files.items()}
    code, out, err = invoke(["-p", "down", cfg])
    assert code == 0, err
    assert tree(bed.work / f"{name}.back") == files


def test_too_long_names_fail_cleanly(bed):
    seed(bed.work / "src")
    long_name = "N" * 300  # above NAME_MAX
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    code, out, err = invoke(["-s", long_name, cfg])
    expect_usage_error(code, err, "local source", "File name too long", "(300 characters)")
    code, out, err = invoke(["-s", "x/" * 3000, cfg])
    expect_usage_error(code, err, "local source")
    code, out, err = invoke(["-t", long_name, cfg])
    expect_clean_failure(code, err)  # rsync tried the literal name


# ----------------------------------------------------------------------------------------------
# hosts: anything that is not a plain host name is refused before anything runs
BAD_HOSTS = [
    "hpc;touch CANARY", "$(touch CANARY)", "`touch CANARY`", "-oProxyCommand=touch${IFS}CANARY",
    "hpc|touch${IFS}CANARY", "hpc&&touch${IFS}CANARY", "root@$(touch CANARY)", "u@-oProxyCommand=x",
    "-lroot", "ho'st", 'ho"st', "h*st", "hpc>CANARY", "hpc\\x", "hpc;touch CANARY", "a@b@hpc", "@hpc",
    "hpc\ttab", "hpc\nx",
]


@pytest.mark.parametrize("host", BAD_HOSTS, ids=lambda n: repr(n)[:40])
def test_hostile_hosts_are_rejected(bed, host):
    seed(bed.work / "src")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": f"{host}:/tmp/x"}})
    code, out, err = invoke([cfg])
    expect_usage_error(code, err, "invalid host name", "protocol 'p' key 'target'")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    code, out, err = invoke(["-s", f"{host}:/tmp/x", cfg])  # the same through --source
    expect_usage_error(code, err, "invalid host name", "--source")
    code, out, err = invoke(["-t", f"{host}:/tmp/x", "--reverse", cfg])  # and --target, reversed
    expect_usage_error(code, err, "invalid host name")


@pytest.mark.parametrize("host", ["ünï-hôst", "no-such-host.invalid", "user@no-such-host"])
def test_strange_but_valid_hosts_are_tried_literally(bed, host):
    """Valid-looking names go to ssh as they are (the test ssh config sends them to a closed port)."""
    seed(bed.work / "src")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": f"{host}:/tmp/x"}})
    code, out, err = invoke([cfg])
    expect_clean_failure(code, err)
    assert "rsync exit 255" in err or "rsync exit 12" in err, err  # ssh could not connect


# ----------------------------------------------------------------------------------------------
# protocol names
@pytest.mark.parametrize("name", ["$(touch CANARY)", "-e", "--rsh=touch CANARY", "a;b", "x" * 1000, "名前",
                                  "a\nb", "../p", "p "])
def test_hostile_protocol_option(bed, name):
    seed(bed.work / "src")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    code, out, err = invoke(["-p", name, cfg])
    expect_usage_error(code, err, "no protocol named", "available: p")
    assert len(err) < 1500, "the message should stay readable"


@pytest.mark.parametrize("name", ["bad name", "$(touch CANARY)", "-e", "--rsh=x", "名前", "x" * 65, "a;b", "a\nb",
                                  "`x`"])
def test_hostile_protocol_names_in_config(bed, name):
    seed(bed.work / "src")
    cfg = bed.tmp / "c.yml"
    cfg.write_text(yaml.safe_dump({"sync": {name: {"type": "rsync", "source": "src/", "target": "dst"}}}))
    code, out, err = invoke([cfg])
    expect_usage_error(code, err, "invalid name")
    assert not (bed.work / "dst").exists()


# ----------------------------------------------------------------------------------------------
# filters: literal patterns (exit 0, selection applied) or rejected (exit 2 naming the filter)
LITERAL_FILTERS = ["$(touch CANARY)", "- `touch CANARY`", "+ ; touch CANARY", "s | touch CANARY",
                   "- && touch CANARY", "- --rsh=touch CANARY", "+ -e touch CANARY", "+ --delete",
                   "+ ünï*", "- " + "x" * 5000, "merge /etc/passwd", ". /etc/passwd", "!", "- !",
                   ": .rsync-filter", "s $(touch CANARY)", "+ *.txt"]
REJECTED_FILTERS = ["-e touch CANARY", "--rsh=touch CANARY", "+\ttab", "a\nb", " lead", "-! x",
                    "+  two spaces", "[[:alpha:]]", "[^a]"]


@pytest.mark.parametrize("rule", LITERAL_FILTERS, ids=lambda n: repr(n)[:40])
def test_hostile_filters_are_literal(bed, rule):
    files = seed(bed.work / "src")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    code, out, err = invoke(["-f", rule, "-v", cfg])
    assert code == 0, err
    got = tree(bed.work / "dst") if (bed.work / "dst").exists() else {}
    # nothing outside the source can appear, and a plain include of *.txt selects exactly f.txt
    assert set(got) <= set(files), got
    if rule == "+ *.txt":
        assert got == {"f.txt": files["f.txt"]}
    if rule.startswith("- "):
        assert got == files  # excluding a name that does not exist keeps everything


@pytest.mark.parametrize("rule", REJECTED_FILTERS, ids=lambda n: repr(n)[:40])
@pytest.mark.parametrize("option", ["-f", "-a", "-e"])
def test_hostile_filters_are_rejected(bed, rule, option):
    seed(bed.work / "src")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    code, out, err = invoke([option, rule, cfg])
    expect_usage_error(code, err, "invalid filter")
    assert not (bed.work / "dst").exists()


def test_hostile_filters_in_config_are_rejected_naming_the_key(bed):
    seed(bed.work / "src")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst",
                                                 "filters": ["+ *.txt", "--rsh=touch CANARY"]}})
    code, out, err = invoke([cfg])
    expect_usage_error(code, err, "invalid filter", "filters[1]")


@pytest.mark.parametrize("rule", ["$(touch CANARY)", "- --rsh=touch CANARY", "+ *hnpi*", "s ; touch CANARY",
                                  "+ -e"])
def test_hostile_filters_are_literal_on_s3(bed, s3, monkeypatch, rule):
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setenv(key, s3.env[key])
    seed(bed.work / "src")
    bucket = s3.make_bucket()
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "s3sync", "source": "src/", "target": f"s3://{bucket}/r/"}})
    code, out, err = invoke(["-f", rule, cfg])
    assert code == 0, err
    expected = {"r/f.txt", "r/sub/g.csv"} if rule.startswith("- ") else set()
    assert set(s3.list(bucket)) == expected


# ----------------------------------------------------------------------------------------------
# other config keys that reach an argv
def test_option_like_aws_settings_stay_values(bed, s3, monkeypatch):
    """A profile/region that looks like an aws option is passed as a value, never as an option.

    If '--endpoint-url=<our S3>' in 'profile' became an option, the upload would succeed against
    the test server (the environment has no endpoint): it must fail instead, literally.
    """
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # every case fails: fail fast
    seed(bed.work / "src")
    bucket = s3.make_bucket()
    for key, value in (("profile", f"--endpoint-url={s3.endpoint}"), ("region", f"--endpoint-url={s3.endpoint}"),
                       ("profile", "--debug"), ("region", "us-east-1; touch CANARY"),
                       ("endpoint_url", "http://127.0.0.1:9/$(touch${IFS}CANARY)")):
        cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "s3sync", "source": "src/",
                                                     "target": f"s3://{bucket}/r/", key: value}})
        code, out, err = invoke(["-v", cfg])
        expect_clean_failure(code, err)
        assert s3.list(bucket) == {}, (key, value)
        assert f"--{key.replace('_', '-')}={value}" in err, err  # one argv element, shown as such


NUL_KEYS = [("source", "src\0/"), ("target", "dst\0x"), ("filters", ["+ a\0b"]), ("rsh", "ssh\0-x"),
            ("description", "d\0")]


@pytest.mark.parametrize("key,value", NUL_KEYS, ids=[k for k, _ in NUL_KEYS])
def test_nul_bytes_in_config_are_rejected(bed, key, value):
    seed(bed.work / "src")
    body = {"type": "rsync", "source": "src/", "target": "dst", key: value}
    cfg = bed.tmp / "c.yml"
    cfg.write_text(yaml.safe_dump({"sync": {"p": body}}))  # YAML writes NUL as "\0"
    code, out, err = invoke([cfg])
    expect_usage_error(code, err, "NUL")
    assert not (bed.work / "dst").exists()


@pytest.mark.parametrize("key", ["profile", "region", "endpoint_url"])
def test_nul_bytes_in_aws_settings_are_rejected(bed, key):
    seed(bed.work / "src")
    value = "http://127.0.0.1:9/\0x" if key == "endpoint_url" else "a\0b"
    cfg = bed.tmp / "c.yml"
    cfg.write_text(yaml.safe_dump({"sync": {"p": {"type": "s3sync", "source": "src/", "target": "s3://b/r/",
                                                  key: value}}}))
    code, out, err = invoke([cfg])
    expect_usage_error(code, err)


@pytest.mark.parametrize("key,value", [("remote", "--upload-pack=touch CANARY"), ("branch", "--upload-pack=touch CANARY"),
                                       ("remote", "-x"), ("branch", "$(touch CANARY)"), ("path", "-C"),
                                       ("remote", "a\0b")])
def test_git_protocol_option_like_values(bed, git_env, key, value):
    repo = git_env.make_repo(bed.work / "repo")
    git_env.commit(repo, {"a.txt": "a"})
    body = {"type": "git", "path": str(repo), key: value}
    cfg = bed.tmp / "c.yml"
    cfg.write_text(yaml.safe_dump({"sync": {"g": body}}))
    code, out, err = invoke([cfg])
    assert code in (1, 2), (code, err)
    assert "internal error" not in err and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error: "), err


# ----------------------------------------------------------------------------------------------
# CLI options and arguments
def test_append_option_with_hostile_part(bed):
    files = seed(bed.work / "src" / "$(touch CANARY)")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src", "target": "dst/"}})
    code, out, err = invoke(["-s", "+ $(touch CANARY)", "-t", "+ -e touch CANARY", "--mkpath", cfg])
    assert code == 0, err
    assert tree(bed.work / "dst" / "-e touch CANARY" / "$(touch CANARY)") == files


def test_option_like_values_of_cli_options_are_values(bed):
    """click gives '-s --rsh=x' the value '--rsh=x'; it is a (missing) path, not an rsync option."""
    seed(bed.work / "src")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    for args, needle in ((["-s", "--rsh=touch CANARY"], "does not exist"), (["-s", "-e"], "does not exist"),
                         (["-p", "--delete"], "no protocol named"), (["-f", "--rsh=x"], "invalid filter")):
        code, out, err = invoke([*args, cfg])
        expect_usage_error(code, err, needle)
    code, out, err = invoke(["--rsh=touch CANARY", cfg])
    assert code == 2 and "No such option" in err and "--rsh" in err, (code, err)  # click's usage error


def test_config_file_named_like_an_option(bed):
    files = seed(bed.work / "src")
    cfg = write_config(bed.work / "--rsh=touch CANARY.yml",
                       {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    code, out, err = invoke(["--", cfg.name])
    assert code == 0, err
    assert tree(bed.work / "dst") == files


# ----------------------------------------------------------------------------------------------
# the real executable, for a representative subset (startup, argv handling, exit codes)
@pytest.mark.parametrize("args_of", [
    lambda cfg: ["sync", "-s", "-e touch CANARY", "-t", "--rsh=touch CANARY", "--mkpath", cfg],
    lambda cfg: ["sync", "-f", "$(touch CANARY)", "-a", "- `touch CANARY`", cfg],
    lambda cfg: ["sync", "-p", "x; touch CANARY", cfg],
    lambda cfg: ["sync", "-t", "hpc;touch CANARY:/x", cfg],
], ids=["paths", "filters", "protocol", "host"])
def test_real_executable(bed, run_cli, sshd, args_of):
    seed(bed.work / "-e touch CANARY")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    done = run_cli(args_of(cfg), env=sshd.env, cwd=bed.work)
    assert done.returncode in (0, 2), done
    assert "Traceback" not in done.stderr
    if done.returncode == 0:
        assert tree(bed.work / "--rsh=touch CANARY" / "-e touch CANARY") == tree(bed.work / "-e touch CANARY")
    else:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr



# ----------------------------------------------------------------------------------------------
# the environment: every failure it causes is one line with exit 1 or 2, never "internal error"
BAD_LOCK_DIRS = [
    pytest.param(lambda tmp: "/dev/null/locks", id="below a file"),
    pytest.param(lambda tmp: str(_file(tmp / "a-file")), id="a file"),
    pytest.param(lambda tmp: "/proc/1/no-such/locks", id="unwritable"),
]


def _file(path):
    path.write_text("x")
    return path


@pytest.mark.parametrize("make", BAD_LOCK_DIRS)
def test_bad_lock_directory_environment_is_one_line(bed, monkeypatch, make):
    seed(bed.work / "src")
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": "rsync", "source": "src/", "target": "dst"}})
    monkeypatch.setenv("FLEPIMOP_SYNC_LOCK_DIR", make(bed.tmp))
    code, out, err = invoke([cfg])
    expect_usage_error(code, err, "lock directory", "FLEPIMOP_SYNC_LOCK_DIR")
    assert not (bed.work / "dst").exists()


@pytest.mark.parametrize("protocol", ["rsync", "s3sync"])
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "real run"])
def test_unreadable_subdirectory_is_one_line(bed, s3, run_cli, protocol, dry_run):
    """As root, permissions do not stop reads: the CLI runs without the override capabilities."""
    import shutil
    import sys

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop the capabilities")
    seed(bed.work / "src")
    (bed.work / "src" / "closed").mkdir()
    (bed.work / "src" / "closed" / "x.txt").write_text("x")
    (bed.work / "src" / "closed").chmod(0)
    target = "dst" if protocol == "rsync" else f"s3://{s3.make_bucket()}/p"
    cfg = write_config(bed.tmp / "c.yml", {"p": {"type": protocol, "source": "src/", "target": target,
                                                 "filters": ["+ *f*", "+ sub/", "+ closed/"]}})
    env = dict(s3.env)
    env.update({k: os.environ[k] for k in ("RSYNC_RSH", "FLEPIMOP_SYNC_LOCK_DIR")})
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    args = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all",
            sys.executable, "-m", "flepimop_sync", "sync", *(["-n"] if dry_run else []), str(cfg)]
    try:
        done = subprocess.run(args, env=env, cwd=bed.work, capture_output=True, text=True, timeout=300)
    finally:
        (bed.work / "src" / "closed").chmod(0o755)
    assert done.returncode in (0, 1), (done.returncode, done.stderr)
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    if done.returncode == 1:
        assert len(done.stderr.strip().splitlines()[-1:]) == 1
        assert "error: " in done.stderr and ("denied" in done.stderr or "closed" in done.stderr), done.stderr
