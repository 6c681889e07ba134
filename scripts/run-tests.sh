#!/usr/bin/env bash
# Set up everything (scripts/bootstrap.sh) and run the lint checks and the whole test suite,
# end-to-end tests with the real lmp, cp2k.psmp, gap_fit and python driver included.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/bootstrap.sh"
VENV=${MLPOT_VENV:-$ROOT/.venv}
cd "$ROOT"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
# Two workers (the CI machine has 2 cores; the end-to-end tests mostly run one single-threaded binary each);
# each test file stays on one worker, so module-scoped fixtures (e.g. one real loop run) are built once.
WORKERS=${MLPOT_TEST_WORKERS:-2}
if [ "$WORKERS" -gt 1 ]; then
    exec "$VENV/bin/python" -m pytest -n "$WORKERS" --dist loadfile --durations=25 "$@"
fi
exec "$VENV/bin/python" -m pytest --durations=25 "$@"
