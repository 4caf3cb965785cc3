"""The Snakemake workflow end to end: real snakemake, the suite's sshd and S3 server.

A campaign: ``resume_fetch`` pulls a previous run's resume files from "hpc" (rsync over the
suite's sshd), a stand-in calibration (below) checks they are exactly there and writes
flepiMoP-shaped outputs, ``snapshot`` pushes them to S3 under ``runs/<run>/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from helpers import show
from trees import list_files

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
SAMPLE = REPO / "src/flepimop_sync/data/sample_model_output/model_output"
PREV_RUN = "USA_inference/20240501_120000"
# what gempyor's resume reads from a previous run: these types, <liketype>/final only (issue 10)
RESUME_TYPES = ("seed", "init", "snpi", "spar", "hnpi", "hpar")
RUN = "20240601_000000"

STANDIN = '''\
"""Stand-in calibration for the tests: checks the resume files, writes flepiMoP-shaped outputs."""
import json, os, sys
from pathlib import Path

args = dict(a.split("=", 1) for a in sys.argv[1:])
if args.get("fail"):
    print("stand-in calibration: failing as asked", file=sys.stderr)
    sys.exit(7)
outputs, run = Path(args["outputs"]), args["run"]
expected = set(json.loads(Path(args["expect"]).read_text())) if args.get("expect") else None
if expected is not None:
    prev = outputs / args["prev"]
    found = {str(p.relative_to(outputs)) for p in prev.rglob("*") if p.is_file()}
    if found != expected:
        print(f"resume files wrong: missing {sorted(expected - found)} extra {sorted(found - expected)}",
              file=sys.stderr)
        sys.exit(3)
    print(f"resume files ok: {len(found)}")
for ftype in ("seed", "snpi", "hnpi", "spar", "hpar", "llik", "hosp"):
    ext = "csv" if ftype == "seed" else "parquet"
    for stage in ("final", "intermediate"):
        p = outputs / "USA_inference" / run / ftype / "global" / stage / f"000000001.{run}.{ftype}.{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{ftype} {stage} {run}\\n")
Path(args["manifest"]).write_text(json.dumps({"run": run, "slurm_job_id": os.environ.get("SLURM_JOB_ID")}))
print("calibrated", run)
'''


# -- helpers (also used by test_workflow_slurm.py) ---------------------------------------------

def expected_resume_files() -> set[str]:
    """Paths (relative to model_output/) of the previous run's hnpi/snpi/seed files."""
    root = SAMPLE / PREV_RUN
    return {f"{PREV_RUN}/{rel}" for rel in list_files(root)
            if rel.split("/")[0] in RESUME_TYPES and rel.split("/")[2] == "final"}


def output_files(run: str = RUN, *, final_only: bool = False) -> set[str]:
    out = set()
    for ftype in ("seed", "snpi", "hnpi", "spar", "hpar", "llik", "hosp"):
        ext = "csv" if ftype == "seed" else "parquet"
        for stage in ("final",) if final_only else ("final", "intermediate"):
            out.add(f"USA_inference/{run}/{ftype}/global/{stage}/000000001.{run}.{ftype}.{ext}")
    return out


def merged_env(base_env, *servers) -> dict[str, str]:
    env = dict(base_env)
    for server in servers:
        env.update(server.env)
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


ARGV_PATCH = """\
# Test-only: one more flag in every rsync/aws argv, as a flepimop-sync upgrade might add
# (FLEPIMOP_TEST_EXTRA_FLAG). Reruns must not follow such a change.
import os

_FLAG = os.environ.get("FLEPIMOP_TEST_EXTRA_FLAG")
if _FLAG:
    import flepimop_sync.plan as _plan

    _rsync, _aws = _plan.rsync_argv, _plan.aws_sync_argv

    def rsync_argv(*args, **kwargs):
        argv = _rsync(*args, **kwargs)
        return (argv[0], _FLAG, *argv[1:])

    def aws_sync_argv(*args, **kwargs):
        return (*_aws(*args, **kwargs), "--only-show-errors")

    _plan.rsync_argv, _plan.aws_sync_argv = rsync_argv, aws_sync_argv
"""

RUNS = ("r1", "r2", "r3")


class Campaign:
    """A checkout-shaped working directory: workflow/ (a link to ours), config/config.yaml
    listing three runs, a flepiMoP config with the sync: section, the stand-in calibration.

    r1 fetches its resume files from "hpc" (rsync over the suite's sshd), r2 from S3, r3 has
    none; r1 and r2 snapshot to S3 (runs/<run>/), r3 to "hpc" (rsync, hpc/runs/r3/)."""

    def __init__(self, root: Path, env: dict[str, str], s3, bucket: str, *, hpc_alias: str = "hpc",
                 fail: bool = False):
        self.root = root
        self.env = env
        self.s3 = s3
        self.bucket = bucket
        self.hpc = root / "hpc"  # the "remote" side: reached as hpc:<path> through the suite's sshd
        shutil.copytree(SAMPLE, self.hpc / "prev" / "model_output")
        (root / "workflow").symlink_to(REPO / "workflow")
        (root / "config").mkdir()
        (root / "standin.py").write_text(STANDIN)
        (root / "expect.json").write_text(json.dumps(sorted(expected_resume_files())))
        if bucket != "unused":
            for rel in sorted(list_files(SAMPLE)):
                s3.put(bucket, f"prev/model_output/{rel}", (SAMPLE / rel).read_bytes())
        self.protocols = {
            "resume": {"type": "rsync", "source": f"{hpc_alias}:{self.hpc}/prev/model_output/",
                       "target": "model_output/", "filters": ["- llik/"]},
            "s3resume": {"type": "s3sync", "source": f"s3://{bucket}/prev/model_output/",
                         "target": "model_output/", "endpoint_url": s3.endpoint},
            "snapshot": {"type": "s3sync", "source": "model_output/", "target": f"s3://{bucket}/runs/",
                         "endpoint_url": s3.endpoint, "filters": ["- intermediate/"]},
            "hpcsnap": {"type": "rsync", "source": "model_output/", "target": f"{hpc_alias}:{self.hpc}/runs/",
                        "filters": ["- intermediate/"]},
            "archive": {"type": "rsync", "source": "hpc/prev/model_output/", "target": "archive/",
                        "filters": ["+ hnpi/**"]},
        }
        self.write_model_config()
        base = "{python} standin.py outputs={outputs} run={run} manifest=manifests/{run}.json"
        self.config = {
            "sync_configs": ["flepimop.yml"],
            "sync_in_all": ["archive"],
            "resume_fetch": {"protocol": "resume", "target": "+ {run}/"},
            "calibrate": {"command": f"{base} expect=expect.json prev={PREV_RUN}" + (" fail=1" if fail else ""),
                          "outputs": "model_output/{run}",
                          "resources": {"runtime": 5, "mem_mb": 200}},
            "snapshot": {"protocol": "snapshot", "source": "+ {run}/", "manifest": "manifests/{run}.json"},
            "runs": [
                {"name": "r1"},
                {"name": "r2", "resume_fetch": {"protocol": "s3resume"}},
                {"name": "r3", "resume_fetch": {"enabled": False},
                 "calibrate": {"command": base + (" fail=1" if fail else "")},
                 "snapshot": {"protocol": "hpcsnap"}},
            ],
        }
        (root / "manifests").mkdir()
        self.write_config()

    def write_model_config(self) -> None:
        doc = {"name": "USA_inference", "nslots": 1, "sync": self.protocols}
        (self.root / "flepimop.yml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def write_config(self) -> None:
        (self.root / "config" / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))

    def snakemake(self, *args, extra_env=None, timeout=240, cores=True) -> subprocess.CompletedProcess:
        """`snakemake ARGS` from the checkout-shaped root, exactly as a user types it."""
        env = dict(self.env, **(extra_env or {}))
        return subprocess.run(
            [sys.executable, "-m", "snakemake", *(["--cores", "1"] if cores else []), *args],
            env=env, cwd=self.root, text=True, capture_output=True, timeout=timeout,
            stdin=subprocess.DEVNULL)

    def receipt(self, name: str, run: str | None = None) -> dict:
        where = self.root / "results" / (run or "") / "receipts" / f"{name}.json"
        return json.loads(where.read_text())

    def stamps(self) -> dict[str, int]:
        """receipt -> mtime_ns: which nodes a snakemake call (re)ran."""
        return {str(p.relative_to(self.root / "results")): p.stat().st_mtime_ns
                for p in (self.root / "results").rglob("*.json")} if (self.root / "results").exists() else {}


def changed(before: dict[str, int], after: dict[str, int]) -> set[str]:
    """Receipts written between two stamps(): '<run>/<step>' (or 'sync_<name>')."""
    out = set()
    for path, stamp in after.items():
        if before.get(path) != stamp:
            parts = Path(path).parts
            out.add(Path(parts[-1]).stem if parts[0] == "receipts" else f"{parts[0]}/{Path(parts[-1]).stem}")
    return out


def ran_rules(proc: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Finished jobid: \d+ \(Rule: (\S+)\)", proc.stderr + proc.stdout))


def s3_objects(c: Campaign, prefix: str) -> dict[str, dict]:
    """key (below prefix) -> {size, etag}, straight from the S3 server."""
    client = c.s3.client
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=c.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"][len(prefix):]] = {"size": item["Size"], "etag": item["ETag"].strip('"')}
    return out


def run_settings(c: Campaign, run: str) -> tuple[str | None, str]:
    """(resume protocol or None, snapshot protocol) of a run of the campaign's config."""
    entry = next(e for e in c.config["runs"] if e["name"] == run)
    fetch = {**c.config["resume_fetch"], **entry.get("resume_fetch", {})}
    snap = {**c.config["snapshot"], **entry.get("snapshot", {})}
    return (fetch["protocol"] if fetch.get("enabled", True) else None), snap["protocol"]


def check_run(c: Campaign, run: str, *, slurm_job: bool = False) -> None:
    """Everything one run of a successful campaign must leave behind."""
    host = socket.gethostname()
    expected = expected_resume_files()
    resume_protocol, snapshot_protocol = run_settings(c, run)
    snapshot = c.receipt("snapshot", run)
    assert snapshot["status"] == "ok" and snapshot["host"] == host and snapshot["slurm_job_id"] is None
    assert snapshot["filters"][0] == "- intermediate/"
    assert (c.root / "results" / run / "logs" / "snapshot.log").read_text().strip()
    if resume_protocol:
        fetched = c.receipt("resume_fetch", run)
        assert fetched["status"] == "ok" and fetched["host"] == host and fetched["slurm_job_id"] is None
        assert fetched["protocol"] == resume_protocol
        assert fetched["destination"].rstrip("/") == f"model_output/{run}"
        assert fetched["filters"][:6] == [f"+ {t}/*/final/**" for t in RESUME_TYPES]
        assert fetched["selected"]["files"] == len(expected) == fetched["transferred"]["files"]
        # the audit list: exactly the resume files, their sizes (and the S3 source's ETags)
        assert {f["path"] for f in fetched["files"]} == expected
        assert all(f["size"] == (SAMPLE / f["path"]).stat().st_size for f in fetched["files"])
        if resume_protocol == "s3resume":
            source = s3_objects(c, "prev/model_output/")
            assert all(f["etag"] == source[f["path"]]["etag"] for f in fetched["files"])
        else:
            assert all("etag" not in f for f in fetched["files"])
        assert list_files(c.root / "model_output" / run / PREV_RUN.split("/")[0]) >= {
            p.split("/", 1)[1] for p in expected}
    else:
        assert not (c.root / "results" / run / "receipts" / "resume_fetch.json").exists()
    cal = c.receipt("calibrate", run)
    assert cal["status"] == "ok" and cal["exit_code"] == 0 and "standin.py" in cal["command"]
    assert bool(cal["slurm_job_id"]) == slurm_job
    log = (c.root / "results" / run / "logs" / "calibrate.log").read_text()
    assert ("resume files ok" in log) == bool(resume_protocol)
    outputs = output_files(run, final_only=True)
    if snapshot_protocol == "hpcsnap":
        pushed = list_files(c.hpc / "runs" / run)
        assert pushed == outputs | {f"{run}.json"}, sorted(pushed ^ (outputs | {f"{run}.json"}))
        assert snapshot["type"] == "rsync" and all("etag" not in f for f in snapshot["files"])
        assert {f["path"]: f["size"] for f in snapshot["files"]} == {
            p: (c.hpc / "runs" / run / p).stat().st_size for p in pushed}
    else:
        objects = s3_objects(c, f"runs/{run}/")
        # exactly this run (issue 10: not the fetched resume files of the previous run)
        assert set(objects) == outputs | {f"{run}.json"}, sorted(set(objects) ^ outputs)
        assert snapshot["type"] == "s3sync" and snapshot["destination"].rstrip("/") == f"s3://{c.bucket}/runs/{run}"
        assert snapshot["selected"]["files"] == len(outputs)
        assert any(cmd[:3] == ["aws", "s3", "sync"] for cmd in snapshot["commands"])
        # the audit list is what S3 holds: every key, size and ETag
        assert {f["path"]: (f["size"], f["etag"]) for f in snapshot["files"]} == {
            k: (v["size"], v["etag"]) for k, v in objects.items()}
    assert snapshot["extra"][0]["status"] == "ok" and snapshot["extra"][0]["destination"].endswith(f"{run}.json")
    # the parts of the snapshot, as batch-calibrate's sync job (issue 10): the run's outputs, its
    # project files (the stand-in writes no pdf/h5), the manifest; {run} is the calibrated run's id
    assert snapshot["flepimop_run_id"] == run
    main, project_files, manifest = snapshot["parts"]
    assert main["filters"][:2] == ["- intermediate/", f"s {run}"]
    assert main["transferred"]["files"] == len(outputs)
    assert project_files["transferred"]["files"] == 0
    assert manifest["status"] == "ok" and manifest["destination"].endswith(f"{run}.json")


def check_full_dag(c: Campaign, proc: subprocess.CompletedProcess, *, slurm_job: bool = False,
                   rules: frozenset = frozenset({"resume_fetch_run", "calibrate_run", "snapshot_run"})) -> None:
    """Everything a successful campaign must leave behind (shared with the SLURM test)."""
    assert proc.returncode == 0, show(proc)
    assert rules | {"sync_archive"} <= ran_rules(proc), show(proc)
    for run in RUNS:
        check_run(c, run, slurm_job=slurm_job)
    assert c.receipt("sync_archive")["selected"]["files"] == len(list_files(c.root / "archive"))
    assert {f["path"] for f in c.receipt("sync_archive")["files"]} == list_files(c.root / "archive")


@pytest.fixture()
def campaign_env(base_env, sshd, s3):
    return merged_env(base_env, sshd, s3)


# -- tests ----------------------------------------------------------------------------------------

def test_campaign_of_three_runs_targets_noop_and_added_run(tmp_path, campaign_env, s3):
    c = Campaign(tmp_path, campaign_env, s3, s3.make_bucket())
    dry = c.snakemake("-n")
    assert dry.returncode == 0, show(dry)
    assert not (tmp_path / "results").exists()

    # `snakemake resume_fetch`: every run's fetch, nothing else
    fetched = c.snakemake("resume_fetch")
    assert fetched.returncode == 0, show(fetched)
    assert changed({}, c.stamps()) == {"r1/resume_fetch", "r2/resume_fetch"}
    # a per-run target: that run's nodes only
    before = c.stamps()
    one = c.snakemake("results/r3/receipts/snapshot.json")
    assert one.returncode == 0, show(one)
    assert changed(before, c.stamps()) == {"r3/calibrate", "r3/snapshot"}

    before = c.stamps()
    full = c.snakemake()
    check_full_dag(c, full, rules=frozenset({"calibrate_run", "snapshot_run"}))
    assert changed(before, c.stamps()) == {"r1/calibrate", "r1/snapshot", "r2/calibrate", "r2/snapshot",
                                           "sync_archive"}

    again = c.snakemake()
    assert again.returncode == 0 and ran_rules(again) == set(), show(again)
    assert "Nothing to be done" in again.stderr + again.stdout

    # adding a run adds its nodes and reruns nothing else
    c.config["runs"].append({"name": "r4", "resume_fetch": {"protocol": "s3resume"}})
    c.write_config()
    before = c.stamps()
    added = c.snakemake()
    assert added.returncode == 0, show(added)
    assert changed(before, c.stamps()) == {"r4/resume_fetch", "r4/calibrate", "r4/snapshot"}
    check_run(c, "r4")

    # an unknown run is named as such
    bad = c.snakemake("-n", "results/nope/receipts/snapshot.json")
    assert bad.returncode != 0 and "no run named 'nope'" in bad.stdout + bad.stderr, show(bad)


@pytest.mark.parametrize("step", ["calibrate", "snapshot"])
def test_an_unknown_run_is_named_when_every_param_is_plain(tmp_path, campaign_env, s3, step):
    """Runs sharing every section get plain params (no function per job, the 1,000-run figure):
    a mistyped run in a target is still named, never planned."""
    c = Campaign(tmp_path, campaign_env, s3, "unused")
    c.config["resume_fetch"]["enabled"] = False
    c.config["runs"] = [{"name": "r1"}, {"name": "r2"}]
    c.write_config()
    ok = c.snakemake("-n", f"results/r2/receipts/{step}.json")
    assert ok.returncode == 0, show(ok)
    bad = c.snakemake("-n", f"results/nope/receipts/{step}.json")
    assert bad.returncode != 0 and "no run named 'nope'" in bad.stdout + bad.stderr, show(bad)


def test_reruns_follow_meaning(tmp_path, campaign_env, s3, run_cli):
    c = Campaign(tmp_path, campaign_env, s3, s3.make_bucket())
    first = c.snakemake()
    assert first.returncode == 0, show(first)

    # an argv-only change (one more flag in every rsync/aws command, as an upgrade might add):
    # the commands change, the meaning does not: nothing reruns
    patch_dir = tmp_path / "patch"
    patch_dir.mkdir()
    (patch_dir / "sitecustomize.py").write_text(ARGV_PATCH)
    patched = {"PYTHONPATH": f"{patch_dir}{os.pathsep}{c.env['PYTHONPATH']}",
               "FLEPIMOP_TEST_EXTRA_FLAG": "--no-motd"}
    plan = run_cli(["sync", "--plan", "-p", "resume", "flepimop.yml"], cwd=tmp_path,
                   env=dict(c.env, **patched))
    assert plan.returncode == 0 and '"--no-motd"' in plan.stdout, plan.stdout + plan.stderr
    dry = c.snakemake("-n", extra_env=patched)
    assert dry.returncode == 0, show(dry)
    assert "Nothing to be done" in dry.stdout + dry.stderr, show(dry)

    # editing one protocol's filters reruns only its rule
    before = c.stamps()
    c.protocols["archive"]["filters"] = ["+ hnpi/**", "+ seed/**"]
    c.write_model_config()
    edited = c.snakemake()
    assert edited.returncode == 0, show(edited)
    assert changed(before, c.stamps()) == {"sync_archive"}
    assert any("/seed/" in p for p in list_files(c.root / "archive"))

    # the resume protocol's own filters do not matter to resume_fetch (it replaces them)
    c.protocols["resume"]["filters"] = ["- hosp/"]
    c.write_model_config()
    unrelated = c.snakemake()
    assert unrelated.returncode == 0 and ran_rules(unrelated) == set(), show(unrelated)

    # the same rules spelled differently ('P' is '+ P') mean the same: nothing reruns
    # (the default resume set, issue 10: what gempyor's resume reads)
    c.config["resume_fetch"]["filters"] = [f"{t}/*/final/**" if i % 2 else f"+ {t}/*/final/**"
                                           for i, t in enumerate(RESUME_TYPES)]
    c.write_config()
    respelled = c.snakemake()
    assert respelled.returncode == 0 and ran_rules(respelled) == set(), show(respelled)

    # an edited filter of one run reruns that run's fetch and what depends on it, nothing else
    before = c.stamps()
    c.config["runs"][1]["resume_fetch"]["filters"] = [f"+ {t}/*/final/**" for t in RESUME_TYPES] + ["- **"]
    c.write_config()
    rerun = c.snakemake()
    assert rerun.returncode == 0, show(rerun)
    assert changed(before, c.stamps()) == {"r2/resume_fetch", "r2/calibrate", "r2/snapshot"}

    # after the remote source changed, a forced refetch (README): -R resume_fetch_run
    before = c.stamps()
    forced = c.snakemake("-R", "resume_fetch_run", "--", "resume_fetch")
    assert forced.returncode == 0, show(forced)
    assert changed(before, c.stamps()) == {"r1/resume_fetch", "r2/resume_fetch"}


def test_an_unknown_protocol_in_sync_in_all_is_refused_as_the_cli_words_it(tmp_path, campaign_env, s3):
    c = Campaign(tmp_path, campaign_env, s3, "unused")
    c.config["sync_in_all"] = ["nope"]
    c.write_config()
    bad = c.snakemake("-n")
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "config/config.yaml: sync_in_all[0]: no protocol named 'nope' in " in out, show(bad)
    assert "; available: " in out and "Traceback" not in out, show(bad)


#: What Snakemake itself prints before it reads the Snakefile (the workflow's profile, --config).
SNAKEMAKE_FRAMING = ("Using workflow specific profile ", "Config file config/config.yaml is extended by ")
PROTOCOLS = "available: resume, s3resume, snapshot, hpcsnap, archive"

# (what is broken, how: the campaign's config changed, snakemake's extra arguments; the one line
# that refuses it, after "error: "). Every sync step's protocol and filters (the snapshot's
# project files too) are checked before any rule runs: a bad snapshot used to stop the campaign
# only after its fetches and calibrations ran, and the outputs were pushed.
BROKEN_CONFIGS = [
    ("an unknown key in a run", lambda c: c["runs"][1].update(colour="red"), (),
     "config/config.yaml: runs[1].colour: unknown key (allowed: calibrate, model_config, name, resume_fetch, "
     "snapshot)"),
    ("a wrong type", lambda c: c["calibrate"].update(threads="x"), (),
     "config/config.yaml: calibrate.threads: must be an integer, got string 'x'"),
    ("a value given with --config", None, ("--config", "local_sync=maybe"),
     "--config: local_sync: must be true or false, got string 'maybe'"),
    ("a run's protocol", lambda c: c["runs"][2]["snapshot"].update(protocol="hpcsnapx"), (),
     f"config/config.yaml: runs[2].snapshot.protocol: no protocol named 'hpcsnapx' in flepimop.yml; {PROTOCOLS}"),
    ("the campaign's protocol", lambda c: c["resume_fetch"].update(protocol="nope"), (),
     f"config/config.yaml: resume_fetch.protocol: no protocol named 'nope' in flepimop.yml; {PROTOCOLS}"),
    ("a run listed twice", lambda c: c["runs"].append({"name": "r1"}), (),
     "config/config.yaml: runs[3].name: 'r1' is listed twice (also runs[0])"),
    ("a resource a run adds", lambda c: c["runs"][0].update(calibrate={"resources": {"gpus": 1}}), (),
     "config/config.yaml: runs[0].calibrate.resources.gpus: not a key of the campaign's calibrate.resources "
     "(a run may change the value of a resource, not add one: add it there)"),
    ("a filter of the campaign", lambda c: c["resume_fetch"].update(filters=["+ {run}/**", "+bad"]), (),
     "config/config.yaml: resume_fetch.filters[1]: invalid filter '+bad': '+' must be followed by exactly one "
     "space and a pattern (rsync would read '+b...' as a modifier or merge rule)"),
    ("a filter of a run, as written", lambda c: c["runs"][1]["resume_fetch"].update(filters=["- {run}/[x"]), (),
     "config/config.yaml: runs[1].resume_fetch.filters[0]: invalid filter '- {run}/[x': unterminated '[' set"),
    ("a snapshot filter", lambda c: c["snapshot"].update(fsuffix=["s {run}", "-x"]), (),
     "config/config.yaml: snapshot.fsuffix[1]: invalid filter '-x': '-' must be followed by exactly one space "
     "and a pattern (rsync would read '-x...' as a modifier or merge rule)"),
    ("a project file pattern", lambda c: c["snapshot"].update(project_files=["{run}*.pdf", "[x"]), (),
     "config/config.yaml: snapshot.project_files[1]: invalid filter '[x': unterminated '[' set"),
    ("a project files push flepimop-sync refuses",
     lambda c: c["snapshot"].update(project_dir="$FLEPIMOP_TEST_UNSET/{run}"), (),
     "config/config.yaml: snapshot: flepimop.yml: protocol 'snapshot' key 'source' (after "
     "--source, --target): '$FLEPIMOP_TEST_UNSET/{run}/' uses $FLEPIMOP_TEST_UNSET, which is not set "
     "in the environment"),
    ("a step's plan flepimop-sync refuses", lambda c: c["runs"][1]["resume_fetch"].update(target="+ ../x"), (),
     "config/config.yaml: runs[1].resume_fetch: --target '+ ../x': an append cannot contain '..', written or "
     "through $NAME (it would climb out of the configured target; give the whole path without '+ ')"),
    ("results_dir the root", lambda c: c.update(results_dir="/"), (),
     "config/config.yaml: results_dir: '/' is the root directory"),
    # batch-calibrate's own sync job (flepimop sync -p P <the run's model config>) would fail on the
    # cluster after the calibration: its protocol is checked against the run's model config first
    ("batch-calibrate's sync protocol",
     lambda c: c["calibrate"].update(mode="batch-calibrate", batch_calibrate={"sync_protocol": "archiv"}), (),
     f"config/config.yaml: calibrate.batch_calibrate.sync_protocol: no protocol named 'archiv' in flepimop.yml; "
     f"{PROTOCOLS}"),
    ("a run's batch-calibrate sync protocol",
     lambda c: c["runs"][2].update(calibrate={"mode": "batch-calibrate", "batch_calibrate": {"sync_protocol": "x"}}),
     (), f"config/config.yaml: runs[2].calibrate.batch_calibrate.sync_protocol: no protocol named 'x' in "
     f"flepimop.yml; {PROTOCOLS}"),
]


@pytest.mark.parametrize(("change", "args", "line"), [row[1:] for row in BROKEN_CONFIGS],
                         ids=[row[0] for row in BROKEN_CONFIGS])
def test_a_broken_config_is_one_line_and_nothing_runs(tmp_path, campaign_env, s3, change, args, line):
    """`snakemake` (a real run) refuses the campaign's config: exit 2, flepimop-sync's one line
    naming the file and the key (Snakemake's own framing aside, no traceback, no schema dump),
    and nothing on disk or in the bucket changed."""
    c = Campaign(tmp_path, campaign_env, s3, s3.make_bucket())
    if change is not None:
        change(c.config)
        c.write_config()
    before = entries(tmp_path)
    proc = c.snakemake(*args)
    said = [text for text in (proc.stdout + proc.stderr).splitlines()
            if text.strip() and not text.startswith(SNAKEMAKE_FRAMING)]
    assert (proc.returncode, said) == (2, [f"error: {line}"]), show(proc)
    assert entries(tmp_path) == before and not (tmp_path / "results").exists(), show(proc)
    assert set(s3_objects(c, "")) == {f"prev/model_output/{rel}" for rel in list_files(SAMPLE)}


# (what is wrong in the sync config, the change to its protocols, flepimop-sync's line after "error: ")
BROKEN_PROTOCOLS = [
    ("a protocol that cannot be planned",
     lambda p: p["archive"].update(source="$FLEPIMOP_TEST_UNSET/prev/"),
     "flepimop.yml: protocol 'archive' key 'source': '$FLEPIMOP_TEST_UNSET/prev/' uses $FLEPIMOP_TEST_UNSET, "
     "which is not set in the environment"),
    ("two protocols, one rule name",
     lambda p: p.update({"my-copy": dict(p["archive"]), "my.copy": dict(p["archive"])}),
     "protocols 'my-copy' and 'my.copy' would both be Snakemake rule 'sync_my_copy'; rename one"),
]


@pytest.mark.parametrize(("change", "line"), [row[1:] for row in BROKEN_PROTOCOLS],
                         ids=[row[0] for row in BROKEN_PROTOCOLS])
def test_a_sync_config_the_rules_cannot_use_is_one_line_and_nothing_runs(tmp_path, campaign_env, s3, change, line):
    """Problems of the sync config met while the rules are made: flepimop-sync's line, exit 2,
    as the workflow config's (they were a WorkflowError with the Snakefile's traceback, exit 1)."""
    c = Campaign(tmp_path, campaign_env, s3, "unused")
    change(c.protocols)
    c.write_model_config()
    before = entries(tmp_path)
    proc = c.snakemake("-n")
    said = [text for text in (proc.stdout + proc.stderr).splitlines()
            if text.strip() and not text.startswith(SNAKEMAKE_FRAMING)]
    assert (proc.returncode, said) == (2, [f"error: {line}"]), show(proc)
    assert entries(tmp_path) == before, show(proc)


def entries(root: Path) -> set[str]:
    """Every file and directory below ``root`` but Snakemake's own log of the call (.snakemake/log/,
    written before it reads the Snakefile): a refused run creates none (no env file either)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        out.update(os.path.relpath(os.path.join(dirpath, name), root) for name in dirnames + filenames)
    return {path for path in out if path != ".snakemake" and not path.startswith(".snakemake/log")}


def test_a_step_disabled_is_not_checked(tmp_path, campaign_env, s3):
    """Only the steps that run are checked: a disabled snapshot may name no protocol of the configs."""
    c = Campaign(tmp_path, campaign_env, s3, "unused")
    c.config["snapshot"].update(enabled=False, protocol="nope", project_files=["[x"])
    c.write_config()
    dry = c.snakemake("-n")
    assert dry.returncode == 0, show(dry)


def test_config_booleans_from_the_command_line(tmp_path, campaign_env, s3):
    c = Campaign(tmp_path, campaign_env, s3, "unused")
    for value in ("false", "true", "False"):
        proc = c.snakemake("-n", "--config", f"local_sync={value}", "slurm_status_timeout=30")
        assert proc.returncode == 0, show(proc)
    bad = c.snakemake("-n", "--config", "local_sync=maybe")
    assert bad.returncode != 0 and "local_sync" in bad.stdout + bad.stderr, show(bad)


def test_failing_calibration_means_no_snapshot(tmp_path, campaign_env, s3):
    c = Campaign(tmp_path, campaign_env, s3, s3.make_bucket(), fail=True)
    c.config["sync_in_all"] = []
    c.config["runs"] = [c.config["runs"][2]]
    c.write_config()
    proc = c.snakemake()
    assert proc.returncode != 0, show(proc)
    assert "snapshot_run" not in ran_rules(proc)
    receipts = tmp_path / "results" / "r3" / "receipts"
    assert not (receipts / "calibrate.json").exists() and not (receipts / "snapshot.json").exists()
    failed = json.loads((receipts / "calibrate.json.failed").read_text())
    assert failed["status"] == "failed" and failed["exit_code"] == 7
    assert "failing as asked" in (tmp_path / "results" / "r3" / "logs" / "calibrate.log").read_text()
    assert s3_objects(c, "runs/") == {}


def test_failing_sync_writes_failed_receipt(tmp_path, campaign_env, s3):
    c = Campaign(tmp_path, campaign_env, s3, s3.make_bucket())
    c.protocols["resume"]["source"] = f"hpc:{tmp_path}/no/such/dir/"
    c.write_model_config()
    proc = c.snakemake("results/r1/receipts/resume_fetch.json")
    assert proc.returncode != 0, show(proc)
    receipts = tmp_path / "results" / "r1" / "receipts"
    assert not (receipts / "resume_fetch.json").exists()
    failed = json.loads((receipts / "resume_fetch.json.failed").read_text())
    assert failed["status"] == "failed" and "rsync exit" in failed["error"]
    assert "flepimop-sync:" in proc.stderr


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p["archive"].update(filters=["+bad"]), "invalid filter '+bad'"),
    (lambda p: p["archive"].update(colour="red"), "colour"),
    (lambda p: p["snapshot"].update(type="ftp"), "type"),
    (lambda p: p["resume"].pop("target"), "target"),
])
def test_bad_protocol_stops_dry_run_with_the_cli_one_line_error(tmp_path, campaign_env, s3, run_cli,
                                                                change, expected):
    c = Campaign(tmp_path, campaign_env, s3, "unused")
    change(c.protocols)
    c.write_model_config()
    cli = run_cli(["sync", "-n", "flepimop.yml"], cwd=tmp_path, env=c.env)
    assert cli.returncode == 2
    message = cli.stderr.strip()
    assert len(message.splitlines()) == 1 and expected in message and "flepimop.yml" in message, message
    proc = c.snakemake("-n")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    # the CLI's line, once, and no jsonschema dump
    line = message.split(": ", 1)[1] if message.startswith("error: ") else message
    assert line in out, (line, show(proc))
    assert "Failed validating" not in out and "On instance" not in out, show(proc)
    assert len(out.strip().splitlines()) <= 6, show(proc)


def _example_tree(tmp_path: Path) -> Path:
    """The repository's example, in a scratch copy (so the tests never write into the repo)."""
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copytree(REPO / "config", work / "config")
    (work / "workflow").symlink_to(REPO / "workflow")
    (work / "src").symlink_to(REPO / "src")
    return work


def test_example_config_runs_from_repository_root(tmp_path, base_env):
    work = _example_tree(tmp_path)
    env = merged_env(base_env)

    def smk(*args):
        return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=work, env=env,
                              text=True, capture_output=True, timeout=180, stdin=subprocess.DEVNULL)

    dry = smk("-n")
    assert dry.returncode == 0, show(dry)
    fetched = smk("resume_fetch")
    assert fetched.returncode == 0 and ran_rules(fetched) == {"resume_fetch_run", "resume_fetch"}, show(fetched)
    resumed = list_files(work / "results/example/model_output/example_run")
    assert resumed == expected_resume_files()
    full = smk()
    assert full.returncode == 0 and ran_rules(full) >= {"calibrate_run", "snapshot_run"}, show(full)
    archived = list_files(work / "results/example/archive/example_run")
    assert "manifest.json" in archived
    assert not any("/intermediate/" in p for p in archived)
    assert any("example_run/hnpi/global/final" in p for p in archived)
    assert {"resume_fetch", "calibrate", "snapshot"} == {
        p.stem for p in (work / "results/example_run/receipts").glob("*.json")}
    assert ran_rules(smk()) == set()


@pytest.mark.parametrize("delete", [False, True])
def test_snapshot_keeps_the_project_files_it_pushed(tmp_path, base_env, delete):
    """The example with a report pdf: with `delete: true` the main push deletes what its filters
    take ('s {run}' takes '<run>_report.pdf') and the outputs lack, so the pdf must be pushed
    after it (as flepiMoP's sync job orders them), never before: else the archive loses it under
    an "ok" receipt."""
    work = _example_tree(tmp_path)
    flepimop = work / "config/example_flepimop.yml"
    model = yaml.safe_load(flepimop.read_text())
    model["sync"]["snapshot"]["delete"] = delete
    flepimop.write_text(yaml.safe_dump(model))
    config_file = work / "config/config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["calibrate"]["command"] += " && touch results/example/{run}/{run}_report.pdf"
    config_file.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=work,
                          env=merged_env(base_env), text=True, capture_output=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, show(proc)
    archived = list_files(work / "results/example/archive/example_run")
    assert {"example_run_report.pdf", "manifest.json"} <= archived, sorted(archived)
    assert any("example_run/hnpi/global/final" in p for p in archived)
    receipt = json.loads((work / "results/example_run/receipts/snapshot.json").read_text())
    assert receipt["status"] == "ok" and "example_run_report.pdf" not in receipt.get("deleted", [])
    project = {part["part"]: part for part in receipt["parts"]}["project files"]
    assert project["status"] == "ok" and project["transferred"]["files"] == 1, project


def _fetch_tree(work: Path, config: dict, sync_config: str = "flepimop.yml") -> Path:
    """A campaign of one run, "run1", that only fetches: protocol `resume` (prev/ -> fetched/);
    ``config`` on top of that campaign's config."""
    (work / "prev/run1").mkdir(parents=True)
    for name in ("cost$USD.csv", "costEUR.csv", "other.csv"):
        (work / "prev/run1" / name).write_text(name)
    (work / "workflow").symlink_to(REPO / "workflow")
    (work / sync_config).parent.mkdir(parents=True, exist_ok=True)
    (work / sync_config).write_text(yaml.safe_dump({"sync": {
        "resume": {"type": "rsync", "source": "prev/", "target": "fetched/", "mkpath": True}}}))
    (work / "config").mkdir(exist_ok=True)
    (work / "config/config.yaml").write_text(yaml.safe_dump({
        "sync_configs": [sync_config], "runs": [{"name": "run1"}],
        "resume_fetch": {"protocol": "resume", "filters": ["+ run1/**"], "target": None},
        "calibrate": {"enabled": False}, "snapshot": {"enabled": False}, **config}))
    return work


def _smk(work: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=work, env=env,
                          text=True, capture_output=True, timeout=180, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("usd", [None, "EUR"])
def test_dollar_dollar_in_workflow_filters_selects_what_the_cli_selects(tmp_path, base_env, run_cli, usd):
    """'$$' is a literal '$' (FILTERS.md section 1), expanded once: the workflow's params keep
    the rule as written and its sync run expands it, as the CLI's -f does. Expanded twice,
    '+ cost$$USD.csv' became '+ cost$USD.csv', then "$USD is not set" or '+ costEUR.csv'."""
    env = merged_env(base_env)
    env.pop("USD", None)
    if usd is not None:
        env["USD"] = usd
    rule = "+ run1/cost$$USD.csv"
    cli = _fetch_tree(tmp_path / "cli", {})
    by_cli = run_cli(["sync", "-p", "resume", "-f", rule, "flepimop.yml"], env=env, cwd=cli)
    assert by_cli.returncode == 0, by_cli.stderr
    assert list_files(cli / "fetched") == {"run1/cost$USD.csv"}
    work = _fetch_tree(tmp_path / "smk", {"resume_fetch": {"protocol": "resume", "filters": [rule],
                                                            "target": None}})
    proc = _smk(work, env, "resume_fetch")
    assert proc.returncode == 0, show(proc)
    assert list_files(work / "fetched") == {"run1/cost$USD.csv"}
    receipt = json.loads((work / "results/run1/receipts/resume_fetch.json").read_text())
    assert receipt["status"] == "ok" and receipt["filters"] == ["+ run1/cost$USD.csv", "- **"], receipt


@pytest.mark.parametrize(("sync_config", "results", "target", "receipt"), [
    # a sync_configs path with braces: plain params would be read as wildcards (WildcardError)
    ("config/flepi{x}.yml", "results", "sync_resume", "results/receipts/sync_resume.json"),
    ("config/flepi{x}.yml", "results", "results/run1/receipts/resume_fetch.json",
     "results/run1/receipts/resume_fetch.json"),
    # a trailing '/' made the patterns 'results//{run}/...' (MissingRuleException)
    ("flepimop.yml", "results/", "results/run1/receipts/resume_fetch.json",
     "results/run1/receipts/resume_fetch.json"),
    ("flepimop.yml", "out/results//", "sync_resume", "out/results/receipts/sync_resume.json"),
])
def test_paths_snakemake_would_misread_still_run(tmp_path, base_env, sync_config, results, target, receipt):
    work = _fetch_tree(tmp_path, {"results_dir": results}, sync_config)
    proc = _smk(work, merged_env(base_env), target)
    assert proc.returncode == 0, show(proc)
    assert json.loads((work / receipt).read_text())["status"] == "ok"
    assert list_files(work / "fetched") >= {"run1/other.csv"}


def test_braces_in_results_dir_are_refused_naming_the_key(tmp_path, base_env):
    work = _fetch_tree(tmp_path, {"results_dir": "results/{x}"})
    proc = _smk(work, merged_env(base_env), "-n")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "config/config.yaml: results_dir: 'results/{x}' has braces" in out, show(proc)
    assert "WildcardError" not in out, show(proc)


def test_lint_is_clean(tmp_path, base_env):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=_example_tree(tmp_path),
                          env=merged_env(base_env), text=True, capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, show(proc)
    assert "Congratulations" in proc.stdout + proc.stderr, show(proc)


def test_wrapper_test_snakefile(tmp_path, base_env):
    wrapper_test = REPO / "workflow/wrappers/flepimop-sync/test"
    for item in ("config.yml", "data"):
        src = wrapper_test / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(wrapper_test / "Snakefile"),
                           "-d", str(tmp_path), "--cores", "1"], cwd=tmp_path, env=merged_env(base_env),
                          text=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, show(proc)
    assert list_files(tmp_path / "out") == {"hnpi/000000001.run.hnpi.csv", "seed/000000001.run.seed.csv"}
    r = json.loads((tmp_path / "results/copy.json").read_text())
    assert r["protocol"] == "copy" and r["status"] == "ok" and r["filters"][:2] == ["- *.tmp", "- llik/"]
    assert r["selected"] == {"files": 2, "bytes": 4}


def test_module_reuse_with_use_rule(tmp_path, base_env):
    """Another workflow imports ours as a module and renames/retargets rules with `use rule`."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "hnpi").mkdir()
    (tmp_path / "src" / "hnpi" / "a.parquet").write_text("a")
    (tmp_path / "src" / "llik.parquet").write_text("l")
    (tmp_path / "flepimop.yml").write_text(yaml.safe_dump({"sync": {
        "copy": {"type": "rsync", "source": "src/", "target": "copied/", "filters": ["+ hnpi/**"]}}}))
    (tmp_path / "Snakefile").write_text(textwrap.dedent(f'''\
        configfile: "config.yaml"


        module flepimop_sync:
            snakefile:
                "{SNAKEFILE}"
            config:
                config


        use rule * from flepimop_sync as fs_*


        use rule sync_copy from flepimop_sync as copy_for_report with:
            output:
                "report/copy.json",
            log:
                "report/copy.log",


        rule all:
            input:
                rules.fs_sync_copy.output,
                "report/copy.json",
            default_target: True
        '''))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "sync_configs": ["flepimop.yml"], "resume_fetch": {"enabled": False},
        "calibrate": {"enabled": False}, "snapshot": {"enabled": False}, "runs": [{"name": "only"}]}))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=tmp_path,
                          env=merged_env(base_env), text=True, capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, show(proc)
    assert {"fs_sync_copy", "copy_for_report"} <= ran_rules(proc), show(proc)
    assert list_files(tmp_path / "copied") == {"hnpi/a.parquet"}
    assert json.loads((tmp_path / "report/copy.json").read_text())["status"] == "ok"


def test_rendered_rules_run_and_do_not_rerun(tmp_path, base_env, run_cli):
    (tmp_path / "src" / "hnpi").mkdir(parents=True)
    (tmp_path / "src" / "hnpi" / "a.parquet").write_text("a")
    (tmp_path / "src" / "llik.parquet").write_text("l")
    (tmp_path / "c.yml").write_text(yaml.safe_dump({"sync": {
        "my-copy": {"type": "rsync", "source": "src/", "target": "out/", "filters": ["+ hnpi/**"]}}}))
    rendered = run_cli(["sync", "--snakemake-rules", "c.yml"], cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    (tmp_path / "Snakefile").write_text(rendered.stdout)
    env = merged_env(base_env)

    def smk(*args):
        return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=tmp_path,
                              env=env, text=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)

    first = smk("sync_my_copy")
    assert first.returncode == 0, show(first)
    assert list_files(tmp_path / "out") == {"hnpi/a.parquet"}
    assert json.loads((tmp_path / "results/receipts/sync_my_copy.json").read_text())["status"] == "ok"
    assert ran_rules(smk("sync_my_copy")) == set()
    lint = smk("--lint")
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, show(lint)


# (how the rule runs the protocol, the Snakefile): the wrapper's rule and a rule of
# `flepimop sync --snakemake-rules` share api.run_rule_status
SYNC_RULE_KINDS = {
    "wrapper": textwrap.dedent(f'''\
        from flepimop_sync.api import rule_params


        rule sync_my_copy:
            output:
                "results/receipts/sync_my_copy.json",
            log:
                "logs/sync_my_copy.log",
            params:
                **rule_params(["c.yml"], protocol="my-copy"),
            wrapper:
                "file:{REPO / "workflow" / "wrappers" / "flepimop-sync"}"
        '''),
    "rendered": None,  # the CLI's output
}


@pytest.mark.parametrize("kind", SYNC_RULE_KINDS)
def test_a_failing_sync_rule_says_one_line_and_writes_the_failed_receipt(tmp_path, base_env, run_cli, kind):
    """The rule's outcome, whichever way it runs the protocol: flepimop-sync's one line, the
    job failed, ``<receipt>.failed`` with the error's exit status, and no traceback of
    flepimop-sync's code (a rendered rule let the error escape into Snakemake, which printed
    the frames of api.py and execute.py)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.csv").write_text("a")
    (tmp_path / "c.yml").write_text(yaml.safe_dump({"sync": {
        "my-copy": {"type": "rsync", "source": "src/", "target": "no/such/deep/out/"}}}))
    snakefile = SYNC_RULE_KINDS[kind]
    if snakefile is None:
        rendered = run_cli(["sync", "--snakemake-rules", "c.yml"], cwd=tmp_path)
        assert rendered.returncode == 0, rendered.stderr
        snakefile = rendered.stdout
    (tmp_path / "Snakefile").write_text(snakefile)
    proc = _smk(tmp_path, merged_env(base_env), "sync_my_copy")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, show(proc)
    line = "flepimop-sync: protocol 'my-copy': rsync failed (rsync exit 11: "
    assert sum(1 for text in out.splitlines() if text.startswith(line)) == 1, show(proc)
    assert "flepimop_sync/" not in out and "Traceback" not in out, show(proc)
    receipts = tmp_path / "results" / "receipts"
    assert not (receipts / "sync_my_copy.json").exists()
    failed = json.loads((receipts / "sync_my_copy.json.failed").read_text())
    assert (failed["status"], failed["exit_code"]) == ("failed", 1) and "rsync failed" in failed["error"]


def test_batch_calibrate_without_flepimop_is_a_clear_usage_error(run_cli):
    from importlib.metadata import entry_points

    if any(not ep.value.startswith("flepimop_sync.")
           for ep in entry_points(group="console_scripts", name="flepimop")):
        pytest.skip("flepiMoP's own CLI is installed")
    proc = run_cli(["batch-calibrate", "-c", "config.yml"])
    assert proc.returncode == 2, proc.stderr
    assert "flepiMoP" in proc.stderr and "batch-calibrate" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_wrapper_rule_with_reverse_pulls_the_other_way(tmp_path, base_env):
    """``rule_params(..., reverse=True)`` as config/README and the wrapper's meta.yaml show it:
    Snakemake refuses a param named ``reverse`` when it parses the Snakefile, so the rule could
    not be written at all; it now brings the target's files back to the source."""
    (tmp_path / "target" / "sub").mkdir(parents=True)
    (tmp_path / "target" / "sub" / "back.csv").write_text("b")
    (tmp_path / "target" / "skip.tmp").write_text("t")
    (tmp_path / "config.yml").write_text(yaml.safe_dump({"sync": {
        "push": {"type": "rsync", "source": "source/", "target": "target/"}}}))
    (tmp_path / "Snakefile").write_text(textwrap.dedent(f'''\
        from flepimop_sync.api import rule_params


        rule bring_back:
            output:
                receipt="results/back.json",
            log:
                "logs/back.log",
            params:
                **rule_params(["config.yml"], protocol="push", reverse=True, fprefix=["- *.tmp"], mkpath=True),
            wrapper:
                "file:{REPO / "workflow" / "wrappers" / "flepimop-sync"}"
        '''))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=tmp_path, env=merged_env(base_env),
                          text=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, show(proc)
    assert list_files(tmp_path / "source") == {"sub/back.csv"}
    receipt = json.loads((tmp_path / "results/back.json").read_text())
    assert (receipt["status"], receipt["source"], receipt["target"]) == ("ok", "target/", "source/"), receipt
