"""Typed protocol settings (issue 14 point 3): each protocol type's keys are the fields of one frozen
dataclass, with the schema's defaults; the protocol stays frozen and hashable, and its definition
(--json, receipts, rerun digests) shows exactly what the config wrote, in order."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from flepimop_sync import api
from flepimop_sync.config import (SETTINGS_TYPES, GitSettings, Protocol, RsyncSettings, S3Settings, load_config,
                                  load_schema)
from flepimop_sync.gitsync import GitMode
from flepimop_sync.mechanism import Engine, ProtocolType
from flepimop_sync.options import SyncOptions

# (protocol as YAML flow mapping, expected settings, expected definition)
SETTINGS = [
    ("{type: rsync, source: a/, target: b}", RsyncSettings(),
     {"type": "rsync", "source": "a/", "target": "b"}),
    ("{type: rsync, source: 'h:a/', target: b, delete: reverse, rsh: 'ssh -p 2', mkpath: false}",
     RsyncSettings(rsh="ssh -p 2", mkpath=False, delete="reverse"),
     {"type": "rsync", "source": "h:a/", "target": "b", "delete": "reverse", "rsh": "ssh -p 2", "mkpath": False}),
    ("{type: s3sync, source: a/, target: 's3://b/p', description: up}", S3Settings(description="up"),
     {"type": "s3sync", "source": "a/", "target": "s3://b/p", "description": "up"}),
    ("{type: s3sync, source: 's3://b/p/', target: a, engine: rclone, endpoint_url: 'http://127.0.0.1:9', "
     "profile: lab, region: r1, mkpath: true, delete: both, filters: ['+ x']}",
     S3Settings(endpoint_url="http://127.0.0.1:9", profile="lab", region="r1", engine="rclone", mkpath=True,
                delete="both"),
     {"type": "s3sync", "source": "s3://b/p/", "target": "a", "filters": ["+ x"], "engine": "rclone",
      "endpoint_url": "http://127.0.0.1:9", "profile": "lab", "region": "r1", "mkpath": True, "delete": "both"}),
    ("{type: git}", GitSettings(), {"type": "git"}),
    ("{type: git, mode: push, remote: up, branch: main, path: code}",
     GitSettings(mode="push", remote="up", branch="main", path="code"),
     {"type": "git", "mode": "push", "remote": "up", "branch": "main", "path": "code"}),
]


@pytest.mark.parametrize("body,settings,definition", SETTINGS)
def test_settings_are_typed_with_the_schema_defaults(tmp_path, body, settings, definition):
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"sync:\n  p: {body}\n")
    protocol = load_config([str(cfg)]).default
    assert protocol.settings == settings and type(protocol.settings) is type(settings)
    assert protocol.definition() == definition
    assert list(protocol.definition()) == list(definition)  # the config's order (rerun digests hash it)
    assert hash(protocol) == hash(load_config([str(cfg)]).default)  # frozen and hashable
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.settings.mkpath = True  # type: ignore[misc]


def test_the_protocol_types_are_the_schemas():
    """The schema's ``type`` enum (what the Snakefile validates) and the code's one vocabulary."""
    schema = load_schema()
    protocol = schema["$defs"]["protocol"]
    assert protocol["properties"]["type"]["enum"] == [t.value for t in ProtocolType]
    assert [case["if"]["properties"]["type"]["const"] for case in protocol["allOf"]] == [t.value for t in ProtocolType]
    assert set(SETTINGS_TYPES) == set(ProtocolType) <= set(schema["$defs"])


@pytest.mark.parametrize("defs,key,vocabulary", [("protocol", "type", ProtocolType), ("s3sync", "engine", Engine),
                                                   ("git", "mode", GitMode)])
def test_the_schema_refuses_what_the_codes_vocabularies_do_not_know(defs, key, vocabulary):
    """The code converts these keys to its enums without checking them again: the schema's enum is
    the vocabulary's words, in order."""
    assert load_schema()["$defs"][defs]["properties"][key]["enum"] == [word.value for word in vocabulary]


@pytest.mark.parametrize("ptype", list(ProtocolType))
def test_settings_classes_match_the_schema(ptype):
    """One field per schema key besides type/source/target/filters, each with the schema's default."""
    schema = load_schema()["$defs"][ptype]["properties"]
    keys = {k: v for k, v in schema.items() if k not in ("type", "source", "target", "filters")}
    fields = {f.name: f.default for f in dataclasses.fields(SETTINGS_TYPES[ptype])}
    assert set(fields) == set(keys)
    assert {k: fields[k] for k in keys} == {k: keys[k].get("default") for k in keys}


def test_a_hand_built_protocol_gets_its_types_defaults():
    assert Protocol(name="p", type="git", file="f").settings == GitSettings()
    assert Protocol(name="p", type="rsync", file="f", source="a", target="b").settings == RsyncSettings()
    assert Protocol(name="p", type="s3sync", file="f").settings.engine == "aws"


# (protocol as YAML flow mapping, its type)
TYPES = [
    ("{type: rsync, source: a/, target: b}", ProtocolType.RSYNC),
    ("{type: s3sync, source: a/, target: 's3://b/p', endpoint_url: 'http://127.0.0.1:9'}", ProtocolType.S3SYNC),
    ("{type: git}", ProtocolType.GIT),
]


@pytest.mark.parametrize("body,ptype", TYPES)
def test_a_protocols_type_is_a_member_and_its_records_plain_strings(tmp_path, monkeypatch, body, ptype):
    """The code branches on the member; what leaves the process (--plan/--json, receipts, the rerun
    digests) holds the plain word, so YAML can write it and a digest does not depend on the enum."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"sync:\n  p: {body}\n")
    protocol = load_config([str(cfg)]).default
    assert protocol.type is ptype
    records = {"definition": protocol.definition(), "plan": api.plan_as_json([str(cfg)], SyncOptions()),
               "meaning": api.meaning([str(cfg)], SyncOptions())}
    for name, record in records.items():
        assert type(record["type"]) is str and record["type"] == ptype.value, name
        assert yaml.safe_load(yaml.safe_dump(record))["type"] == ptype.value, name


def test_a_hand_built_protocol_takes_its_type_as_a_word():
    assert Protocol(name="p", type="rsync", file="f", source="a", target="b").type is ProtocolType.RSYNC
    with pytest.raises(ValueError):
        Protocol(name="p", type="rsyncc", file="f")
