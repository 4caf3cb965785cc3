"""Tool failures in words: a failed rsync/aws (or other) run -> one ``StepFailed`` line.

The line names the protocol and the step, the tool's exit status and what it means (rsync's
documented exit codes, the aws messages users meet most, or the operating-system cause the tool
printed, which wins over an exit code's usual guesses) and the tool's own most telling line,
with secrets masked (or that it printed none).  Every caller that turns a finished process into an error comes here.
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

_AWS_HINTS = (
    ("NoSuchBucket", "the bucket does not exist"),
    ("Unable to locate credentials", "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the protocol's 'profile')"),
    ("InvalidAccessKeyId", "the credentials were refused (invalid access key)"),
    ("SignatureDoesNotMatch", "the credentials were refused (wrong secret key)"),
    ("AccessDenied", "access denied by the S3 service"),
    ("ExpiredToken", "the session token has expired"),
    ("Could not connect to the endpoint URL", "the S3 endpoint is unreachable"),
    ("Connection was closed", "the S3 endpoint closed the connection"),
    ("ConnectionClosedError", "the S3 endpoint closed the connection"),
    ("EndpointConnectionError", "the S3 endpoint is unreachable"),
    ("The config profile", "the named AWS profile does not exist"),
    ("does not exist", "a path does not exist"),
    ("No space left on device", "the target filesystem is full"),
    ("Permission denied", "permission denied at the target"),
    ("Read-only file system", "the target filesystem is read-only"),
)


def step_failed(step: str, done: "Completed", protocol: "Protocol", env: Mapping[str, str] | None = None) -> StepFailed:
    """The failure of ``done`` (a finished run of ``step``) as one line; ``env``: the children's
    environment, whose secrets are masked in the tool's quoted output."""
    tool = done.argv[0]
    code = done.returncode
    last = (_rsync_cause_line(done.stderr) if tool == "rsync" else "") or _last_error_line(done.stderr) \
        or _last_error_line(done.stdout)
    if tool == "rsync":
        meaning = RSYNC_EXIT.get(code, "see rsync's message")
    elif tool == "aws":
        meaning = next((hint for needle, hint in _AWS_HINTS if needle in done.stderr), "see aws's message")
    else:
        meaning = "see its message"
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


# Causes a tool reports from the operating system, most specific first: when one is in the
# output it is the reason (a full disk makes rsync's sender end on "Broken pipe").
_OS_CAUSES = (
    ("No space left on device", "the target filesystem is full: No space left on device"),
    ("Disk quota exceeded", "the disk quota is exceeded: Disk quota exceeded"),
    ("File too large", "a file exceeds the allowed size (file size limit or quota): File too large"),
    ("Read-only file system", "the target filesystem is read-only"),
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
