#!/usr/bin/env bash
# Set up everything (scripts/bootstrap.sh), create or reuse the embedded AiiDA profile and the codes
# (`aiida-mlpot setup`), and run the main job: the active-learning loop on molten NaCl
# (examples/active_learning_nacl.py). The stage-by-stage walk-through is examples/run_nacl.py.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/bootstrap.sh"
VENV=${MLPOT_VENV:-$ROOT/.venv}
"$VENV/bin/aiida-mlpot" setup
exec "$VENV/bin/python" "$ROOT/examples/active_learning_nacl.py" "$@"
