"""YAML config files -> validated, frozen protocol objects.

Several files merge their ``sync:`` mappings in order: a later file's protocol of
the same name replaces the earlier one (keeping the earlier one's position, so
"the first protocol is the default" stays stable).  Every protocol is validated
against the one JSON Schema shipped in ``schemas/sync.schema.json`` (the same file
the Snakefile uses), and every error names the file, the protocol and the key.  A protocol's
``type`` is a ``mechanism.ProtocolType`` (the schema's enum, word for word); its
other keys become typed settings, one frozen dataclass per type (``RsyncSettings``,
``S3Settings``, ``GitSettings``, the schema's defaults filled in), built once here and read as
attributes everywhere else.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence, Union

import yaml

from .errors import ConfigError, has_nul, show_value
from .mechanism import ProtocolType

SCHEMA_RESOURCE = "schemas/sync.schema.json"


def schema_path() -> Path:
    """Filesystem path of the shared sync-protocol schema (also used by the Snakefile)."""
    # A plain path next to this module: importlib.resources costs ~15 ms of imports on every run,
    # and the package is always installed as files (the Snakefile reads the schema by path too).
    return Path(__file__).resolve().parent / SCHEMA_RESOURCE


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return json.loads(schema_path().read_text(encoding="utf-8"))


# The keys of each protocol type besides type/source/target/filters, one field a key of the
# schema's ``$defs.<type>`` with the schema's default (tests/unit/test_config_errors.py compares
# them with the schema).  Values are as validated: the classes do not check types themselves.
@dataclass(frozen=True)
class RsyncSettings:
    """The settings of an ``rsync`` protocol."""

    description: str | None = None
    rsh: str | None = None  # remote shell for host:path ends (None: $RSYNC_RSH, else ssh)
    mkpath: bool = False
    delete: bool | str = False  # false, true, "reverse" or "both"


@dataclass(frozen=True)
class S3Settings:
    """The settings of an ``s3sync`` protocol."""

    description: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    engine: str = "aws"  # "aws" or "rclone"
    mkpath: bool = False
    delete: bool | str = False  # false, true, "reverse" or "both"


@dataclass(frozen=True)
class GitSettings:
    """The settings of a ``git`` protocol."""

    description: str | None = None
    mode: str = "pull"  # "pull" or "push"
    remote: str | None = None
    branch: str | None = None
    path: str | None = None


ProtocolSettings = Union[RsyncSettings, S3Settings, GitSettings]
SETTINGS_TYPES: Mapping[ProtocolType, type] = MappingProxyType(
    {ProtocolType.RSYNC: RsyncSettings, ProtocolType.S3SYNC: S3Settings, ProtocolType.GIT: GitSettings})
#: Protocol keys that are not settings (fields of Protocol itself).
_END_KEYS = ("type", "source", "target", "filters")


def protocol_where(file: str, name: str, key: str | None = None) -> str:
    """Where a protocol (or one of its keys) is written, as every config error names it."""
    text = f"{file}: protocol '{name}'"
    return text if key is None else f"{text} key '{key}'"


@dataclass(frozen=True)
class Protocol:
    """One named sync protocol, validated and frozen (and hashable).

    ``filters`` keeps each rule's text with its origin ("file: protocol 'x' key
    'filters[2]'") so later filter errors can still point at the config.  ``settings`` holds
    the other keys, typed per protocol type (:class:`RsyncSettings`, :class:`S3Settings`,
    :class:`GitSettings`; schema defaults for the keys not written); ``settings_keys`` names the
    ones the config wrote, in order, so ``definition()`` shows the protocol as configured.
    """

    name: str
    type: ProtocolType  # a string given here becomes its member
    file: str
    source: str | None = None
    target: str | None = None
    filters: tuple[tuple[str, str], ...] | None = None
    settings: ProtocolSettings = None  # type: ignore[assignment]  # None: the type's defaults
    settings_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", ProtocolType(self.type))
        if self.settings is None:
            object.__setattr__(self, "settings", SETTINGS_TYPES[self.type]())

    def where(self, key: str | None = None) -> str:
        return protocol_where(self.file, self.name, key)

    def definition(self) -> dict[str, Any]:
        """The protocol as configured (JSON-ready), for --json, receipts and rerun triggers."""
        out: dict[str, Any] = {"type": self.type.value}
        if self.source is not None:
            out["source"] = self.source
        if self.target is not None:
            out["target"] = self.target
        if self.filters is not None:
            out["filters"] = [text for text, _ in self.filters]
        out.update((key, getattr(self.settings, key)) for key in self.settings_keys)
        return out


@dataclass(frozen=True)
class SyncConfig:
    protocols: Mapping[str, Protocol]
    files: tuple[str, ...]

    @property
    def default(self) -> Protocol:
        return next(iter(self.protocols.values()))

    def get(self, name: str | None) -> Protocol:
        if name is None:
            return self.default
        try:
            return self.protocols[name]
        except KeyError:
            available = ", ".join(self.protocols)
            raise ConfigError(
                f"no protocol named {name!r} in {', '.join(self.files)}; available: {available}"
            ) from None


#: Hostile-input bounds. A flepiMoP config is a few hundred KiB at most and a few levels deep.
MAX_CONFIG_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 100
#: YAML values (scalars and collections) in one file: PyYAML builds ~20,000 per second here.
MAX_VALUES = 250_000
#: Below this size (and nesting bound, and without aliases) a file cannot break the limits.
_SMALL_TEXT = 64 * 1024
#: Values that aliases may add to a document (an "alias bomb" adds billions).
MAX_ALIAS_EXPANSION = 1_000_000

_CLoader = getattr(yaml, "CSafeLoader", None)  # libyaml's C parser, when PyYAML was built with it


_MERGE_TAG = "tag:yaml.org,2002:merge"
_MERGE_TAKES = "a merge key '<<' takes a mapping or a list of mappings"


def _construct_mapping(loader, node: yaml.MappingNode, deep: bool = False):
    """Refuse duplicate keys (YAML would silently keep the last), with line and column; merge
    keys (``<<: *base``) work as YAML defines them: the mapping's own keys override merged ones."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "unhashable mapping key", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen[key] = 1
    _flatten_merges(node)
    return loader.construct_mapping(node, deep=deep)  # no '<<' left: SafeConstructor only builds the dict


def _flatten_merges(node: yaml.MappingNode) -> None:
    """Resolve ``<<`` merge keys here, in the order YAML defines (the mapping's own keys win, then
    the first mapping of a merge list), instead of relying on PyYAML's flatten_mapping, whose
    order changed between releases (6.0.4 lets a later mapping of the list win)."""
    groups: list[list] = []
    own: list = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            own.append((key_node, value_node))
            continue
        if isinstance(value_node, yaml.MappingNode):
            subs = [value_node]
        elif isinstance(value_node, yaml.SequenceNode):
            subs = list(value_node.value)
        else:
            raise yaml.constructor.ConstructorError(None, None, _MERGE_TAKES, value_node.start_mark)
        for sub in subs:
            if not isinstance(sub, yaml.MappingNode):
                raise yaml.constructor.ConstructorError(None, None, _MERGE_TAKES, sub.start_mark)
            _flatten_merges(sub)
            groups.append(list(sub.value))
    if groups:  # dict construction keeps the last of equal keys: earliest merge last, own keys after all
        node.value = [pair for group in reversed(groups) for pair in group] + own


class _PyLoader(yaml.SafeLoader):
    """The pure-Python loader, composing with a depth limit (when PyYAML has no libyaml)."""

    _depth = 0

    def compose_node(self, parent, index):  # PyYAML's hook, called for every node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _at(mark: Any) -> str:
    """Where in a YAML file, as every config error says it."""
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _too_deep(path: str, where: str) -> ConfigError:
    return ConfigError(f"{path}: YAML nested deeper than {MAX_DEPTH} levels (at {where})")


class _TooDeep(Exception):
    def __init__(self, mark):
        super().__init__(mark)
        self.mark = mark


_PyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
if _CLoader is not None:
    class _FastLoader(_CLoader):  # type: ignore[misc, valid-type]
        pass

    _FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
else:  # pragma: no cover - PyYAML without libyaml
    _FastLoader = _PyLoader  # type: ignore[misc]

_ALIAS_LIKE = re.compile(r"(?:^|[\s\[{,:])\*[^\s,\[\]{}]")
_BLOCK_PREFIX = re.compile(r"(?m)^[ \t?:-]*")


def _depth_bound(text: str) -> int:
    """A cheap upper bound on the document's nesting depth: every flow bracket, plus the longest
    run of indentation and block indicators ('- ', '? ', ': ') at the start of a line.  Only when
    it is small is the event-stream check skipped."""
    flow = text.count("[") + text.count("{")
    block = max(map(len, _BLOCK_PREFIX.findall(text)), default=0)
    return flow + block + 1


def _check_events(path: str, text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH or more than MAX_VALUES values, from the parser's event
    stream (iterative), stopping at the first excess: libyaml's scanner is quadratic in depth and
    its composer recurses in C (100,000 levels crash the interpreter), so neither runs far."""
    parser = (_CLoader or yaml.SafeLoader)(text)
    depth = values = 0
    start, end = (yaml.SequenceStartEvent, yaml.MappingStartEvent), (yaml.SequenceEndEvent, yaml.MappingEndEvent)
    try:
        while True:
            event = parser.get_event()
            if event is None or isinstance(event, yaml.StreamEndEvent):
                return
            if isinstance(event, end):
                depth -= 1
                continue
            values += 1
            if values > MAX_VALUES:
                raise ConfigError(f"{path}: more than {MAX_VALUES:,} YAML values; a flepiMoP config is much "
                                  "smaller (is this the right file?)")
            if isinstance(event, start):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _TooDeep(event.start_mark)
    finally:
        parser.dispose()


def _check_node_graph(path: str, root: yaml.Node) -> None:
    """Refuse a document nested deeper than MAX_DEPTH or whose aliases expand it by more than
    MAX_ALIAS_EXPANSION values, without expanding it (each node is visited once)."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes and not done:
            continue
        children: list[yaml.Node]
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if not done:
            sizes[key] = -1  # in progress (YAML cannot build a cycle, but be safe)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        size = 1 + sum(max(sizes.get(id(c), 0), 0) for c in children)
        depth = 1 + max((depths.get(id(c), 0) for c in children), default=0)
        sizes[key], depths[key] = size, depth
        if depth > MAX_DEPTH:
            raise _too_deep(path, _at(node.start_mark))
        if size - len(sizes) > MAX_ALIAS_EXPANSION:
            raise ConfigError(f"{path}: YAML aliases expand the document to more than {MAX_ALIAS_EXPANSION:,} "
                              "values (an alias bomb?); refusing to load it")


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: config file is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB; "
                          "a flepiMoP config is much smaller (is this the right file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _parse_yaml(path: str, text: str) -> Any:
    """Parse one YAML file's text, turning every failure into a one-line ConfigError."""
    if not text.strip():
        raise ConfigError(f"{path}: config file is empty (expected a top-level 'sync:' mapping)")
    try:
        bound = _depth_bound(text)
        may_alias = "&" in text and _ALIAS_LIKE.search(text) is not None
        if bound <= MAX_DEPTH and not may_alias and len(text) <= _SMALL_TEXT:
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - SafeLoader-based
        _check_events(path, text)
        loader = _FastLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if may_alias:
                _check_node_graph(path, node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except _TooDeep as exc:
        raise _too_deep(path, _at(exc.mark)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _at(mark) if mark else "unknown position"
        problem = exc.problem or exc.context or "syntax error"
        if "nesting depth" in problem:  # PyYAML >= 6.0.4 stops deep documents itself: say it as we do
            raise _too_deep(path, where) from None
        raise ConfigError(f"{path}: YAML syntax error at {where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """One YAML file, read and parsed as config files are (libyaml's C parser when present,
    duplicate keys refused with line and column, the size and depth bounds); any failure is
    a one-line ConfigError naming the file.  The workflow reads its schema through this."""
    path = str(path)
    return _parse_yaml(path, _read_text(path))


def load_config(paths: Sequence[str | os.PathLike[str]]) -> SyncConfig:
    """Read, merge and validate the ``sync:`` sections of ``paths`` (later wins)."""
    if not paths:
        raise ConfigError("no config file given (pass one or more YAML files with a 'sync:' section)")
    files = tuple(str(p) for p in paths)
    # Keyed on the files' *contents*: the Snakefile resolves every rule's params through
    # load_config, and re-parsing a 50-protocol file 50 times with PyYAML's pure-Python loader
    # cost seconds (docs/performance.md). The result is immutable, so sharing it is safe.
    key = tuple((path, _read_text(path)) for path in files)
    cached = _LOADED.get(key)
    if cached is not None:
        return cached
    config = _load_texts(key)
    if len(_LOADED) >= 16:
        _LOADED.clear()
    _LOADED[key] = config
    return config


_LOADED: dict[tuple[tuple[str, str], ...], SyncConfig] = {}


def _load_texts(key: tuple[tuple[str, str], ...]) -> SyncConfig:
    merged: dict[str, Protocol] = {}
    files = tuple(path for path, _ in key)
    for path, text in key:
        document = _parse_yaml(path, text)
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: top level must be a mapping with a 'sync:' key, got {kind_of(document)}")
        if "sync" not in document:
            raise ConfigError(f"{path}: no 'sync:' section")
        section = document["sync"]
        if section is None or section == {}:
            raise ConfigError(f"{path}: 'sync:' section has no protocols")
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: key 'sync' must be a mapping of named protocols, got {kind_of(section)}")
        for name, body in section.items():
            merged[str(name)] = validate_protocol(path, name, body)
    return SyncConfig(protocols=MappingProxyType(merged), files=files)


def validate_protocol(path: str, name: Any, body: Any) -> Protocol:
    """Validate one protocol mapping against the shared schema and freeze it."""
    from ._schema_check import Unknown, is_valid
    from .report import remember_secrets_in

    schema = load_schema()
    if isinstance(body, dict):
        remember_secrets_in(body)  # before any message could quote a value
    if not isinstance(name, str):
        raise ConfigError(f"{path}: protocol name {name!r} must be a string")
    if _LINE_BREAK.search(name) or not is_valid(name, {"pattern": schema["propertyNames"]["pattern"]}):
        raise ConfigError(
            f"{path}: protocol {show_value(name)}: invalid name (use letters, digits, '_', '-', '.', at most 64 characters)"
        )
    where = protocol_where(path, name)
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: must be a mapping with a 'type' key, got {kind_of(body)}")
    known = ", ".join(ProtocolType)
    if "type" not in body:
        raise ConfigError(f"{where}: missing required key 'type' (one of {known})")
    try:
        ptype = ProtocolType(body["type"])
    except ValueError:  # any other value (a number, a list or a mapping too)
        raise ConfigError(f"{where} key 'type': {show_value(body['type'])} is not one of {known}") from None
    sub = {"$defs": schema["$defs"], **schema["$defs"][ptype]}
    try:
        fast_ok = is_valid(body, sub)
    except Unknown:
        fast_ok = False
    if not fast_ok:
        # jsonschema (0.1-0.2 s to import) is the authority, and words the errors: only a config
        # the small checker does not pass pays for it.
        import jsonschema

        validator = jsonschema.Draft202012Validator(sub)
        errors = sorted(validator.iter_errors(body),
                        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
        if errors:
            raise ConfigError(f"{where}{_describe_schema_error(errors[0], ptype)}")

    _refuse_nul(body, where)
    _refuse_line_breaks(body, where)
    filters = body.get("filters")
    filter_items: tuple[tuple[str, str], ...] | None
    if filters is None:
        filter_items = None
    elif isinstance(filters, str):
        filter_items = ((filters, f"{where} key 'filters'"),)
    else:
        filter_items = tuple((text, f"{where} key 'filters[{i}]'") for i, text in enumerate(filters))
    settings = {k: v for k, v in body.items() if k not in _END_KEYS}
    protocol = Protocol(
        name=name,
        type=ptype,
        file=path,
        source=body.get("source"),
        target=body.get("target"),
        filters=filter_items,
        settings=SETTINGS_TYPES[ptype](**settings),
        settings_keys=tuple(settings),
    )
    _semantic_checks(protocol)
    return protocol


def _refuse_nul(body: Mapping[str, Any], where: str) -> None:
    """No value may hold a NUL byte: no path, host, option or argv element can carry one."""
    for key, value in body.items():
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if isinstance(item, str) and "\x00" in item:
                shown = key if index is None else f"{key}[{index}]"
                raise ConfigError(has_nul(f"{where} key '{shown}'"))


class _AnyVariable(dict):
    """An environment in which every variable is set (to a plain name): for syntax checks."""

    def get(self, key, default=None):  # noqa: ARG002
        return "x"


_ANY_VARIABLE = _AnyVariable()


_LINE_BREAK = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]")
#: Keys whose value is free text, or a local path (a file name may hold a line break).
_MULTILINE_OK = ("description", "filters", "path")


def _refuse_line_breaks(body: Mapping[str, Any], where: str) -> None:
    """Names, URLs, options and commands never hold a line break: one there is a YAML slip (a '|'
    block, a stray quote) that would otherwise reach a tool's argv. Local paths may (it is a legal
    file name); S3 URLs may not; remote ends are checked with their host by check_protocol_ends."""
    from .endpoints import EndKind, parse_end

    for key, value in body.items():
        if key in _MULTILINE_OK or not isinstance(value, str) or not _LINE_BREAK.search(value):
            continue
        if key in ("source", "target") and parse_end(value).kind != EndKind.S3:
            continue  # local: a legal name; remote: endpoints.check_protocol_ends words it (host, '\n')
        raise ConfigError(f"{where} key '{key}': {show_value(value)} contains a line break")


def _semantic_checks(protocol: Protocol) -> None:
    """Checks the schema cannot express. Imported lazily to keep config free of cycles."""
    from . import filters as filter_rules
    from .endpoints import check_protocol_ends, check_variables

    if protocol.filters is not None:  # (never for git: its schema has no filters key)
        for text, origin in protocol.filters:
            # Syntax only: $NAME is expanded (and an unset one refused) when the protocol runs,
            # so a variable needed by one protocol does not break loading the others.
            filter_rules.parse_rule(text, origin, env=_ANY_VARIABLE)
    if protocol.type is not ProtocolType.GIT:
        for key in ("source", "target"):  # the variables' syntax, as for filters; their values at run time
            check_variables(getattr(protocol, key) or "", protocol.where(key), error=ConfigError)
        check_protocol_ends(protocol.type, protocol.source or "", protocol.target or "", protocol.where)


def _describe_schema_error(error: Any, ptype: ProtocolType) -> str:
    """Turn a jsonschema error into ' key 'x': what is wrong' (the key is the point)."""
    path = list(error.absolute_path)
    validator = error.validator
    if validator == "additionalProperties" and not path:
        allowed = sorted(load_schema()["$defs"][ptype]["properties"])
        extra = sorted(set(error.instance) - set(allowed))
        return f" key '{extra[0]}': unknown key for a {ptype} protocol (allowed: {', '.join(allowed)})"
    if validator == "required" and not path:
        missing = [k for k in error.validator_value if k not in error.instance]
        return f" key '{missing[0]}': required for a {ptype} protocol"
    key = key_path(path) if path else "type"
    value = error.instance
    if validator == "oneOf" and path and path[0] == "filters":
        if isinstance(value, list):
            index = next(i for i, item in enumerate(value) if not isinstance(item, str))
            return f" key 'filters[{index}]': must be a string, got {kind_of(value[index])}"
        return f" key '{key}': must be a string or a list of strings, got {kind_of(value)}"
    if validator == "type":
        return f" key '{key}': must be {type_words(error.validator_value)}, got {kind_of(value)}"
    if validator == "minLength":
        return f" key '{key}': must not be empty"
    if validator in ("enum", "const"):
        allowed = error.validator_value if validator == "enum" else [error.validator_value]
        return f" key '{key}': {show_value(value)} is not one of {', '.join(map(str, allowed))}"
    if validator == "pattern":
        return f" key '{key}': {show_value(value)} is not a valid value"
    return f" key '{key}': {error.message}"


def key_path(path: Sequence[Any]) -> str:
    """A key's place in a document as users write it: ``runs[2].snapshot.protocol``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def type_words(type_name: Any) -> str:
    """A JSON Schema type (or list of types) in words: ``a string``, ``true or false``..."""
    if isinstance(type_name, list):
        return " or ".join(type_words(t) for t in type_name)
    return {"string": "a string", "boolean": "true or false", "array": "a list", "object": "a mapping",
            "integer": "an integer", "number": "a number"}.get(type_name, str(type_name))


def kind_of(value: Any) -> str:
    """What a value is, as an error says it got it: ``string 'x'``, ``a list``, ``nothing (null)``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {show_value(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__

