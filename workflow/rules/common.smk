# Helpers of the flepimop-sync workflow. No rules here (snakemake --lint).
#
# A campaign is a list of runs; every step is one rule with a {run} wildcard, and its
# params are functions of that wildcard (no lambdas in rules: `step_params` below builds
# them). A run's settings: the campaign's step sections, with the run's overrides on top.
#
# Sync params come from flepimop_sync.api.rule_params: the config files, the SyncOptions
# fields and the digest of what the step would move (api.meaning: resolved ends, filters,
# options, type, tool; never the argv), computed once per distinct section with '{run}' a
# constant (DIGEST_RUN; the run's name is in the node's path). Snakemake's params
# rerun-trigger therefore reruns a step exactly when what it moves changes. resume_fetch and
# sync_* run the wrapper in wrappers/flepimop-sync, which maps params -> SyncOptions with the
# same API function; calibrate and snapshot run wrappers/flepimop-calibrate and
# wrappers/flepimop-snapshot (scripts/calibrate.py, scripts/snapshot.py: the snapshot's '{run}'
# is gempyor's run id, known only from the calibrate receipt, so the script fills it). Params
# are plain values wherever every run agrees (see `plain`): 1,000 runs plan in seconds. No
# flag is built here. Before all that, validate_config checks the whole config (a problem is
# one line naming the file and the key, exit 2) and plans every digest once.

import copy
import functools
import importlib.util
import json
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from flepimop_sync import api as fsapi
from flepimop_sync.config import load_yaml
from flepimop_sync.errors import EXIT_USAGE, SyncError
from flepimop_sync.filters import parse_rule, written_canonical
from flepimop_sync.smk import describe_config_error, rule_names, write_deployable_env

STEPS = ("resume_fetch", "calibrate", "snapshot")
#: String keys of a step in which '{run}' stands for the run's name (and its filters). The
#: snapshot's '{run}' is the run id gempyor wrote: scripts/snapshot.py fills it (expand_run).
RUN_PLACEHOLDER_KEYS = ("source", "target", "manifest", "outputs", "resume_dir")
#: The snapshot's keys with '{run}' (the digest fills them with the run's name).
SNAPSHOT_RUN_KEYS = ("source", "target", "manifest", "project_dir")


# -- config: checked in full before any rule is defined --------------------------------


class ConfigProblem(Exception):
    """A key of the workflow config (``path``: its keys and indices) and what is wrong with it:
    the name of one of flepimop_sync.smk.CONFIG_PROBLEMS with its ``values``, or an error
    (flepimop_sync.smk.describe_config_error words each)."""

    def __init__(self, path, problem, **values):
        super().__init__(path, problem)
        self.path = tuple(path)
        self.problem = problem
        self.values = values


def validate_config(config, schema_file):
    """The workflow config, checked before rules are defined or files written. Its
    schema (``schema_file``, which also fills in the defaults), the sync configs it names, and
    what a schema cannot say (results_dir, run names, calibrate.resources, and every enabled
    sync step's protocol, filters and plan: check_runs). A problem refuses the run: one line
    naming the file and the key (describe_config_error), exit 2 (refuse). What it computes
    (filters, digests, params) is memoised for the rules' params."""
    try:
        coerce_cli_values(config, schema_file)
        try:
            validate(config, str(schema_file))
        except WorkflowError as error:
            raise ConfigProblem((), schema_error(error)) from None
        files = [str(path) for path in config["sync_configs"]]
        sync = fsapi.load_config(files)
        rule_names(list(sync.protocols))
        for protocol in sync.protocols:
            protocol_params(files, sync, protocol)
        results_dir(config["results_dir"])
        for index, name in enumerate(config["sync_in_all"]):
            check_protocol_named(sync, name, ("sync_in_all", index))
        runs = load_runs(config, config["model_config"] or files[0])
        check_runs(config, runs, files, sync)
    except ConfigProblem as problem:
        path = problem.path + tuple(getattr(problem.problem, "absolute_path", ()))
        refuse(
            describe_config_error(
                config_source(path), problem.path, problem.problem, **problem.values
            )
        )
    except SyncError as error:
        # in a sync config: flepimop-sync's own line (file, protocol, key)
        refuse(str(error))


def refuse(line):
    """Stop before rules are defined. ``line`` on stderr, exit 2 (a configuration error, as
    the CLI's; nothing was run or written). Not a WorkflowError: Snakemake would print it with
    the Snakefile's traceback."""
    print(f"error: {line}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def schema_error(error):
    """The JSON Schema error behind snakemake.utils.validate's WorkflowError (it raises it while
    handling that one), else the WorkflowError's first line."""
    cause = error.__context__
    if hasattr(cause, "validator") and hasattr(cause, "absolute_path"):
        return cause
    return str(error).splitlines()[0]


def config_source(path):
    """The config file that set the key ``path`` (its first key decides), as the user wrote it:
    '--config' for a key given there, else the last file setting it (Snakemake's --configfile
    files override the Snakefile's configfile:), else the last file read."""
    settings = workflow.config_settings
    top = path[0] if path else None
    if top is not None and top in (settings.config or {}):
        return "--config"
    given = [str(file) for file in settings.configfiles]
    files = [str(f) for f in workflow.configfiles if str(f) not in given] + given
    for file in reversed(files):
        try:
            document = load_yaml(file)
        except SyncError:
            continue
        if isinstance(document, dict) and top in document:
            return shown_path(file)
    return shown_path(files[-1]) if files else "config"


def shown_path(file):
    relative = os.path.relpath(file)
    return file if relative.startswith("..") else relative


#: The keys of a sync step's section that hold filter rules (the snapshot's project_files are
#: patterns, pushed as '+ /<pattern>' by scripts/snapshot.py: see check_project_files).
FILTER_KEYS = {
    "resume_fetch": ("filters",),
    "snapshot": ("filters", "fprefix", "fsuffix"),
}


def check_runs(config, runs, files, sync):
    """What the schema cannot say about the runs: a run's calibrate.resources keys are the
    campaign's, and every enabled sync step (resume_fetch, snapshot) names a protocol of the
    sync configs, has filters that parse and a plan flepimop-sync accepts (its digest, that of
    the snapshot's project files push too). Raises ConfigProblem at the key as written: the
    run's entry when it sets it, else the campaign's section (step_key)."""
    campaign_resources = set(config["calibrate"]["resources"])
    for run in runs.values():
        index = run["index"]
        for key in sorted(set(run["calibrate"]["resources"]) - campaign_resources):
            raise ConfigProblem(
                ("runs", index, "calibrate", "resources", key),
                "resource_not_in_campaign",
            )
        for step in FILTER_KEYS:
            section, written = run[step], run["templates"][step]
            if not section["enabled"]:
                continue
            where = functools.partial(step_key, config, index, step)
            check_protocol_named(sync, section["protocol"], where("protocol"))
            for key in FILTER_KEYS[step]:
                check_filters(section[key], written[key], where(key))
            try:
                if step == "snapshot":
                    check_project_files(
                        written["project_files"], where("project_files")
                    )
                    options = snapshot_section_options(written, files)
                    snapshot_section_digest(options, files, sync)
                    project_push_params(options, files, sync)
                else:
                    section_digest(step, written, files, sync)
            except SyncError as error:
                raise ConfigProblem(where(), error) from None
        check_sync_protocol_of_batch_calibrate(config, run)


def check_sync_protocol_of_batch_calibrate(config, run):
    """batch-calibrate's own sync job runs ``flepimop sync -p <sync_protocol> <model config>``
    after the calibration's jobs: the protocol must be one of the run's model config (else
    that job fails on the cluster, hours later, after the run's outputs were written).
    """
    section = run["calibrate"]
    name = (section.get("batch_calibrate") or {}).get("sync_protocol")
    if not section["enabled"] or not name:
        return
    if workflow_script("calibrate").calibrate_mode(section) != "batch-calibrate":
        return
    override = config["runs"][run["index"]].get("calibrate") or {}
    in_run = "sync_protocol" in (override.get("batch_calibrate") or {})
    path = ("runs", run["index"], "calibrate") if in_run else ("calibrate",)
    path += ("batch_calibrate", "sync_protocol")
    try:
        model = fsapi.load_config([str(run["model_config"])])
    except SyncError as error:
        raise ConfigProblem(path, error) from None
    check_protocol_named(model, name, path)


def step_key(config, index, step, *keys):
    """The path of a step's key (``keys`` empty: of the step's section) for run ``index``, as
    written: in the run's entry when it sets that key (or, for the section, any key of it),
    else in the campaign's section."""
    override = config["runs"][index].get(step) or {}
    if (keys and keys[0] in override) or (not keys and override):
        return ("runs", index, step, *keys)
    return (step, *keys)


def check_filters(rules, written, path):
    """Every one of ``rules`` parses ('{run}' filled; ``written``: as in the config, for the
    message); memoised with the params' normalised_filters."""
    if rules is None:
        return
    try:
        _normalised(tuple(rules))
    except SyncError:
        for index, text in enumerate(rules):
            try:
                written_canonical(text, "config")
            except SyncError as error:
                raise ConfigProblem(
                    (*path, index), error, value=written[index]
                ) from None


def check_project_files(patterns, path):
    """Each of the snapshot's project_files parses as scripts/snapshot.py pushes it."""
    for index, pattern in enumerate(patterns or ()):
        try:
            parse_rule(f"+ /{pattern}", "config")
        except SyncError as error:
            raise ConfigProblem((*path, index), error, value=pattern) from None


# -- config: booleans/integers typed on the command line -------------------------------


def coerce_cli_values(config, schema_file):
    """`--config local_sync=false` reaches the Snakefile as the string 'false' (Snakemake
    parses only True/False/numbers); turn such strings into the booleans/integers the schema
    asks for, so the one validation below accepts what users type."""
    schema = load_yaml(schema_file)  # libyaml's parser: PyYAML's own cost ~0.15 s a run

    def resolve(node):
        while isinstance(node, dict) and "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    def types(node):
        node = resolve(node)
        found = set()
        kind = node.get("type") if isinstance(node, dict) else None
        found.update([kind] if isinstance(kind, str) else kind or [])
        for part in node.get("allOf", []) if isinstance(node, dict) else []:
            found |= types(part)
        return found

    def properties(node):
        node = resolve(node)
        props = dict(node.get("properties", {}))
        for part in node.get("allOf", []):
            for key, sub in properties(part).items():
                props.setdefault(key, sub)
        return props

    def coerce(value, node):
        wanted = types(node)
        if isinstance(value, str):
            if "boolean" in wanted and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if "integer" in wanted and value.strip().lstrip("-").isdigit():
                return int(value)
            return value
        if isinstance(value, dict):
            props = properties(node)
            return {
                k: coerce(v, props[k]) if k in props else v for k, v in value.items()
            }
        if isinstance(value, list):
            items = resolve(node).get("items")
            return [coerce(v, items) for v in value] if items else value
        return value

    coerced = coerce(dict(config), schema)
    config.clear()
    config.update(coerced)
    return config


# -- the campaign ----------------------------------------------------------------------


def check_protocol_named(sync, name, path):
    """``name``, the value of the workflow config's key ``path``, is a protocol of the sync
    configs (else flepimop-sync's own words, which list the available ones)."""
    try:
        sync.get(name)
    except SyncError as error:
        raise ConfigProblem(path, error) from None


def merged(base, override):
    """A step section with a run's overrides on top (mappings merged key by key). Without
    overrides, the campaign's section itself: runs share it, nothing here mutates it."""
    if not override:
        return base
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def with_run(section, run, keys=RUN_PLACEHOLDER_KEYS):
    """'{run}' -> the run's name in the step's ends, filters and paths."""
    out = dict(section)
    for key in keys:
        if isinstance(out.get(key), str):
            out[key] = out[key].replace("{run}", run)
    for key in ("filters", "fprefix", "fsuffix", "project_files"):
        if isinstance(out.get(key), list):
            out[key] = [rule.replace("{run}", run) for rule in out[key]]
    return out


def load_runs(config, model_config):
    """run name -> its settings: each step's section with the run's overrides on top
    (``templates``, as written), '{run}' filled except in the snapshot's, its ``index`` in
    config `runs`; ``model_config``: the campaign's."""
    runs = {}
    for index, entry in enumerate(config["runs"]):
        name = entry["name"]
        if name in runs:
            first = f"runs[{runs[name]['index']}]"
            raise ConfigProblem(
                ("runs", index, "name"), "listed_twice", value=name, first=first
            )
        run = {
            "name": name,
            "index": index,
            "model_config": entry.get("model_config") or model_config,
        }
        run["templates"] = {
            step: merged(config[step], entry.get(step)) for step in STEPS
        }
        for step in STEPS:
            section = run["templates"][step]
            # the snapshot's {run} is filled by scripts/snapshot.py (gempyor's run id)
            run[step] = section if step == "snapshot" else with_run(section, name)
        runs[name] = run
    return runs


def runs_with(step):
    """Names of the runs in which ``step`` is enabled."""
    return [name for name, run in RUNS.items() if run[step]["enabled"]]


def run_name(wildcards):
    """The run's name, a params function of every per-run rule: whatever else is plain, an
    unknown run (a mistyped target) is named as such instead of being planned."""
    return the_run(wildcards)["name"]


def the_run(wildcards):
    try:
        return RUNS[wildcards.run]
    except KeyError:
        raise WorkflowError(
            f"no run named {wildcards.run!r} in config key 'runs' (runs: {', '.join(RUNS)})"
        ) from None


# -- paths -----------------------------------------------------------------------------


def results_dir(value):
    """config `results_dir` as the prefix of every receipt and log pattern: without trailing
    slashes (results/ gave patterns results//{run}/..., which no target path matches), and
    refused with braces (Snakemake would read them as wildcards)."""
    if "{" in value or "}" in value:
        raise ConfigProblem(("results_dir",), "braces", value=value)
    stripped = value.rstrip("/")
    if not stripped:
        raise ConfigProblem(("results_dir",), "root", value=value)
    return stripped


def run_receipt(step):
    return f"{RESULTS}/{{run}}/receipts/{step}.json"


def run_log(step):
    return f"{RESULTS}/{{run}}/logs/{step}.log"


def receipts_of(step, runs=None):
    return [
        f"{RESULTS}/{run}/receipts/{step}.json"
        for run in (runs_with(step) if runs is None else runs)
    ]


def sync_receipt(rule_name):
    return f"{RESULTS}/receipts/{rule_name}.json"


def sync_log(rule_name):
    return f"{RESULTS}/logs/{rule_name}.log"


# -- sync params -----------------------------------------------------------------------


def protocol_params(files, sync, protocol):
    """The params of the sync_<protocol> rule (its digest), once (validate_config plans them)."""

    def compute():
        return fsapi.rule_params(files, config=sync, protocol=protocol)

    return memoised_digest("protocol", protocol, compute)


def protocol_rule_params(protocol):
    """params of the sync_<protocol> rule: protocol_params, a value with braces (a config file
    'flepi{x}.yml') as a function returning it: Snakemake would read the braces as wildcards
    (the rule has none) and refuse to plan."""
    return {
        key: _constant(key, value) if _has_wildcard_braces(value) else value
        for key, value in protocol_params(CONFIG_FILES, SYNC, protocol).items()
    }


def _constant(key, value):
    def constant(wildcards):
        return value

    constant.__name__ = f"sync_{key}"
    return constant


#: What '{run}' becomes in a step's digest: one constant, so every run whose section is
#: the campaign's (or the same override) shares one digest, computed once. The run's name
#: needs no part in it: it is in the node's own output path.
DIGEST_RUN = "_run_"


def sync_step_options(name, step, section):
    """The SyncOptions fields of a sync step's section ('{run}' already filled)."""
    return {
        "source": section["source"],
        "target": section["target"],
        "filters": normalised_filters(
            section["filters"], f"runs: {name}: {step}.filters"
        ),
        "mkpath": section["mkpath"] or None,
    }


@functools.lru_cache(maxsize=None)
def run_sync_params(step, run):
    """The run's params, the digest that of its section with '{run}' = DIGEST_RUN."""
    section = RUNS[run][step]
    params = {"config_files": list(CONFIG_FILES), "protocol": section["protocol"]}
    options = sync_step_options(run, step, section)
    params.update(
        (key, value) for key, value in options.items() if value not in (None, [])
    )
    params["digest"] = section_digest(
        step, RUNS[run]["templates"][step], CONFIG_FILES, SYNC
    )
    return {key: params.get(key) for key in SYNC_PARAM_KEYS}


_DIGESTS = {}


def memoised_digest(kind, section, compute):
    """compute() once per (kind, distinct section): digests are the costly part of planning
    (a campaign of 1,000 runs usually has one or two distinct sections per step). The sync
    configs are the same for every call of a process: validate_config computes each digest
    first, the rules' params find it here."""
    key = (kind, json.dumps(section, sort_keys=True, default=str))
    if key not in _DIGESTS:
        _DIGESTS[key] = compute()
    return _DIGESTS[key]


def section_digest(step, template, files, sync):
    """api.meaning's digest of a sync step's section (unexpanded) with '{run}' =
    DIGEST_RUN, once per distinct section (``sync``: the protocols of ``files``).
    """

    def compute():
        section = with_run(template, DIGEST_RUN)
        options = sync_step_options(DIGEST_RUN, step, section)
        params = fsapi.rule_params(
            files, config=sync, protocol=section["protocol"], **options
        )
        return params["digest"]

    return memoised_digest(step, template, compute)


def normalised_filters(rules, origin):
    """Filters written as action, space, pattern (a bare pattern means include): params
    hold the meaning, so respelling a filter in the config reruns nothing (the params
    rerun-trigger sees them). '$NAME' and '$$' stay as written: the sync run expands them,
    once, as the CLI does (expanded here too, '$$' would reach it as a '$' variable)."""
    if rules is None:
        return None
    try:
        return list(_normalised(tuple(rules)))
    except SyncError:
        pass
    try:  # again, uncached, for the error naming where the rule is
        [parse_rule(text, origin) for text in rules]
    except SyncError as error:
        raise WorkflowError(f"flepimop-sync: {error}") from None
    raise AssertionError("unreachable")


@functools.lru_cache(maxsize=None)
def _normalised(rules):
    return tuple(written_canonical(text, "config") for text in rules)


#: The params every per-run sync rule has (a key is None when a run does not use it; the
#: wrapper drops None). Fixed keys: Snakemake needs the same params for every {run}.
SYNC_PARAM_KEYS = (
    "config_files",
    "protocol",
    "source",
    "target",
    "filters",
    "mkpath",
    "extra_files",
    "digest",
)


# -- snapshot --------------------------------------------------------------------------


#: Keys of the snapshot section handed to scripts/snapshot.py (with '{run}' left in: the
#: script fills it with the run id gempyor wrote, from the calibrate receipt).
SNAPSHOT_OPTION_KEYS = (
    "source",
    "target",
    "filters",
    "fprefix",
    "fsuffix",
    "project_dir",
    "project_files",
    "manifest",
    "mkpath",
)


@functools.lru_cache(maxsize=None)
def snapshot_options(run):
    """The run's snapshot for scripts/snapshot.py (snapshot_section_options)."""
    return snapshot_section_options(RUNS[run]["snapshot"], CONFIG_FILES)


def snapshot_section_options(section, files):
    """A snapshot section for scripts/snapshot.py: config files, protocol and the section's
    keys with '{run}' unexpanded (filters normalised: respelling one reruns nothing). The
    run's name is a param of its own ('{run}'), so runs sharing the campaign's section
    share one plain value."""
    options = {key: copy.deepcopy(section[key]) for key in SNAPSHOT_OPTION_KEYS}
    for key in ("filters", "fprefix", "fsuffix"):
        options[key] = normalised_filters(options[key], f"snapshot.{key}")
    return {"config_files": list(files), "protocol": section["protocol"], **options}


@functools.lru_cache(maxsize=None)
def snapshot_digest(run):
    """The digest of the run's snapshot (snapshot_section_digest)."""
    return snapshot_section_digest(snapshot_options(run), CONFIG_FILES, SYNC)


def snapshot_section_digest(options, files, sync):
    """What a snapshot's main push would move (api.meaning) with '{run}' = DIGEST_RUN, so
    editing the protocol or the section reruns the snapshot (the pushed run id is gempyor's,
    known only from the calibrate receipt, an input of the rule). Once per distinct section.
    """

    def compute():
        section = with_run(
            {name: options[name] for name in SNAPSHOT_OPTION_KEYS},
            DIGEST_RUN,
            SNAPSHOT_RUN_KEYS,
        )
        extra = [section["manifest"]] if section["manifest"] else None
        return fsapi.rule_params(
            files,
            config=sync,
            protocol=options["protocol"],
            source=section["source"],
            target=section["target"],
            filters=section["filters"],
            fprefix=section["fprefix"],
            fsuffix=section["fsuffix"],
            mkpath=section["mkpath"] or None,
            extra_files=extra,
        )["digest"]

    return memoised_digest("snapshot", options, compute)


def project_push_params(options, files, sync):
    """The params of a snapshot's push of the run's project files (*.pdf, *.h5), as
    scripts/snapshot.py builds them ('{run}' left as written: no digest, a check): planned once
    per distinct section while the DAG is built, so a push flepimop-sync would refuse stops the
    run before anything moved (not after the outputs were pushed). None without project_files.
    """

    def compute():
        params = workflow_script("snapshot").project_params(options, "{run}")
        if params is None:
            return None
        return fsapi.rule_params(files, config=sync, **params)

    return memoised_digest("snapshot project files", options, compute)


@functools.lru_cache(maxsize=None)
def workflow_script(name):
    """workflow/scripts/<name>.py as a module, loaded once: what the jobs run (the snapshot's
    pushes, the calibrate mode) is decided there, and the DAG's checks ask the same code.
    """
    path = WORKFLOW_DIR / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"flepimop_workflow_{name}", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def snapshot_protocol(wildcards):
    return RUNS[the_run(wildcards)["name"]]["snapshot"]["protocol"]


def snapshot_options_of(wildcards):
    return snapshot_options(the_run(wildcards)["name"])


def snapshot_digest_of(wildcards):
    return snapshot_digest(the_run(wildcards)["name"])


def snapshot_params():
    """params of snapshot_run: each a plain value when every run agrees (the common case: a
    function costs Snakemake a call per job), else a function of {run}."""
    runs = runs_with("snapshot")
    protocol = plain([RUNS[run]["snapshot"]["protocol"] for run in runs])
    options = plain([snapshot_options(run) for run in runs])
    digest = plain([snapshot_digest(run) for run in runs])
    return {
        "protocol": protocol[0] if protocol else snapshot_protocol,
        "run": run_name,
        "options": options[0] if options else snapshot_options_of,
        "digest": digest[0] if digest else snapshot_digest_of,
    }


def _param_of(step, key):
    def value(wildcards):
        return run_sync_params(step, the_run(wildcards)["name"])[key]

    value.__name__ = f"{step}_{key}"
    return value


def plain(values):
    """The one value every run shares, or None: a plain value costs Snakemake nothing per
    job, a function is called for every job (1,000 runs: thousands of calls). Never a string
    (or a list of strings) with braces: Snakemake would read them as wildcards (it passes
    other values, mappings included, as they are)."""
    if not values:
        return None
    first = values[0]
    if any(v != first for v in values[1:]) or _has_wildcard_braces(first):
        return None
    return (first,)


def _has_wildcard_braces(value):
    """Would Snakemake fill wildcards in this params value (a string, or a list's strings)?"""
    texts = (
        [value] if isinstance(value, str) else value if isinstance(value, list) else []
    )
    return any(isinstance(t, str) and ("{" in t or "}" in t) for t in texts)


def run_template(values, template):
    """``template`` as a plain value Snakemake fills per job, when it is a string whose only
    braces are '{run}' and every run's value is it with '{run}' = the run's name (``values``:
    run name -> value): Snakemake's wildcard filling is much cheaper than a function per job
    and gives the same params. Else None."""
    if not isinstance(template, str) or not values:
        return None
    rest = template.replace("{run}", "")
    if "{" in rest or "}" in rest:
        return None
    if any(value != template.replace("{run}", run) for run, value in values.items()):
        return None
    return (template,)


def shared_param(values, template=None):
    """The plain value every run shares, else the '{run}' template they all follow, else None
    (``values``: run name -> value)."""
    return plain(list(values.values())) or run_template(values, template)


def step_params(step):
    """params of a sync step's per-run rules: a plain value where every run agrees (or a
    '{run}' template, see run_template), else one function of {run} (the digest always: it
    also names an unknown run)."""
    runs = runs_with(step)
    params = {}
    for key in SYNC_PARAM_KEYS:
        shared = None
        if key != "digest":
            values = {run: run_sync_params(step, run)[key] for run in runs}
            shared = shared_param(values, config[step].get(key))
        params[key] = shared[0] if shared else _param_of(step, key)
    return params


# -- calibrate -------------------------------------------------------------------------


def calibrate_inputs(wildcards):
    run = the_run(wildcards)
    if run["resume_fetch"]["enabled"]:
        return [f"{RESULTS}/{run['name']}/receipts/resume_fetch.json"]
    return []


def calibrate_model_config(wildcards):
    return the_run(wildcards)["model_config"]


def calibrate_outputs(wildcards):
    return the_run(wildcards)["calibrate"]["outputs"]


def calibrate_resume_dir(wildcards):
    return calibrate_resume_dir_of(the_run(wildcards)["name"])


def calibrate_resume_dir_of(run):
    section = RUNS[run]["calibrate"]
    return section["resume_dir"] or section["outputs"]


#: The keys of a run's calibrate section that scripts/calibrate.py reads as
#: ``params.calibrate`` (with outputs, resume_dir, model_config and the run's name, every key
#: of the section that changes what the calibration does: threads, resources and enabled do
#: not). One mapping: Snakemake passes a mapping as it is, so a command's '{model_config}'
#: is not read as a wildcard and runs that share the campaign's section share one value.
CALIBRATE_KEYS = ("mode", "command", "batch_calibrate", "wait", "env")


def calibrate_section_of(run):
    section = RUNS[run]["calibrate"]
    return {key: copy.deepcopy(section[key]) for key in CALIBRATE_KEYS}


def calibrate_section(wildcards):
    """The run's calibrate keys (campaign's, run's overrides on top); scripts/calibrate.py
    gives the command FLEPI_RUN_INDEX = the run's name (gempyor reads it)."""
    return calibrate_section_of(the_run(wildcards)["name"])


def calibrate_params():
    runs = runs_with("calibrate")
    shared = plain([RUNS[run]["model_config"] for run in runs])
    section = plain([calibrate_section_of(run) for run in runs])
    campaign = config["calibrate"]
    outputs = shared_param(
        {run: RUNS[run]["calibrate"]["outputs"] for run in runs}, campaign["outputs"]
    )
    resume_dir = shared_param(
        {run: calibrate_resume_dir_of(run) for run in runs},
        campaign["resume_dir"] or campaign["outputs"],
    )
    return {
        "model_config": shared[0] if shared else calibrate_model_config,
        "run": run_name,
        "outputs": outputs[0] if outputs else calibrate_outputs,
        "resume_dir": resume_dir[0] if resume_dir else calibrate_resume_dir,
        "calibrate": section[0] if section else calibrate_section,
    }


#: Where the workflow writes the conda env files it hands to Snakemake (working directory).
DEPLOYED_ENVS = ".snakemake/flepimop-sync/envs"


def calibrate_env_file():
    """The calibrate step's conda env: envs/calibrate.yaml as deployable_env writes it (this
    checkout's path made absolute; with config `gempyor_source`, that gempyor instead of the
    pinned flepiMoP commit). See flepimop_sync.smk.deployable_env for why a copy."""
    return write_deployable_env(
        str(WORKFLOW_DIR / "envs" / "calibrate.yaml"),
        DEPLOYED_ENVS,
        gempyor_source=config["gempyor_source"],
    )


def sync_env_file():
    """The sync steps' conda env: the wrapper's environment.yaml, deployable (see above)."""
    return write_deployable_env(
        str(WORKFLOW_DIR / "wrappers" / "flepimop-sync" / "environment.yaml"),
        DEPLOYED_ENVS,
    )


def calibrate_input():
    """resume_fetch's receipt: a plain pattern when every run fetches, else per run."""
    flags = {RUNS[run]["resume_fetch"]["enabled"] for run in runs_with("calibrate")}
    if flags == {True}:
        return [run_receipt("resume_fetch")]
    return [] if flags <= {False} else calibrate_inputs


def snapshot_input():
    """calibrate's receipt: a plain pattern when every run calibrates, else per run."""
    flags = {RUNS[run]["calibrate"]["enabled"] for run in runs_with("snapshot")}
    if flags == {True}:
        return [run_receipt("calibrate")]
    return [] if flags <= {False} else snapshot_inputs


def calibrate_thread_count():
    shared = plain(
        [RUNS[run]["calibrate"]["threads"] for run in runs_with("calibrate")]
    )
    return shared[0] if shared else calibrate_threads


def calibrate_threads(wildcards):
    return the_run(wildcards)["calibrate"]["threads"]


def calibrate_resources():
    """Resources of the calibrate rule: one function of {run} per key of the campaign's
    calibrate.resources (a run may change their values, not add keys: check_runs)."""
    keys = set(config["calibrate"]["resources"])
    resources = {}
    for key in sorted(keys):
        values = [
            RUNS[run]["calibrate"]["resources"][key] for run in runs_with("calibrate")
        ]
        shared = plain(values)
        resources[key] = shared[0] if shared else _resource_of(key)
    return resources


def _resource_of(key):
    def value(wildcards):
        return the_run(wildcards)["calibrate"]["resources"][key]

    value.__name__ = f"calibrate_resource_{key}"
    return value


def snapshot_inputs(wildcards):
    run = the_run(wildcards)
    if run["calibrate"]["enabled"]:
        return [f"{RESULTS}/{run['name']}/receipts/calibrate.json"]
    return []


def all_targets():
    targets = [sync_receipt(SYNC_RULES[name]) for name in config["sync_in_all"]]
    for name, run in RUNS.items():
        for step in reversed(STEPS):  # the last enabled step pulls in the others
            if run[step]["enabled"]:
                targets.append(f"{RESULTS}/{name}/receipts/{step}.json")
                break
    return targets


# -- SLURM: fail loudly when the scheduler cannot be asked -----------------------------


def guard_slurm_status_queries(timeout, max_interval):
    """snakemake-executor-plugin-slurm (2.x) drops a job from its watch list, silently,
    when every status query of a round fails (no accounting, slurmctld down): Snakemake
    then waits forever. Here a round that cannot ask the scheduler is retried until
    ``timeout`` seconds have passed, then the run stops with an error naming the command
    and its last message. The wait between two checks is capped at ``max_interval`` so a
    run ends within seconds of its last job. Only touches the plugin when it is loaded and
    has the expected shape (it is a no-op under other executors and in jobs)."""
    import sys

    plugin = sys.modules.get("snakemake_executor_plugin_slurm")
    if plugin is None or getattr(plugin, "_flepimop_guarded", False):
        return
    original = getattr(plugin, "query_job_status", None)
    executor = getattr(plugin, "Executor", None)
    if original is None or executor is None:
        return
    import asyncio
    import shlex
    import subprocess
    import time

    async def query_job_status(command, logger):
        deadline = time.monotonic() + timeout
        while True:
            status, duration = await original(command, logger)
            if status is not None:
                return status, duration
            if time.monotonic() >= deadline:
                done = subprocess.run(
                    shlex.split(command), capture_output=True, text=True, timeout=60
                )
                reason = (done.stderr or done.stdout).strip().splitlines()
                raise WorkflowError(
                    f"SLURM: could not ask the scheduler about the submitted jobs for {timeout} s "
                    f"(`{command}` exit {done.returncode}: {reason[-1] if reason else 'no output'}); "
                    "stopping instead of waiting forever (config slurm_status_timeout; "
                    "clusters without accounting need `slurm-status-command: squeue` in the profile)"
                )
            await asyncio.sleep(min(5, max_interval))

    plugin.query_job_status = query_job_status

    base = executor.next_seconds_between_status_checks

    def set_interval(self, value):
        base.fset(self, None if value is None else min(value, max_interval))

    executor.next_seconds_between_status_checks = property(base.fget, set_interval)
    plugin._flepimop_guarded = True
