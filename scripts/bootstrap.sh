#!/usr/bin/env bash
# The one install path of aiida-mlpot, used by the README, by .ci/run (through run-tests.sh) and by the
# example (through run-example.sh). Idempotent; safe to run again.
#   1. Debian packages: lammps (lmp), cp2k (cp2k.psmp), time (/usr/bin/time for gap_fit memory peaks),
#      installed when missing, if we are root or have password-less sudo; otherwise a clear message and
#      the end-to-end tests that need them are skipped.
#      With MLPOT_SCALEOUT=1 (the default; 0 skips them) also postgresql, rabbitmq-server, slurm-wlm and munge
#      for the scale-out tests (tests/scaleout, scripts/services; measured 31 s more for the last three). Their
#      system services are not used: the tests start private instances on loopback.
#   2. The virtual environment ($MLPOT_VENV, default ./.venv) with the package and its test extras.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MLPOT_VENV:-$ROOT/.venv}

log() { printf '[mlpot-bootstrap] %s\n' "$*"; }

missing=()
command -v lmp >/dev/null 2>&1 || missing+=(lammps)
command -v cp2k.psmp >/dev/null 2>&1 || missing+=(cp2k)
[ -x /usr/bin/time ] || missing+=(time)
if [ "${MLPOT_SCALEOUT:-1}" != 0 ]; then
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
    [ -x /usr/sbin/slurmctld ] || missing+=(slurm-wlm)
    [ -x /usr/sbin/munged ] || missing+=(munge)
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
    if [ "$SUDO" = none ] || ! command -v apt-get >/dev/null 2>&1; then
        log "WARNING: cannot install Debian packages ${missing[*]} (not root, no sudo, or no apt-get)."
        log "         Install them yourself; tests needing them will be skipped."
    else
        log "installing Debian packages: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
log "lmp: $(command -v lmp || echo missing); cp2k.psmp: $(command -v cp2k.psmp || echo missing)"

if [ ! -x "$VENV/bin/python" ]; then
    PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
    "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "aiida-mlpot needs Python 3.11"' || {
        log "ERROR: Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
    log "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
stamp="$VENV/.mlpot-installed"
want=$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing aiida-mlpot with test extras into $VENV"
    "$VENV/bin/python" -m pip install -q -e "$ROOT[tests]"
    echo "$want" > "$stamp"
fi
log "ready: $("$VENV/bin/python" -c 'import aiida, aiida_mlpot; print("aiida-core", aiida.__version__, "aiida-mlpot", aiida_mlpot.__version__)')"
