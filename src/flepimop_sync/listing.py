"""List one end of a sync exactly: every entry below it, as the backend that moves it sees it.

``list_end`` returns a :class:`Listing` of relative, '/'-separated paths for any legal name
(leading or trailing spaces, line breaks, glob characters, non-UTF-8 bytes as surrogate
escapes), from machine-readable sources only:

- local directories: walked with ``os.scandir``, never following a symbolic link;
- rsync remotes: ``rsync -n -r -l -D --out-format='%i %l %n'`` into an empty directory, under
  ``LC_ALL=C``, so each entry is one line whose name is the rest of the line after a fixed
  prefix, with every control and non-ASCII byte escaped as ``\\#ooo`` (undone by
  ``rsync_unescape``); the itemize type tells links from files;
- S3: ``aws s3api list-objects-v2 --output json`` (every page; keys, sizes and ETags as stored).

Symbolic links (and other non-regular entries) follow the backend: rsync -a copies them as
links, so an rsync listing carries them as entries (size 0, never descended); S3 stores no
links and aws is run with ``--no-follow-symlinks``, so an s3sync listing of a local end
leaves them out and names them in ``Listing.skipped``.  A dry run built on these listings
therefore shows what arrives and what ``--delete`` removes, never anything behind a link.

These are the listings of rsync and aws runs.  The fast engine (``s3engine``) lists S3 with
rclone (``rclone lsjson``, with the modification times its change rules compare) and a local
end with the evaluator's own walk (``FilterList.select_local``): its listings live beside the
code that compares them.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from .endpoints import EndKind
from .errors import StepFailed, UsageError
from .failures import step_failed
from .mechanism import ProtocolType

if TYPE_CHECKING:  # pragma: no cover
    from .config import Protocol
    from .endpoints import End
    from .runner import Runner


@dataclass(frozen=True)
class Listing:
    """What an end holds: sorted (relative path, size) of the entries the backend moves, and
    the entries it skips (links and special files at a local end of an s3sync protocol)."""

    files: tuple[tuple[str, int], ...]
    skipped: tuple[str, ...] = ()
    # an S3 listing's ETags (quotes removed; "" where the service sent none), for the receipts' audit list
    etags: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def paths(self) -> list[str]:
        return [p for p, _ in self.files]


def copies_links(protocol: "Protocol") -> bool:
    """Does the protocol's backend copy symbolic links as links (rsync -a), or skip them (aws)?"""
    return protocol.type is ProtocolType.RSYNC


def list_end(end: "End", protocol: "Protocol", runner: "Runner", *, toward: "End | None" = None) -> Listing:
    """All entries below an end (sorted); a missing local directory holds nothing.  ``toward``:
    the other end of the sync; an S3 listing bound for (or compared with) a local end is refused
    when a key cannot be a local path (``refuse_unnameable_keys``)."""
    if end.kind == EndKind.LOCAL:
        return list_local(end.path or ".", links=copies_links(protocol))
    if end.kind == EndKind.REMOTE:
        return list_rsync_remote(end, protocol, runner)
    listing = list_s3(end, protocol, runner)
    if toward is not None:
        refuse_unnameable_keys(listing.paths, end, toward, protocol)
    return listing


_UNNAMEABLE = ("", ".", "..")
# rclone lists a '.' or '..' part of a key in fullwidth dots (its encoding of names a file
# system cannot hold; a key really spelt so is listed with its quote character, U+201B, before each)
_RCLONE_DOTS = {"\uff0e": ".", "\uff0e\uff0e": ".."}


def _unnameable(path: str, rclone: bool) -> bool:
    return any(part in _UNNAMEABLE or (rclone and part in _RCLONE_DOTS) for part in path.split("/"))


def refuse_unnameable_keys(paths: "list[str] | Mapping[str, object]", end: "End", other: "End",
                           protocol: "Protocol", *, rclone: bool = False) -> None:
    """Refuse, before anything moves, S3 keys below ``end`` whose relative path has an empty
    ('d//e.txt'), '.' or '..' part when the other end is local: the file system names them
    otherwise ('d/e.txt'), so every comparison with the local end is wrong (--delete removed
    such a file at the target after each download of it, or left it deleted).  ``rclone``: the
    paths are an ``rclone lsjson`` listing's."""
    if end.kind != EndKind.S3 or other.kind != EndKind.LOCAL:
        return
    bad = sorted("/".join(_RCLONE_DOTS.get(part, part) if rclone else part for part in p.split("/"))
                 for p in paths if _unnameable(p, rclone))  # (named as the keys are: aws, the console)
    if bad:
        from .report import some

        raise UsageError(
            f"protocol '{protocol.name}': {len(bad)} object(s) below {end.as_dir().text!r} have keys no local path "
            f"can name (an empty, '.' or '..' part: {some(bad)}); rename them, or sync that prefix S3 to S3")


# -- local ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalTree:
    """A local walk: regular files with sizes, symbolic links (with whether they lead to a
    directory) and other non-directory entries; relative paths, nothing followed."""

    files: tuple[tuple[str, int], ...]
    links: tuple[tuple[str, bool], ...]
    others: tuple[str, ...]


def walk_local(root: str) -> LocalTree:
    enc = sys.getfilesystemencoding()
    files: list[tuple[str, int]] = []
    links: list[tuple[str, bool]] = []
    others: list[str] = []
    if not os.path.isdir(root):
        return LocalTree((), (), ())
    stack = [(os.fsencode(root), b"")]
    while stack:
        dpath, rel = stack.pop()
        with os.scandir(dpath) as it:
            for e in it:
                sub = rel + e.name
                name = sub.decode(enc, "surrogateescape")
                if e.is_symlink():
                    links.append((name, os.path.isdir(e.path)))
                elif e.is_dir(follow_symlinks=False):
                    stack.append((e.path, sub + b"/"))
                elif e.is_file(follow_symlinks=False):
                    files.append((name, e.stat(follow_symlinks=False).st_size))
                else:
                    others.append(name)
    return LocalTree(tuple(sorted(files)), tuple(sorted(links)), tuple(sorted(others)))


def list_local(root: str, *, links: bool) -> Listing:
    """A local directory as rsync -a (``links``: links and specials are entries of size 0) or
    aws --no-follow-symlinks (regular files only; the rest is ``skipped``) moves it."""
    tree = walk_local(root)
    odd = sorted([p for p, _ in tree.links] + list(tree.others))
    if links:
        return Listing(files=tuple(sorted(list(tree.files) + [(p, 0) for p in odd])))
    return Listing(files=tree.files, skipped=tuple(odd))


def regular_only(root: str, selection: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], list[str]]:
    """Split a local selection (from ``FilterList.select_local``, which lists links and special
    files with size 0) into regular files and the rest, for a backend that skips the rest."""
    keep: list[tuple[str, int]] = []
    skipped: list[str] = []
    base = os.fsencode(root)
    for path, size in selection:
        if size == 0:  # only links and specials are listed with 0: check those alone
            try:
                mode = os.lstat(base + b"/" + os.fsencode(path)).st_mode
            except OSError:
                mode = 0
            if not stat.S_ISREG(mode):
                skipped.append(path)
                continue
        keep.append((path, size))
    return keep, skipped


def links_on_the_way(tree: LocalTree, paths: list[str]) -> dict[str, str]:
    """{path: link} for every path that would be written through a symbolic link to a
    directory of the walked tree (a local target): aws writes through such links."""
    dir_links = {p for p, is_dir in tree.links if is_dir}
    if not dir_links:
        return {}
    out = {}
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts)):
            head = "/".join(parts[:i])
            if head in dir_links:
                out[path] = head
                break
    return out


# -- rsync remotes ----------------------------------------------------------------------------
_RSYNC_ESCAPE = re.compile(r"\\#([0-7]{3})")
# '%i %l %n': the 11-character itemize string (type at [1]), the size, one space, the name
_RSYNC_ITEM = re.compile(r"^[<>ch.*]([fdLDS])[^ ]{9} (\d+) (.*)$", re.S)


def rsync_unescape(name: str) -> str:
    """Undo rsync's ``\\#ooo`` escapes, which stand for single *bytes* (in a non-UTF-8 locale
    every byte of a UTF-8 name is escaped): rebuild the bytes, then decode them as UTF-8."""
    if "\\#" not in name:
        return name
    out = bytearray()
    pos = 0
    for match in _RSYNC_ESCAPE.finditer(name):
        out += name[pos:match.start()].encode("utf-8", "surrogateescape")
        out.append(int(match.group(1), 8))
        pos = match.end()
    out += name[pos:].encode("utf-8", "surrogateescape")
    return out.decode("utf-8", "surrogateescape")


def rsync_listing_argv(end: "End", protocol: "Protocol", into: str) -> list[str]:
    """A dry-run transfer of the whole end into the empty directory ``into``: rsync itemizes
    every entry (links as links, nothing followed) and changes nothing."""
    from .plan import RSYNC_ITEMIZE, rsync_rsh_args, rsync_sender_operand  # the remote sender globs its paths: escaped

    argv = ["rsync", "-n", "-r", "-l", "-D", RSYNC_ITEMIZE, *rsync_rsh_args(protocol)]
    return argv + ["--", rsync_sender_operand(end.as_dir()), into.rstrip("/") + "/"]


def parse_rsync_listing(stdout: str) -> list[tuple[str, int]]:
    """Entries of ``rsync_listing_argv``'s output: files, links and specials (links and
    specials with size 0, as the local listing has them); directories are left out."""
    files = []
    for line in stdout.split("\n"):
        match = _RSYNC_ITEM.match(line)
        if not match or match.group(1) == "d":
            continue  # directories, and rsync's own notes ('skipping non-regular file ...')
        name = rsync_unescape(match.group(3))
        files.append((name, int(match.group(2)) if match.group(1) == "f" else 0))
    return sorted(files)


def list_rsync_remote(end: "End", protocol: "Protocol", runner: "Runner") -> Listing:
    with tempfile.TemporaryDirectory(prefix="flepimop-sync-list-") as empty:
        # LC_ALL=C: rsync escapes every non-ASCII byte, so the output is exact whatever the name
        done = runner.run(rsync_listing_argv(end, protocol, empty), env={"LC_ALL": "C"})
    if done.returncode != 0:
        raise step_failed("listing the remote end", done, protocol, runner.base_env)
    return Listing(files=tuple(parse_rsync_listing(done.stdout)))


# -- S3 ---------------------------------------------------------------------------------------
def s3_listing_argv(end: "End", protocol: "Protocol") -> list[str]:
    from .plan import aws_global_args

    bucket, _, prefix = end.as_dir().path.partition("/")
    # the CLI fetches every page and merges them into one document; keys come URL-encoded
    # from the service and decoded by the CLI, so line breaks and spaces survive
    return ["aws", "s3api", "list-objects-v2", f"--bucket={bucket}", f"--prefix={prefix}",
            "--output=json", *aws_global_args(protocol)]


def parse_s3_objects(stdout: str, prefix: str) -> list[tuple[str, int, str]]:
    """Every file object below ``prefix`` in an ``s3api list-objects-v2`` answer: sorted
    (relative path, size, ETag without its quotes)."""
    document = json.loads(stdout) if stdout.strip() else {}
    files = []
    for obj in document.get("Contents") or ():
        key = obj["Key"]
        if not key.startswith(prefix):
            continue
        rel = key[len(prefix):]
        if rel and not rel.endswith("/"):  # 'dir/' objects are folder markers, not files
            files.append((rel, int(obj.get("Size", 0)), str(obj.get("ETag") or "").strip('"')))
    return sorted(files)


def list_s3(end: "End", protocol: "Protocol", runner: "Runner") -> Listing:
    done = runner.run(s3_listing_argv(end, protocol))
    if done.returncode != 0:
        raise step_failed("listing the S3 end", done, protocol, runner.base_env)
    try:
        objects = parse_s3_objects(done.stdout, end.as_dir().path.partition("/")[2])
    except (ValueError, KeyError, TypeError) as exc:
        raise StepFailed(f"protocol '{protocol.name}': listing the S3 end: unreadable answer ({exc})",
                         step="listing the S3 end", returncode=1) from None
    return Listing(files=tuple((rel, size) for rel, size, _ in objects),
                   etags={rel: etag for rel, _, etag in objects})
