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
exec "$VENV/bin/python" -m pytest "$@"
