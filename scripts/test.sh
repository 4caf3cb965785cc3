#!/usr/bin/env bash
# THE test command: installs what is missing (scripts/setup.sh), then runs the whole suite on
# two workers.  Extra arguments go to pytest, e.g. `scripts/test.sh -k rsync -x`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"

bash scripts/setup.sh

echo "[test] $PYTHON -m pytest -n 2 --timeout=900 $*"
set +e
"$PYTHON" -m pytest -n 2 --timeout=900 "$@" </dev/null
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    echo "[test] ERROR: pytest collected no tests (exit 5)" >&2
    exit 1
fi
exit "$rc"
