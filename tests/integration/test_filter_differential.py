"""Differential tests: the in-process evaluator (FILTERS.md section 4) against the REAL rsync
(locally and over ssh) and the REAL aws CLI against a real S3 server, on the worked cases and on
random filter lists over random flepiMoP-shaped trees.  Fixed seeds; the seed is in every
assertion message so a failure reproduces with ``random.Random(seed)``.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trees import WORKED_CASES, list_files, make_random_tree, make_worked_tree, random_filter_list  # noqa: E402

from flepimop_sync.filters import FilterList, build_rules  # noqa: E402
from flepimop_sync.s3filters import choose_aws_filter_args, translate_for_aws  # noqa: E402

pytestmark = pytest.mark.integration

N_TREES = 10
LISTS_PER_TREE = 20  # 200 random lists
DOWNLOAD_EVERY = 1  # aws download dry runs for every random list, like the uploads
SSH_LISTS_PER_TREE = LISTS_PER_TREE  # all 200 random lists over ssh too, push and pull
WORKERS = 3


def fl(texts) -> FilterList:
    return build_rules(None, override=list(texts))


def _need(tool: str) -> None:
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """(seed, root, paths) for the random trees plus their filter lists."""
    base = tmp_path_factory.mktemp("difftrees")
    out = []
    for i in range(N_TREES):
        seed = 20240501 + i
        rng = random.Random(seed)
        root = base / f"tree{i}"
        paths = make_random_tree(root, rng, n_files=rng.randint(60, 150))
        lists = [random_filter_list(rng, paths) for _ in range(LISTS_PER_TREE)]
        out.append((seed, root, paths, lists))
    return out


@pytest.fixture(scope="module")
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
    checked = 0
    for seed, root, paths, lists in trees:
        for k, texts in enumerate(lists):
            f = fl(texts)
            dst = tmp_path / f"d{seed}_{k}"
            _rsync(f, f"{root}/", f"{dst}/")
            got = list_files(dst) if dst.exists() else set()
            expected = {p for p, _ in f.select_local(root)}
            assert got == expected, (
                f"seed={seed} list#{k} {f.as_texts()} rsync_args={f.rsync_args()} "
                f"rsync-only={sorted(got - expected)[:5]} evaluator-only={sorted(expected - got)[:5]}"
            )
            shutil.rmtree(dst, ignore_errors=True)
            checked += 1
    assert checked >= 200


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


def _put_tree(srv, bucket: str, prefix: str, root: Path, paths) -> None:
    client = srv.client
    for p in paths:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{p}", Body=(root / p).read_bytes())


def _list_keys(srv, bucket: str, prefix: str) -> set[str]:
    out = set()
    for page in srv.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            out.add(obj["Key"][len(prefix) + 1:])
    return out


def _aws_sync(env, src: str, dst: str, args, dryrun: bool) -> set[str]:
    """Run ``aws s3 sync`` and return the relative paths it reports (dry run) or moved.

    aws prints local paths relative to its working directory: run it inside the local side so
    they print as the bare relative path.
    """
    local = dst if src.startswith("s3://") else src
    Path(local).mkdir(parents=True, exist_ok=True)
    argv = ["aws", "s3", "sync", src, dst, "--no-progress", *args]
    if dryrun:
        argv.append("--dryrun")
    r = subprocess.run(argv, env=env, capture_output=True, timeout=300, cwd=local)
    out = r.stdout.decode("utf-8", "surrogateescape")
    assert r.returncode == 0, (argv, out[-2000:], r.stderr.decode(errors="replace")[-2000:])
    verb = "(dryrun) " if dryrun else ""
    # aws prints top-level local files as './name', deeper ones as 'dir/name'
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


def test_aws_worked_cases_dryrun_and_real(s3srv, worked, tmp_path):
    root, paths = worked
    env = _aws_env(s3srv)
    bucket = s3srv.make_bucket()
    _put_tree(s3srv, bucket, "full", root, paths)
    jobs = []
    for i, case in enumerate(WORKED_CASES):
        f = fl(case)
        choice = choose_aws_filter_args(f, paths)
        expected = {p for p, _ in f.select_local(root)}
        assert expected == {p for p, _ in f.select_paths((p, 0) for p in paths)}
        jobs.append((i, case, choice, expected))

    def run(job):
        i, case, choice, expected = job
        res = {}
        res["up-dry"] = _aws_sync(env, str(root), f"s3://{bucket}/dry{i}", choice.args, True)
        res["up"] = _aws_sync(env, str(root), f"s3://{bucket}/up{i}", choice.args, False)
        res["up-keys"] = _list_keys(s3srv, bucket, f"up{i}")
        dl = tmp_path / f"dl{i}"
        res["down-dry"] = _aws_sync(env, f"s3://{bucket}/full", str(dl), choice.args, True)
        res["down"] = _aws_sync(env, f"s3://{bucket}/full", str(dl), choice.args, False)
        res["down-files"] = list_files(dl) if dl.exists() else set()
        return job, res

    with ThreadPoolExecutor(WORKERS) as ex:
        for (i, case, choice, expected), res in ex.map(run, jobs):
            for what, got in res.items():
                assert got == expected, (
                    f"worked case {case} mechanism={choice.mechanism} args={choice.args} {what}: "
                    f"aws-only={sorted(got - expected)[:5]} evaluator-only={sorted(expected - got)[:5]}"
                )
    mech = {tuple(c): choose_aws_filter_args(fl(c), paths).mechanism for c in WORKED_CASES}
    assert mech[("+ *.csv", "- *")] == "native"
    assert mech[("*hnpi*", "*snpi*", "*seed*", "- *")] in ("verified", "explicit")


def test_aws_random_dryrun(s3srv, trees, tmp_path):
    env = _aws_env(s3srv)
    bucket = s3srv.make_bucket()
    jobs = []
    for t, (seed, root, paths, lists) in enumerate(trees):
        _put_tree(s3srv, bucket, f"tree{t}", root, paths)
        for k, texts in enumerate(lists):
            f = fl(texts)
            choice = choose_aws_filter_args(f, paths)
            expected = {p for p, _ in f.select_local(root)}
            jobs.append((seed, t, k, f, choice, expected, root))

    def run(job):
        seed, t, k, f, choice, expected, root = job
        res = {"upload": _aws_sync(env, str(root), f"s3://{bucket}/empty-{t}-{k}", choice.args, True)}
        if k % DOWNLOAD_EVERY == 0:
            res["download"] = _aws_sync(env, f"s3://{bucket}/tree{t}", str(tmp_path / f"e{t}_{k}"),
                                        choice.args, True)
        return job, res

    mechanisms: dict[str, int] = {}
    with ThreadPoolExecutor(WORKERS) as ex:
        for (seed, t, k, f, choice, expected, root), res in ex.map(run, jobs):
            mechanisms[choice.mechanism] = mechanisms.get(choice.mechanism, 0) + 1
            for what, got in res.items():
                assert got == expected, (
                    f"seed={seed} list#{k} {f.as_texts()} mechanism={choice.mechanism} "
                    f"args={choice.args} {what}: aws-only={sorted(got - expected)[:5]} "
                    f"evaluator-only={sorted(expected - got)[:5]}"
                )
    assert len(jobs) >= 200
    # all three mechanisms are exercised
    assert mechanisms.get("native", 0) > 50 and mechanisms.get("verified", 0) + mechanisms.get("explicit", 0) > 20, mechanisms
    print("aws mechanisms:", mechanisms)


def test_aws_exact_flag_is_honest(trees):
    """Cheap extra check: exact plans never need the listing, on every random list."""
    for seed, root, paths, lists in trees:
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
    alias = ssh_hpc.alias
    root, _ = worked
    cases = [(None, root, list(c)) for c in WORKED_CASES]
    for seed, troot, paths, lists in trees:
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

    with ThreadPoolExecutor(WORKERS) as ex:
        for seed, texts, expected, found in ex.map(run, enumerate(cases)):
            for what, got in found.items():
                assert got == expected, (
                    f"seed={seed} {texts} over ssh {what}: rsync-only={sorted(got - expected)[:5]} "
                    f"evaluator-only={sorted(expected - got)[:5]}"
                )
    assert len(cases) >= 200 + len(WORKED_CASES)
