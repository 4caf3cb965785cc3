"""The one error family of flepimop-sync.

Every user-facing failure is a ``SyncError``; the CLI maps ``exit_code`` to the
process exit status in one place (``cli.run_command``) and prints ``str(error)`` as a
single line, with secrets masked (``report.redact``) wherever it is printed or
written (the Snakemake wrapper, receipts, logs).  The exit codes are numbered here, once
(``EXIT_*``, ``signal_exit``: each error class carries its own, and ``cli`` uses the same
names for the outcomes that are not ours); nothing else in the package decides them.
Messages quote what the user wrote with ``show_value``, word an ``OSError`` with
``describe_os_error`` and refuse a NUL byte with ``has_nul``, the same way everywhere.
"""

from __future__ import annotations

from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def signal_exit(signum: int) -> int:
    """The exit status of a run stopped by a signal, as a shell reports it: 128 + its number."""
    return 128 + signum


class SyncError(Exception):
    """Base class: a failure we can explain to the user in one line."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line, always, secrets masked (it reaches logs and receipts too)
        from .report import redact

        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return redact(" ".join(text.split("\n")))


class UsageError(SyncError):
    """Bad command-line usage. Nothing was run."""

    exit_code = EXIT_USAGE


class ConfigError(SyncError):
    """Bad configuration (file, protocol or key named in the message). Nothing was run."""

    exit_code = EXIT_USAGE


class FilterError(ConfigError):
    """A filter rule that breaks the filter language (FILTERS.md section 1); ``rule`` and
    ``reason`` (when known) are the refused text and why, for messages that name where the rule
    was written their own way (the workflow config's key path)."""

    def __init__(self, message: str, *, rule: str | None = None, reason: str | None = None,
                 hint: str | None = None):
        super().__init__(message, hint=hint)
        self.rule = rule
        self.reason = reason


class StepFailed(SyncError):
    """A step of the plan failed at run time (the tool's exit status is in the message)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, step: str = "", returncode: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.step = step
        self.returncode = returncode


class SafetyHalt(SyncError):
    """A safety check refused to go on (dirty git tree, lock held...). Nothing was changed."""

    exit_code = EXIT_FAILED


class Interrupted(SyncError):
    """SIGINT/SIGTERM/SIGHUP: children were stopped; exit 128 + signal number (130/143/129)."""

    def __init__(self, signum: int):
        import signal

        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}; child processes were stopped, rerun the same command to resume")
        self.exit_code = signal_exit(signum)


def show_value(value: Any, limit: int = 120) -> str:
    """``repr(value)`` for a one-line message, cut to about ``limit`` characters: a long string
    keeps its start and says how long it is (``'abc...' (300 characters)``)."""
    shown = repr(value)
    if len(shown) <= limit:
        return shown
    if isinstance(value, str):
        return f"{shown[:limit - 20]}...{shown[0]} ({len(value)} characters)"
    return shown[:limit - 3] + "..."


def has_nul(where: str) -> str:
    """The refusal of a value holding a NUL byte (no path, host, option or argv element can carry
    one), wherever it is found."""
    return f"{where}: contains a NUL byte"


def describe_os_error(exc: OSError) -> str:
    """An OSError from the environment (unreadable directory, full disk...) as one line."""
    name = exc.filename
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    reason = exc.strerror or type(exc).__name__
    return f"{name!r}: {reason}" if name is not None else reason
