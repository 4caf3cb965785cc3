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
import sys
from pathlib import Path

import pytest

from reliability_helpers import REPO_ROOT, write_config

pytestmark = pytest.mark.integration

sys.path.insert(0, str(REPO_ROOT / "tests"))
from testbed import S3Server  # noqa: E402


def _random(n, alphabet=string.ascii_letters + string.digits + "/+"):
    return "".join(secrets.choice(alphabet) for _ in range(n))


KEY_ID = "ASIA" + _random(16, string.ascii_uppercase + string.digits)
SECRET = _random(40)
TOKEN = "IQoJb3JpZ2luX2Vj" + _random(300) + "=="
PASSWORD = "pw" + _random(20, string.ascii_letters + string.digits)
SECRETS = (KEY_ID, SECRET, TOKEN, PASSWORD)


@pytest.fixture(scope="module")
def moto(tmp_path_factory, base_env):
    server = S3Server(tmp_path_factory.mktemp("secrets-s3"), base_env, backend="moto")
    try:
        server.start()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


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
