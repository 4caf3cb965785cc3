#!/usr/bin/env bash
# THE test command: installs what is missing (scripts/setup.sh), then runs the whole suite on
# two workers.  Extra arguments go to pytest, e.g. `scripts/test.sh -k rsync -x`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"

bash scripts/setup.sh

# Python lint ([tool.ruff] in pyproject.toml: pyflakes, bugbear, unused arguments, complexity <= 12).
echo "[test] ruff check ."
"$PYTHON" -m ruff check .
# Python 3.10 is the floor (gempyor runs on 3.10-3.11): no file may need a newer Python. Only the unit
# suite runs on 3.10 below, so this static check covers the paths that only the integration suite reaches.
echo "[test] vermin -t=3.10- (every Python file runs on 3.10)"
"$PYTHON" -c "import sys; from vermin import main; sys.exit(main())" --no-tips --eval-annotations --violations -t=3.10- -q \
    src/ scripts/ workflow/scripts/ workflow/wrappers/ benchmarks/ tests/
# The workflow's formatting and lint (snakefmt from the test extra; lint on the shipped example).
echo "[test] snakefmt --check workflow/"
"$PYTHON" -m snakefmt --check workflow/
echo "[test] snakemake --lint (the shipped example)"
"$PYTHON" -m snakemake --lint --cores 1 </dev/null

# Python 3.10 too: gempyor requires >=3.10,<3.12, so a modeller on 3.10 runs flepimop-sync beside it
# (and gempyor's batch jobs call `flepimop sync` with that Python). A venv of its own (outside the
# checkout) runs the unit suite and the CLI's integration tests: rsync, s3sync and git protocols
# against the test bed's servers, the docs' commands as written, and gempyor's own sync job run
# with a gempyor installed on 3.10. The workflow's tests need Snakemake, which needs Python >= 3.11.
PY310_INTEGRATION=(
    tests/integration/test_rsync_protocol.py
    tests/integration/test_s3sync_protocol.py
    tests/integration/test_git_protocol.py
    tests/integration/test_source_override_cli.py
    tests/integration/test_docs_examples.py
    tests/integration/test_docs_run_index.py
    tests/integration/test_gempyor_syncjob.py
)
PY310="${PY310:-}"
if [[ -z "$PY310" ]]; then
    # Run each candidate: a pyenv shim named python3.10 exists even where it cannot run.
    for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 python3.10; do
        if "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
            PY310="$(command -v "$cand")"; break
        fi
    done
fi
if [[ -n "$PY310" ]]; then
    VENV310="${TMPDIR:-/tmp}/flepimop-sync-py310"
    [[ -x "$VENV310/bin/python" ]] || "$PY310" -m venv "$VENV310"
    "$VENV310/bin/python" -m pip install -q --disable-pip-version-check -e ".[cli-tests]"
    "$VENV310/bin/python" -m compileall -q src tests >/dev/null  # as scripts/setup.sh does for 3.11
    # gempyor's client venv on 3.10, built here: its dependencies (numba, confuse, ...) come from the
    # package index, which the suite's network isolation cannot reach (cached in ~/.cache/flepimop-sync-tests)
    "$VENV310/bin/python" tests/gempyor_fixtures.py
    echo "[test] $("$VENV310/bin/python" --version): pytest tests/unit ${PY310_INTEGRATION[*]}"
    # the venv's bin first: its aws and rclone, as a modeller's 3.10 environment has them
    PATH="$VENV310/bin:$PATH" "$VENV310/bin/python" -m pytest tests/unit "${PY310_INTEGRATION[@]}" -q \
        -p no:cacheprovider --timeout=600 -n 2 --maxschedchunk 1 </dev/null
elif [[ -n "${CI:-}" ]]; then
    echo "[test] ERROR: no Python 3.10 interpreter (set PY310=/path/to/python3.10)" >&2
    exit 1
else
    echo "[test] SKIP: the Python 3.10 leg (no python3.10 found; set PY310=...)" >&2
fi

# The real flepiMoP client for the main run, built before the suite for the same reason as on 3.10:
# the suite's network isolation leaves pip only the local index, which lacks some of gempyor's
# dependencies on a fresh machine (a no-op when ~/.cache/flepimop-sync-tests already holds it).
"$PYTHON" tests/gempyor_fixtures.py

# --maxschedchunk 1: each worker holds only the test it runs and the next one, so the long tests,
# which tests/slow_first.py orders first, go to whichever worker is free (the default hands each
# worker a quarter of the suite up front). --durations=25: every log names the slowest tests
# (tests/slow_first.py's table comes from there).
PYTEST_ARGS=(-n 2 --maxschedchunk 1 --timeout=900 --durations=25)
echo "[test] $PYTHON -m pytest ${PYTEST_ARGS[*]} $*"
set +e
"$PYTHON" -m pytest "${PYTEST_ARGS[@]}" "$@" </dev/null
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    echo "[test] ERROR: pytest collected no tests (exit 5)" >&2
    exit 1
fi
exit "$rc"
