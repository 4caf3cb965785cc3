"""Secrets: with AWS keys and a session token in the environment (and a password in an endpoint
URL), no output at any -v level, no --json, no --plan, no error message, no receipt and no log
contains them -- including when a tool itself prints them.

A private moto server is used (moto accepts any credentials), so the credentials can be unique
random strings that cannot occur by chance in any other output.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from pathlib import Path

import pytest

from helpers import write_config

pytestmark = pytest.mark.integration


def _random(n, alphabet=string.ascii_letters + string.digits + "/+"):
    return "".join(secrets.choice(alphabet) for _ in range(n))


KEY_ID = "ASIA" + _random(16, string.ascii_uppercase + string.digits)
SECRET = _random(40)
TOKEN = "IQoJb3JpZ2luX2Vj" + _random(300) + "=="
PASSWORD = "pw" + _random(20, string.ascii_letters + string.digits)
# a password with a raw '@' and '/': the user-info ends at the LAST '@' before the host
RAW_PASSWORD = "r@w/" + _random(16, string.ascii_letters + string.digits)
SECRETS = (KEY_ID, SECRET, TOKEN, PASSWORD, RAW_PASSWORD, RAW_PASSWORD.split("/")[1])



@pytest.fixture
def secret_env(moto):
    env = dict(moto.env)
    env.update(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_SESSION_TOKEN=TOKEN,
               AWS_SECURITY_TOKEN=TOKEN)
    env["AWS_MAX_ATTEMPTS"] = "1"  # the password endpoint fails: fail fast
    return env


@pytest.fixture
def project(tmp_path, moto):
    src = tmp_path / "src"
    for rel in ("a/one.csv", "a/hnpi/two.parquet", "three.txt"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    bucket = moto.make_bucket()
    pw_endpoint = moto.endpoint.replace("http://", f"http://alice:{PASSWORD}@")
    cfg = write_config(tmp_path / "c.yml", {
        "up": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/run/"},
        "down": {"type": "s3sync", "source": f"s3://{bucket}/run/", "target": f"{tmp_path}/back/",
                 "filters": ["*hnpi*", "- *"]},
        "missing": {"type": "s3sync", "source": f"{src}/", "target": "s3://no-such-bucket-secrets/run/"},
        "pw": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/pw/", "endpoint_url": pw_endpoint},
        "raw": {"type": "s3sync", "source": f"{src}/", "target": f"s3://{bucket}/raw/",
                "endpoint_url": moto.endpoint.replace("http://", f"http://alice:{RAW_PASSWORD}@")},
    })
    return tmp_path, cfg, bucket


def _assert_clean(texts):
    leaks = [f"{name}: contains {secret[:8]}..." for name, text in texts.items() for secret in SECRETS
             if secret in text]
    assert not leaks, leaks


RUNS = [
    ["-p", "up"], ["-p", "up", "-v"], ["-p", "up", "-vv"], ["-p", "up", "-vvv"], ["-p", "up", "--json", "-vvv"],
    ["-p", "up", "-n", "-vvv"], ["-p", "up", "-n", "--json", "--delete"], ["-p", "up", "--plan"],
    ["-p", "down", "-vvv"], ["-p", "down", "--json", "-n", "-vv"],
    ["-p", "missing", "-vvv"], ["-p", "missing", "--json"],
    ["-p", "pw", "--plan"], ["-p", "pw", "-n", "-vvv", "--json"], ["-p", "pw", "-vvv"], ["-p", "pw", "--json"],
    ["-p", "raw", "--plan"], ["-p", "raw", "-n", "-vvv", "--json"], ["-p", "raw", "-vvv"],
]


@pytest.mark.parametrize("args", RUNS, ids=lambda a: " ".join(a))
def test_cli_output_never_contains_secrets(project, secret_env, run_cli, args):
    tmp, cfg, bucket = project
    done = run_cli(["sync", *args, cfg], env=secret_env)
    if args[1] == "up" and "-n" not in args and "--plan" not in args:
        assert done.returncode == 0, done.stderr  # the credentials were really used
    _assert_clean({"stdout": done.stdout, "stderr": done.stderr})


def _leaky_aws(tmp_path, secret_env):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "aws").write_text(
        "#!/bin/sh\n"
        'echo "upload: x to s3://b/k $AWS_SECRET_ACCESS_KEY $AWS_SESSION_TOKEN $AWS_ACCESS_KEY_ID"\n'
        'echo "fatal error: credentials $AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY token $AWS_SESSION_TOKEN '
        f'at http://alice:{PASSWORD}@127.0.0.1:1/" >&2\n'
        "exit 1\n")
    (fake_bin / "aws").chmod(0o755)
    env = dict(secret_env)
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"
    return env


def test_tool_output_with_secrets_is_masked(project, secret_env, run_cli, tmp_path):
    """A tool that prints the secrets (stdout lines, the error line we quote) never leaks them."""
    _, cfg, _ = project
    env = _leaky_aws(tmp_path, secret_env)
    for extra in ([], ["-vv"], ["--json", "-vvv"]):
        done = run_cli(["sync", "-p", "up", *extra, cfg], env=env)
        assert done.returncode == 1, done
        assert "aws s3 sync failed" in done.stderr
        _assert_clean({"stdout": done.stdout, "stderr": done.stderr})


def test_receipts_and_logs_never_contain_secrets(project, secret_env, moto, tmp_path, monkeypatch):
    """api.run_protocol (the Snakemake path) with the secrets only in the env it is given."""
    from flepimop_sync import api
    from flepimop_sync.errors import SyncError
    from flepimop_sync.options import SyncOptions

    _, cfg, _ = project
    leaky = _leaky_aws(tmp_path, secret_env)
    outputs = {}
    for name, protocol, verbosity, env in (("ok", "up", 3, secret_env), ("down", "down", 2, secret_env),
                                           ("failed", "missing", 3, secret_env), ("pw", "pw", 3, secret_env),
                                           ("raw", "raw", 3, secret_env),
                                           ("leaky", "up", 3, leaky)):
        receipt, log = tmp_path / f"{name}.json", tmp_path / f"{name}.log"
        options = SyncOptions(protocol=protocol, verbosity=verbosity)
        try:
            result = api.run_protocol([str(cfg)], options, receipt=receipt, log=log, env=env)
        except SyncError as error:
            outputs[f"{name} error"] = str(error)
        else:
            outputs[f"{name} result"] = json.dumps(result, default=str)
        for path in (receipt, Path(f"{receipt}.failed"), log):
            if path.exists():
                outputs[str(path.name)] = path.read_text()
    assert {"ok.json", "ok.log", "failed.json.failed", "leaky.json.failed", "leaky.log"} <= set(outputs), sorted(outputs)
    _assert_clean({k: v for k, v in outputs.items() if not k.endswith("result")})


# ----------------------------------------------------------------------------------------------
# Secrets in the remote shell (rsh): real rsync over the test bed's real ssh.  A stand-in
# `sshpass` (it drops its password options and runs the rest) keeps the command shapes real.
RSH_SECRET = "rsh" + _random(20, string.ascii_letters + string.digits)

RSH_FORMS = [
    pytest.param("sshpass -p {pw} {ssh}", id="sshpass -p"),
    pytest.param("sshpass -p{pw} {ssh}", id="sshpass -pPW"),
    pytest.param("{ssh} -o SetEnv=API_TOKEN={pw}", id="-o SetEnv"),
    pytest.param("{ssh} -o 'SetEnv LANG=C SESSION={pw}'", id="-o 'SetEnv a b'"),
    pytest.param("env DEPLOY_TOKEN={pw} {ssh}", id="env assignment"),
    pytest.param("env SSHPASS={pw} sshpass -e {ssh}", id="SSHPASS"),
    pytest.param("{ssh} -o 'ProxyCommand=sshpass -p {pw} false'", id="ProxyCommand sshpass (fails)"),
    pytest.param("{ssh} -o 'ProxyCommand=connect -H bob:{pw}@proxy:3128 %h %p'", id="ProxyCommand user:pw@ (fails)"),
]


@pytest.fixture
def rsh_bed(sshd, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sshpass").write_text(
        '#!/bin/sh\nwhile [ $# -gt 0 ]; do case "$1" in -p) shift 2;; -p*|-e) shift;; *) break;; esac; done\n'
        'exec "$@"\n')
    (bin_dir / "sshpass").chmod(0o755)
    env = dict(sshd.env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["FLEPIMOP_SYNC_LOCK_DIR"] = str(tmp_path / "locks")
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "one.csv").write_text("1")
    remote = tmp_path / "remote"
    remote.mkdir()
    return env, src, remote


@pytest.mark.parametrize("form", RSH_FORMS)
def test_rsh_secrets_never_shown(rsh_bed, sshd, run_cli, tmp_path, form):
    from flepimop_sync import api
    from flepimop_sync.errors import SyncError
    from flepimop_sync.options import SyncOptions

    env, src, remote = rsh_bed
    rsh = form.format(pw=RSH_SECRET, ssh=sshd.rsh)
    fails = "ProxyCommand" in rsh
    cfg = write_config(tmp_path / "c.yml", {
        "push": {"type": "rsync", "source": f"{src}/", "target": f"{sshd.alias}:{remote}/", "rsh": rsh},
        "pull": {"type": "rsync", "source": f"{sshd.alias}:{remote}/", "target": f"{tmp_path}/back/", "rsh": rsh,
                 "filters": ["+ *one*"], "mkpath": True},
    })
    texts = {}
    for args in (["-v"], ["-vvv", "--json"], ["--plan"], ["-n", "-vv"], ["-p", "pull", "-vv", "--json"],
                 ["-p", "pull", "-n", "-vvv", "--json", "--delete"]):
        done = run_cli(["sync", *args, cfg], env=env)
        if not fails and "--plan" not in args:
            assert done.returncode == 0, (args, done.stderr)  # the rsh really worked
        if fails and "--plan" not in args and "-n" not in args:
            assert done.returncode == 1 and "error:" in done.stderr, done.stderr
        texts[f"{args} stdout"], texts[f"{args} stderr"] = done.stdout, done.stderr
    assert "***" in texts["['--plan'] stdout"], texts["['--plan'] stdout"]
    # the Snakemake path: receipt, failure receipt and log
    for protocol in ("push", "pull"):
        receipt, log = tmp_path / f"{protocol}.json", tmp_path / f"{protocol}.log"
        try:
            api.run_protocol([str(cfg)], SyncOptions(protocol=protocol, verbosity=3), receipt=receipt, log=log,
                             env=env)
        except SyncError as error:
            texts[f"{protocol} error"] = str(error)
        for path in (receipt, Path(f"{receipt}.failed"), log):
            if path.exists():
                texts[path.name] = path.read_text()
    assert any(name.endswith((".json", ".failed")) for name in texts), sorted(texts)
    leaks = [name for name, text in texts.items() if RSH_SECRET in text]
    assert not leaks, {name: texts[name][:2000] for name in leaks}


# A secret value that is also a piece of the JSON text (a number, a key, a literal, syntax) is
# masked inside the strings of the document and nowhere else: the --json, --plan and receipt
# outputs stay documents a program can read.  (secret value, size of the one file synced)
COLLIDING = [
    pytest.param("1234", 1234, id="the byte count"),
    pytest.param('"status"', 10, id="a key with its quotes"),
    pytest.param('"dry_run": false', 10, id="a key and its value"),
    pytest.param("null", 10, id="a literal"),
    pytest.param("rsync", 10, id="inside strings only"),
]


def _strings(obj):
    """Every string of a JSON document: keys and values."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _strings(value)


def _colliding_project(tmp_path, size):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.bin").write_bytes(b"x" * size)
    return write_config(tmp_path / "c.yml", {"p": {"type": "rsync", "source": str(tmp_path / "src") + "/",
                                                  "target": str(tmp_path / "dst") + "/", "mkpath": True}})


@pytest.mark.parametrize("secret,size", COLLIDING)
def test_json_outputs_stay_json_when_a_secret_collides_with_them(base_env, run_cli, tmp_path, secret, size):
    config = _colliding_project(tmp_path, size)
    env = dict(base_env, CI_JOB_TOKEN=secret)
    for args in (["sync", "--json", config], ["sync", "--plan", config]):
        done = run_cli(args, env=env)
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)  # the old free-text pass over the text broke it
        assert not [s for s in _strings(document) if secret in s], document
    assert json.loads(run_cli(["sync", "--json", config], env=env).stdout)["status"] == "ok"


@pytest.mark.parametrize("secret,size", COLLIDING)
def test_receipts_stay_json_when_a_secret_collides_with_them(base_env, tmp_path, secret, size):
    from flepimop_sync import api
    from flepimop_sync.options import SyncOptions

    config = _colliding_project(tmp_path, size)
    receipt = tmp_path / "receipts" / "p.json"
    env = dict(os.environ, CI_JOB_TOKEN=secret)
    api.run_protocol([str(config)], SyncOptions(protocol="p"), receipt=receipt, env=env)
    document = json.loads(receipt.read_text())
    assert document["transferred"]["bytes"] == size
    assert not [s for s in _strings(document) if secret in s], document


# The workflow's snapshot step (workflow/scripts/snapshot.py, run by its wrapper in a Snakemake
# job whose environment holds the credentials): its receipt, its failure receipt, its log and its
# one line on stderr are as clean as the sync rules' (api.run_rule), and its exit status is the
# error's own, as theirs (api.run_rule_status): 1 a failed transfer, 2 a protocol that is not there.
# (protocol, exit status; None: whatever the endpoint with a password in it answers)
SNAPSHOTS = [("up", 0), ("pw", None), ("raw", None), ("missing", 1), ("nope", 2)]


@pytest.mark.parametrize("protocol,status", SNAPSHOTS, ids=[p for p, _ in SNAPSHOTS])
def test_snapshot_receipts_never_contain_secrets(project, secret_env, tmp_path, monkeypatch, capsys, protocol, status):
    from snapshot import snapshot

    _, cfg, _ = project
    for key, value in secret_env.items():
        monkeypatch.setenv(key, value)
    receipt, log = tmp_path / "results" / "snapshot.json", tmp_path / "results" / "snapshot.log"
    params = {"config_files": [str(cfg)], "protocol": protocol, "run": "r1", "target": "+ r1", "mkpath": True}
    code = snapshot(params, receipt, log, None)
    if status is not None:
        assert code == status, capsys.readouterr().err
    written = {path.name: path.read_text() for path in (receipt, Path(f"{receipt}.failed"), log) if path.exists()}
    assert (receipt.name in written) == (code == 0) and (f"{receipt.name}.failed" in written) == (code != 0), written
    err = capsys.readouterr().err
    if code:
        assert err.startswith("flepimop-sync: snapshot: ") and len(err.splitlines()) == 1, err
        assert json.loads(written[f"{receipt.name}.failed"])["exit_code"] == code
    _assert_clean({**written, "stderr": err})


@pytest.mark.parametrize("form", [f for f in RSH_FORMS if "ProxyCommand" not in f.values[0]])
def test_snapshot_receipt_masks_an_rsh_secret(rsh_bed, sshd, tmp_path, monkeypatch, form):
    """A snapshot pushed over an rsh holding a secret: the commands in its receipt are masked."""
    from snapshot import snapshot

    env, src, remote = rsh_bed
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = write_config(tmp_path / "c.yml", {"push": {"type": "rsync", "source": f"{src}/",
                                                     "target": f"{sshd.alias}:{remote}/",
                                                     "rsh": form.format(pw=RSH_SECRET, ssh=sshd.rsh)}})
    receipt = tmp_path / "results" / "snapshot.json"
    params = {"config_files": [str(cfg)], "protocol": "push", "run": "r1", "target": "+ r1", "mkpath": True}
    assert snapshot(params, receipt, None, None) == 0
    assert (remote / "r1" / "a" / "one.csv").exists()  # the rsh really worked
    body = receipt.read_text()
    assert "***" in body and RSH_SECRET not in body, body


# The workflow's calibrate step (workflow/scripts/calibrate.py, mode command): its receipt, its
# failure receipt, its log and its message mask a password in the command, as every step's do.
@pytest.mark.parametrize("verb,status", [("true", 0), ("false", 1)])
def test_calibrate_receipts_and_log_mask_a_password_in_the_command(tmp_path, capsys, verb, status):
    from calibrate import calibrate

    receipt, log = tmp_path / "results" / "calibrate.json", tmp_path / "results" / "calibrate.log"
    command = f"{verb} http://alice:{PASSWORD}@127.0.0.1:1/model {{run}}"
    assert calibrate("r1", "model.yml", {"mode": "command", "command": command}, receipt, log) == status
    written = receipt if status == 0 else Path(f"{receipt}.failed")
    texts = {"receipt": written.read_text(), "log": log.read_text(), "stderr": capsys.readouterr().err}
    assert json.loads(texts["receipt"])["command"].startswith(f"{verb} http://"), texts["receipt"]
    _assert_clean(texts)


def test_batch_calibrate_output_is_masked_in_the_log(tmp_path, capsys):
    """What batch-calibrate printed (copied to the log when it ended) is masked there too."""
    from calibrate import calibrate

    fake = tmp_path / "flepimop"
    fake.write_text(f"#!/bin/sh\necho 'Executing script with: sbatch http://alice:{PASSWORD}@127.0.0.1:1/x'\n"
                    f"echo 'endpoint http://bob:{RAW_PASSWORD}@127.0.0.1:1/' >&2\nexit 1\n")
    fake.chmod(0o755)
    receipt, log = tmp_path / "results" / "calibrate.json", tmp_path / "results" / "calibrate.log"
    cfg = {"mode": "batch-calibrate", "batch_calibrate": {"flepimop": str(fake), "flepi_path": str(tmp_path)}}
    assert calibrate("r1", "model.yml", cfg, receipt, log) == 1
    texts = {"log": log.read_text(), "failed": Path(f"{receipt}.failed").read_text(),
             "stderr": capsys.readouterr().err}
    assert "Executing script with: sbatch http://" in texts["log"], texts["log"]
    _assert_clean(texts)
