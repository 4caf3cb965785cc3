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
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

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
    return {f"{PREV_RUN}/{p.relative_to(root)}" for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).parts[0] in RESUME_TYPES and p.relative_to(root).parts[2] == "final"}


def output_files(run: str = RUN, *, final_only: bool = False) -> set[str]:
    out = set()
    for ftype in ("seed", "snpi", "hnpi", "spar", "hpar", "llik", "hosp"):
        ext = "csv" if ftype == "seed" else "parquet"
        for stage in ("final",) if final_only else ("final", "intermediate"):
            out.add(f"USA_inference/{run}/{ftype}/global/{stage}/000000001.{run}.{ftype}.{ext}")
    return out


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def merged_env(base_env, *servers) -> dict[str, str]:
    env = dict(base_env)
    for server in servers:
        env.update(server.env)
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Campaign:
    """A working directory with a flepiMoP config (sync: section), config.yaml and stand-in."""

    def __init__(self, root: Path, env: dict[str, str], s3, bucket: str, *, hpc_alias: str = "hpc",
                 resume: bool = True, fail: bool = False):
        self.root = root
        self.env = env
        self.s3 = s3
        self.bucket = bucket
        self.hpc = root / "hpc"  # the "remote" side: reached as hpc:<path> through the suite's sshd
        shutil.copytree(SAMPLE, self.hpc / "prev" / "model_output")
        (root / "standin.py").write_text(STANDIN)
        (root / "expect.json").write_text(json.dumps(sorted(expected_resume_files())))
        self.protocols = {
            "resume": {"type": "rsync", "source": f"{hpc_alias}:{self.hpc}/prev/model_output/",
                       "target": "model_output/", "filters": ["- llik/"]},
            "snapshot": {"type": "s3sync", "source": "model_output/", "target": f"s3://{bucket}/runs/",
                         "endpoint_url": s3.endpoint, "filters": ["- intermediate/"]},
            "archive": {"type": "rsync", "source": "hpc/prev/model_output/", "target": "archive/",
                        "filters": ["+ hnpi/**"]},
        }
        self.write_model_config()
        command = (f"{{python}} standin.py outputs={{outputs}} run={{run}} manifest=manifest.json"
                   + (f" expect=expect.json prev={PREV_RUN}" if resume else "") + (" fail=1" if fail else ""))
        self.config = {
            "sync_configs": ["flepimop.yml"],
            "run_name": RUN,
            "sync_in_all": ["archive"],
            "resume_fetch": {"enabled": resume, "protocol": "resume"},
            "calibrate": {"command": command, "outputs": "model_output"},
            "snapshot": {"protocol": "snapshot", "manifest": "manifest.json"},
        }
        (root / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))

    def write_model_config(self) -> None:
        doc = {"name": "USA_inference", "nslots": 1, "sync": self.protocols}
        (self.root / "flepimop.yml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def snakemake(self, *args, extra_env=None, timeout=240) -> subprocess.CompletedProcess:
        env = dict(self.env, **(extra_env or {}))
        return subprocess.run(
            [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(self.root),
             "--configfile", str(self.root / "config.yaml"), "--cores", "1", *args],
            env=env, cwd=self.root, text=True, capture_output=True, timeout=timeout,
            stdin=subprocess.DEVNULL)

    def receipt(self, name: str) -> dict:
        return json.loads((self.root / "results" / "receipts" / f"{name}.json").read_text())


def ran_rules(proc: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Finished jobid: \d+ \(Rule: (\S+)\)", proc.stderr + proc.stdout))


def show(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-8000:]}"


def check_full_dag(c: Campaign, proc: subprocess.CompletedProcess) -> None:
    """Everything a successful campaign must leave behind (shared with the SLURM test)."""
    assert proc.returncode == 0, show(proc)
    assert {"resume_fetch", "calibrate", "snapshot", "sync_archive"} <= ran_rules(proc), show(proc)
    # resume_fetch pulled exactly the resume files (the protocol's own '- llik/' is replaced)
    expected = expected_resume_files()
    prev = c.root / "model_output"
    assert {p for p in tree(prev) if p.startswith(PREV_RUN)} == expected
    r = c.receipt("resume_fetch")
    assert r["protocol"] == "resume" and r["type"] == "rsync" and r["status"] == "ok"
    assert r["source"] == f"hpc:{c.hpc}/prev/model_output/" and r["destination"] == "model_output/"
    assert r["filters"][:6] == [f"+ {t}/*/final/**" for t in RESUME_TYPES]
    assert r["selected"]["files"] == len(expected) == r["transferred"]["files"]
    assert r["selected"]["bytes"] == sum((SAMPLE / p).stat().st_size for p in expected)
    assert r["commands"] and r["commands"][0][0] == "rsync"
    assert {"flepimop-sync", "python", "rsync", "aws"} <= set(r["tool_versions"])
    assert r["started"] <= r["finished"]
    assert (c.root / "logs" / "resume_fetch.log").read_text().strip()
    # calibrate ran the stand-in, which found exactly the resume files
    cal = c.receipt("calibrate")
    assert cal["status"] == "ok" and cal["exit_code"] == 0 and "standin.py" in cal["command"]
    assert "resume files ok" in (c.root / "logs" / "calibrate.log").read_text()
    # snapshot pushed exactly this run (issue 10: not the fetched resume files of the previous run):
    # its outputs by the protocol's own filters (no intermediate/) and the manifest, to runs/<run>/
    keys = c.s3.list(c.bucket)
    assert all(k.startswith(f"runs/{RUN}/") for k in keys), sorted(keys)
    pushed = {k[len(f"runs/{RUN}/"):] for k in keys}
    assert pushed == output_files(final_only=True) | {"manifest.json"}
    s = c.receipt("snapshot")
    assert s["protocol"] == "snapshot" and s["status"] == "ok" and s["flepimop_run_id"] == RUN
    assert s["destination"].rstrip("/") == f"s3://{c.bucket}/runs/{RUN}"
    outputs, project_files, manifest = s["parts"]
    assert outputs["type"] == "s3sync" and outputs["filters"][:2] == ["- intermediate/", f"s {RUN}"]
    assert outputs["transferred"]["files"] == len(pushed) - 1  # all but the manifest
    assert project_files["transferred"]["files"] == 0  # the stand-in writes no pdf/h5
    assert manifest["status"] == "ok" and manifest["destination"].endswith("manifest.json")
    assert any(cmd[:3] == ["aws", "s3", "sync"] for cmd in outputs["commands"])
    assert c.receipt("sync_archive")["selected"]["files"] == len(tree(c.root / "archive"))


@pytest.fixture()
def campaign_env(base_env, sshd, s3):
    return merged_env(base_env, sshd, s3)


# -- tests ----------------------------------------------------------------------------------------

def test_campaign_dag_receipts_noop_and_targeted_rerun(tmp_path, campaign_env, s3):
    c = Campaign(tmp_path, campaign_env, s3, s3.make_bucket())
    dry = c.snakemake("-n")
    assert dry.returncode == 0, show(dry)
    assert not (tmp_path / "results").exists()

    first = c.snakemake()
    check_full_dag(c, first)

    again = c.snakemake()
    assert again.returncode == 0, show(again)
    assert ran_rules(again) == set(), show(again)
    assert "Nothing to be done" in again.stderr + again.stdout

    # editing one protocol's filters reruns only its rule
    before = {n: c.receipt(n)["finished"] for n in ("resume_fetch", "calibrate", "snapshot")}
    c.protocols["archive"]["filters"] = ["+ hnpi/**", "+ seed/**"]
    c.write_model_config()
    edited = c.snakemake()
    assert edited.returncode == 0, show(edited)
    assert ran_rules(edited) - {"all"} == {"sync_archive"}, show(edited)
    assert any("/seed/" in p for p in tree(c.root / "archive"))
    assert c.receipt("sync_archive")["filters"][:2] == ["+ hnpi/**", "+ seed/**"]
    assert before == {n: c.receipt(n)["finished"] for n in before}

    # the resume protocol's own filters do not matter to resume_fetch (it uses its own set):
    # only sync_resume would rerun, and it is not part of `all`
    c.protocols["resume"]["filters"] = ["- hosp/"]
    c.write_model_config()
    unrelated = c.snakemake()
    assert unrelated.returncode == 0 and ran_rules(unrelated) == set(), show(unrelated)

    # ... but changing the resume filter set in config.yaml reruns resume_fetch and downstream
    c.config["resume_fetch"]["filters"] = ["+ hnpi/**", "+ snpi/**", "+ seed/**", "- **"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(c.config, sort_keys=False))
    changed = c.snakemake("-n")
    assert changed.returncode == 0, show(changed)
    assert "resume_fetch" in changed.stdout + changed.stderr


def test_failing_calibration_means_no_snapshot(tmp_path, campaign_env, s3):
    c = Campaign(tmp_path, campaign_env, s3, s3.make_bucket(), resume=False, fail=True)
    c.config["sync_in_all"] = []
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(c.config, sort_keys=False))
    proc = c.snakemake()
    assert proc.returncode != 0, show(proc)
    assert "snapshot" not in ran_rules(proc)
    receipts = tmp_path / "results" / "receipts"
    assert not (receipts / "calibrate.json").exists() and not (receipts / "snapshot.json").exists()
    failed = json.loads((receipts / "calibrate.json.failed").read_text())
    assert failed["status"] == "failed" and failed["exit_code"] == 7
    assert "failing as asked" in (tmp_path / "logs" / "calibrate.log").read_text()
    assert c.s3.list(c.bucket) == {}


def test_failing_sync_writes_failed_receipt(tmp_path, campaign_env, s3):
    c = Campaign(tmp_path, campaign_env, s3, s3.make_bucket())
    c.protocols["resume"]["source"] = f"hpc:{tmp_path}/no/such/dir/"
    c.write_model_config()
    proc = c.snakemake("resume_fetch")
    assert proc.returncode != 0, show(proc)
    receipts = tmp_path / "results" / "receipts"
    assert not (receipts / "resume_fetch.json").exists()
    failed = json.loads((receipts / "resume_fetch.json.failed").read_text())
    assert failed["status"] == "failed" and "rsync exit" in failed["error"]
    assert "flepimop-sync:" in proc.stderr


def test_bad_protocol_is_a_clear_workflow_error(tmp_path, campaign_env, s3):
    c = Campaign(tmp_path, campaign_env, s3, "unused")
    c.protocols["archive"]["filters"] = ["+bad"]
    c.write_model_config()
    proc = c.snakemake("-n")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "flepimop-sync: invalid filter '+bad'" in out and "protocol 'archive'" in out, show(proc)


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
    assert fetched.returncode == 0 and ran_rules(fetched) == {"resume_fetch"}, show(fetched)
    resumed = tree(work / "results/example/model_output")
    assert resumed == expected_resume_files()
    full = smk()
    assert full.returncode == 0 and ran_rules(full) >= {"calibrate", "snapshot"}, show(full)
    archived = tree(work / "results/example/archive/example_run")
    assert "manifest.json" in archived
    assert not any("/intermediate/" in p for p in archived)
    assert any("example_run/hnpi/global/final" in p for p in archived)
    assert ran_rules(smk()) == set()


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
    assert tree(tmp_path / "out") == {"hnpi/000000001.run.hnpi.csv", "seed/000000001.run.seed.csv"}
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
        "calibrate": {"enabled": False}, "snapshot": {"enabled": False}}))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=tmp_path,
                          env=merged_env(base_env), text=True, capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, show(proc)
    assert {"fs_sync_copy", "copy_for_report"} <= ran_rules(proc), show(proc)
    assert tree(tmp_path / "copied") == {"hnpi/a.parquet"}
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
    assert tree(tmp_path / "out") == {"hnpi/a.parquet"}
    assert json.loads((tmp_path / "results/receipts/sync_my_copy.json").read_text())["status"] == "ok"
    assert ran_rules(smk("sync_my_copy")) == set()
    lint = smk("--lint")
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, show(lint)


def test_batch_calibrate_without_flepimop_is_a_clear_usage_error(run_cli):
    from importlib.metadata import entry_points

    if any(not ep.value.startswith("flepimop_sync.")
           for ep in entry_points(group="console_scripts", name="flepimop")):
        pytest.skip("flepiMoP's own CLI is installed")
    proc = run_cli(["batch-calibrate", "-c", "config.yml"])
    assert proc.returncode == 2, proc.stderr
    assert "flepiMoP" in proc.stderr and "batch-calibrate" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
