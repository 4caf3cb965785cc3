"""failures.step_failed: a finished tool run -> the one line users read (table as in the module's docs)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from flepimop_sync.failures import rclone_found_nothing, step_failed
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
    # rclone: its message says more than its exit code, and S3's causes read as they do for aws
    ("rclone", 3, "", "2026/12/03 12:00:00 ERROR : : error reading source root directory: directory not found\n"
     "2026/12/03 12:00:00 ERROR : Attempt 1/1 failed with 1 errors and: NoSuchBucket: The specified bucket "
     "does not exist\n",
     "protocol 'p': sync failed (rclone exit 3: the bucket does not exist): 2026/12/03 12:00:00 ERROR : "
     "Attempt 1/1 failed with 1 errors and: NoSuchBucket: The specified bucket does not exist"),
    ("rclone", 1, "", f"2026/12/03 12:00:00 ERROR : x: Failed to copy: SignatureDoesNotMatch: key {SECRET}\n",
     "protocol 'p': sync failed (rclone exit 1: the credentials were refused (wrong secret key)): "
     "2026/12/03 12:00:00 ERROR : x: Failed to copy: SignatureDoesNotMatch: key ***"),
    ("rclone", 5, "", "2026/12/03 12:00:00 NOTICE: too many requests\n",
     "protocol 'p': sync failed (rclone exit 5: temporary error (a rerun may succeed)): "
     "2026/12/03 12:00:00 NOTICE: too many requests"),
    ("rclone", 7, "", "", "protocol 'p': sync failed (rclone exit 7: fatal error (e.g. credentials refused, or the "
     "account is suspended)): rclone printed no message"),
    ("rclone", -15, "", "", "protocol 'p': sync failed (rclone exit -15: killed by signal 15): rclone printed no message"),
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


# (what aws prints, what rclone prints): one cause, one wording, whichever S3 tool met it
SAME_CAUSE = [
    ("An error occurred (NoSuchBucket)", "NoSuchBucket: The specified bucket does not exist"),
    ("An error occurred (InvalidAccessKeyId)", "InvalidAccessKeyId: status code: 403"),
    ("An error occurred (SignatureDoesNotMatch)", "SignatureDoesNotMatch: status code: 403"),
    ("An error occurred (AccessDenied)", "AccessDenied: Access Denied"),
    ("An error occurred (ExpiredToken)", "ExpiredToken: The provided token has expired"),
    ("Unable to locate credentials", "NoCredentialProviders: no valid providers in chain"),
    ('Could not connect to the endpoint URL: "http://127.0.0.1:9/b"', "dial tcp 127.0.0.1:9: connect: connection refused"),
    ("The config profile (lab) could not be found", "failed to get shared config profile, lab"),
]


@pytest.mark.parametrize(("aws_says", "rclone_says"), SAME_CAUSE, ids=[c[1].split(":")[0] for c in SAME_CAUSE])
def test_an_s3_cause_reads_the_same_from_either_tool(aws_says, rclone_says):
    def meaning(tool, says):
        text = str(step_failed("sync", Completed((tool,), 1, "", f"ERROR : {says}\n", 0.1), PROTOCOL))
        return text.split(f"({tool} exit 1: ", 1)[1].split("): ", 1)[0]

    said = meaning("aws", aws_says)
    assert said == meaning("rclone", rclone_says) and not said.startswith("see "), said


# what a failed `rclone lsjson` printed -> is it only an empty prefix (s3engine lists nothing, no error)
RCLONE_LISTINGS = [
    ('ERROR : : error listing: directory not found\nFailed to lsjson: directory not found\n', True),
    ("Failed to lsjson: Directory Not Found\n", True),
    ("Failed to lsjson: directory not found: NoSuchBucket: The specified bucket does not exist\n", False),
    ("Failed to lsjson: NoSuchBucket: The specified bucket does not exist\n", False),
    ("Failed to lsjson: AccessDenied: Access Denied\n", False),
    ("", False),
]


@pytest.mark.parametrize("stderr,nothing", RCLONE_LISTINGS)
def test_an_empty_prefix_is_told_from_a_missing_bucket(stderr, nothing):
    assert rclone_found_nothing(stderr) is nothing
