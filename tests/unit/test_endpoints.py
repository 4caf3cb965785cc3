"""Ends: override/append (the README table), reverse, classification."""

from __future__ import annotations

import pytest

from flepimop_sync.endpoints import apply_option, parse_end, reverse_ends
from flepimop_sync.errors import UsageError

# configured, option, result  (the table in the README / issue)
OVERRIDE_TABLE = [
    ("/a/b/c", "/g/h/i", "/g/h/i"),
    ("/a/b/c/", "/g/h/i", "/g/h/i"),
    ("/a/b/c", "+ g/h/i", "/a/b/c/g/h/i"),
    ("/a/b/c", "+ g/h/i/", "/a/b/c/g/h/i"),
    ("/a/b/c/", "+ g/h/i", "/a/b/c/g/h/i/"),
    ("/a/b/c/", "+ g/h/i/", "/a/b/c/g/h/i/"),
    ("/d/e/f", "+ j/k/l", "/d/e/f/j/k/l"),
    ("/d/e/f/", "+ j/k/l", "/d/e/f/j/k/l/"),
    ("s3://bucket/project", "+ 20240501_120000", "s3://bucket/project/20240501_120000"),
    ("s3://bucket/project/", "+ 20240501_120000", "s3://bucket/project/20240501_120000/"),
    ("hpc:/scratch/run", "+ out", "hpc:/scratch/run/out"),
    ("hpc:", "+ out", "hpc:out"),
    # a root stays the root: 'hpc:x' would be below the remote home
    ("hpc:/", "+ tmp/X", "hpc:/tmp/X/"),
    ("hpc://", "+ tmp/X", "hpc:/tmp/X/"),
    ("user@hpc:/", "+ x", "user@hpc:/x/"),
    ("/", "+ tmp/X", "/tmp/X/"),
    ("//", "+ tmp/X", "/tmp/X/"),
    ("hpc:~/", "+ x", "hpc:~/x/"),
    ("hpc:runs//", "+ x", "hpc:runs/x/"),
    ("s3://bucket/", "+ p", "s3://bucket/p/"),
    ("/a/b/c", None, "/a/b/c"),
    ("/a/b/c", "+x", "+x"),  # no space: a literal path, not an append
]


@pytest.mark.parametrize("configured,option,result", OVERRIDE_TABLE)
def test_override_and_append(configured, option, result):
    assert apply_option(configured, option, what="source") == result


@pytest.mark.parametrize("option", ["+ ", "+ /", "+ //", "", "+  x",
                                    # an append may not climb out of the configured end (issue 15.1)
                                    "+ ..", "+ ../x", "+ a/../../x", "+ a/..", "+ /x/", "+ /etc"])
def test_bad_append_is_a_usage_error(option):
    with pytest.raises(UsageError):
        apply_option("/a", option, what="target")


# option, environment: an append whose $NAME holds '..' climbs out as surely as a written '..'
VARIABLE_CLIMBS = [
    ("+ $SUB", {"SUB": "../secret"}),
    ("+ ${SUB}/x", {"SUB": ".."}),
    ("+ a/$SUB", {"SUB": "../.."}),
    ("+ $A$B", {"A": ".", "B": "./../x"}),
]


@pytest.mark.parametrize("option,env", VARIABLE_CLIMBS)
def test_an_append_climbing_through_a_variable_is_a_usage_error(option, env):
    with pytest.raises(UsageError, match="'..'"):
        apply_option("/a", option, what="target", env=env)


# option, environment, result: names that do not climb are appended as written (expanded later)
VARIABLE_APPENDS = [
    ("+ $SUB", {"SUB": "runs/r1"}, "/a/$SUB"),
    ("+ $SUB", {"SUB": "..x"}, "/a/$SUB"),
    ("+ $$SUB", {"SUB": ".."}, "/a/$$SUB"),  # '$$' is a literal '$': no variable
    ("+ $UNSET", {}, "/a/$UNSET"),  # expand_end names it
]


@pytest.mark.parametrize("option,env,result", VARIABLE_APPENDS)
def test_an_append_through_a_variable_that_stays_below(option, env, result):
    assert apply_option("/a", option, what="target", env=env) == result


# text, kind, host, path
CLASSIFY = [
    ("model_output", "local", "", "model_output"),
    ("/abs/path/", "local", "", "/abs/path/"),
    ("./odd:name", "local", "", "./odd:name"),
    ("a/b:c", "local", "", "a/b:c"),
    ("hpc:/scratch", "remote", "hpc", "/scratch"),
    ("user@hpc:runs/x", "remote", "user@hpc", "runs/x"),
    ("hpc:", "remote", "hpc", ""),
    ("s3://bucket/prefix/", "s3", "", "bucket/prefix/"),
]


@pytest.mark.parametrize("text,kind,host,path", CLASSIFY)
def test_classify(text, kind, host, path):
    end = parse_end(text)
    assert (end.kind, end.host, end.path) == (kind, host, path)


# source, target -> reversed source, reversed target: files go back where they came from
REVERSE = [
    ("model_output", "s3://b/p", "s3://b/p/model_output/", "model_output/"),
    ("model_output/", "s3://b/p/", "s3://b/p/", "model_output/"),
    ("model_output/", "s3://b/p", "s3://b/p/", "model_output/"),
    ("/data/run", "hpc:/scratch", "hpc:/scratch/run/", "/data/run/"),
    ("hpc:/scratch/run/", "local/", "local/", "hpc:/scratch/run/"),
    # 'hpc:' is the remote home (as in rsync), never 'hpc:/' (the remote root)
    ("local/", "hpc:", "hpc:", "local/"),
    ("hpc:", "local", "local/", "hpc:"),
    ("local", "hpc:", "hpc:local/", "local/"),
    # a source ending in '.' or '..' is copied as contents (as rsync does): it came from T itself
    ("..", "out/T", "out/T/", "../"),
    ("a/.", "out/T", "out/T/", "a/./"),
    ("a/..", "hpc:/T", "hpc:/T/", "a/../"),
]


@pytest.mark.parametrize("source,target,rsource,rtarget", REVERSE)
def test_reverse(source, target, rsource, rtarget):
    assert reverse_ends(source, target) == (rsource, rtarget)


# rsync --list-only escapes -> the real name
UNESCAPE = [
    ("plain/name.csv", "plain/name.csv"),
    (r"\#303\#274n\#303\#257/f\#303\#251.csv", "ünï/fé.csv"),
    (r"a\#012b", "a\nb"),
    ("ünï", "ünï"),
]


@pytest.mark.parametrize("listed,name", UNESCAPE)
def test_rsync_list_only_unescape(listed, name):
    from flepimop_sync.execute import rsync_unescape

    assert rsync_unescape(listed) == name


# -- issue 12: paths as users write them ----------------------------------------------------
ENV = {"HOME": "/home/me", "RUN": "20240501_120000", "B": "bucket", "EMPTY": ""}

# written, expanded (HOME=/home/me)
EXPAND = [
    ("~", "/home/me"),
    ("~/", "/home/me/"),
    ("~/ghi", "/home/me/ghi"),
    ("~root/x", "/root/x"),
    ("a/~/b", "a/~/b"),  # only a leading ~ is a home
    ("hpc:~/flepiproject/model_input", "hpc:~/flepiproject/model_input"),  # the remote shell's home
    ("s3://$B/p/$RUN/", "s3://bucket/p/20240501_120000/"),
    ("model_output/${RUN}x", "model_output/20240501_120000x"),
    ("$HOME/a", "/home/me/a"),
    ("hpc:/scratch/$RUN", "hpc:/scratch/20240501_120000"),
    ("cost$$5", "cost$5"),
    ("dollar$(touch x)", "dollar$(touch x)"),  # not a variable: literal
]


@pytest.mark.parametrize("written,expanded", EXPAND)
def test_expand_end(written, expanded):
    from flepimop_sync.endpoints import expand_end

    assert expand_end(written, ENV, "c.yml: protocol 'p' key 'target'") == expanded


@pytest.mark.parametrize("written,fragment", [("out/$NOPE", "$NOPE"), ("${NOPE}/x", "$NOPE"),
                                              ("~no_such_user_flepimop/x", "no_such_user_flepimop"),
                                              # empty once expanded: rsync was handed '/' (the root)
                                              ("$EMPTY", "is empty"), ("${EMPTY}", "is empty"),
                                              ("$EMPTY$EMPTY", "is empty"),
                                              # a variable set but empty names another place ('a/b', not
                                              # 'a<value>/b'): refused, naming it
                                              ("a$EMPTY/b", "$EMPTY, set but empty")])
def test_expand_end_errors_name_the_variable_and_the_key(written, fragment):
    from flepimop_sync.endpoints import expand_end

    with pytest.raises(UsageError) as info:
        expand_end(written, ENV, "c.yml: protocol 'p' key 'target'")
    assert fragment in str(info.value) and "key 'target'" in str(info.value)


# source, destination, refused?
NESTING = [
    ("/a/b", "/a/b/c", True),
    ("/a/b", "/a/bc", False),
    ("/a/b/c", "/a/b", True),
    ("/a/b", "/a/x", False),
    ("/", "/x", True),
    ("hpc:runs/", "hpc:runs/x", True),
    ("hpc:~/runs/", "hpc:runs/x", True),
    ("hpc:runs/", "other:runs/x", False),
    ("hpc:/a/", "/a/b", False),  # another host
    ("s3://b/p/", "s3://b/p/q/", True),
    ("s3://b/p/", "s3://b/pq/", False),
    ("s3://b/p/", "s3://c/p/q/", False),
    ("s3://b/d/x/../run/", "s3://b/d/x/", True),  # S3 keys are literal: that source lies below d/x/
    ("s3://b/d/x/", "s3://b/d/run/../x/y/", False),  # and this destination is not below d/x/
]


@pytest.mark.parametrize("source,destination,refused", NESTING)
def test_nesting_is_refused(source, destination, refused):
    from flepimop_sync.endpoints import check_nesting

    call = lambda: check_nesting(parse_end(source), parse_end(destination), lambda key=None: "p")  # noqa: E731
    if refused:
        with pytest.raises(UsageError, match="inside"):
            call()
    else:
        call()


def _home() -> str:
    import os
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir.rstrip("/")


# source, destination, refused? -- compared as canonical places (lock.canonical_place, no ssh -G
# here): a loopback host with an absolute path is this machine's path
PLACE_NESTING = [
    ("localhost:/a/", "/a/b", True),
    ("/a/b/c", "127.0.0.1:/a/b", True),
    ("/a/b", "localhost:/a/bc", False),
    ("hpc:/a/", "/a/b", False),  # an alias: only ssh -G (run by execute) knows it is this machine
    ("localhost:a/", "/a/b", False),  # relative: below the remote home, not the local cwd
    # ... and that home is this user's home on this machine (the password database's)
    ("localhost:a/", f"{_home()}/a/b", True),
    (f"{_home()}/a/b/c", "127.0.0.1:~/a/b", True),
    (f"{_home()}/a/b", "localhost:./a/x/../b/.", True),
    ("127.0.0.2:a", f"{_home()}/ab", False),
    ("localhost:a/", f"{_home()}/b", False),
]


@pytest.mark.parametrize("source,destination,refused", PLACE_NESTING)
def test_nesting_through_canonical_places_is_refused(source, destination, refused):
    from flepimop_sync.endpoints import check_nesting
    from flepimop_sync.lock import canonical_place

    src, dst = parse_end(source), parse_end(destination)
    places = (canonical_place(src), canonical_place(dst))
    call = lambda: check_nesting(src, dst, lambda key=None: "p", places=places)  # noqa: E731
    if refused:
        with pytest.raises(UsageError, match="inside"):
            call()
    else:
        call()


# two endpoint spellings -> one S3 lock? (lock.canonical_place: no scheme, userinfo, trailing '/'
# or default port)
S3_ENDPOINTS = [
    ("https://s3.example.org", "https://s3.example.org:443/", True),
    ("http://127.0.0.1:80", "http://127.0.0.1/", True),
    ("HTTPS://key@S3.Example.org:443", "https://s3.example.org", True),
    ("s3.example.org:443", "https://s3.example.org", True),
    ("http://127.0.0.1:9000", "http://127.0.0.1:9000/", True),
    ("http://127.0.0.1:9000", "http://127.0.0.1:9001", False),
    ("https://s3.example.org:80", "https://s3.example.org", False),
    ("https://s3.example.org/a", "https://s3.example.org/b", False),
]


@pytest.mark.parametrize("first,second,same", S3_ENDPOINTS)
def test_s3_endpoint_spellings_share_one_lock(first, second, same):
    from types import SimpleNamespace

    from flepimop_sync.lock import canonical_place

    def place(endpoint):
        return canonical_place(parse_end("s3://b/run/"), None, SimpleNamespace(base_env={"AWS_ENDPOINT_URL": endpoint}))

    assert (place(first) == place(second)) is same, (place(first), place(second))


# source, target -> the X/X warning?
LANDING = [
    ("model_output", "/x/model_output", True),
    ("model_output", "s3://b/p/model_output/", True),
    ("model_output/", "/x/model_output", False),
    ("model_output", "/x/other", False),
]


@pytest.mark.parametrize("source,target,warned", LANDING)
def test_x_x_landing_warning(source, target, warned):
    from flepimop_sync.endpoints import landing_warning

    src, tgt = parse_end(source), parse_end(target)
    dest = tgt if src.trailing_slash else tgt.child(src.basename)
    warning = landing_warning(src, tgt, dest)
    assert bool(warning) == warned
    if warned:
        assert "\n" not in warning and repr(source + "/") in warning


# remote sender operands: the remote rsync glob-expands them
SENDER = [
    ("hpc:/d/a[1]/", "hpc:/d/a\\[1\\]/"),
    ("hpc:/d/a*?/", "hpc:/d/a\\*\\?/"),
    ("hpc:/d/a]b/", "hpc:/d/a\\]b/"),
    ("hpc:/d/plain b\\s/", "hpc:/d/plain b\\s/"),  # no glob character: taken literally
    ("hpc:~/a[1]", "hpc:~/a\\[1\\]"),
    ("/local/a[1]/", "/local/a[1]/"),
]


@pytest.mark.parametrize("end,operand", SENDER)
def test_rsync_sender_operand(end, operand):
    from flepimop_sync.plan import rsync_sender_operand

    assert rsync_sender_operand(parse_end(end)) == operand


# S3 ends whose key prefix has an empty, '.' or '..' part: refused (aws and rclone place them differently)
ODD_S3_ENDS = [
    ("s3://b/d/x/../run/", "/tmp/t", "source"),
    ("s3://b/./run/", "/tmp/t", "source"),
    ("s3://b/d//run/", "/tmp/t", "source"),
    ("s3://b//run/", "/tmp/t", "source"),
    ("/tmp/s/", "s3://b/p/..", "target"),
    ("/tmp/s/", "s3://b/p/./", "target"),
]


@pytest.mark.parametrize("source,target,key", ODD_S3_ENDS)
def test_s3_end_with_dot_or_empty_parts_is_refused(source, target, key):
    from flepimop_sync.endpoints import check_protocol_ends
    from flepimop_sync.mechanism import ProtocolType

    with pytest.raises(UsageError, match=r"'\.' or '\.\.' part") as info:
        check_protocol_ends(ProtocolType.S3SYNC, source, target, lambda k=None: f"c.yml: protocol 'p' key '{k}'",
                            error=UsageError)
    assert f"key '{key}'" in str(info.value)


@pytest.mark.parametrize("end", ["s3://b", "s3://b/", "s3://b/p", "s3://b/p/", "s3://b/p..q/.x/"])
def test_plain_s3_ends_are_accepted(end):
    from flepimop_sync.endpoints import check_protocol_ends
    from flepimop_sync.mechanism import ProtocolType

    check_protocol_ends(ProtocolType.S3SYNC, end, "/tmp/t", lambda k=None: "p", error=UsageError)


# text, expanded (None: refused).  Ends and filter rules read variables by one grammar
# (filters.substitute_variables): the same text expands, or is refused, alike in both.
VARIABLE_GRAMMAR = [
    ("out/${RUN", None),  # an unclosed '${'
    ("out/${}", None),
    ("out/${1X}/a", None),
    ("out/${RUN-x}", None),
    ("${", None),
    ("out/a$", "out/a$"),  # a '$' that starts no name is itself
    ("$", "$"),
    ("out/$1", "out/$1"),
    ("out/$$${RUN}", "out/$20240501_120000"),  # '$$' beside '${...}'
    ("out/${RUN}$$", "out/20240501_120000$"),
    ("out/$$$RUN", "out/$20240501_120000"),
    ("out/$${RUN}", "out/${RUN}"),  # '$$' then literal text
    ("out/$$${", None),
    ("out/x${RUN}y", "out/x20240501_120000y"),
]


@pytest.mark.parametrize("text,expanded", VARIABLE_GRAMMAR)
def test_ends_and_filters_read_variables_alike(text, expanded):
    from flepimop_sync.endpoints import expand_end
    from flepimop_sync.errors import FilterError
    from flepimop_sync.filters import expand_env

    where = "c.yml: protocol 'p' key 'target'"
    if expanded is None:
        with pytest.raises(UsageError, match=r"'\$\{' must be followed") as end_error:
            expand_end(text, ENV, where)
        assert where in str(end_error.value)
        with pytest.raises(FilterError, match=r"'\$\{' must be followed"):
            expand_env(text, "c.yml: protocol 'p' key 'filters[0]'", ENV)
    else:
        assert expand_end(text, ENV, where) == expanded
        assert expand_env(text, "c.yml: protocol 'p' key 'filters[0]'", ENV) == expanded


# where the malformed '${' is written (config key or option), argv, what the one-line error names
# text, the variables set but empty it uses (each once, in the order used).  One check
# (filters.substitute_noting_empty) refuses them in an end and in a filter rule alike.
EMPTY_NAMES = [
    ("out/$RUN/x", []),
    ("out/$EMPTY/x", ["EMPTY"]),
    ("${EMPTY}x$E2$EMPTY", ["EMPTY", "E2"]),
    ("out/$$EMPTY", []),  # '$$' is a literal '$': no variable
    ("out/$UNSET_HERE/$EMPTY", ["EMPTY"]),  # unset is its own refusal, before
]


@pytest.mark.parametrize("text,empty", EMPTY_NAMES)
def test_ends_and_filters_refuse_empty_variables_alike(text, empty):
    from flepimop_sync.endpoints import check_empty_variables
    from flepimop_sync.errors import FilterError
    from flepimop_sync.filters import expand_env, substitute_noting_empty

    env = dict(ENV, E2="")
    _, noted = substitute_noting_empty(text, lambda name: env.get(name, "$" + name))
    assert noted == empty
    where = "c.yml: protocol 'p' key 'target'"
    if not empty:
        check_empty_variables(text, env, where)
        return
    names = ", ".join(f"${n}" for n in empty)
    with pytest.raises(UsageError) as end_error:
        check_empty_variables(text, env, where)
    assert f"uses {names}, set but empty" in str(end_error.value)
    if "UNSET_HERE" not in text:
        with pytest.raises(FilterError) as rule_error:
            expand_env(f"+ {text}", "c.yml: protocol 'p' key 'filters[0]'", env)
        assert f"variable {names} is set but empty" in str(rule_error.value)


MALFORMED_END = [
    ("config target", {"target": "out/${RUN"}, [], ["key 'target'", "out/${RUN"]),
    ("config source", {"source": "src/${}/"}, [], ["key 'source'", "src/${}/"]),
    ("-t replaces", {}, ["-t", "out/${RUN"], ["--target", "out/${RUN"]),
    ("-t appends", {}, ["-t", "+ ${RUN"], ["--target", "+ ${RUN"]),
    ("-s replaces", {}, ["-s", "src/${1X}/"], ["--source", "src/${1X}/"]),
    ("-s appends", {"source": "src/"}, ["-s", "+ a/${"], ["--source", "+ a/${"]),
]


@pytest.mark.parametrize("name,keys,argv,fragments", MALFORMED_END, ids=[row[0] for row in MALFORMED_END])
def test_a_malformed_variable_in_an_end_is_a_one_line_usage_error(tmp_path, capsys, monkeypatch, name, keys,
                                                                   argv, fragments):
    import yaml

    from flepimop_sync.cli import flepimop, run_command

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUN", "r1")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    (tmp_path / "out").mkdir()
    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump({"sync": {"p": {"type": "rsync", "source": "src/", "target": "out", **keys}}}))
    code = run_command(flepimop, ["sync", *argv, "-n", str(cfg)], prog_name="flepimop")
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in [*fragments, "'${' must be followed"]:
        assert fragment in lines[0], (fragment, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yml", "out", "src"]


# option, environment: an append that names nothing below the configured end once its $NAME is
# expanded (or has a '.' part) would sync onto the end itself, or a source's contents one level up
# (with --delete, deleting there): refused like a '..'
APPENDS_NAMING_NOTHING = [
    ("+ $RUN", {"RUN": ""}),
    ("+ ${RUN}/", {"RUN": ""}),
    ("+ $RUN", {"RUN": "/"}),
    ("+ $RUN", {"RUN": "."}),
    ("+ $RUN", {"RUN": "./"}),
    ("+ a/$RUN", {"RUN": "."}),
    ("+ .", {}),
    ("+ ./", {}),
    ("+ a/.", {}),
]


@pytest.mark.parametrize("option,env", APPENDS_NAMING_NOTHING)
def test_an_append_naming_nothing_below_is_a_usage_error(option, env):
    for configured in ("/a", "/a/", "s3://b/p", "hpc:/x"):
        with pytest.raises(UsageError, match="below the configured target"):
            apply_option(configured, option, what="target", env=env)


# configured source, -s, environment, the source the run reads: an append keeps the configured
# end's trailing separator (the README table) even when a $NAME at its end holds one, or is empty
APPEND_SEPARATORS = [
    ("src", "+ $SUB", {"SUB": "run1/"}, "src/run1"),
    ("src", "+ $SUB", {"SUB": "a//"}, "src/a"),
    ("src/", "+ $SUB", {"SUB": "run1"}, "src/run1/"),
    ("src/", "+ $SUB", {"SUB": "run1/"}, "src/run1/"),
    ("s3://b/p", "+ $SUB", {"SUB": "run1/"}, "s3://b/p/run1"),
    ("s3://b/p/", "+ $SUB", {"SUB": "run1"}, "s3://b/p/run1/"),
    ("src", "+ run1/", {}, "src/run1"),
]


@pytest.mark.parametrize("configured,option,env,source", APPEND_SEPARATORS)
def test_an_append_keeps_the_configured_separator_after_expansion(configured, option, env, source):
    from flepimop_sync import plan as planning
    from flepimop_sync.config import Protocol
    from flepimop_sync.options import SyncOptions

    ptype = "s3sync" if configured.startswith("s3://") else "rsync"
    target = "out" if ptype == "s3sync" else "/elsewhere/out"
    protocol = Protocol(name="p", type=ptype, file="c.yml", source=configured, target=target)
    src, _ = planning.resolve_ends(protocol, SyncOptions(source=option), env={"HOME": "/home/me", **env})
    assert src.text == source


# which end, written as: an end empty once expanded never reaches a plan (End.as_dir made '' the root)
EMPTY_ENDS = [("target", "$RUN"), ("source", "${RUN}"), ("target", "$RUN$RUN")]


@pytest.mark.parametrize("key,written", EMPTY_ENDS)
def test_an_end_empty_once_expanded_is_refused_before_any_plan(key, written):
    from flepimop_sync import plan as planning
    from flepimop_sync.config import Protocol
    from flepimop_sync.options import SyncOptions

    ends = {"source": "/data/src/", "target": "/data/out", key: written}
    protocol = Protocol(name="p", type="rsync", file="c.yml", **ends)
    for options in (SyncOptions(), SyncOptions(reverse=True)):
        with pytest.raises(UsageError, match=f"key '{key}'.*is empty once"):
            planning.resolve_ends(protocol, options, env={"RUN": ""})


# -- a $NAME set but empty names another place: refused (exit 2), naming where and the variable ------------
# 'runs/$RUN/out/' with RUN='' reads 'runs//out/' (= runs/out/, another directory: with --delete,
# deleting there); 'out/$RUN' reads 'out/', the parent; 'run1/$SUB' appended reads 'run1', all of it.
# (An end empty once expanded, or an append naming nothing, keeps its own message above.)
# where it is written (config key or option), the protocol's ends (and the option), what the line names
EMPTY_VARIABLE = [
    ("target", {"target": "runs/$RUN/out/"}, None, "key 'target'"),
    ("target", {"target": "out/${RUN}"}, None, "key 'target'"),
    ("target", {"target": "out$RUN"}, None, "key 'target'"),  # the name meant is not there either
    ("source", {"source": "data/$RUN/"}, None, "key 'source'"),
    ("target", {"target": "hpc:/scratch/$RUN/x/"}, None, "key 'target'"),
    ("target", {"target": "s3://b/p/$RUN/x/"}, None, "key 'target'"),
    ("-t", {}, ("target", "runs/$RUN/out/"), "--target: 'runs/$RUN/out/'"),
    ("-t", {}, ("target", "+ a/$RUN"), "--target: '+ a/$RUN'"),
    ("-t", {}, ("target", "+ $RUN/x"), "--target: '+ $RUN/x'"),
    ("-s", {}, ("source", "other/$RUN/"), "--source: 'other/$RUN/'"),
    ("-s", {}, ("source", "+ run1/$RUN"), "--source: '+ run1/$RUN'"),  # (was read as the whole 'src/run1')
]


@pytest.mark.parametrize("where,ends,option,named", EMPTY_VARIABLE,
                         ids=[f"{w}={e or o}" for w, e, o, _ in EMPTY_VARIABLE])
def test_an_end_with_a_variable_set_but_empty_is_refused(where, ends, option, named):
    from flepimop_sync import plan as planning
    from flepimop_sync.config import Protocol
    from flepimop_sync.options import SyncOptions

    ptype = "s3sync" if any(v.startswith("s3://") for v in ends.values()) else "rsync"
    protocol = Protocol(name="p", type=ptype, file="c.yml", **{"source": "src/", "target": "/data/out/", **ends})
    given = {option[0]: option[1]} if option else {}
    for options in (SyncOptions(**given), SyncOptions(reverse=True, **given)):
        with pytest.raises(UsageError) as info:
            planning.resolve_ends(protocol, options, env={"RUN": "", "HOME": "/home/me"})
        message = str(info.value)
        assert named in message and "$RUN, set but empty" in message, message
        assert "\n" not in message


# through the CLI, with --delete and --mkpath: one line, exit 2, and the directory the end would
# have named ('runs/out/') keeps its files (the old reading deleted them)
@pytest.mark.parametrize("keys,argv", [({"target": "runs/$RUN/out/"}, []),
                                       ({}, ["-t", "runs/$RUN/out/"]),
                                       ({"target": "runs/"}, ["-t", "+ $RUN/out"])],
                         ids=["config", "-t replaces", "-t appends"])
def test_a_variable_set_but_empty_is_refused_before_anything_changes(tmp_path, capsys, monkeypatch, keys, argv):
    import yaml

    from flepimop_sync.cli import flepimop, run_command

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUN", "")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    (tmp_path / "runs" / "out").mkdir(parents=True)
    (tmp_path / "runs" / "out" / "keep.txt").write_text("another run's file")
    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump({"sync": {"p": {"type": "rsync", "source": "src/", "target": "out/", **keys}}}))
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for dry in ([], ["-n"]):
        code = run_command(flepimop, ["sync", "--delete", "--mkpath", *dry, *argv, str(cfg)], prog_name="flepimop")
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
        assert "$RUN, set but empty" in lines[0] and ("--target" if argv else "key 'target'") in lines[0]
        assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "runs" / "out" / "keep.txt").read_text() == "another run's file"
