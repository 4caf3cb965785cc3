"""Human output: one Reporter that knows the verbosity and where text goes.

Level 0 prints results and warnings; -v the exact commands; -vv per-file detail;
-vvv debug.  With --json, human text goes to stderr so stdout stays one JSON
document.  Secrets never reach here: callers pass argv (no credentials) and
``redact`` masks anything that looks like a credential in free text.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from typing import Iterable, Mapping, TextIO

_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """Mask credentials: URL user-info and the values of AWS secret variables.

    Values are taken from this process' environment and, when given, from ``env`` too (the
    environment the children actually run with, which may carry other credentials).
    """
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    sources = (os.environ,) if env is None else (os.environ, env)
    values = {source.get(name) for source in sources for name in _SECRET_ENV}
    for value in sorted((v for v in values if v and len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def format_argv(argv: Iterable[str], env: Mapping[str, str] | None = None) -> str:
    """The exact command, quoted so it can be pasted into a POSIX shell."""
    return redact(shlex.join(list(argv)), env)


@dataclass
class Reporter:
    verbosity: int = 0
    json_mode: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    env: Mapping[str, str] | None = None  # the children's environment: its secrets are masked too

    @property
    def human(self) -> TextIO:
        """Where human-readable results go: stdout, or stderr when stdout carries JSON."""
        return self.stream if self.json_mode else self.out

    def result(self, message: str) -> None:
        print(redact(message, self.env), file=self.human, flush=True)

    def info(self, message: str) -> None:
        print(redact(message, self.env), file=self.human, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {redact(message, self.env)}", file=self.stream, flush=True)

    def command(self, argv: Iterable[str], *, cwd: str | None = None) -> None:
        if self.verbosity >= 1:
            where = f"(in {cwd}) " if cwd else ""
            print(f"+ {where}{format_argv(argv, self.env)}", file=self.stream, flush=True)

    def detail(self, message: str) -> None:
        if self.verbosity >= 2:
            print(redact(message, self.env), file=self.stream, flush=True)

    def debug(self, message: str) -> None:
        if self.verbosity >= 3:
            print(f"debug: {redact(message, self.env)}", file=self.stream, flush=True)

    @property
    def is_tty(self) -> bool:
        try:
            return self.stream.isatty() and not self.json_mode
        except (AttributeError, ValueError):
            return False
