"""How a protocol's files are moved, in three vocabularies: ``ProtocolType`` (a protocol's
``type:``, the kind of sync and so which tool family: rsync, s3sync, git), ``Engine`` (which tool
moves an s3sync protocol's files, that ``plan.engine_for`` picks from and the CLI offers) and
``Mechanism`` (how the selection reaches the tool, that ``s3filters`` chooses from and ``plan``,
the summary line, ``--plan`` and ``--json`` report).

A member's value is its short name (``"explicit"``, ``"rclone"``), and a member is that string
wherever a string is expected (equal, hashed, printed, JSON): ``Word``, the base of these
vocabularies (and of ``s3engine.Direction``); ``Mechanism.text`` is what a user reads.  Its
``repr`` and YAML are not a string's: records that leave the process (results, receipts, the
rerun digests) hold ``.value``.  Imports nothing of the package.
"""

from __future__ import annotations

from enum import Enum


class Word(str, Enum):
    """A member is its short name wherever a string is: equal, hashed and printed as it."""

    def __hash__(self) -> int:
        return hash(self.value)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class ProtocolType(Word):
    """A protocol's ``type:`` (the schema's enum lists the same words; a test holds them equal)."""

    RSYNC = "rsync"  # local or [user@]host:path ends, rsync over ssh
    S3SYNC = "s3sync"  # at least one s3:// end; aws s3 sync, or the rclone engine
    GIT = "git"  # a repository: fetch/merge or push, no ends and no filters


class Engine(Word):
    AWS = "aws"  # aws s3 sync (the default)
    RCLONE = "rclone"  # the fast engine (s3engine), extra 'fast'


class Mechanism(Word):
    NONE = "none"  # no filters: everything
    RSYNC = "rsync"  # rsync's own filter rules
    RSYNC_FILE = "rsync-file"  # a single file
    NATIVE = "native"  # aws --include/--exclude, an exact translation
    VERIFIED = "verified"  # aws --include/--exclude, checked against the source listing
    EXPLICIT = "explicit"  # aws patterns computed from the source listing
    STAGED = "staged"  # the explicit selection staged as links, synced without filters
    AWS_FILE = "aws-file"  # aws s3 cp of a single file
    RCLONE = "rclone"  # the fast engine's explicit list
    RCLONE_FILE = "rclone-file"  # the fast engine, a single file

    @property
    def text(self) -> str:
        return _TEXT[self]


_TEXT = {
    Mechanism.NONE: "no filters",
    Mechanism.RSYNC: "rsync filter rules",
    Mechanism.RSYNC_FILE: "rsync (single file)",
    Mechanism.NATIVE: "aws native include/exclude (exact translation)",
    Mechanism.VERIFIED: "aws native include/exclude (verified against the source listing)",
    Mechanism.EXPLICIT: "aws explicit selection (computed from the source listing)",
    Mechanism.STAGED: "aws explicit selection, staged as links (computed from the source listing)",
    Mechanism.AWS_FILE: "aws s3 cp (single file)",
    Mechanism.RCLONE: "rclone explicit list (selection and changes computed from both listings)",
    Mechanism.RCLONE_FILE: "rclone copyto (single file)",
}
