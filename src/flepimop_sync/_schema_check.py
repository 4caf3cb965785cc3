"""A small JSON Schema (2020-12) checker for the keywords the shipped sync schema uses.

It is the fast path of config validation: importing ``jsonschema`` (with ``referencing``,
``attrs``, ``rpds``...) costs 0.1-0.2 s, more than a whole no-op rsync run's budget for our
overhead.  ``is_valid`` answers only "valid or not"; when a config is invalid, or the schema uses
a keyword this module does not implement (:class:`Unknown`), ``config`` asks ``jsonschema``, which
stays the authority for every error message.  tests/unit/test_import_cost.py checks that both
agree on valid and invalid protocols.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples",
                          "deprecated", "readOnly", "writeOnly"})


class Unknown(Exception):
    """The schema uses something this checker does not implement: use jsonschema."""


def is_valid(instance: Any, schema: Any, root: Mapping[str, Any] | None = None) -> bool:
    """Whether ``instance`` is valid against ``schema`` (``$ref``s resolve in ``root``)."""
    return _valid(instance, schema, schema if root is None else root)


def _valid(inst: Any, schema: Any, root: Mapping[str, Any]) -> bool:
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        raise Unknown(f"schema {schema!r}")
    for key, value in schema.items():
        if key in _ANNOTATIONS or key in ("then", "else"):
            continue
        check = _KEYWORDS.get(key)
        if check is None:
            raise Unknown(key)
        if not check(inst, value, schema, root):
            return False
    return True


def _ref(inst, value, _schema, root) -> bool:
    if not isinstance(value, str) or not value.startswith("#/"):
        raise Unknown(f"$ref {value!r}")
    target: Any = root
    for part in value[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            raise Unknown(f"$ref {value!r}")
        target = target[part]
    return _valid(inst, target, root)


def _is_type(inst: Any, name: str) -> bool:
    if name == "string":
        return isinstance(inst, str)
    if name == "boolean":
        return isinstance(inst, bool)
    if name == "null":
        return inst is None
    if name == "object":
        return isinstance(inst, dict)
    if name == "array":
        return isinstance(inst, list)
    if name == "number":
        return isinstance(inst, (int, float)) and not isinstance(inst, bool)
    if name == "integer":
        return (isinstance(inst, int) and not isinstance(inst, bool)) or (isinstance(inst, float) and inst.is_integer())
    raise Unknown(f"type {name!r}")


def _type(inst, value, _schema, _root) -> bool:
    names = value if isinstance(value, list) else [value]
    return any(_is_type(inst, n) for n in names)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 == 1.0, containers compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _const(inst, value, _s, _r) -> bool:
    return _equal(inst, value)


def _enum(inst, value, _s, _r) -> bool:
    return any(_equal(inst, v) for v in value)


def _required(inst, value, _s, _r) -> bool:
    return not isinstance(inst, dict) or all(k in inst for k in value)


def _properties(inst, value, _s, root) -> bool:
    if not isinstance(inst, dict):
        return True
    return all(_valid(inst[k], sub, root) for k, sub in value.items() if k in inst)


def _additional(inst, value, schema, root) -> bool:
    if not isinstance(inst, dict):
        return True
    if "patternProperties" in schema:
        raise Unknown("patternProperties")
    known = schema.get("properties", {})
    return all(_valid(v, value, root) for k, v in inst.items() if k not in known)


def _property_names(inst, value, _s, root) -> bool:
    return not isinstance(inst, dict) or all(_valid(k, value, root) for k in inst)


def _min_properties(inst, value, _s, _r) -> bool:
    return not isinstance(inst, dict) or len(inst) >= value


def _items(inst, value, _s, root) -> bool:
    if isinstance(value, list):
        raise Unknown("items as a list")
    return not isinstance(inst, list) or all(_valid(x, value, root) for x in inst)


def _min_length(inst, value, _s, _r) -> bool:
    return not isinstance(inst, str) or len(inst) >= value


def _max_length(inst, value, _s, _r) -> bool:
    return not isinstance(inst, str) or len(inst) <= value


def _pattern(inst, value, _s, _r) -> bool:
    return not isinstance(inst, str) or re.search(value, inst) is not None


def _all_of(inst, value, _s, root) -> bool:
    return all(_valid(inst, sub, root) for sub in value)


def _any_of(inst, value, _s, root) -> bool:
    return any(_valid(inst, sub, root) for sub in value)


def _one_of(inst, value, _s, root) -> bool:
    return sum(1 for sub in value if _valid(inst, sub, root)) == 1


def _not(inst, value, _s, root) -> bool:
    return not _valid(inst, value, root)


def _if(inst, value, schema, root) -> bool:
    if _valid(inst, value, root):
        return _valid(inst, schema.get("then", True), root)
    return _valid(inst, schema.get("else", True), root)


_KEYWORDS = {
    "$ref": _ref, "type": _type, "const": _const, "enum": _enum, "required": _required,
    "properties": _properties, "additionalProperties": _additional, "propertyNames": _property_names,
    "minProperties": _min_properties, "items": _items, "minLength": _min_length, "maxLength": _max_length,
    "pattern": _pattern, "allOf": _all_of, "anyOf": _any_of, "oneOf": _one_of, "not": _not, "if": _if,
}
