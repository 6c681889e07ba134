#!/usr/bin/env bash
# The molten-NaCl model densities the tests use (docs/topics/reference-values.md): NPT at 1 bar with the
# Debian `lmp`, Tosi-Fumi + Ewald, 64 atoms, two seeds per temperature. About 3 min on 2 cores.
# Prints: temperature, seed, mean density (g/cm3), standard deviation of the 2-ps block means.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
for T in ${TEMPERATURES:-1100 1400}; do
    for seed in 11 12; do
        lmp -in "$HERE/reference/nacl_npt_density.in" -var T "$T" -var seed "$seed" -log "log.$T.$seed" > /dev/null &
    done
done
wait
for file in melt.rho.*.txt; do
    awk -v f="$file" 'NR > 2 {s += $2; ss += $2 * $2; n++}
        END {split(f, p, "."); m = s / n; printf "T %s K seed %s density %.4f g/cm3 (sd of %d blocks %.4f)\n", p[3], p[4], m, n, sqrt(ss / n - m * m)}' "$file"
done
