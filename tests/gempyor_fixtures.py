"""Fixtures for tests against the real flepiMoP client (gempyor 2.1, vendored unmodified).

Where it comes from: ``$FLEPIMOP_GEMPYOR_SRC`` (an sdist, or a folder holding
``gempyor-*.tar.gz`` and ``flepiMoP-examples-info.tar.gz``), else the project's
``../shared/vendor/flepiMoP/`` next to the clone. Without it these tests are skipped with a reason
naming what is missing; under ``CI=true`` a skip is a failure (CI has the vendor folder).

``gempyor_client``: gempyor pip-installed into its own venv (``--system-site-packages``, so it
reuses this environment's packages and never touches the main environment's ``flepimop``
script), cached across runs under ``~/.cache/flepimop-sync-tests/gempyor-py<X.Y>-<sdist sha256>/``
(about 40 s the first time). ``gempyor_examples``: the vendored tutorials and info/cluster files,
unpacked once per session.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import build_once

ROOT = Path(__file__).resolve().parent.parent
SDIST_GLOB = "gempyor-*.tar.gz"
EXAMPLES = "flepiMoP-examples-info.tar.gz"


def _vendor_candidates() -> list[Path]:
    # ../shared from the clone; worktrees one level deeper see it at ../../shared
    return [ROOT.parent / "shared" / "vendor" / "flepiMoP", ROOT.parent.parent / "shared" / "vendor" / "flepiMoP"]


def locate() -> tuple[Path | None, Path | None, str]:
    """(sdist, examples tarball, reason when missing)."""
    given = os.environ.get("FLEPIMOP_GEMPYOR_SRC")
    if given:
        path = Path(given)
        if path.is_file():
            examples = path.parent / EXAMPLES
            return path, examples if examples.exists() else None, ""
        if path.is_dir():
            found = sorted(path.glob(SDIST_GLOB))
            examples = path / EXAMPLES
            if found:
                return found[-1], examples if examples.exists() else None, ""
        return None, None, f"FLEPIMOP_GEMPYOR_SRC={given}: no {SDIST_GLOB} there"
    for folder in _vendor_candidates():
        found = sorted(folder.glob(SDIST_GLOB))
        if found:
            examples = folder / EXAMPLES
            return found[-1], examples if examples.exists() else None, ""
    return None, None, ("the real flepiMoP client is missing: no ../shared/vendor/flepiMoP/" + SDIST_GLOB
                        + " next to this clone (set FLEPIMOP_GEMPYOR_SRC=<sdist or folder>)")


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and a real-client test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class GempyorClient:
    venv: Path
    sdist: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def flepimop(self) -> Path:
        return self.bin / "flepimop"


def _cache(sdist: Path, kind: str) -> Path:
    """~/.cache/flepimop-sync-tests/gempyor-<kind><sdist sha256> ($FLEPIMOP_SYNC_TEST_CACHE), made."""
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()[:16]
    base = Path(os.environ.get("FLEPIMOP_SYNC_TEST_CACHE", Path.home() / ".cache" / "flepimop-sync-tests"))
    home = base / f"gempyor-{kind}{digest}"
    home.mkdir(parents=True, exist_ok=True)
    return home


def _install(sdist: Path) -> Path:
    def build(home: Path) -> None:
        venv = home / "venv"
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(sdist)],
                              capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            skip_or_fail(f"pip install {sdist} failed: {done.stderr.strip()[-500:]}")

    # a venv is one Python's
    return build_once(_cache(sdist, f"py{sys.version_info[0]}.{sys.version_info[1]}-"), build) / "venv"


def gempyor_wheel(sdist: Path) -> Path:
    """A wheel of the vendored gempyor sdist, built once per sdist and cached as the gempyor
    fixtures cache their venv (building the sdist is most of an install's time)."""
    def build(home: Path) -> None:
        for stale in home.glob("gempyor-*.whl"):
            stale.unlink()
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(home), str(sdist)],
                              capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            skip_or_fail(f"pip wheel {sdist} failed: {done.stderr.strip()[-500:]}")

    home = build_once(_cache(sdist, "wheel-"), build)  # a pure-Python wheel: one for every Python
    return sorted(home.glob("gempyor-*.whl"))[-1]


@pytest.fixture(scope="session")
def gempyor_client() -> GempyorClient:
    sdist, _examples, reason = locate()
    if sdist is None:
        skip_or_fail(reason)
    return GempyorClient(_install(sdist), sdist)


@pytest.fixture(scope="session")
def gempyor_examples(tmp_path_factory) -> Path:
    """The vendored examples: <dir>/tutorials (configs, model_input, data), <dir>/info/cluster."""
    _sdist, examples, reason = locate()
    if examples is None:
        skip_or_fail(reason or f"{EXAMPLES} is missing next to the gempyor sdist")
    out = tmp_path_factory.mktemp("flepimop-examples")
    with tarfile.open(examples) as tar:
        tar.extractall(out, filter="data")
    return out


__all__ = ["GempyorClient", "gempyor_client", "gempyor_wheel", "gempyor_examples", "locate", "skip_or_fail"]


if __name__ == "__main__":
    # `python tests/gempyor_fixtures.py`: build this Python's client venv before the suite, outside
    # its network isolation (scripts/test.sh does, for each Python it tests with: some of gempyor's
    # dependencies are not on a fresh machine's local package index). Nothing to do without the
    # vendored sdist.
    found, _examples, why = locate()
    if found is None:
        print(f"gempyor client: not prepared ({why})")
    else:
        try:
            print(f"gempyor client: {_install(found)}")
        except (Exception, pytest.skip.Exception, pytest.fail.Exception) as error:  # skip_or_fail's outcomes
            if os.environ.get("CI", "").lower() == "true":
                raise SystemExit(f"gempyor client: {error}") from None
            print(f"gempyor client: not prepared ({error}); the real-client tests will skip, saying why")
