"""The workflow's conda envs: pinned as snakemake-wrappers pins them, and their pip sections
install with real pip (flepimop-sync from this checkout, gempyor from a configurable source).

What is proven here and what is not: conda cannot run on the test bed (no conda, no
conda-forge), so the conda packages' resolution is NOT tested; the pins are checked for
shape only. The ``pip:`` section of every env is installed for real, as the workflow hands it
to Snakemake (``flepimop_sync.smk.deployable_env``: relative paths absolute, gempyor from
config ``gempyor_source``: a wheel built once from the vendored sdist), into a fresh venv,
and the packages are imported and ``flepimop-sync --help`` run inside (the CLI has no
``--version``: the installed version is read from the metadata). The venv sees this
environment's packages
(``--system-site-packages``; for the calibrate env also the cached gempyor client venv's, for
gempyor's own dependencies) and index pins (``awscli==X``) are installed by name, so nothing
is downloaded: that those exact versions exist on PyPI is not tested here either.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flepimop_sync import smk
from gempyor_fixtures import gempyor_wheel, locate, skip_or_fail

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: every env file (a wrapper's environment.yaml that links to another env is that env)
ENV_FILES = sorted(path for path in [*(ROOT / "workflow" / "envs").glob("*.yaml"),
                                     *(ROOT / "workflow" / "wrappers").glob("*/environment.yaml")]
                   if not path.is_symlink())
#: a conda package pinned to one version, as snakemake-wrappers writes it (`samtools =1.21`)
CONDA_PIN = re.compile(r"^[A-Za-z0-9_.-]+ =\d+(\.\d+)*$")
#: an index requirement pinned to one version
PIP_PIN = re.compile(r"^[A-Za-z0-9_.-]+==\d+(\.\d+)*$")
GEMPYOR_AT_COMMIT = re.compile(r"^gempyor @ git\+https://github\.com/HopkinsIDD/flepiMoP\.git@[0-9a-f]{40}"
                               r"#subdirectory=flepimop/gempyor_pkg$")


def _env(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _pip(env: dict) -> list[str]:
    sections = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict)]
    assert len(sections) == 1, "one pip: section"
    return [str(entry) for entry in sections[0]]


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_every_env_is_found():
    assert _ids(ENV_FILES) == ["workflow/envs/calibrate.yaml", "workflow/wrappers/flepimop-sync/environment.yaml"]


# (wrapper, the env its environment.yaml links to: the one its rule's conda: directive names)
LINKED_ENVS = [
    ("flepimop-calibrate", "workflow/envs/calibrate.yaml"),
    ("flepimop-snapshot", "workflow/wrappers/flepimop-sync/environment.yaml"),
]


@pytest.mark.parametrize("wrapper,env", LINKED_ENVS)
def test_step_wrappers_link_to_the_env_their_rule_uses(wrapper, env):
    link = ROOT / "workflow" / "wrappers" / wrapper / "environment.yaml"
    assert link.is_symlink() and link.resolve() == (ROOT / env).resolve()


WRAPPERS = sorted(p.parent.name for p in (ROOT / "workflow" / "wrappers").glob("*/wrapper.py"))


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_every_wrapper_has_meta_yaml_that_parses(wrapper):
    """snakemake-wrappers' layout: meta.yaml is YAML with these keys (a ': ' inside a plain
    continuation line once made two of them unreadable)."""
    meta = yaml.safe_load((ROOT / "workflow" / "wrappers" / wrapper / "meta.yaml").read_text())
    assert meta["name"] == wrapper
    assert {"description", "authors", "output"} <= set(meta), sorted(meta)
    assert all(isinstance(entry, (str, dict)) for key in ("input", "output", "params") for entry in meta.get(key) or [])


@pytest.mark.parametrize("env_file", ENV_FILES, ids=_ids(ENV_FILES))
def test_pins_are_exact(env_file):
    env = _env(env_file)
    assert env["channels"] == ["conda-forge", "nodefaults"]
    conda = [dep for dep in env["dependencies"] if isinstance(dep, str)]
    assert {dep.split()[0] for dep in conda} >= {"python", "pip", "rsync", "git"}
    for dep in conda:
        assert CONDA_PIN.match(dep), f"{dep!r} is not pinned exactly (`name =X.Y.Z`)"
    for entry in _pip(env):
        if entry.startswith("-e "):
            # this checkout, relative to the env file (as conda resolves it for a file used in place)
            assert (env_file.parent / entry[3:]).resolve() == ROOT, entry
        elif entry.startswith("gempyor"):
            assert GEMPYOR_AT_COMMIT.match(entry), f"{entry!r}: gempyor must be pinned to a flepiMoP commit"
        else:
            assert PIP_PIN.match(entry), f"{entry!r} is not pinned exactly (`name==X.Y.Z`)"


@pytest.mark.parametrize(("entry", "source", "expected"), [
    ("-e ../..", None, "-e {root}"),
    ("--editable ../..", None, "--editable {root}"),
    ("-e /abs/elsewhere", None, "-e /abs/elsewhere"),
    ("./pkg", None, "{env_dir}/pkg"),
    ("awscli==1.45.11", None, "awscli==1.45.11"),
    ("gempyor @ git+https://github.com/HopkinsIDD/flepiMoP.git@" + "a" * 40, None,
     "gempyor @ git+https://github.com/HopkinsIDD/flepiMoP.git@" + "a" * 40),
    ("gempyor @ git+https://x/y.git@abc", "gempyor @ git+https://fork/y.git@def", "gempyor @ git+https://fork/y.git@def"),
    ("gempyor==2.1", "vendor/gempyor-2.1.tar.gz", "{cwd}/vendor/gempyor-2.1.tar.gz"),
    ("awscli==1.45.11", "vendor/gempyor-2.1.tar.gz", "awscli==1.45.11"),
])
def test_deployable_env_table(tmp_path, entry, source, expected):
    """What the workflow hands to Snakemake: Snakemake copies an env file into the conda prefix,
    so relative pip paths are made absolute (against the env file's own directory); a
    gempyor_source that is a local path is made absolute against the working directory."""
    root = tmp_path / "repo"
    env_dir = root / "workflow" / "envs"
    env_dir.mkdir(parents=True)
    cwd = tmp_path / "work"
    (cwd / "vendor").mkdir(parents=True)
    (cwd / "vendor" / "gempyor-2.1.tar.gz").write_bytes(b"")
    text = yaml.safe_dump({"channels": ["conda-forge"], "dependencies": ["python =3.11.9", {"pip": [entry]}]})
    env = smk.deployable_env(text, str(env_dir), gempyor_source=source, cwd=str(cwd))
    assert env["dependencies"][0] == "python =3.11.9"
    assert env["dependencies"][1]["pip"] == [expected.format(root=root, env_dir=env_dir, cwd=cwd)]


def test_written_env_is_content_addressed(tmp_path):
    out = tmp_path / "envs"
    env_file = ROOT / "workflow" / "envs" / "calibrate.yaml"
    first = smk.write_deployable_env(str(env_file), str(out))
    assert first == smk.write_deployable_env(str(env_file), str(out))  # the same file, written once
    other = smk.write_deployable_env(str(env_file), str(out), gempyor_source="gempyor @ git+https://fork/y.git@d")
    assert other != first and len(list(out.glob("calibrate.*.yaml"))) == 2
    assert f"-e {ROOT}" in _pip(_env(Path(first)))


@pytest.mark.parametrize("env_file", ENV_FILES, ids=_ids(ENV_FILES))
def test_pip_section_installs(env_file, tmp_path, request):
    """Install the env's pip section, as deployed, into a fresh venv; import and run inside."""
    pip = _pip(_env(env_file))
    wants_gempyor = any(entry.startswith("gempyor") for entry in pip)
    source = None
    if wants_gempyor:
        sdist, _examples, reason = locate()
        if sdist is None:
            skip_or_fail(reason)
        source = str(gempyor_wheel(sdist))  # config gempyor_source: the vendored release, built once
    deployed = _pip(_env(Path(smk.write_deployable_env(str(env_file), str(tmp_path / "envs"),
                                                       gempyor_source=source))))
    if source:
        assert str(Path(source).resolve()) in deployed
    # index pins by name: satisfied by this environment, nothing downloaded (see the module doc)
    requirements = [entry.split("==")[0] if PIP_PIN.match(entry) else entry for entry in deployed]
    (tmp_path / "requirements.txt").write_text("\n".join(requirements) + "\n")
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the venv's own packages only
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    if wants_gempyor:
        # gempyor's own dependencies (confuse, ...) are not in this environment: take them from the
        # cached gempyor client venv (a .pth to its packages minus gempyor), so nothing is
        # downloaded; gempyor itself is installed into the fresh venv from gempyor_source
        client = request.getfixturevalue("gempyor_client")
        site = subprocess.run([str(client.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
        deps = tmp_path / "gempyor-deps"  # the client's packages but gempyor itself
        deps.mkdir()
        for item in Path(site).iterdir():
            if not item.name.lower().startswith("gempyor"):
                (deps / item.name).symlink_to(item)
        Path(own, "gempyor-client-deps.pth").write_text(f"{deps}\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                           "-r", str(tmp_path / "requirements.txt")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    # the installed script runs (the CLI has no --version option: the version comes from the metadata)
    helped = subprocess.run([str(venv / "bin" / "flepimop-sync"), "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "CONFIG_FILES" in helped.stdout, helped
    modules = ["flepimop_sync", "awscli"] + (["gempyor"] if wants_gempyor else [])
    probe = ("import json, importlib, importlib.metadata as md; print(json.dumps({'version': md.version('flepimop-sync'), "
             "**{m: importlib.import_module(m).__file__ for m in %r}}))" % modules)
    imported = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                              env=env)
    assert imported.returncode == 0, imported.stderr[-2000:]
    files = yaml.safe_load(imported.stdout)
    assert files["version"] == "0.1.0"
    assert Path(files["flepimop_sync"]).resolve().is_relative_to(ROOT / "src")  # this checkout, editable
    if wants_gempyor:
        assert Path(files["gempyor"]).resolve().is_relative_to(venv.resolve())  # installed from the sdist
