#!/usr/bin/env bash
# Idempotent test-bed installer for a bare Debian 12 machine (run as root, or with passwordless sudo).
#   1. system tools: rsync, OpenSSH client+server, SLURM (slurm-wlm) + munge, git
#      (apt is skipped entirely when every binary is already present)
#   2. python3 -m pip install -e '.[test]' (skipped when this checkout is already installed
#      editable with every requirement satisfied; FLEPIMOP_FORCE_SETUP=1 forces both steps)
# No daemon is started here: the tests start their own private, loopback-only servers.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
say() { printf '[setup] %s\n' "$*"; }

# ---------------------------------------------------------------------------- system packages
APT_PACKAGES=(rsync openssh-server openssh-client slurm-wlm munge git)
NEEDED_BINARIES=(rsync ssh ssh-keygen /usr/sbin/sshd git munged slurmctld slurmd sbatch srun squeue)

missing=()
for b in "${NEEDED_BINARIES[@]}"; do
    if [[ "$b" == /* ]]; then
        [[ -x "$b" ]] || missing+=("$b")
    elif ! command -v "$b" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$b" ]]; then
        missing+=("$b")
    fi
done

if [[ ${#missing[@]} -eq 0 && "${FLEPIMOP_FORCE_SETUP:-0}" != 1 ]]; then
    say "system tools present (${NEEDED_BINARIES[*]}): skipping apt-get"
else
    [[ ${#missing[@]} -gt 0 ]] && say "missing: ${missing[*]}"
    SUDO=()
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
            say "ERROR: not root and no sudo: install ${APT_PACKAGES[*]} by hand"; exit 1; fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    # RUNLEVEL=1: package scripts must not start the system sshd/munge/slurm services.
    say "apt-get update"
    "${SUDO[@]}" env RUNLEVEL=1 apt-get -o DPkg::Lock::Timeout=600 update -q
    say "apt-get install -y ${APT_PACKAGES[*]}"
    "${SUDO[@]}" env RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y -q "${APT_PACKAGES[@]}"
fi

# ---------------------------------------------------------------------------- python packages
say "python: $("$PYTHON" --version 2>&1) at $(command -v "$PYTHON")"
check_installed() {
    "$PYTHON" - <<'PY'
import json, pathlib, sys, tomllib
from importlib import metadata
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement

root = pathlib.Path.cwd().resolve()
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
problems = []
try:
    dist = metadata.distribution(project["name"])
except metadata.PackageNotFoundError:
    print(f"{project['name']} not installed"); sys.exit(1)
direct = json.loads(dist.read_text("direct_url.json") or "{}")
if not direct.get("dir_info", {}).get("editable") or \
        pathlib.Path(direct.get("url", "").removeprefix("file://")).resolve() != root:
    problems.append(f"{project['name']} is not an editable install of {root}")
if dist.version != project["version"]:
    problems.append(f"installed version {dist.version} != {project['version']}")
have_scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
if have_scripts != project.get("scripts", {}):
    problems.append("console scripts changed")
for spec in project.get("dependencies", []) + project.get("optional-dependencies", {}).get("test", []):
    req = Requirement(spec)
    if req.marker and not req.marker.evaluate():
        continue
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        problems.append(f"missing {req.name}"); continue
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        problems.append(f"{req.name} {version} does not satisfy {req.specifier}")
if problems:
    print("; ".join(problems)); sys.exit(1)
PY
}
if [[ "${FLEPIMOP_FORCE_SETUP:-0}" != 1 ]] && why=$(check_installed 2>&1); then
    say "flepimop-sync installed editable with all test requirements: skipping pip"
else
    [[ -n "${why:-}" ]] && say "pip needed: ${why}"
    say "$PYTHON -m pip install -e '.[test]'"
    # PIP_BREAK_SYSTEM_PACKAGES: Debian's own python3 refuses pip installs (PEP 668) without it.
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install -q -e '.[test]'
fi
# An editable install leaves this checkout's modules uncompiled (pip compiles only what it copies),
# and where PYTHONDONTWRITEBYTECODE is set (as on this machine) every `flepimop sync`
# recompiled them: ~0.15 s of CPU on each of the suite's ~820 runs. Compiled once here (Python
# checks each .pyc against its source's mtime and size, so an edited module is compiled afresh).
"$PYTHON" -m compileall -q src tests benchmarks >/dev/null
# pyenv only exposes new console scripts (flepimop, flepimop-sync) after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
say "done"
