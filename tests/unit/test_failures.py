"""failures.step_failed: a finished tool run -> the one line users read (table as in the module's docs)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from flepimop_sync.failures import step_failed
from flepimop_sync.runner import Completed

PROTOCOL = SimpleNamespace(name="p")  # the only field the wording reads
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"

# (tool, exit status, stdout, stderr) -> the whole message of the step "sync"
CASES = [
    ("rsync", 23, "",
     'rsync: [sender] send_files failed to open "/d/a.csv": Permission denied (13)\n'
     "rsync error: some files/attrs were not transferred (code 23) at main.c(1338) [sender=3.2.7]\n",
     "protocol 'p': sync failed (rsync exit 23: partial transfer due to error (a source file missing or "
     "unreadable, or a target not writable)): rsync: [sender] send_files failed to open \"/d/a.csv\": "
     "Permission denied (13)"),
    ("rsync", 11, "", "",  # a silent failure says so: nobody looks for a line that was never printed
     "protocol 'p': sync failed (rsync exit 11: error in file I/O (missing target parent? use --mkpath; "
     "full disk or read-only target?)): rsync printed no message"),
    ("rsync", 12, "", "rsync: write failed on \"/t/x\": No space left on device (28)\n",
     "protocol 'p': sync failed (rsync exit 12: the target filesystem is full: No space left on device): "
     "rsync: write failed on \"/t/x\": No space left on device (28)"),
    ("rsync", -9, "", "", "protocol 'p': sync failed (rsync exit -9: killed by signal 9): rsync printed no message"),
    ("rsync", 99, "", "odd\n", "protocol 'p': sync failed (rsync exit 99: see rsync's message): odd"),
    ("aws", 1, "", "fatal error: An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation\n",
     "protocol 'p': sync failed (aws exit 1: the bucket does not exist): fatal error: An error occurred "
     "(NoSuchBucket) when calling the ListObjectsV2 operation"),
    ("aws", 255, "", f"error: signature for key {SECRET} does not match (SignatureDoesNotMatch)\n",
     "protocol 'p': sync failed (aws exit 255: the credentials were refused (wrong secret key)): "
     "error: signature for key *** does not match (SignatureDoesNotMatch)"),
    ("aws", 2, "", "", "protocol 'p': sync failed (aws exit 2: see aws's message): aws printed no message"),
    ("git", 128, "", "fatal: not a git repository\nhint: run git init\n",
     "protocol 'p': sync failed (git exit 128: see its message): fatal: not a git repository"),
    ("git", 1, "nothing to commit\n", "", "protocol 'p': sync failed (git exit 1: see its message): nothing to commit"),
]


@pytest.mark.parametrize(("tool", "code", "stdout", "stderr", "message"), CASES,
                         ids=[f"{c[0]} {c[1]}{' silent' if not (c[2] or c[3]) else ''}" for c in CASES])
def test_a_failed_run_is_one_line(tool, code, stdout, stderr, message):
    done = Completed((tool, "arg"), code, stdout, stderr, 0.1)
    error = step_failed("sync", done, PROTOCOL, {"AWS_SECRET_ACCESS_KEY": SECRET})
    assert str(error) == message
    assert error.returncode == code and error.step == "sync"


def test_a_failed_run_after_creating_the_remote_target_says_so(tmp_path):
    """rsync could not create host:target/name/ (target missing): the target is created and rsync
    run again; if that second run fails, its line says it was the second one (scripted runner:
    rsync's answers as it gives them, nothing started)."""
    import yaml

    from flepimop_sync import plan as planning
    from flepimop_sync.config import load_config
    from flepimop_sync.errors import StepFailed
    from flepimop_sync.execute import _run_rsync_step
    from flepimop_sync.options import SyncOptions
    from flepimop_sync.report import Reporter

    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump({"sync": {"p": {"type": "rsync", "source": "model_input", "target": "hpc:proj/in"}}}))
    plan = planning.build(load_config([str(cfg)]).default, SyncOptions())
    missing = 'rsync: [Receiver] mkdir "/home/u/proj/in" failed: No such file or directory (2)\n'

    class ScriptedRunner:
        base_env: dict = {}

        def __init__(self, *answers):
            self.answers, self.argvs = list(answers), []

        def stream(self, argv, **_):
            self.argvs.append(argv)
            return self.answers.pop(0)

        run = stream

    runner = ScriptedRunner(Completed(("rsync",), 11, "", missing, 0.1), Completed(("rsync", "-d"), 0, "", "", 0.1),
                            Completed(("rsync",), 11, "", "", 0.1))
    with pytest.raises(StepFailed) as caught:
        _run_rsync_step(plan.steps[0], plan, runner, Reporter(verbosity=0, json_mode=True))
    assert len(runner.argvs) == 3 and runner.argvs[1][:2] == ("rsync", "-d")
    assert str(caught.value) == (
        f"protocol 'p': {plan.steps[0].name} (run again after creating the target hpc:proj/in) failed (rsync exit 11: "
        "error in file I/O (missing target parent? use --mkpath; full disk or read-only target?)): rsync printed no message")
