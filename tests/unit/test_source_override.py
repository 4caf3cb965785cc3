"""Our rule where FILTERS.md is silent about -s: a source override narrows to what the command
line includes (README "The filter language"; issue 10 point 4).

When ``-s/--source`` replaces the protocol's source (not a ``+ `` append) and the ``-a``/``-e``
rules are there and only include (``+``, plain, ``s``), the built list is those includes, the
protocol's own ``-`` rules in their places (its ``+``/``s`` rules, written for its own source, are
left out) and ``- **``; where that differs from FILTERS.md's list, the tail's origin says why and
one note is printed. ``-f``, ``--no-filter``, appends and no
``-s`` keep FILTERS.md section 1 as written. The table goes through ``plan.resolve`` (the caller
that knows whether -s replaced the source), so the CLI, --plan, the Snakemake layer and the
receipts, which all build their plan there, get the same list.
"""

from __future__ import annotations

import pytest

from flepimop_sync import api
from flepimop_sync import plan as planning
from flepimop_sync.config import load_config
from flepimop_sync.filters import ORIGIN_IMPLICIT, ORIGIN_SOURCE_OVERRIDE, build_rules
from flepimop_sync.options import SyncOptions

EXCL = ["- llik/"]  # exclude-only: "everything but the big llik files"
INCL = ["+ *.parquet"]  # include-only
LAST = ["+ hosp/", "- *"]  # ends with its own exclude-all
MIXED = ["+ hosp/", "- llik/"]

OVER, APPEND, NONE = "other/", "+ sub", None  # -s replaces / -s appends / no -s
PLAIN, OURS = ORIGIN_IMPLICIT, ORIGIN_SOURCE_OVERRIDE  # the tail's origin (None: no tail)

# config filters, -s, CLI options, expected list, the tail's origin, note printed
TABLE = [
    # the sync job's pdf/h5 lines: narrowed to what -a includes
    (EXCL, OVER, {"fprefix": ("+ RUN*.pdf",)}, ["+ RUN*.pdf", "- llik/", "- **"], OURS, True),
    (EXCL, OVER, {"fsuffix": ("+ RUN*.h5",)}, ["- llik/", "+ RUN*.h5", "- **"], OURS, True),
    (EXCL, OVER, {"fprefix": ("RUN*.pdf",), "fsuffix": ("+ b",)}, ["RUN*.pdf", "- llik/", "+ b", "- **"], OURS, True),
    (LAST, OVER, {"fprefix": ("+ a",)}, ["+ a", "- *", "- **"], OURS, True),
    # the protocol's includes were written for its own source: left out, its excludes kept in place
    (INCL, OVER, {"fprefix": ("+ RUN*.pdf",)}, ["+ RUN*.pdf", "- **"], OURS, True),
    (INCL, OVER, {"fprefix": ("s RUN",)}, ["s RUN", "- **"], OURS, True),
    (MIXED, OVER, {"fprefix": ("+ a",)}, ["+ a", "- llik/", "- **"], OURS, True),
    # an append or no -s: FILTERS.md as written (the same source tree, only deeper)
    (EXCL, APPEND, {"fprefix": ("+ RUN*.pdf",)}, ["+ RUN*.pdf", "- llik/"], None, False),
    (EXCL, NONE, {"fprefix": ("+ RUN*.pdf",)}, ["+ RUN*.pdf", "- llik/"], None, False),
    (EXCL, NONE, {"fsuffix": ("+ RUN*.h5",)}, ["- llik/", "+ RUN*.h5"], None, False),
    # an 's' rule with an exclude-only config, or an append, or an empty config: FILTERS.md as written
    (EXCL, OVER, {"fprefix": ("s RUN",)}, ["s RUN", "- llik/", "- **"], PLAIN, False),
    (EXCL, NONE, {"fprefix": ("s RUN",)}, ["s RUN", "- llik/", "- **"], PLAIN, False),
    (INCL, APPEND, {"fprefix": ("+ RUN*.pdf",)}, ["+ RUN*.pdf", "+ *.parquet", "- **"], PLAIN, False),
    (None, OVER, {"fprefix": ("+ RUN*.pdf",)}, ["+ RUN*.pdf", "- **"], PLAIN, False),
    (None, NONE, {"fprefix": ("+ RUN*.pdf",)}, ["+ RUN*.pdf", "- **"], PLAIN, False),
    # the command line excludes something itself: it said what it wants, FILTERS.md as written
    (EXCL, OVER, {"fprefix": ("- tmp/",)}, ["- tmp/", "- llik/"], None, False),
    (EXCL, OVER, {"fprefix": ("+ a",), "fsuffix": ("- tmp/",)}, ["+ a", "- llik/", "- tmp/"], None, False),
    # no -a/-e: nothing typed for the new source, the protocol's filters as they are
    (EXCL, OVER, {}, ["- llik/"], None, False),
    (EXCL, OVER, {"no_filter": True}, [], None, False),
    # -f replaces the filters: the whole list is the command line's, FILTERS.md as written
    (EXCL, OVER, {"filters": ("- x/",), "fprefix": ("+ a",)}, ["+ a", "- x/"], None, False),
    (EXCL, OVER, {"filters": ("+ x",), "fprefix": ("+ a",)}, ["+ a", "+ x", "- **"], PLAIN, False),
]


def _ids():
    return [f"{cfg}|s={src}|{sorted(opts.items())}" for cfg, src, opts, *_ in TABLE]


@pytest.mark.parametrize("config_filters, source, opts, expected, tail_origin, noted", TABLE, ids=_ids())
def test_source_override_table(tmp_path, config_filters, source, opts, expected, tail_origin, noted):
    filters = "" if config_filters is None else f", filters: {config_filters!r}"
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"sync:\n  p: {{type: rsync, source: model_output/, target: /tmp/t/{filters}}}\n")
    protocol = load_config([str(cfg)]).get("p")
    resolved = planning.resolve(protocol, SyncOptions(protocol="p", source=source, **opts))
    rules = resolved.rules
    assert rules.as_texts() == expected
    tails = [r for r in rules.rules if r.implicit]
    assert [r.origin for r in tails] == ([tail_origin] if tail_origin else [])
    assert all(r is rules.rules[-1] for r in tails)
    if noted:
        (note,) = rules.notes
        assert note.startswith("-s/--source replaces the protocol's source, so only what -a/-e include")
        assert all(r in note for r in config_filters)  # names what it left out and what still applies
    else:
        assert rules.notes == ()
    assert rules.warnings == ()
    # --plan/--json and the receipts' meaning (the Snakemake rerun digest) carry the same list
    options = SyncOptions(protocol="p", source=source, **opts)
    shown = api.plan_as_json([str(cfg)], options)
    assert shown["filters"] == expected and shown["notes"] == list(rules.notes)
    assert api.meaning([str(cfg)], options)["filters"] == [f"{r.action} {r.pattern}" for r in rules.rules]


# a replaced source that names one file (the sync job's --source manifest.json), no -f/-a/-e
NAMED_FILE = [
    (INCL, [], ("-s/--source names one file, so the protocol's own includes (+ *.parquet) are left out",)),
    (MIXED, ["- llik/"], ("-s/--source names one file, so the protocol's own includes (+ hosp/) are left out; "
                          "its excludes (- llik/) still apply",)),
    (EXCL, ["- llik/"], ()),  # only excludes: FILTERS.md's list as it is
]


@pytest.mark.parametrize("config_filters, expected, notes", NAMED_FILE)
def test_named_file_source(tmp_path, config_filters, expected, notes):
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"sync:\n  p: {{type: rsync, source: model_output/, target: /tmp/t/, filters: {config_filters!r}}}\n")
    protocol = load_config([str(cfg)]).get("p")
    rules = planning.resolve(protocol, SyncOptions(protocol="p", source="manifest.json"), source_is_file=True).rules
    assert (rules.as_texts(), rules.notes) == (expected, notes)
    assert rules.selects("manifest.json")
    # a directory source, or an append, keeps FILTERS.md's list
    for source, is_file in (("other/", False), ("+ manifest.json", True)):
        kept = planning.resolve(protocol, SyncOptions(protocol="p", source=source), source_is_file=is_file).rules
        assert kept.as_texts()[:len(config_filters)] == config_filters and kept.notes == ()


@pytest.mark.parametrize("path, selected", [
    ("RUN_fit.pdf", True),
    ("OLD_fit.pdf", False),
    ("secrets.txt", False),
    ("model_input/geodata.csv", False),
    ("model_output/sample/RUN/hosp/1.RUN.hosp.parquet", False),
    ("sub/RUN_fit.pdf", True),  # a name pattern matches at any depth (FILTERS.md section 3)
    ("llik/RUN_fit.pdf", False),  # the protocol's excludes still apply, in order
])
def test_narrowed_list_selects_only_the_includes(path, selected):
    with_rule = build_rules([("- llik/", "cfg")], suffix=["+ RUN*.pdf"], source_replaced=True)
    assert with_rule.selects(path) is selected
    # only ever narrower than FILTERS.md's list for the same rules
    plain = build_rules([("- llik/", "cfg")], suffix=["+ RUN*.pdf"])
    assert plain.selects(path) or not selected


def test_flag_defaults_off():
    """The builder alone is FILTERS.md section 1; the flag is the caller's to pass."""
    assert build_rules([("- llik/", "cfg")], prefix=["+ a"]).as_texts() == ["+ a", "- llik/"]


# (argv, what the refusal of the missing source names): -s/--source when it wrote the source,
# else the config key
MISSING_SOURCE = [
    (["-s", "nonexist"], "protocol 'p' -s/--source: local source 'nonexist' does not exist"),
    (["-s", "+ sub"], "protocol 'p' -s/--source: local source 'nope/sub/' does not exist"),
    ([], "protocol 'p' key 'source': local source 'nope/' does not exist"),
]


@pytest.mark.parametrize("argv,said", MISSING_SOURCE, ids=[" ".join(a) or "config" for a, _ in MISSING_SOURCE])
def test_a_missing_source_is_named_where_it_was_written(tmp_path, monkeypatch, capsys, argv, said):
    from flepimop_sync import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.yml").write_text("sync:\n  p: {type: rsync, source: nope/, target: dst/}\n")
    assert cli.run_command(cli.sync_command, ["-n", *argv, "ok.yml"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: ok.yml: {said}"]
