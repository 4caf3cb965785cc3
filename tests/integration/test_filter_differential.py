"""Differential tests: the in-process evaluator (FILTERS.md section 4) against the REAL rsync
(locally and over ssh) and the REAL aws CLI against a real S3 server, on the worked cases and on
random filter lists over random flepiMoP-shaped trees.  Fixed seeds; the seed is in every
assertion message so a failure reproduces with ``random.Random(seed)``.

Speed (issue 14 point 6) without losing realism: most aws runs go through :class:`AwsBatch`,
a few long-lived Python processes that each import the installed aws CLI once and run
``awscli.clidriver`` -- the very code the ``aws`` executable runs, against the same real S3
server -- once per command (``aws s3 sync`` pays ~0.8 s of CPU at start-up, this ~0.1 s).  Every
random list runs both ways: a quarter as real transfers (checked against what really arrived),
the others as dry runs (aws prints exactly the keys it would move); the worked cases run as real
transfers through the ``aws`` executable itself and as dry runs through the batch, and a sample
of random lists runs through both to prove the batch and the executable agree.
rsync over ssh multiplexes one ssh connection (ControlMaster) instead of a handshake per run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from trees import WORKED_CASES, list_files, make_worked_tree, random_trees

from flepimop_sync.filters import FilterList, build_rules
from flepimop_sync.s3filters import choose_aws_filter_args, translate_for_aws

pytestmark = pytest.mark.integration

N_TREES = 10
LISTS_PER_TREE = 20  # 200 random lists
REAL_EVERY = 4  # every 4th random list moves for real through aws, up and down (others: dry runs)
EXECUTABLE_SAMPLE = 8  # random lists whose dry runs also go through the aws executable
SSH_LISTS_PER_TREE = LISTS_PER_TREE  # all 200 random lists over ssh too, push and pull
WORKERS = 3
AWS_BATCH_PROCESSES = 3


def fl(texts) -> FilterList:
    return build_rules(None, override=list(texts))


def _need(tool: str) -> None:
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed")


# session scope (read-only data): tests/slow_first.py runs the long tests of this module apart
@pytest.fixture(scope="session")
def trees(tmp_path_factory):
    """(seed, root, paths) for the random trees plus their filter lists."""
    return random_trees(tmp_path_factory.mktemp("difftrees"), N_TREES, LISTS_PER_TREE)


@pytest.fixture(scope="session")
def worked(tmp_path_factory):
    root = tmp_path_factory.mktemp("worked") / "src"
    paths = make_worked_tree(root)
    return root, paths


def _rsync(filters: FilterList, src: str, dst: str, env=None) -> None:
    argv = ["rsync", "-a", "--prune-empty-dirs", *filters.rsync_args(), src, dst]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (argv, r.stderr)


# ------------------------------------------------------------------------------------------
# (a) rsync, locally


def test_rsync_worked_cases(worked, tmp_path):
    _need("rsync")
    root, paths = worked
    for i, case in enumerate(WORKED_CASES):
        f = fl(case)
        dst = tmp_path / f"dst{i}"
        _rsync(f, f"{root}/", f"{dst}/")
        expected = {p for p, _ in f.select_local(root)}
        got = list_files(dst) if dst.exists() else set()
        assert got == expected, (case, sorted(got ^ expected)[:10])
        assert expected, case


def test_rsync_random(trees, tmp_path):
    _need("rsync")
    jobs = [(seed, root, k, texts) for seed, root, paths, lists in trees for k, texts in enumerate(lists)]

    def run(job):
        seed, root, k, texts = job
        f = fl(texts)
        dst = tmp_path / f"d{seed}_{k}"
        _rsync(f, f"{root}/", f"{dst}/")
        got = list_files(dst) if dst.exists() else set()
        shutil.rmtree(dst, ignore_errors=True)
        return job, f, got, {p for p, _ in f.select_local(root)}

    with ThreadPoolExecutor(WORKERS) as ex:
        for (seed, _root, k, _texts), f, got, expected in ex.map(run, jobs):
            assert got == expected, (
                f"seed={seed} list#{k} {f.as_texts()} rsync_args={f.rsync_args()} "
                f"rsync-only={sorted(got - expected)[:5]} evaluator-only={sorted(expected - got)[:5]}"
            )
    assert len(jobs) >= 200


def test_rsync_source_trailing_slash(worked, tmp_path):
    """No trailing slash: files land under <basename>/, and the rules see the same paths."""
    _need("rsync")
    root, _ = worked
    f = fl(["- /model_output/USA_baseline", "+ *.csv", "- *"])
    # the caller always hands rsync SRC/ and a DST that includes the basename when needed
    (tmp_path / "x").mkdir()
    _rsync(f, f"{root}/", f"{tmp_path / 'x' / root.name}/")
    got = {p.split("/", 1)[1] for p in list_files(tmp_path / "x")}
    assert got == {p for p, _ in f.select_local(root)}


# ------------------------------------------------------------------------------------------
# (b) aws CLI against a real S3 server


class _OwnS3:
    """A private moto_server when the shared ``s3`` fixture is unavailable."""

    def __init__(self, root: Path):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.update({
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": self.endpoint, "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
        })
        self.log = open(root / "moto.log", "wb")
        self.proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        import time

        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")

    def make_bucket(self, name=None):
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def s3srv(request, tmp_path_factory):
    _need("aws")
    try:
        srv = request.getfixturevalue("s3")
    except pytest.FixtureLookupError:
        srv = None
    if srv is not None:
        yield srv
        return
    own = _OwnS3(tmp_path_factory.mktemp("moto"))
    try:
        yield own
    finally:
        own.stop()


def _aws_env(srv) -> dict[str, str]:
    env = dict(srv.env)
    env["AWS_ENDPOINT_URL"] = srv.endpoint
    env.setdefault("HTTPS_PROXY", "http://127.0.0.1:9")
    env.setdefault("HTTP_PROXY", "http://127.0.0.1:9")
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env["PYTHONIOENCODING"] = "utf-8"
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    return env


def _put_trees(srv, bucket: str, trees) -> None:
    """Each (prefix, root, paths): the tree's files as objects under ``prefix/``."""
    if hasattr(srv, "seed"):  # the test bed's server (tests/testbed.py): all at once
        srv.seed(bucket, trees)
        return
    for prefix, root, paths in trees:
        for p in paths:
            srv.client.put_object(Bucket=bucket, Key=f"{prefix}/{p}", Body=(root / p).read_bytes())


def _list_keys(srv, bucket: str, prefix: str) -> set[str]:
    out = set()
    for page in srv.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            out.add(obj["Key"][len(prefix) + 1:])
    return out


def _aws_executable() -> list[str]:
    """argv prefix of the installed aws CLI, bypassing a pyenv shim (a bash script) if any."""
    sibling = Path(sys.executable).with_name("aws")
    if sibling.exists():
        return [sys.executable, str(sibling)]
    return [shutil.which("aws")]


def _aws_argv(src: str, dst: str, args, dryrun: bool) -> list[str]:
    return ["s3", "sync", src, dst, "--no-progress", *args, *(["--dryrun"] if dryrun else [])]


def _parse_aws_output(out: str, src: str, dst: str, dryrun: bool) -> set[str]:
    """The relative paths ``aws s3 sync`` reports it moved (or would move, dry run).

    aws prints local paths relative to its working directory: it runs inside the local side so
    they print as the bare relative path ('./name' at the top).
    """
    local = dst if src.startswith("s3://") else src
    verb = "(dryrun) " if dryrun else ""
    s_prefixes = ["./", ""] if src == local else [src.rstrip("/") + "/"]
    d_prefixes = ["./", ""] if dst == local else [dst.rstrip("/") + "/"]
    got = set()
    for line in out.splitlines():
        for kind in ("upload", "download"):
            head = f"{verb}{kind}: "
            if not line.startswith(head):
                continue
            body = line[len(head):]
            found = None
            for sp in s_prefixes:
                for dp in d_prefixes:
                    # body = <src prefix><rel> to <dst prefix><rel>: solve for rel by length
                    n = len(body) - len(sp) - len(" to ") - len(dp)
                    if n > 0 and n % 2 == 0:
                        rel = body[len(sp):len(sp) + n // 2]
                        if body == f"{sp}{rel} to {dp}{rel}" and found is None:
                            found = rel
            assert found is not None, (line, s_prefixes, d_prefixes)
            got.add(found)
    return got


def _aws_sync(env, src: str, dst: str, args, dryrun: bool) -> set[str]:
    """Run the ``aws`` executable's ``s3 sync`` and return the relative paths it reports."""
    local = dst if src.startswith("s3://") else src
    Path(local).mkdir(parents=True, exist_ok=True)
    argv = [*_aws_executable(), *_aws_argv(src, dst, args, dryrun)]
    r = subprocess.run(argv, env=env, capture_output=True, timeout=300, cwd=local)
    out = r.stdout.decode("utf-8", "surrogateescape")
    assert r.returncode == 0, (argv, out[-2000:], r.stderr.decode(errors="replace")[-2000:])
    return _parse_aws_output(out, src, dst, dryrun)


_BATCH_WORKER = r"""
import io, json, logging, os, sys
import awscli.clidriver
driver = awscli.clidriver.create_clidriver()  # what the aws executable builds, built once
jobs = json.load(open(sys.argv[1], encoding="utf-8"))
results = []
for argv, cwd in jobs:
    os.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    # each main() adds a stream handler to the 'awscli' logger: keep one command's worth, as
    # the aws executable has, instead of one more for every command run before
    handlers = list(logging.getLogger("awscli").handlers)
    try:
        rc = driver.main(argv)
    finally:
        sys.stdout, sys.stderr = saved
        logging.getLogger("awscli").handlers[:] = handlers
    results.append([rc, out.getvalue(), err.getvalue()])
json.dump(results, open(sys.argv[2], "w", encoding="utf-8"))
"""


class AwsBatch:
    """Run many ``aws s3 sync`` commands through the real aws CLI code in a few processes."""

    def __init__(self, env, tmp: Path, processes: int = AWS_BATCH_PROCESSES):
        self.env, self.tmp, self.processes = env, tmp, processes
        self.jobs: list[tuple[list[str], str, str, str, bool]] = []

    def add(self, src: str, dst: str, args, dryrun: bool) -> int:
        local = dst if src.startswith("s3://") else src
        Path(local).mkdir(parents=True, exist_ok=True)
        self.jobs.append((_aws_argv(src, dst, args, dryrun), local, src, dst, dryrun))
        return len(self.jobs) - 1

    def run(self) -> list[set[str]]:
        """Every job's reported paths, in order; the jobs are dealt round-robin to the processes
        (real transfers and dry runs mixed, so the processes finish together)."""
        chunks = [list(range(k, len(self.jobs), self.processes)) for k in range(self.processes)]

        def work(k: int):
            jobs_file, out_file = self.tmp / f"aws-batch-{k}.json", self.tmp / f"aws-batch-{k}.out.json"
            jobs_file.write_text(json.dumps([self.jobs[i][:2] for i in chunks[k]]), encoding="utf-8")
            r = subprocess.run([sys.executable, "-c", _BATCH_WORKER, str(jobs_file), str(out_file)],
                               env=self.env, capture_output=True, timeout=1800)
            assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
            return json.loads(out_file.read_text(encoding="utf-8"))

        with ThreadPoolExecutor(self.processes) as ex:
            per_chunk = list(ex.map(work, range(self.processes)))
        results: list[set[str] | None] = [None] * len(self.jobs)
        for chunk, outs in zip(chunks, per_chunk, strict=True):
            for i, (rc, out, err) in zip(chunk, outs, strict=True):
                argv, _, src, dst, dryrun = self.jobs[i]
                assert rc == 0, (argv, out[-2000:], err[-2000:])
                results[i] = _parse_aws_output(out, src, dst, dryrun)
        return results  # type: ignore[return-value]


def _compare(what: str, got: set[str], expected: set[str]) -> str | None:
    if got == expected:
        return None
    return (f"{what}: aws-only={sorted(got - expected)[:5]} evaluator-only={sorted(expected - got)[:5]}")


def test_aws_worked_cases_dryrun_and_real(s3srv, worked, tmp_path):
    """Every FILTERS.md section 6 case through the aws executable (real transfers, up and down)
    and through the batch (dry runs, up and down)."""
    root, paths = worked
    env = _aws_env(s3srv)
    bucket = s3srv.make_bucket()
    _put_trees(s3srv, bucket, [("full", root, paths)])
    batch = AwsBatch(env, tmp_path)
    jobs = []
    for i, case in enumerate(WORKED_CASES):
        f = fl(case)
        choice = choose_aws_filter_args(f, paths)
        assert choice.runs == (choice.runs[0],) and not choice.runs[0].subdir, case
        expected = {p for p, _ in f.select_local(root)}
        assert expected == {p for p, _ in f.select_paths((p, 0) for p in paths)}
        ids = {
            "up-dry": batch.add(str(root), f"s3://{bucket}/dry{i}", choice.args, True),
            "down-dry": batch.add(f"s3://{bucket}/full", str(tmp_path / f"dd{i}"), choice.args, True),
        }
        jobs.append((i, case, choice, expected, ids))

    def run(job):
        i, case, choice, expected, _ = job
        res = {}
        res["up"] = _aws_sync(env, str(root), f"s3://{bucket}/up{i}", choice.args, False)
        res["up-keys"] = _list_keys(s3srv, bucket, f"up{i}")
        dl = tmp_path / f"dl{i}"
        res["down"] = _aws_sync(env, f"s3://{bucket}/full", str(dl), choice.args, False)
        res["down-files"] = list_files(dl) if dl.exists() else set()
        return res

    with ThreadPoolExecutor(WORKERS) as ex:
        executable = list(ex.map(run, jobs))
    batched = batch.run()
    for (_i, case, choice, expected, ids), res in zip(jobs, executable, strict=True):
        res.update({what: batched[k] for what, k in ids.items()})
        for what, got in res.items():
            problem = _compare(what, got, expected)
            assert problem is None, f"worked case {case} mechanism={choice.mechanism} args={choice.args} {problem}"
    mech = {tuple(c): choose_aws_filter_args(fl(c), paths).mechanism for c in WORKED_CASES}
    # contract v2: every worked case, the flepiMoP resume list included, runs natively
    assert set(mech.values()) == {"native"}, mech


def test_aws_random(s3srv, trees, tmp_path):
    """200 random lists up and down: real transfers for every REAL_EVERY-th list (what aws
    reports and what really arrived), dry runs for the others, and a sample of the dry runs
    through the aws executable as well (same answer as the batch)."""
    env = _aws_env(s3srv)
    bucket = s3srv.make_bucket()
    batch = AwsBatch(env, tmp_path)
    jobs = []
    _put_trees(s3srv, bucket, [(f"tree{t}", root, paths) for t, (_seed, root, paths, _lists) in enumerate(trees)])
    for t, (seed, root, paths, lists) in enumerate(trees):
        for k, texts in enumerate(lists):
            f = fl(texts)
            choice = choose_aws_filter_args(f, paths)
            assert choice.runs == (choice.runs[0],) and not choice.runs[0].subdir, (seed, texts)
            expected = {p for p, _ in f.select_local(root)}
            if (t * LISTS_PER_TREE + k) % REAL_EVERY == 0:  # the report and what really arrived
                ids = {"upload": batch.add(str(root), f"s3://{bucket}/up-{t}-{k}", choice.args, False),
                       "download": batch.add(f"s3://{bucket}/tree{t}", str(tmp_path / f"d{t}_{k}"), choice.args,
                                             False)}
            else:
                ids = {"upload-dry": batch.add(str(root), f"s3://{bucket}/empty-{t}-{k}", choice.args, True),
                       "download-dry": batch.add(f"s3://{bucket}/tree{t}", str(tmp_path / f"e{t}_{k}"),
                                                 choice.args, True)}
            jobs.append((seed, t, k, f, choice, expected, root, ids))
    results = batch.run()

    mechanisms: dict[str, int] = {}
    real = 0
    for seed, t, k, f, choice, expected, _root, ids in jobs:
        mechanisms[choice.mechanism] = mechanisms.get(choice.mechanism, 0) + 1
        found = {what: results[i] for what, i in ids.items()}
        if "upload" in ids:
            real += 1
            found["upload-keys"] = _list_keys(s3srv, bucket, f"up-{t}-{k}")
            found["download-files"] = list_files(tmp_path / f"d{t}_{k}")
        for what, got in found.items():
            problem = _compare(what, got, expected)
            assert problem is None, (f"seed={seed} list#{k} {f.as_texts()} mechanism={choice.mechanism} "
                                     f"args={choice.args} {problem}")
    assert len(jobs) >= 200 and real >= 50
    # the mechanisms are all exercised
    assert mechanisms.get("native", 0) > 50 and mechanisms.get("verified", 0) + mechanisms.get("explicit", 0) > 20, mechanisms
    print("aws mechanisms:", mechanisms)

    # the batch runs the same code as the aws executable: a sample of lists gives the same answer
    dry = [job for job in jobs if "upload-dry" in job[-1]]
    sample = dry[:: len(dry) // EXECUTABLE_SAMPLE][:EXECUTABLE_SAMPLE]

    def executable(job):
        seed, t, k, f, choice, expected, root, ids = job
        up = _aws_sync(env, str(root), f"s3://{bucket}/empty-{t}-{k}", choice.args, True)
        down = _aws_sync(env, f"s3://{bucket}/tree{t}", str(tmp_path / f"x{t}_{k}"), choice.args, True)
        return job, up, down

    with ThreadPoolExecutor(WORKERS) as ex:
        for (seed, _t, k, f, _choice, expected, _root, ids), up, down in ex.map(executable, sample):
            assert up == results[ids["upload-dry"]] == expected, (seed, k, f.as_texts())
            assert down == results[ids["download-dry"]] == expected, (seed, k, f.as_texts())


def test_aws_exact_flag_is_honest(trees):
    """Cheap extra check: exact plans never need the listing, on every random list."""
    for _seed, _root, paths, lists in trees:
        for texts in lists:
            f = fl(texts)
            plan = translate_for_aws(f)
            if plan.exact:
                assert choose_aws_filter_args(f, paths).mechanism == "native"
                assert choose_aws_filter_args(f, None).args == plan.args


# ------------------------------------------------------------------------------------------
# (c) rsync over ssh (push and pull)


@pytest.fixture(scope="module")
def ssh_hpc(request):
    _need("rsync")
    try:
        return request.getfixturevalue("sshd")
    except pytest.FixtureLookupError:
        pytest.skip("no sshd fixture in tests/conftest.py yet")


def test_rsync_over_ssh(ssh_hpc, worked, trees, tmp_path):
    env = dict(os.environ)
    env.update(ssh_hpc.env)
    assert "-F" in env.get("RSYNC_RSH", ""), "RSYNC_RSH must carry -F <config> (never resolve 'hpc' via DNS)"
    # one multiplexed ssh connection for the ~400 runs instead of a key exchange each
    control_dir = tempfile.mkdtemp(prefix="cm", dir="/tmp")  # unix socket paths must stay short
    control = ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir}/%C", "-o", "ControlPersist=300"]
    env["RSYNC_RSH"] = env["RSYNC_RSH"] + " " + " ".join(control)
    alias = ssh_hpc.alias
    root, _ = worked
    cases = [(None, root, list(c)) for c in WORKED_CASES]
    for seed, troot, _paths, lists in trees:
        cases += [(seed, troot, lists[k]) for k in range(SSH_LISTS_PER_TREE)]
    def run(job):
        n, (seed, src, texts) = job
        f = fl(texts)
        expected = {p for p, _ in f.select_local(src)}
        push = tmp_path / f"push{n}"
        _rsync(f, f"{src}/", f"{alias}:{push}/", env=env)
        pull = tmp_path / f"pull{n}"
        _rsync(f, f"{alias}:{src}/", f"{pull}/", env=env)
        found = {what: (list_files(d) if d.exists() else set()) for what, d in (("push", push), ("pull", pull))}
        shutil.rmtree(push, ignore_errors=True)
        shutil.rmtree(pull, ignore_errors=True)
        return seed, texts, expected, found

    try:
        run((0, cases[0]))  # opens the shared connection before the threads race for it
        with ThreadPoolExecutor(WORKERS) as ex:
            for seed, texts, expected, found in ex.map(run, enumerate(cases)):
                for what, got in found.items():
                    assert got == expected, (
                        f"seed={seed} {texts} over ssh {what}: rsync-only={sorted(got - expected)[:5]} "
                        f"evaluator-only={sorted(expected - got)[:5]}"
                    )
    finally:
        subprocess.run(["ssh", *env["RSYNC_RSH"].split()[1:], "-O", "exit", alias], env=env,
                       capture_output=True, timeout=30)
        shutil.rmtree(control_dir, ignore_errors=True)
    assert len(cases) >= 200 + len(WORKED_CASES)
