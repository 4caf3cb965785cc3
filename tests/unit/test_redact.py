"""Secrets are masked by structure (report.redact / format_argv / redact_json): a table of
secret-bearing settings, commands and texts, each checked through every output form.

The end-to-end checks (real rsync/ssh/aws runs, -v, --plan, --json, receipts, logs) are in
tests/integration/test_reliability_secrets.py.
"""

from __future__ import annotations

import json

import pytest

from flepimop_sync import report
from flepimop_sync.report import format_argv, redact, redact_argv, redact_json

S = "Zq8-s3cr3t-Value"  # the secret in every row

# (id, rsh string) -> the secret must not survive in any form
RSH = [
    ("sshpass -p X", f"sshpass -p {S} ssh -F cfg"),
    ("sshpass -pX", f"sshpass -p{S} ssh"),
    ("sshpass quoted", f"sshpass -p '{S} with space' ssh"),
    ("SetEnv", f"ssh -o SetEnv=TOKEN={S}"),
    ("SetEnv separate -o", f"ssh -o 'SetEnv TOKEN={S} OTHER=x'"),
    ("SetEnv glued -o", f"ssh -oSetEnv=API_KEY={S}"),
    ("ProxyCommand sshpass", f"ssh -o 'ProxyCommand=sshpass -p {S} ssh -W %h:%p jump'"),
    ("ProxyCommand proxy userinfo", f"ssh -o 'ProxyCommand=nc -X connect -x bob:{S}@proxy:3128 %h %p'"),
    ("ProxyCommand --password", f"ssh -o 'ProxyCommand=corkscrew --password {S} proxy 80 %h %p'"),
    ("env assignment", f"env MY_TOKEN={S} ssh"),
    ("env password", f"env SSHPASS={S} sshpass -e ssh"),
    ("--password=", f"mysh --password={S}"),
    ("--token value", f"mysh --token {S}"),
    ("url userinfo", f"mysh --proxy http://u:{S}@proxy:8080/"),
]


@pytest.mark.parametrize("name,rsh", RSH, ids=[r[0] for r in RSH])
def test_rsh_secrets_are_masked_everywhere(name, rsh):
    secret = S if "with space" not in rsh else f"{S} with space"
    argv = ["rsync", "-a", f"--rsh={rsh}", "--", "src/", "hpc:dst/"]
    outputs = {
        "format_argv": format_argv(argv),
        "-e form": format_argv(["rsync", "-e", rsh, "src/", "hpc:dst/"]),
        "plan json": json.dumps(redact_json({"definition": {"rsh": rsh}, "steps": [{"argv": argv}]})),
        "receipt commands": json.dumps(redact_json({"commands": [argv]})),
    }
    for where, text in outputs.items():
        assert S not in text and secret not in text, (where, text)
        assert "***" in text, (where, text)


def test_ssh_port_and_ordinary_words_are_kept():
    argv = ["rsync", "--rsh=ssh -p 2222 -F /x/ssh_config -o BatchMode=yes -o SetEnv=LANG=C", "--", "a/", "hpc:b/"]
    shown = format_argv(argv)
    for kept in ("-p 2222", "-F /x/ssh_config", "BatchMode=yes", "hpc:b/"):
        assert kept in shown, shown


# endpoint URLs: the user-info ends at the LAST '@' before a host part
ENDPOINTS = [
    ("plain", f"http://alice:{S}@127.0.0.1:9000", f"{S}"),
    ("raw @ in password", f"http://alice:p@{S}@127.0.0.1:9000/", f"p@{S}"),
    ("raw / in password", f"https://alice:a/{S}@s3.example.org/", f"a/{S}"),
    ("raw / and @", f"http://alice:x/y@{S}/z@[::1]:9000", f"x/y@{S}/z"),
    ("token only", f"https://{S}@host", S),
    ("space in password", f"http://alice:a {S}@h:1/", f"a {S}"),
]


@pytest.mark.parametrize("name,url,password", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_endpoint_passwords_are_masked_whole(name, url, password):
    argv = ["aws", "s3", "sync", "a/", "s3://b/p/", f"--endpoint-url={url}"]
    outputs = {
        "format_argv": format_argv(argv),
        "plan json": json.dumps(redact_json({"definition": {"endpoint_url": url}, "steps": [{"argv": argv}]})),
    }
    if " " not in password:  # free text: a URL ends at whitespace (remembered values cover the rest)
        outputs["free text"] = redact(f"error: could not connect to {url} (timeout)")
    for where, text in outputs.items():
        for piece in {password, S, *password.split("/"), *password.split("@")} - {"", "a", "p", "x", "y", "z"}:
            assert piece not in text, (where, piece, text)
        assert "***@" in text, (where, text)


def test_s3_urls_and_rsync_hosts_are_not_masked():
    text = "s3://bucket/run@2024/x.csv and user@hpc:/scratch/x and git@github.com:org/repo"
    assert redact(text) == text


def test_remembered_config_secrets_are_masked_in_tool_messages():
    """A secret found in a config setting is masked wherever a tool later prints it."""
    report.remember_secrets_in({"rsh": f"sshpass -p {S} ssh", "endpoint_url": f"http://u:{S}x@h/"})
    assert S not in redact(f"sshpass: bad password {S}")
    assert S not in redact(f'botocore: url "http://u:{S}x@h/" refused')


def test_environment_secrets_are_masked():
    env = {"AWS_SECRET_ACCESS_KEY": S, "GITHUB_TOKEN": S + "gh", "DB_PASSWORD": S + "db",
           "RSYNC_RSH": f"sshpass -p {S}rsh ssh", "LANG": "C.UTF-8", "HOME": "/root"}
    text = " ".join(env.values())
    masked = redact(text, env)
    assert S not in masked, masked
    assert "C.UTF-8" in masked and "/root" in masked
    assert S not in " ".join(redact_argv(["tool", text], env))


BAD_CONFIGS = [  # config errors that quote the offending value: the secret in it is masked
    ("endpoint not http", "s3: {{type: s3sync, source: a, target: 's3://b', endpoint_url: 'ftp://u:{s}@h/'}}"),
    ("endpoint with line break", "s3: {{type: s3sync, source: a, target: 's3://b', endpoint_url: \"http://u:{s}@h\\n\"}}"),
    ("rsh with line break", "p: {{type: rsync, source: a, target: 'h:x', rsh: \"sshpass -p {s} ssh\\n\"}}"),
    ("rsh not a string", "p: {{type: rsync, source: a, target: 'h:x', rsh: ['sshpass', '-p', '{s}']}}"),
]


@pytest.mark.parametrize("name,body", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_config_errors_never_quote_secrets(tmp_path, capsys, name, body):
    from flepimop_sync.cli import flepimop, run_command

    cfg = tmp_path / "c.yml"
    cfg.write_text("sync:\n  " + body.format(s=S + name.replace(" ", "")) + "\n")
    code = run_command(flepimop, ["sync", "--plan", str(cfg)], prog_name="flepimop")
    captured = capsys.readouterr()
    assert code == 2, captured
    assert S not in captured.err + captured.out, captured.err


# (secret value, a document it collides with outside its strings): dump_json masks inside the
# strings only, so the text stays the same document with the secret gone
COLLIDING_JSON = [
    ("1234", {"bytes": 1234, "note": "1234 bytes"}),
    ('"status"', {"status": "ok", "why": 'said "status"'}),
    ("null", {"engine": None, "text": "nullable"}),
    ("true, ", {"a": True, "b": [1, 2], "c": "true, said"}),
    ("], [", {"steps": [[1], [2]], "d": "x], [y"}),
]


@pytest.mark.parametrize("secret,document", COLLIDING_JSON, ids=[s for s, _ in COLLIDING_JSON])
def test_dump_json_masks_inside_strings_only(secret, document):
    loaded = json.loads(report.dump_json(document, {"CI_JOB_TOKEN": secret}))
    masked = {key: value.replace(secret, report.MASK) if isinstance(value, str) else value
              for key, value in document.items()}
    assert loaded == masked
