"""Sync ends: parsing, --source/--target override and append, --reverse.

An end is a local path, an rsync remote ``[user@]host:path``, or ``s3://bucket/key``.
The trailing separator of the source is meaningful everywhere (as in rsync): without
it the directory itself lands at ``target/<name>/``, with it its contents land in
``target/``.  Everything here is pure string work.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Callable

from .errors import ConfigError, UsageError

APPEND_PREFIX = "+ "
_BAD_HOST = re.compile(r"^-|[\s\x00-\x1f\x7f'\"`$;&|<>()\\*?\[\]{}!#~]")


@dataclass(frozen=True)
class End:
    """One end of a transfer."""

    text: str
    kind: str  # "local", "remote" (rsync over ssh) or "s3"
    host: str = ""  # [user@]host for remote ends
    path: str = ""  # the path part (for s3: "bucket/key...")

    @property
    def trailing_slash(self) -> bool:
        return self.text.endswith("/")

    @property
    def basename(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    def with_path(self, path: str) -> "End":
        return parse_end(_join_kind(self, path))

    def as_dir(self) -> "End":
        """The same end with a trailing separator (a directory whose contents are meant)."""
        return self if self.trailing_slash else self.with_path(self.path + "/")

    def child(self, name: str) -> "End":
        base = self.path
        if base and not base.endswith("/"):
            base += "/"
        return self.with_path(base + name)


def _join_kind(end: End, path: str) -> str:
    if end.kind == "s3":
        return "s3://" + path
    if end.kind == "remote":
        return f"{end.host}:{path}"
    return path


def parse_end(text: str) -> End:
    """Classify an end the way rsync / aws would (no I/O)."""
    if text.startswith("s3://"):
        return End(text=text, kind="s3", path=text[len("s3://"):])
    # rsync's own rule: a ':' before any '/' makes an end remote.  Whatever is before the ':' is
    # the host, even when it is not a valid host name: check_protocol_ends then refuses it
    # (hinting at './' for a local path) instead of letting rsync run ssh to it.
    head, colon, path = text.partition(":")
    if colon and head and "/" not in head:
        return End(text=text, kind="remote", host=head, path=path)
    return End(text=text, kind="local", path=text)


def apply_option(configured: str | None, option: str | None, *, what: str) -> str | None:
    """``--source/--target``: replace the end, or append to it when the value starts with '+ '.

    Appending keeps the configured end's trailing separator, whatever the appended
    part ends with (see the table in the README).
    """
    if option is None:
        return configured
    if not option.startswith(APPEND_PREFIX):
        if not option:
            raise UsageError(f"--{what}: empty path")
        return option
    raw = option[len(APPEND_PREFIX):]
    part = raw.strip("/")
    if not part or part.strip() != part:
        raise UsageError(f"--{what} {option!r}: nothing to append after '+ ' (write '+ sub/dir')")
    # An append names a place *below* the configured end: one that could climb out of it
    # ('..' anywhere, or an absolute path the user may have meant literally) is refused.
    if raw.startswith("/"):
        raise UsageError(f"--{what} {_show(option)}: an append is relative to the configured {what} "
                         f"(write '+ {part}', or give the whole path without '+ ')")
    if ".." in part.split("/"):
        raise UsageError(f"--{what} {_show(option)}: an append cannot contain '..' "
                         f"(it would climb out of the configured {what}; give the whole path without '+ ')")
    if configured is None:
        raise UsageError(f"--{what} {option!r}: cannot append, the protocol has no configured {what}")
    keep_slash = configured.endswith("/")
    base = configured.rstrip("/") if configured.rstrip("/") else configured
    if base.endswith(":") or base.endswith("/"):
        joined = base + part
    else:
        joined = base + "/" + part
    return joined + "/" if keep_slash else joined


def reverse_ends(source: str, target: str) -> tuple[str, str]:
    """Swap the direction so files travel back to where the forward sync put them.

    Forward ``S -> T`` puts ``S``'s files under ``T/<basename S>/`` (no slash on S) or
    under ``T/`` (slash).  The reverse reads that place and writes into ``S/``.
    """
    src, tgt = parse_end(source), parse_end(target)
    if src.trailing_slash or not src.basename:
        return tgt.as_dir().text, src.as_dir().text
    return tgt.child(src.basename).as_dir().text, src.as_dir().text


def check_protocol_ends(
    ptype: str, source: str, target: str, where: Callable[[str | None], str], *, error=ConfigError
) -> tuple[End, End]:
    """Refuse ends that cannot work for this protocol type (message names file/protocol/key)."""
    ends = []
    for key, text in (("source", source), ("target", target)):
        if "\x00" in text:
            raise error(f"{where(key)}: contains a NUL byte")
        end = parse_end(text)
        if end.kind == "remote":
            if _BAD_HOST.search(end.host.split("@")[-1]) or _BAD_HOST.search(end.host) \
                    or end.host.count("@") > 1 or end.host.startswith("@") or end.host.endswith("@"):
                raise error(f"{where(key)}: {_show(text)} has an invalid host name {_show(end.host)} "
                            f"(for a local path, write {_show('./' + text)})")
            if "\n" in end.path:  # rsync escapes remote paths with '\', and '\'+newline is a line continuation
                raise error(f"{where(key)}: {_show(text)}: a remote path cannot contain a line break "
                            "(rsync cannot pass it to the remote shell literally)")
        if end.kind == "s3" and not end.path.split("/", 1)[0]:
            raise error(f"{where(key)}: {text!r} names no bucket (write s3://bucket/prefix)")
        ends.append(end)
    src, tgt = ends
    if ptype == "rsync":
        for key, end in (("source", src), ("target", tgt)):
            if end.kind == "s3":
                raise error(f"{where(key)}: {end.text!r} is an S3 URL; use a protocol of type s3sync")
        if src.kind == "remote" and tgt.kind == "remote":
            raise error(f"{where('target')}: rsync cannot copy between two remote hosts ({src.text!r} -> {tgt.text!r})")
    elif ptype == "s3sync":
        if src.kind != "s3" and tgt.kind != "s3":
            raise error(f"{where('source')}: an s3sync protocol needs at least one end starting with s3:// "
                        f"(source {src.text!r}, target {tgt.text!r})")
        for key, end in (("source", src), ("target", tgt)):
            if end.kind == "remote":
                raise error(f"{where(key)}: {end.text!r} is a host:path end; s3sync takes local paths and s3:// URLs")
    if _same_place(src, tgt):
        raise error(f"{where('target')}: source and target are the same place ({src.text!r}); nothing to sync")
    return src, tgt


def _show(text: str, limit: int = 120) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[:limit - 20]}...' ({len(text)} characters)"


def _same_place(a: End, b: End) -> bool:
    if a.kind != b.kind or a.host != b.host:
        return False
    if a.kind == "s3":
        return a.path.rstrip("/") == b.path.rstrip("/")
    return posixpath.normpath(a.path or ".") == posixpath.normpath(b.path or ".")
