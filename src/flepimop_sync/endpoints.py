"""Sync ends: parsing, --source/--target override and append, --reverse.

An end is a local path, an rsync remote ``[user@]host:path``, or ``s3://bucket/key`` (its
:class:`EndKind`).
The trailing separator of the source is meaningful everywhere (as in rsync): without
it the directory itself lands at ``target/<name>/``, with it its contents land in
``target/``; a source ending in ``.`` or ``..`` (or a remote home, ``host:``) has no name
and is copied as contents, as rsync does.  Everything here is string work, except what the user's own words ask for:
``expand_end`` reads the environment (``$NAME``, by the filter rules' own grammar,
``filters.substitute_variables``: a malformed ``${`` is refused in an end as in a rule; so is,
in an end only, a variable set but empty, ``check_empty_variables``) and the
password database (``~user``), and
``check_nesting`` resolves local ends (symlinks, ``..``) with ``os.path.realpath`` and asks the
run's filter list whether it takes anything below a destination inside the source.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Mapping

from .errors import ConfigError, UsageError, has_nul, show_value
from .filters import FilterList, VariableSyntaxError, substitute_noting_empty, substitute_variables
from .mechanism import ProtocolType

APPEND_PREFIX = "+ "
_BAD_HOST = re.compile(r"^-|[\s\x00-\x1f\x7f'\"`$;&|<>()\\*?\[\]{}!#~]")


class EndKind(str, Enum):
    """What an end is.  A ``str`` (its value), so JSON and messages read as before."""

    LOCAL = "local"
    REMOTE = "remote"  # rsync over ssh: [user@]host:path
    S3 = "s3"

    def __str__(self) -> str:  # f-strings and str() give the value on every Python (3.12 changed format())
        return self.value


@dataclass(frozen=True)
class End:
    """One end of a transfer."""

    text: str
    kind: EndKind
    host: str = ""  # [user@]host for remote ends
    path: str = ""  # the path part (for s3: "bucket/key...")

    @property
    def trailing_slash(self) -> bool:
        return self.text.endswith("/")

    @property
    def basename(self) -> str:
        """The name the end's directory lands under; none for a path ending in '.' or '..'
        (rsync copies those as contents, like a trailing slash: '..' must never make a
        destination '<target>/..')."""
        name = posixpath.basename(self.path.rstrip("/"))
        return "" if name in (".", "..") else name

    def with_path(self, path: str) -> "End":
        return parse_end(_join_kind(self, path))

    def as_dir(self) -> "End":
        """The same end with a trailing separator (a directory whose contents are meant).  A
        remote end with no path (``host:``) already means the remote home's contents, as in
        rsync: it stays ``host:`` (``host:/`` would be the remote root)."""
        if self.trailing_slash or (self.kind == EndKind.REMOTE and not self.path):
            return self
        return self.with_path(self.path + "/")

    def child(self, name: str) -> "End":
        base = self.path
        if base and not base.endswith("/"):
            base += "/"
        return self.with_path(base + name)


def _join_kind(end: End, path: str) -> str:
    if end.kind == EndKind.S3:
        return "s3://" + path
    if end.kind == EndKind.REMOTE:
        return f"{end.host}:{path}"
    return path


def parse_end(text: str) -> End:
    """Classify an end the way rsync / aws would (no I/O)."""
    if text.startswith("s3://"):
        return End(text=text, kind=EndKind.S3, path=text[len("s3://"):])
    # rsync's own rule: a ':' before any '/' makes an end remote.  Whatever is before the ':' is
    # the host, even when it is not a valid host name: check_protocol_ends then refuses it
    # (hinting at './' for a local path) instead of letting rsync run ssh to it.
    head, colon, path = text.partition(":")
    if colon and head and "/" not in head:
        return End(text=text, kind=EndKind.REMOTE, host=head, path=path)
    return End(text=text, kind=EndKind.LOCAL, path=text)


def apply_option(configured: str | None, option: str | None, *, what: str,
                 env: Mapping[str, str] | None = None) -> str | None:
    """``--source/--target``: replace the end, or append to it when the value starts with '+ '.

    Appending keeps the configured end's trailing separator, whatever the appended
    part ends with (see the table in the README).  ``env``: the environment its ``$NAME``s
    will be expanded with (``expand_end``), so a '..' they hold is refused too, and one set but
    empty is refused naming the option (``check_empty_variables``).
    """
    if option is None:
        return configured
    check_variables(option, f"--{what}")
    if not option.startswith(APPEND_PREFIX):
        if not option:
            raise UsageError(f"--{what}: empty path")
        if env is not None:
            check_empty_variables(option, env, f"--{what}")
        return option
    raw = option[len(APPEND_PREFIX):]
    part = raw.strip("/")
    if not part or part.strip() != part:
        raise UsageError(f"--{what} {option!r}: nothing to append after '+ ' (write '+ sub/dir')")
    # An append names a place *below* the configured end: one that could climb out of it
    # ('..' anywhere, or an absolute path the user may have meant literally) is refused.
    if raw.startswith("/"):
        raise UsageError(f"--{what} {show_value(option)}: an append is relative to the configured {what} "
                         f"(write '+ {part}', or give the whole path without '+ ')")
    expanded = part if env is None else _expand_variables(part, env)
    if ".." in part.split("/") or ".." in expanded.split("/"):
        # (checked on the expanded text too: '+ $SUB' with SUB=../x climbs just as '+ ../x' does)
        raise UsageError(f"--{what} {show_value(option)}: an append cannot contain '..', written or through "
                         f"$NAME (it would climb out of the configured {what}; give the whole path without '+ ')")
    if "." in part.split("/") or "." in expanded.split("/") or not expanded.strip("/"):
        # '+ $RUN' with RUN='' (or '.') would name the configured end itself, or, after a source,
        # its contents: files land (and --delete deletes) one level above where the append points
        raise UsageError(f"--{what} {show_value(option)}: an append must name a directory below the configured "
                         f"{what}, written or through $NAME (it names nothing, or has a '.' part)")
    if env is not None:
        check_empty_variables(option, env, f"--{what}")
    if configured is None:
        raise UsageError(f"--{what} {option!r}: cannot append, the protocol has no configured {what}")
    keep_slash = configured.endswith("/")
    # Trailing separators come off the path part only: a root stays '/' ('hpc:/' + 'x' is
    # 'hpc:/x', never 'hpc:x', which is below the remote home), and 'hpc:' + 'x' is 'hpc:x'.
    end = parse_end(configured)
    base = end.path.rstrip("/") or ("/" if end.path.startswith("/") else "")
    joined = _join_kind(end, base + part if base in ("", "/") else base + "/" + part)
    return joined + "/" if keep_slash else joined


def keep_separator(expanded: str, configured: str) -> str:
    """An appended end once its ``$NAME``s are expanded: its trailing separator is the configured
    end's (see ``apply_option``), whatever a variable at its end held (``+ $SUB`` with
    ``SUB=run1/`` must not turn a source into its contents)."""
    end = parse_end(expanded)
    path = end.path.rstrip("/")
    if not path:  # a root or a remote home: as it is
        return expanded
    return _join_kind(end, path + "/" if configured.endswith("/") else path)


def _expand_variables(text: str, env: Mapping[str, str]) -> str:
    """``$NAME``/``${NAME}``/``$$`` as ``expand_end`` reads them; an unset name stays a name
    (``expand_end`` refuses it, naming the key).  Call :func:`check_variables` first."""
    return substitute_variables(text, lambda name: env.get(name, name))


def check_variables(text: str, where: str, *, error=UsageError) -> None:
    """Refuse an end whose variables are malformed as written (a ``${`` with no name and ``}``),
    as a filter rule with one is refused: the same grammar (``filters.substitute_variables``)."""
    try:
        substitute_variables(text, lambda name: name)
    except VariableSyntaxError as problem:
        raise error(f"{where}: {show_value(text)}: {problem}") from None


def check_empty_variables(text: str, env: Mapping[str, str], where: str, *, error=UsageError) -> None:
    """Refuse an end with a ``$NAME`` that is set but empty: ``runs/$RUN/out/`` with ``RUN=''``
    reads ``runs//out/``, another directory than the one meant (with --delete, deleting there),
    and ``out/$RUN`` reads ``out/``, the parent.  (An unset one is refused by ``expand_end``.)"""
    shown, empty = substitute_noting_empty(text, lambda name: env.get(name, "$" + name))
    if empty:
        names = ", ".join(f"${name}" for name in empty)
        raise error(f"{where}: {show_value(text)} uses {names}, set but empty in the environment: it would name "
                    f"{show_value(shown)}, another place than the one meant (set {'/'.join(empty)}, or write the "
                    "path without it)")


def reverse_ends(source: str, target: str, *, source_is_file: bool = False) -> tuple[str, str]:
    """Swap the direction so files travel back to where the forward sync put them.

    Forward ``S -> T`` puts ``S``'s files under ``T/<basename S>/`` (no slash on S) or
    under ``T/`` (slash).  The reverse reads that place and writes into ``S/``.  A single
    file ``S`` (``source_is_file``: the caller looked) went to ``T/<basename S>``: the reverse
    reads that file and writes it into the directory ``S`` is in, so it comes back as ``S``.
    """
    src, tgt = parse_end(source), parse_end(target)
    if source_is_file:
        return tgt.child(src.basename).text, src.with_path(posixpath.dirname(src.path) or ".").as_dir().text
    if src.trailing_slash or not src.basename:
        return tgt.as_dir().text, src.as_dir().text
    return tgt.child(src.basename).as_dir().text, src.as_dir().text


def check_protocol_ends(
    ptype: ProtocolType, source: str, target: str, where: Callable[[str | None], str], *, error=ConfigError
) -> tuple[End, End]:
    """Refuse ends that cannot work for this protocol type (message names file/protocol/key)."""
    src = _checked_end("source", source, where, error)
    tgt = _checked_end("target", target, where, error)
    if ptype == ProtocolType.RSYNC:
        _check_rsync_ends(src, tgt, where, error)
    elif ptype == ProtocolType.S3SYNC:
        _check_s3sync_ends(src, tgt, where, error)
    if _same_place(src, tgt):
        raise error(f"{where('target')}: source and target are the same place ({src.text!r}); nothing to sync")
    return src, tgt


def _checked_end(key: str, text: str, where: Callable[[str | None], str], error) -> End:
    """One end, refused when no protocol could use it (NUL, bad host, remote line break, no bucket)."""
    if "\x00" in text:
        raise error(has_nul(where(key)))
    end = parse_end(text)
    if end.kind == EndKind.REMOTE:
        if _bad_host(end.host):
            raise error(_invalid_host(where(key), text, end.host))
        if "\n" in end.path:  # rsync escapes remote paths with '\', and '\'+newline is a line continuation
            raise error(f"{where(key)}: {show_value(text)}: a remote path cannot contain a line break "
                        "(rsync cannot pass it to the remote shell literally)")
    if end.kind == EndKind.S3 and not end.path.split("/", 1)[0]:
        raise error(f"{where(key)}: {text!r} names no bucket (write s3://bucket/prefix)")
    if end.kind == EndKind.S3 and _odd_segments(end.path.partition("/")[2]):
        # S3 keys are literal: 'd/x/../run/' lies below 'd/x/', yet reads as 'd/run/' to anyone
        # comparing paths, and aws and rclone each place such keys differently
        raise error(f"{where(key)}: {show_value(text)}: an S3 key prefix with an empty, '.' or '..' part "
                    "cannot be synced (S3 keys are literal; aws and rclone place such keys differently)")
    return end


def _odd_segments(key: str) -> bool:
    """Does a key prefix hold an empty ('//'), '.' or '..' part?  (A trailing '/' is no part.)"""
    parts = key.split("/")
    if parts[-1] == "":
        parts.pop()
    return any(part in ("", ".", "..") for part in parts)


def _check_rsync_ends(src: End, tgt: End, where: Callable[[str | None], str], error) -> None:
    for key, end in (("source", src), ("target", tgt)):
        if end.kind == EndKind.S3:
            raise error(f"{where(key)}: {end.text!r} is an S3 URL; use a protocol of type s3sync")
    if src.kind == EndKind.REMOTE and tgt.kind == EndKind.REMOTE:
        raise error(f"{where('target')}: rsync cannot copy between two remote hosts ({src.text!r} -> {tgt.text!r})")


def _check_s3sync_ends(src: End, tgt: End, where: Callable[[str | None], str], error) -> None:
    if src.kind != EndKind.S3 and tgt.kind != EndKind.S3:
        raise error(f"{where('source')}: an s3sync protocol needs at least one end starting with s3:// "
                    f"(source {src.text!r}, target {tgt.text!r})")
    for key, end in (("source", src), ("target", tgt)):
        if end.kind == EndKind.REMOTE:
            raise error(f"{where(key)}: {end.text!r} is a host:path end; s3sync takes local paths and s3:// URLs")


def _bad_host(host: str) -> bool:
    return bool(_BAD_HOST.search(host.split("@")[-1]) or _BAD_HOST.search(host)
                or host.count("@") > 1 or host.startswith("@") or host.endswith("@"))


def _invalid_host(where: str, text: str, host: str) -> str:
    return (f"{where}: {show_value(text)} has an invalid host name {show_value(host)} "
            f"(for a local path, write {show_value('./' + text)})")


def _same_place(a: End, b: End) -> bool:
    if a.kind != b.kind or a.host != b.host:
        return False
    if a.kind == EndKind.S3:
        return a.path.rstrip("/") == b.path.rstrip("/")
    return posixpath.normpath(a.path or ".") == posixpath.normpath(b.path or ".")


# -- paths as users write them ------------------------------------------------------
def expand_end(text: str, env: Mapping[str, str], where: str, *, error=UsageError) -> str:
    """``$NAME``/``${NAME}`` in any end (``$$`` is a literal ``$``; an unset one, or one set but
    empty (``check_empty_variables``), is refused); ``~`` and ``~user`` at the
    start of a local end.  A remote ``host:~/x`` is left for the remote shell, which knows that
    host's home; nothing ever makes a directory literally named ``~``."""

    def value(name: str) -> str:
        if name not in env:
            raise error(f"{where}: {text!r} uses ${name}, which is not set in the environment")
        return env[name]

    check_variables(text, where, error=error)
    written = parse_end(substitute_variables(text, lambda _name: "x"))
    if written.kind == EndKind.REMOTE and _bad_host(written.host):  # as written, before any expansion
        raise error(_invalid_host(where, text, written.host))
    expanded = substitute_variables(text, value)
    if not expanded:  # read as an empty path, '' would become '/' (End.as_dir): the root
        raise error(f"{where}: {text!r} is empty once its variables are expanded "
                    "(for the working directory, write '.')")
    check_empty_variables(text, env, where, error=error)
    if expanded.startswith("~") and parse_end(expanded).kind == EndKind.LOCAL:
        expanded = _expand_user(expanded, env, where, error)
    return expanded


def _expand_user(text: str, env: Mapping[str, str], where: str, error) -> str:
    import pwd

    user, slash, rest = text[1:].partition("/")
    try:
        if user:
            home = pwd.getpwnam(user).pw_dir
        else:
            home = env.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        raise error(f"{where}: {text!r}: there is no user {user!r} for '~{user}' to name "
                    f"(for a directory literally named '~{user}', write './~{user}')") from None
    if not slash:
        return home
    return home.rstrip("/") + "/" + rest


def canonical(end: End) -> str:
    """One spelling per place, to compare ends: local ends fully resolved (``..``, symlinks),
    remote paths normalised (relative = below the remote home), S3 as ``/bucket/key``, literally."""
    if end.kind == EndKind.LOCAL:
        return os.path.realpath(end.path or ".")
    if end.kind == EndKind.REMOTE:
        path = end.path
        if path == "~" or path.startswith("~/"):
            path = path[2:]  # the remote home: same as a relative path
        return posixpath.normpath(path or ".")
    return "/" + end.path.rstrip("/")  # literal: S3 keys have no '..' (and ends with one are refused)


def _inside(inner: str, outer: str) -> bool:
    if inner == outer:
        return True
    if outer == "/":
        return inner.startswith("/")
    if outer == ".":  # a remote home: relative paths are below it
        return not inner.startswith("/")
    return inner.startswith(outer + "/")


def _below(inner: str, outer: str) -> str:
    """``inner``'s path below ``outer`` (canonical spellings, ``_inside(inner, outer)``)."""
    if inner == outer:
        return ""
    if outer == ".":
        return inner
    return inner[len(outer):].strip("/")


def part_below(inner: End, outer: End) -> str | None:
    """``inner``'s path below ``outer`` ('' for the same place), or None when ``inner`` is not
    ``outer`` or inside it (different kinds or hosts are never compared)."""
    if inner.kind != outer.kind or inner.host != outer.host:
        return None
    a, b = canonical(inner), canonical(outer)
    return _below(a, b) if _inside(a, b) else None


def check_nesting(source: End, destination: End, where: Callable[[str | None], str], *, error=UsageError,
                  places: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
                  rules: FilterList | None = None) -> None:
    """Refuse a destination inside the source (each run would copy the source into itself, one
    level deeper) and a source inside the destination (a --delete there would remove the source).

    A destination strictly inside the source is allowed when ``rules`` (the run's filter list)
    provably select nothing below it (``FilterList.selects_nothing_below``): the project files'
    push (``+ /RUN*.pdf`` from ``./``) to a snapshot directory below the project never reads
    what it wrote.  A source inside the destination stays refused whatever the rules.

    Ends of different kinds or hosts are compared only through ``places``: their canonical places
    (``lock.canonical_place``, segment tuples), which the caller gives when two spellings may
    name one machine's path (``hpc:/abs`` where ``hpc`` is this machine, and ``/abs``)."""
    if places is not None:
        src_place, dst_place = places
        dst_in_src = dst_place[:len(src_place)] == src_place
        src_in_dst = src_place[:len(dst_place)] == dst_place
        below = "/".join(dst_place[len(src_place):])
    elif source.kind != destination.kind or source.host != destination.host:
        return
    else:
        src, dst = canonical(source), canonical(destination)
        dst_in_src, src_in_dst = _inside(dst, src), _inside(src, dst)
        below = _below(dst, src) if dst_in_src else ""
    if dst_in_src and not src_in_dst and rules is not None and rules.selects_nothing_below(below):
        return  # the transfer never reads the destination's subtree
    if dst_in_src:
        raise error(f"{where('target')}: files would land in {show_value(destination.text)}, which is inside the "
                    f"source {show_value(source.text)} (each run would copy the source into itself); "
                    "choose a target outside the source")
    if src_in_dst:
        raise error(f"{where('target')}: the source {show_value(source.text)} is inside the destination "
                    f"{show_value(destination.text)}; choose a target that does not contain the source")


def landing_warning(source: End, target: End, destination: End) -> str | None:
    """The X/X surprise: ``model_output`` synced to ``.../model_output`` lands in
    ``.../model_output/model_output``, as rsync would put it.  One line, with the fix."""
    if destination.text == target.text or source.trailing_slash or not source.basename:
        return None
    if target.basename != source.basename:
        return None
    return (f"the source {source.text!r} has no trailing slash, so its files land in "
            f"{destination.text!r} ({source.basename}/{source.basename}); to sync it onto "
            f"{target.text!r} itself, write the source as {source.as_dir().text!r}")
