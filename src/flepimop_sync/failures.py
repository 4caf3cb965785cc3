"""Tool failures in words: a failed rsync/aws/rclone (or other) run -> one ``StepFailed`` line.

The line names the protocol and the step, the tool's exit status and what it means (rsync's and
rclone's documented exit codes, the S3 messages users meet most, in the same words whichever
S3 tool printed them, or the operating-system cause the tool printed, which wins over an exit
code's usual guesses) and the tool's own most telling line, with secrets masked (or that it
printed none).  Every transfer-side caller that turns a finished process into an error comes
here (steps, dry runs, probes and listings of rsync and aws, and the rclone engine); git's
failures are worded in ``gitsync``, where what they mean depends on the safety checks and the
journal (refused, rolled back, exactly as before).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Mapping

from .errors import StepFailed
from .report import redact

if TYPE_CHECKING:  # pragma: no cover
    from .config import Protocol
    from .runner import Completed

RSYNC_EXIT = {
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files or directories (does the target's parent exist? use --mkpath)",
    5: "error starting the client-server protocol",
    10: "error in socket I/O",
    11: "error in file I/O (missing target parent? use --mkpath; full disk or read-only target?)",
    12: "error in the rsync protocol data stream (ssh could not connect or the connection dropped, or the remote rsync failed)",
    13: "errors with program diagnostics",
    14: "error in IPC code",
    20: "rsync was interrupted",
    23: "partial transfer due to error (a source file missing or unreadable, or a target not writable)",
    24: "partial transfer: some source files vanished during the transfer",
    25: "the --max-delete limit stopped deletions",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
    255: "ssh failed: host unreachable, authentication refused, or the connection was cut",
}

RCLONE_EXIT = {
    1: "syntax or usage error",
    2: "error not otherwise categorised",
    3: "directory not found (does the bucket exist?)",
    4: "file not found",
    5: "temporary error (a rerun may succeed)",
    6: "less serious errors (NoRetry errors)",
    7: "fatal error (e.g. credentials refused, or the account is suspended)",
    8: "transfer limit exceeded",
    9: "no files transferred",
    10: "duration limit exceeded",
}

# What S3 users meet most, in one wording whichever tool met it (aws and rclone say it differently).
NO_BUCKET = "the bucket does not exist"
NO_CREDENTIALS = ("no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                  "or the protocol's 'profile')")
KEY_REFUSED = "the credentials were refused (invalid access key)"
SECRET_REFUSED = "the credentials were refused (wrong secret key)"
ACCESS_DENIED = "access denied by the S3 service"
TOKEN_EXPIRED = "the session token has expired"
UNREACHABLE = "the S3 endpoint is unreachable"
CONNECTION_CLOSED = "the S3 endpoint closed the connection"
NO_PROFILE = "the named AWS profile does not exist"
TARGET_FULL = "the target filesystem is full"
TARGET_DENIED = "permission denied at the target"
TARGET_READ_ONLY = "the target filesystem is read-only"

# (what aws prints, what it means), first match wins.  A full or read-only target is not here: the
# operating system's cause (_OS_CAUSES, in the C library's words) names it and wins over any hint.
# rclone, a Go program, words those causes in lower case: its own table below has them.
_AWS_HINTS = (
    ("NoSuchBucket", NO_BUCKET),
    ("Unable to locate credentials", NO_CREDENTIALS),
    ("InvalidAccessKeyId", KEY_REFUSED),
    ("SignatureDoesNotMatch", SECRET_REFUSED),
    ("AccessDenied", ACCESS_DENIED),
    ("ExpiredToken", TOKEN_EXPIRED),
    ("Could not connect to the endpoint URL", UNREACHABLE),
    ("Connection was closed", CONNECTION_CLOSED),
    ("ConnectionClosedError", CONNECTION_CLOSED),
    ("EndpointConnectionError", UNREACHABLE),
    ("The config profile", NO_PROFILE),
    ("does not exist", "a path does not exist"),
    ("Permission denied", TARGET_DENIED),
)

#: rclone's words for a missing prefix (or bucket) and, specifically, a missing bucket
RCLONE_NOT_FOUND = "directory not found"
RCLONE_NO_BUCKET = "nosuchbucket"

# (what rclone prints, lower case, what it means), first match wins; before its exit code's meaning
_RCLONE_HINTS = (
    (RCLONE_NO_BUCKET, NO_BUCKET),
    ("invalidaccesskeyid", KEY_REFUSED),
    ("signaturedoesnotmatch", SECRET_REFUSED),
    ("accessdenied", ACCESS_DENIED),
    ("expiredtoken", TOKEN_EXPIRED),
    ("nocredentialproviders", NO_CREDENTIALS),
    ("failed to get shared config profile", NO_PROFILE),
    ("connection refused", UNREACHABLE),
    ("no such host", UNREACHABLE),
    (RCLONE_NOT_FOUND, "the source does not exist"),
    ("no space left on device", TARGET_FULL),
    ("permission denied", TARGET_DENIED),
    ("read-only file system", TARGET_READ_ONLY),
)


def rclone_found_nothing(stderr: str) -> bool:
    """Did a failed rclone listing only find no such prefix (an empty prefix: nothing there yet, no
    error to s3engine), as opposed to a missing bucket or any other failure?"""
    said = stderr.lower()
    return RCLONE_NOT_FOUND in said and RCLONE_NO_BUCKET not in said


def step_failed(step: str, done: "Completed", protocol: "Protocol", env: Mapping[str, str] | None = None) -> StepFailed:
    """The failure of ``done`` (a finished run of ``step``) as one line; ``env``: the children's
    environment, whose secrets are masked in the tool's quoted output."""
    tool = done.argv[0]
    code = done.returncode
    last = (_rsync_cause_line(done.stderr) if tool == "rsync" else "") or _last_error_line(done.stderr) \
        or _last_error_line(done.stdout)
    meaning = _meaning(tool, code, done.stderr)
    cause = _os_cause(done.stderr + "\n" + done.stdout)
    if cause:  # the tool named the cause: say it, not the exit code's usual guesses
        meaning, last = cause
    if code < 0:
        meaning = f"killed by signal {-code}"
    # tools may print credentials; a silent failure is said to be one, so that nobody looks for a line
    detail = f": {redact(last, env)}" if last else f": {tool} printed no message"
    return StepFailed(
        f"protocol '{protocol.name}': {step} failed ({tool} exit {code}: {meaning}){detail}",
        step=step, returncode=code,
    )


def _meaning(tool: str, code: int, stderr: str) -> str:
    """What a tool's exit means: its documented exit code (rsync), the S3 message it printed
    (aws; rclone, whose exit codes are less telling than its messages), else its message."""
    if tool == "rsync":
        return RSYNC_EXIT.get(code, "see rsync's message")
    if tool == "aws":
        return next((hint for needle, hint in _AWS_HINTS if needle in stderr), "see aws's message")
    if tool == "rclone":
        low = stderr.lower()
        return next((hint for needle, hint in _RCLONE_HINTS if needle in low),
                    RCLONE_EXIT.get(code, "see rclone's message"))
    return "see its message"


# Causes a tool reports from the operating system, most specific first: when one is in the
# output it is the reason (a full disk makes rsync's sender end on "Broken pipe").
_OS_CAUSES = (
    ("No space left on device", f"{TARGET_FULL}: No space left on device"),
    ("Disk quota exceeded", "the disk quota is exceeded: Disk quota exceeded"),
    ("File too large", "a file exceeds the allowed size (file size limit or quota): File too large"),
    ("Read-only file system", TARGET_READ_ONLY),
)


def _os_cause(text: str) -> "tuple[str, str] | None":
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()]
    for needle, meaning in _OS_CAUSES:
        for line in lines:
            if needle in line:
                return meaning, line[:300]
    return None


_RSYNC_CAUSE = re.compile(r"^rsync: .*\bfailed\b.*: .+ \(\d+\)$")


def _rsync_cause_line(text: str) -> str:
    """rsync's first concrete OS error (e.g. 'mkstemp "..." failed: Read-only file system (30)',
    'send_files failed to open "...": Permission denied (13)'): its last line is only a summary
    ('some files/attrs were not transferred')."""
    for line in text.replace("\r", "\n").splitlines():
        line = line.strip()
        if _RSYNC_CAUSE.match(line):
            return line[:300]
    return ""


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    for line in reversed(lines):
        if any(w in line.lower() for w in ("error", "failed", "denied", "no such", "unable", "could not", "fatal")):
            return line[:300]
    return lines[-1][:300] if lines else ""
