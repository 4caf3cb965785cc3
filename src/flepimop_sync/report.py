"""Human output: one Reporter that knows the verbosity and where text goes, and the one place
secrets are masked.

Level 0 prints results and warnings; -v the exact commands; -vv per-file detail;
-vvv debug.  With --json, human text goes to stderr so stdout stays one JSON
document.  ``some`` is how every message names files (the first few, and how many more);
``now_iso`` how every record writes the time.

Secrets are masked by structure, here and nowhere else, and every output path comes through
here (-v command lines via ``format_argv``; --plan/--json and receipts via ``dump_json``, which
masks inside the strings of the structure, ``redact_json``, never over the JSON text; messages,
logs and quoted tool output via ``redact``):

- URL user-info (``scheme://user:password@host``), where the user-info ends at the *last* '@'
  before a host part, so a raw '@' or '/' in the password is masked too;
- known password-bearing command words, wherever a command appears (argv, an ``rsh`` string,
  an ssh ``ProxyCommand``): ``sshpass -p X``, ``--password X``/``--password=X`` (and pass,
  passwd, token, secret, api-key), ``-o SetEnv=NAME=VALUE``, ``user:password@host`` words,
  and environment assignments ``NAME=VALUE`` whose name looks secret;
- the values of environment variables whose name looks secret (``AWS_SECRET_ACCESS_KEY``,
  ``AWS_SESSION_TOKEN``, ``*TOKEN*``, ``*PASSWORD*``...), in this process' environment and in
  the children's.

Secret values found structurally in a config (``remember_secrets_in``) are also masked as
literal text wherever they show up later, e.g. in a tool's error message.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, TextIO

MASK = "***"
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")
#: An environment variable or option name that carries a secret value.
_SECRET_NAME = re.compile(r"(?i)pass(word|wd|phrase)?|secret|token|credential|api[_-]?key|access[_-]?key"
                          r"|private[_-]?key|auth[_-]?key|signature|cookie|sshpass")
#: Option names (without dashes) whose value is a secret, in any command.
_SECRET_OPTIONS = re.compile(r"(?i)(pass(word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|credentials?)$")
#: ssh -o keys whose value is itself a command line (redacted recursively).
_COMMAND_KEYS = ("proxycommand", "localcommand", "remotecommand", "knownhostscommand")
_NOT_SECRET = {"", "yes", "no", "true", "false", "none", "0", "1"}
_MIN_LITERAL = 3  # shorter remembered values would mask ordinary text everywhere
#: "scheme://" (not s3:, whose URLs never carry credentials).
_URL_START = re.compile(r"(?<![A-Za-z0-9+.-])(?!s3://)([a-zA-Z][a-zA-Z0-9+.-]*)://")
_HOST_AFTER_AT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)(:\d*)?([/?#]|$)")
_TOKEN_END = re.compile(r"[\s'\"<>`]")
#: 'user:password@host' written without a scheme (curl -u style proxies, ProxyCommand nc -x).
_BARE_USERINFO = re.compile(r"^([^\s/@:]+):(.+)@(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:\d+)?$")

_REMEMBERED: set[str] = set()


def _userinfo_span(token: str) -> tuple[int, int] | None:
    """(start, end) of the user-info in ``token`` (which starts right after 'scheme://'):
    everything up to the last '@' that is followed by a host part."""
    at = token.rfind("@")
    while at > 0:
        if _HOST_AFTER_AT.match(token, at + 1):
            return 0, at
        at = token.rfind("@", 0, at)
    return None


def _mask_urls(text: str, *, whole: bool = False) -> str:
    """Mask the user-info of every URL in ``text``. ``whole``: the URL runs to the end of the
    text (one argv element or config value), so even whitespace in a password is masked."""
    out = []
    pos = 0
    for match in _URL_START.finditer(text):
        start = match.end()
        if start < pos:
            continue
        end = len(text)
        if not whole:
            stop = _TOKEN_END.search(text, start)
            end = stop.start() if stop else len(text)
        span = _userinfo_span(text[start:end])
        if span is None:
            continue
        out.append(text[pos:start])
        out.append(MASK)
        pos = start + span[1]
    out.append(text[pos:])
    return "".join(out)


def _url_secrets(text: str) -> set[str]:
    """The user-info (and its password part) of every URL in one value."""
    found = set()
    for match in _URL_START.finditer(text):
        start = match.end()
        span = _userinfo_span(text[start:])
        if span:
            userinfo = text[start:start + span[1]]
            found.add(userinfo)
            if ":" in userinfo:
                found.add(userinfo.split(":", 1)[1])
    return found


def secrets_in_words(words: Iterable[str]) -> set[str]:
    """Secret values carried by a command given as words (an argv, or a split rsh string)."""
    words = list(words)
    found: set[str] = set()
    in_sshpass = False
    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        base = os.path.basename(word)
        if base == "sshpass":
            in_sshpass = True
        elif in_sshpass and not word.startswith("-"):
            in_sshpass = False  # the command sshpass runs
        if in_sshpass and word.startswith("-p"):
            if word == "-p" and nxt is not None:
                found.add(nxt)
                i += 2
                continue
            found.add(word[2:])
            i += 1
            continue
        i += _word_secrets(word, nxt, found)
    return {v for v in found if v.strip() and v.lower() not in _NOT_SECRET}


def _word_secrets(word: str, nxt: str | None, found: set[str]) -> int:
    """Add the secrets one word (with the next one, for options taking a value) carries to
    ``found``; return how many words it used (1 or 2)."""
    if word.startswith("--") and "=" in word:
        name, _, value = word[2:].partition("=")
        if _SECRET_OPTIONS.search(name):
            found.add(value)
        elif name in ("rsh", "rsync-path") or name.endswith("command"):
            found |= secrets_in_command(value)
        found |= _url_secrets(value)
        return 1
    if word.startswith("--") and _SECRET_OPTIONS.search(word[2:]) and nxt is not None:
        found.add(nxt)
        return 2
    if word in ("-e", "--rsh") and nxt is not None:
        found |= secrets_in_command(nxt)
        return 2
    if word.startswith("-o"):
        setting = word[2:] if word != "-o" else (nxt or "")
        found |= _ssh_option_secrets(setting)
        return 2 if word == "-o" else 1
    if not word.startswith("-") and "=" in word and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):
        name, _, value = word.partition("=")
        if _SECRET_NAME.search(name):
            found.add(value)
        found |= _url_secrets(value)
        return 1
    bare = _BARE_USERINFO.match(word)
    if bare and not word.startswith("-"):
        found.add(bare.group(2))
    found |= _url_secrets(word)
    return 1


def _ssh_option_secrets(setting: str) -> set[str]:
    """Secrets in one ssh ``-o Key=Value`` (or 'Key Value') setting."""
    match = re.match(r"^\s*([A-Za-z]+)\s*(?:=|\s)\s*(.*)$", setting, re.S)
    if not match:
        return set()
    key, value = match.group(1).lower(), match.group(2)
    if key == "setenv":
        try:
            items = shlex.split(value)
        except ValueError:
            items = value.split()
        return {item.partition("=")[2] for item in items if "=" in item} | {value.partition("=")[2]}
    if key == "sendenv":  # the values of the variables it sends are secrets
        names = value.replace(",", " ").split()
        return {v for name, v in os.environ.items() if v and any(fnmatch.fnmatchcase(name, n) for n in names)}
    if key in _COMMAND_KEYS:
        return secrets_in_command(value)
    if _SECRET_OPTIONS.search(key):
        return {value}
    return _url_secrets(value)


def secrets_in_command(text: str) -> set[str]:
    """Secret values in a command line written as one string (``rsh``, ``ProxyCommand``)."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return secrets_in_words(words) | _url_secrets(text)


def secrets_in_env(env: Mapping[str, str]) -> set[str]:
    """Values of environment variables whose name says they are secret, and commands the
    tools run from the environment (RSYNC_RSH, GIT_SSH_COMMAND)."""
    found = set()
    for name, value in env.items():
        if not value:
            continue
        if name in _SECRET_ENV or _SECRET_NAME.search(name):
            found.add(value)
        elif name in ("RSYNC_RSH", "GIT_SSH_COMMAND", "GIT_SSH") or name.endswith("_URL") or "://" in value:
            found |= secrets_in_command(value) if not name.endswith("_URL") else _url_secrets(value)
    return {v for v in found if v.strip() and v.lower() not in _NOT_SECRET}


def secrets_in_setting(key: str, value: Any) -> set[str]:
    """Secret values in one configured setting (a protocol key), by what the key holds."""
    if isinstance(value, list):
        return set().union(*(secrets_in_setting(key, v) for v in value)) if value else set()
    if not isinstance(value, str):
        return set()
    found = _url_secrets(value)
    if key == "rsh" or key.endswith("command"):
        found |= secrets_in_command(value)
    elif _SECRET_OPTIONS.search(key):
        found.add(value)
    return {v for v in found if v.strip() and v.lower() not in _NOT_SECRET}


def remember_secrets(values: Iterable[str]) -> None:
    """Mask these values as literal text in every later output of this process."""
    _REMEMBERED.update(v for v in values if len(v) >= _MIN_LITERAL and v.lower() not in _NOT_SECRET)


def remember_secrets_in(settings: Mapping[str, Any]) -> None:
    """Remember the secrets of a configured protocol (every key, by what it holds)."""
    for key, value in settings.items():
        remember_secrets(secrets_in_setting(str(key), value))


def _literal_mask(text: str, values: Iterable[str]) -> str:
    for value in sorted(set(values), key=len, reverse=True):
        if value and value in text:
            text = text.replace(value, MASK)
    return text


@lru_cache(maxsize=64)
def _env_secrets(items: tuple[tuple[str, str], ...]) -> frozenset[str]:
    return frozenset(v for v in secrets_in_env(dict(items)) if len(v) >= _MIN_LITERAL)


def _known_values(env: Mapping[str, str] | None) -> set[str]:
    values = set(_REMEMBERED)
    for source in ((os.environ,) if env is None else (os.environ, env)):
        values |= _env_secrets(tuple(source.items()))
    return values


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """Mask credentials in free text: URL user-info, remembered secrets, secret environment values.

    Values are taken from this process' environment and, when given, from ``env`` too (the
    environment the children actually run with, which may carry other credentials).
    """
    if not isinstance(text, str):
        text = str(text)
    return _mask_urls(_literal_mask(text, _known_values(env)))


def redact_argv(argv: Iterable[str], env: Mapping[str, str] | None = None) -> list[str]:
    """The argv with every secret word masked (structure first, then as free text)."""
    words = list(argv)
    found = secrets_in_words(words)
    return [redact(_mask_urls(_literal_mask(word, found), whole=True), env) for word in words]


def redact_json(obj: Any, env: Mapping[str, str] | None = None, *, argv: bool = False) -> Any:
    """A copy of a JSON-ready structure with every string redacted: settings by what their key
    holds (``rsh``, ``endpoint_url``...), command lines (``argv``, ``commands``) word by word."""
    if isinstance(obj, str):
        return redact(_mask_urls(obj, whole=True), env)
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            name = str(key)
            if isinstance(value, str):
                value = _literal_mask(value, secrets_in_setting(name, value))
            out[redact(key, env) if isinstance(key, str) else key] = redact_json(
                value, env, argv=name in ("argv", "commands"))
        return out
    if isinstance(obj, (list, tuple)):
        if argv and all(isinstance(v, str) for v in obj):
            return redact_argv(obj, env)
        return [redact_json(v, env, argv=argv) for v in obj]
    return obj


def dump_json(obj: Any, env: Mapping[str, str] | None = None, *, indent: int | None = 2) -> str:
    """The JSON text of a result, plan or receipt, secrets masked: inside its strings
    (``redact_json``) before it is serialised, never over the text afterwards -- a secret value
    such as ``1234`` would otherwise replace a number or a piece of the syntax and break the
    document.  A value JSON has no type for is written as its (redacted) text."""
    return json.dumps(redact_json(obj, env), indent=indent, default=lambda value: redact(str(value), env))


def now_iso() -> str:
    """The time as results, receipts and lock notes write it (UTC, to the second)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def some(names: Iterable[str], limit: int = 5, show: Callable[[str], str] = repr) -> str:
    """The first few names of a list, each as ``show`` writes it, and how many more: how every
    message names files."""
    names = list(names)
    shown = ", ".join(show(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def format_argv(argv: Iterable[str], env: Mapping[str, str] | None = None) -> str:
    """The exact command, quoted so it can be pasted into a POSIX shell (secrets masked)."""
    return shlex.join(redact_argv(argv, env))


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

    def info(self, message: str) -> None:
        print(redact(message, self.env), file=self.human, flush=True)

    #: A run's closing line ("done: ...", the dry run's summary): printed as ``info`` is.
    result = info

    def with_env(self, env: Mapping[str, str] | None) -> "Reporter":
        """This reporter for children run with ``env``: its secrets are masked too."""
        return replace(self, env=env)

    def warn(self, message: str) -> None:
        print(f"warning: {redact(message, self.env)}", file=self.stream, flush=True)

    def note(self, message: str) -> None:
        """A fact the user should know that is not a problem (stderr, every verbosity)."""
        print(f"note: {redact(message, self.env)}", file=self.stream, flush=True)

    def verbose(self, message: str) -> None:
        if self.verbosity >= 1:
            print(redact(message, self.env), file=self.stream, flush=True)

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
