"""What the user asked for on top of the config: the CLI and the Snakemake wrapper
both build one ``SyncOptions`` (params are mapped to it in exactly one place each).
--no-filter excludes -f/-a/-e: checked when the options are made, by the filter language's
one home of that rule (``filters.check_no_filter``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class SyncOptions:
    protocol: str | None = None
    source: str | None = None  # replace, or append when it starts with "+ "
    target: str | None = None
    filters: tuple[str, ...] = ()  # -f: replaces the config's filters
    fprefix: tuple[str, ...] = ()  # -a
    fsuffix: tuple[str, ...] = ()  # -e
    no_filter: bool = False
    reverse: bool = False
    mkpath: bool = False
    delete: bool = False
    dry_run: bool = False
    verbosity: int = 0
    engine: str | None = None  # s3sync: an Engine name, "aws" or "rclone" (None: the protocol's, else aws; plan.engine_for)

    def __post_init__(self) -> None:
        from .filters import check_no_filter  # the one home of the rule (build_rules checks it too)

        check_no_filter(self.no_filter, self.filters, self.fprefix, self.fsuffix)

    @property
    def touches_ends_or_filters(self) -> list[str]:
        """Names of the options that make no sense for a git protocol."""
        used = []
        for flag, value in (("-s/--source", self.source), ("-t/--target", self.target),
                            ("-f/--filter", self.filters), ("-a/--fprefix", self.fprefix),
                            ("-e/--fsuffix", self.fsuffix), ("--no-filter", self.no_filter),
                            ("--mkpath", self.mkpath), ("--delete", self.delete),
                            ("--engine", self.engine)):
            if value:
                used.append(flag)
        return used

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SyncOptions":
        """Build from a plain mapping (Snakemake params); unknown keys are an error."""
        from .errors import UsageError

        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown sync option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key in ("filters", "fprefix", "fsuffix"):
                value = (value,) if isinstance(value, str) else tuple(value or ())
            clean[key] = value
        return cls(**clean)
