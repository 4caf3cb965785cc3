# Helpers of the flepimop-sync workflow. No rules here (snakemake --lint).
#
# Every sync rule's params come from flepimop_sync.api.rule_params: the config files,
# the SyncOptions fields and a digest of the protocol's resolved definition (the plan).
# Snakemake's params rerun-trigger therefore reruns a sync rule exactly when its
# resolved definition changes. The rules run the wrapper in wrappers/flepimop-sync,
# which maps params -> SyncOptions with the same API function. No flag is built here.

from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from flepimop_sync import api as fsapi
from flepimop_sync.config import read_yaml
from flepimop_sync.errors import SyncError
from flepimop_sync.smk import rule_names


def _load_protocols(files):
    """Validate each file's sync: section with the shared schema, then load them (CLI rules)."""
    for path in files:
        document = read_yaml(path)
        if isinstance(document, dict) and isinstance(document.get("sync"), dict):
            validate(dict(document["sync"]), "../schemas/sync.schema.json", set_default=False)
    return fsapi.load_config(files)


CONFIG_FILES = [str(path) for path in config["sync_configs"]]
try:
    SYNC = _load_protocols(CONFIG_FILES)
except SyncError as error:
    raise WorkflowError(f"flepimop-sync: {error}") from None

try:
    SYNC_RULES = rule_names(list(SYNC.protocols))
except SyncError as error:
    raise WorkflowError(f"flepimop-sync: {error}") from None

MODEL_CONFIG = config["model_config"] or CONFIG_FILES[0]
RUN = config["run_name"]
RESULTS = config["results_dir"]
LOGS = config["logs_dir"]
LOCAL_SYNC = config["local_sync"]
RESUME = config["resume_fetch"]
CALIBRATE = config["calibrate"]
SNAPSHOT = config["snapshot"]
SYNC_WRAPPER = "file:{}".format(Path(workflow.current_basedir).parent / "wrappers" / "flepimop-sync")

for _listed in config["sync_in_all"]:
    if _listed not in SYNC.protocols:
        raise WorkflowError(
            f"config key 'sync_in_all': no protocol named {_listed!r} in {', '.join(CONFIG_FILES)}; "
            f"available: {', '.join(SYNC.protocols)}"
        )


def receipt(rule_name):
    return f"{RESULTS}/receipts/{rule_name}.json"


def log_file(rule_name):
    return f"{LOGS}/{rule_name}.log"


def sync_params(protocol, **options):
    """Params of a rule running ``protocol`` (see the header comment)."""
    try:
        return fsapi.rule_params(CONFIG_FILES, protocol=protocol, **options)
    except SyncError as error:
        raise WorkflowError(f"flepimop-sync: protocol {protocol!r}: {error}") from None


def resume_params():
    return sync_params(
        RESUME["protocol"],
        source=RESUME["source"],
        target=RESUME["target"],
        filters=RESUME["filters"],
        mkpath=RESUME["mkpath"] or None,
    )


def snapshot_target():
    if SNAPSHOT["target"] is not None:
        return SNAPSHOT["target"]
    return "+ {run}" if SNAPSHOT["append_run"] else None


def snapshot_params():
    """The snapshot's options with their {run} placeholders (workflow/scripts/snapshot.py expands
    them with the run id gempyor used, from the calibrate receipt). ``digest``: the resolved
    definition of its main push with {run} = run_name, so protocol edits rerun the snapshot."""
    options = {
        "config_files": CONFIG_FILES,
        "protocol": SNAPSHOT["protocol"],
        "run": RUN,
        "source": SNAPSHOT["source"],
        "target": snapshot_target(),
        "filters": SNAPSHOT["filters"],
        "fprefix": SNAPSHOT["fprefix"],
        "fsuffix": SNAPSHOT["fsuffix"],
        "project_dir": SNAPSHOT["project_dir"],
        "project_files": SNAPSHOT["project_files"],
        "manifest": SNAPSHOT["manifest"],
        "mkpath": SNAPSHOT["mkpath"],
    }
    # a function, so Snakemake does not read {run} as a wildcard
    params = {"protocol": SNAPSHOT["protocol"], "options": lambda wildcards: options}
    expand = lambda value: None if value is None else (
        [v.replace("{run}", RUN) for v in value] if isinstance(value, list) else value.replace("{run}", RUN))
    params["digest"] = sync_params(
        SNAPSHOT["protocol"], source=expand(SNAPSHOT["source"]), target=expand(snapshot_target()),
        filters=expand(SNAPSHOT["filters"]), fprefix=expand(SNAPSHOT["fprefix"]), fsuffix=expand(SNAPSHOT["fsuffix"]),
        mkpath=SNAPSHOT["mkpath"] or None)["digest"]
    return params


def calibrate_inputs():
    return [receipt("resume_fetch")] if RESUME["enabled"] else []


def calibrate_command(wildcards):
    """A function, so Snakemake does not read the {placeholders} as wildcards."""
    return CALIBRATE["command"]


def calibrate_params():
    return {
        "command": calibrate_command,
        "model_config": MODEL_CONFIG,
        "run": RUN,
        "outputs": CALIBRATE["outputs"],
        "resume_dir": CALIBRATE["resume_dir"] or CALIBRATE["outputs"],
        "env": dict(CALIBRATE["env"]),
        "calibrate": {k: CALIBRATE[k] for k in ("mode", "batch_calibrate", "wait")},
    }


def calibrate_resources():
    return dict(CALIBRATE["resources"])


def snapshot_inputs():
    return {"calibrate": receipt("calibrate")} if CALIBRATE["enabled"] else {}


def all_targets():
    targets = [receipt(SYNC_RULES[name]) for name in config["sync_in_all"]]
    if SNAPSHOT["enabled"]:
        targets.append(receipt("snapshot"))
    elif CALIBRATE["enabled"]:
        targets.append(receipt("calibrate"))
    elif RESUME["enabled"]:
        targets.append(receipt("resume_fetch"))
    return targets
