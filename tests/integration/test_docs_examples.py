"""The flepiMoP docs' sync examples, typed as the docs write them, over a real sshd and a real S3 API.

Sources: flepiMoP ``documentation/gitbook/how-to-run/synchronization.md`` (pushing inputs, pulling
outputs, the S3 snapshot, the resume protocol, the overview's protocolA/protocolB) and
``advanced-run-guides/running-on-a-hpc-with-slurm.md`` (saving model outputs).  The configs are the
docs' text; only what the docs leave as placeholders is filled in (a path for
``/path/to/an/example-folder``, and the hosts ``longleaf``/``host`` are aliases of the test sshd,
whose sessions have their own HOME, so ``~`` on the remote side is a fresh directory; a relative
remote path is below the login directory, the passwd home).  Each test
asserts the exact file set that lands, and that a dry run after the sync says 0 would transfer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from testbed import SSHServer
from trees import tree, write_tree

pytestmark = pytest.mark.integration

RUN = "20240501_120000"
OTHER = "20240401_090000"
FTYPES = ("seed", "snpi", "spar", "seir", "hpar", "hnpi", "hosp", "llik")
MODEL_OUTPUT = {
    f"USA_inference/{run}/{ftype}/global/{stage}/000000001.{run}.{ftype}.parquet": f"{run}{ftype}{stage}".encode()
    for run in (RUN, OTHER) for ftype in FTYPES for stage in ("final", "intermediate")
}
MODEL_INPUT = {"geodata_sample_2pop.csv": b"subpop,population\n", "mobility_sample_2pop.csv": b"ori,dest,amount\n",
               "seeding_2pop.csv": b"subpop,date,amount\n"}


def under(prefix: str, files) -> set[str]:
    return {f"{prefix}/{k}" for k in files}


@pytest.fixture(scope="module")
def longleaf(tmp_path_factory, base_env):
    """An sshd reachable as 'longleaf' and 'host' (the docs' names), its sessions' HOME a fresh dir."""
    root = tmp_path_factory.mktemp("docs-ssh")
    home = root / "home"
    home.mkdir()
    server = SSHServer(root / "ssh", base_env, set_env={"HOME": str(home)})
    server.start()
    config = root / "ssh_config"
    config.write_text(server.ssh_config.read_text().replace("Host hpc\n", "Host hpc longleaf host\n", 1))
    server.home = home
    server.env = dict(server.env, RSYNC_RSH=f"ssh -F {config}")
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path):
    """A flepiMoP project folder: model_input/ and model_output/ as gempyor writes them."""
    root = tmp_path / "flepiproject"
    write_tree(root / "model_input", MODEL_INPUT)
    write_tree(root / "model_output", MODEL_OUTPUT)
    return root


def config(project: Path, text: str) -> Path:
    path = project / "myconfig.yml"
    path.write_text(text)
    return path


def dry_run_says_zero(run_cli, cfg, env, cwd, *args):
    done = run_cli(["sync", "-n", "--json", *args, cfg], env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["would_transfer"] == {"files": 0, "bytes": 0}, done.stdout


def warnings(done) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("warning:")]


def test_pushing_inputs(longleaf, project, run_cli):
    cfg = config(project, """\
sync:
  pushlongleaf: # defines the protocol name
    type: rsync # defines this is an rsync protocol
    source: model_input # what *local* folder to sync from
    target: longleaf:~/flepiproject/model_input # what *remote* project folder to sync to
""")
    remote = longleaf.home / "flepiproject"
    # as plain rsync: the target's last level is created, not its missing parent
    done = run_cli(["sync", "myconfig.yml"], env=longleaf.env, cwd=project)
    assert done.returncode == 1 and "--mkpath" in done.stderr, done.stderr
    assert not remote.exists()
    remote.mkdir()
    done = run_cli(["sync", "myconfig.yml"], env=longleaf.env, cwd=project)
    assert done.returncode == 0, done.stderr
    # no trailing slash on the source: the docs' rule, said once with its fix
    assert tree(remote) == {f"model_input/model_input/{k}": v for k, v in MODEL_INPUT.items()}
    assert len(warnings(done)) == 1 and "model_input/model_input" in warnings(done)[0]
    dry_run_says_zero(run_cli, cfg, longleaf.env, project)
    # -(-p)rotocol=pushlongleaf, as the docs spell the option
    done = run_cli(["sync", "--protocol=pushlongleaf", "myconfig.yml"], env=longleaf.env, cwd=project)
    assert done.returncode == 0, done.stderr
    assert not (project / "~").exists()


def test_pulling_outputs(longleaf, project, run_cli, tmp_path):
    write_tree(longleaf.home / "flepiproject/model_output", {
        f"USA/{run}/{ftype}/000000001.{run}.{ftype}.parquet": run.encode()
        for run in ("SOME_RUN_INDEX", OTHER) for ftype in ("hnpi", "hosp")})
    local = tmp_path / "laptop"
    local.mkdir()
    cfg = config(local, """\
sync:
  pulllongleaf: # defines the protocol name
    type: rsync # defines this is an rsync protocol
    source: "longleaf:~/flepiproject/model_output" # what *remote* project folder to sync from
    target: model_output # what *local* folder to sync to
    filters: '+ *.SOME_RUN_INDEX.*' # an optional match-only SOME_RUN_INDEX filter
""")
    done = run_cli(["sync", "myconfig.yml"], env=longleaf.env, cwd=local)
    assert done.returncode == 0, done.stderr
    assert set(tree(local / "model_output")) == {
        f"model_output/USA/SOME_RUN_INDEX/{f}/000000001.SOME_RUN_INDEX.{f}.parquet" for f in ("hnpi", "hosp")}
    dry_run_says_zero(run_cli, cfg, longleaf.env, local)
    # "--target=model_output/$FLEPI_RUN_INDEX": expanded by the shell, or by us when quoted
    env = dict(longleaf.env, FLEPI_RUN_INDEX="SOME_RUN_INDEX")
    for target in ("--target=model_output/SOME_RUN_INDEX", "--target=model_output/$FLEPI_RUN_INDEX"):
        done = run_cli(["sync", target, "myconfig.yml"], env=env, cwd=local)
        assert done.returncode == 0, done.stderr
    assert set(tree(local / "model_output/SOME_RUN_INDEX")) == {
        f"model_output/USA/SOME_RUN_INDEX/{f}/000000001.SOME_RUN_INDEX.{f}.parquet" for f in ("hnpi", "hosp")}


@pytest.fixture
def login_dir_someproj():
    """A relative remote path is relative to the ssh login directory, the passwd home (not $HOME,
    which only '~' follows): the docs' 'host:someproj/...' needs the data there, removed after."""
    import pwd
    import shutil

    someproj = Path(pwd.getpwuid(os.getuid()).pw_dir) / "someproj"
    if someproj.exists():
        pytest.skip(f"{someproj} exists already; not touching it")
    try:
        yield someproj
    finally:
        shutil.rmtree(someproj, ignore_errors=True)


def test_overview_protocols(longleaf, s3, project, run_cli, tmp_path, login_dir_someproj):
    write_tree(login_dir_someproj / "model_output", MODEL_OUTPUT)
    work = tmp_path / "work"
    write_tree(work / "some/hpc/model_output", MODEL_OUTPUT)
    s3.make_bucket("s3bucket")
    cfg = config(work, """\
sync:
  protocolA: # the default protocol: fetch hpc results to local directory
    type: rsync
    source: host:someproj/model_output
    target: some/local/dir
  protocolB: # a protocol to store results to S3
    type: s3sync
    source: some/hpc/model_output
    target: s3://s3bucket/someproj/model_output
""")
    env = dict(longleaf.env, **{k: v for k, v in s3.env.items() if k.startswith("AWS_")})
    done = run_cli(["sync", "myconfig.yml"], env=env, cwd=work)  # some/local is missing: rsync's rule
    assert done.returncode == 1 and "--mkpath" in done.stderr, done.stderr
    done = run_cli(["sync", "--mkpath", "myconfig.yml"], env=env, cwd=work)
    assert done.returncode == 0, done.stderr
    assert set(tree(work / "some/local/dir")) == under("model_output", MODEL_OUTPUT)
    dry_run_says_zero(run_cli, cfg, env, work)
    done = run_cli(["sync", "-p", "protocolB", "myconfig.yml"], env=env, cwd=work)
    assert done.returncode == 0, done.stderr
    assert set(s3.list("s3bucket")) == under("someproj/model_output/model_output", MODEL_OUTPUT)
    assert len(warnings(done)) == 1 and "model_output/model_output" in warnings(done)[0]
    dry_run_says_zero(run_cli, cfg, env, work, "-p", "protocolB")


def test_snapshot_to_s3_and_back(s3, project, run_cli, tmp_path):
    s3.make_bucket("idd-inference-runs")
    cfg = config(project, """\
sync:
  snapshots3: # defines the protocol name
    type: s3sync # defines this is an aws s3 sync protocol
    source: model_output # what folder to sync from
    target: s3://idd-inference-runs/myproject # what *remote* project folder to sync to
""")
    done = run_cli(["sync", "myconfig.yml"], env=s3.env, cwd=project)
    assert done.returncode == 0, done.stderr
    assert set(s3.list("idd-inference-runs")) == under("myproject/model_output", MODEL_OUTPUT)
    assert not warnings(done), done.stderr
    dry_run_says_zero(run_cli, cfg, s3.env, project)
    # --reverse brings it back where it came from
    restored = tmp_path / "restored"
    write_tree(restored / "x", {"keep.txt": b"k"})
    moved = config(restored, cfg.read_text())
    done = run_cli(["sync", "--reverse", "myconfig.yml"], env=s3.env, cwd=restored)
    assert done.returncode == 0, done.stderr
    assert tree(restored / "model_output") == tree(project / "model_output")
    dry_run_says_zero(run_cli, moved, s3.env, restored, "--reverse")


def test_resume_protocol(s3, project, run_cli, tmp_path):
    bucket = s3.make_bucket("mybucket")
    for rel, data in MODEL_OUTPUT.items():
        s3.put(bucket, f"myproject/{rel}", data)
    work = tmp_path / "newrun"
    work.mkdir()
    cfg = config(work, """\
sync:
  resumerun:
    type: s3sync
    source: s3://mybucket/myproject/
    target: model_output
    filters: ["*hnpi*", "*snpi*", "*seed*", "- *"]
""")
    done = run_cli(["sync", "myconfig.yml"], env=s3.env, cwd=work)
    assert done.returncode == 0, done.stderr
    expected = {k for k in MODEL_OUTPUT if k.split("/")[2] in ("hnpi", "snpi", "seed")}
    assert set(tree(work / "model_output")) == expected
    dry_run_says_zero(run_cli, cfg, s3.env, work)
    # a mistyped prefix is an error naming it, not "0 files, ok"
    done = run_cli(["sync", "-s", "s3://mybucket/myprojcet/", "myconfig.yml"], env=s3.env, cwd=work)
    assert done.returncode == 1 and "s3://mybucket/myprojcet/" in done.stderr, done.stderr


def test_saving_model_outputs(s3, project, run_cli, tmp_path):
    """running-on-a-hpc-with-slurm.md: the protocols batch-calibrate's --sync-protocol runs."""
    s3.make_bucket("my-bucket")
    folder = tmp_path / "example-folder"  # /path/to/an/example-folder: missing, its parent exists
    cfg = config(project, f"""\
sync:
  rsync-model-output:
    type: rsync
    source: model_output
    target: {folder}
  s3-model-output:
    type: s3sync
    source: model_output
    target: s3://my-bucket/and-sub-bucket
""")
    done = run_cli(["sync", "-n", "myconfig.yml"], cwd=project)
    assert done.returncode == 0, done.stderr
    assert not folder.exists()
    done = run_cli(["sync", "myconfig.yml"], cwd=project)
    assert done.returncode == 0, done.stderr
    assert set(tree(folder)) == under("model_output", MODEL_OUTPUT)
    dry_run_says_zero(run_cli, cfg, None, project)
    done = run_cli(["sync", "-p", "s3-model-output", "myconfig.yml"], env=s3.env, cwd=project)
    assert done.returncode == 0, done.stderr
    assert set(s3.list("my-bucket")) == under("and-sub-bucket/model_output", MODEL_OUTPUT)
    dry_run_says_zero(run_cli, cfg, s3.env, project, "-p", "s3-model-output")
