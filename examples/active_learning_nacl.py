#!/usr/bin/env python
"""Active learning of a GAP for molten NaCl (64 atoms, 1100 K and 1400 K), taught by the Tosi-Fumi force field.

Run it with `bash scripts/run-example.sh --loop` (sets everything up first) or, once set up, with
`python examples/active_learning_nacl.py`. One top-level process, `ActiveLearningWorkChain`, does everything:
classical sampling, the initial selection, labels from the classical teacher (Tosi-Fumi + Ewald: physically
meaningful and fast), a `fast` GAP fit on top of a Coulomb baseline (Δ-learning), then explorations by ML MD
that are audited by the teacher, until every replica runs stably and the audited error is small. It prints the
iteration table at the end; `verdi process show PK` and `verdi process report PK` tell the rest.
"""

from __future__ import annotations

import argparse
import sys
import time


def iteration_table(curve: dict) -> str:
    """Return the learning curve as a text table."""
    header = (
        f'{"it":>3} {"n_train":>7} {"oracle":>6} {"test F":>8} {"audit F":>8} {"audit E":>8} '
        f'{"triggers":>8} {"unstable":>8}  replicas (outcome@steps)'
    )
    lines = [header, f'{"":>3} {"":>7} {"calls":>6} {"eV/Å":>8} {"eV/Å":>8} {"meV/at":>8}']

    def number(value, digits=4):
        return f'{value:.{digits}g}' if value is not None else '-'

    for row in curve['iterations']:
        replicas = ', '.join(
            f'{key} {item["outcome"]}@{item["steps"]}' for key, item in row['replicas'].items()
        )
        lines.append(
            f'{row["iteration"]:>3} {row["n_train"]:>7} {row["oracle_calls"]:>6} {number(row["test_force_rmse"]):>8} '
            f'{number(row["audit_force_rmse"]):>8} {number(row["audit_energy_rmse"]):>8} {row["n_triggers"]:>8} '
            f'{row["n_unstable"]:>8}  {replicas}'
        )
    return '\n'.join(lines)


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile', default=None, help='AiiDA profile (default: the default profile)')
    parser.add_argument('--computer', default='localhost', help='computer the codes are on')
    parser.add_argument('--protocol', default='fast', help='fast, balanced or stringent')
    args = parser.parse_args(argv)

    from aiida import load_profile, orm
    from aiida.engine import run_get_node

    from aiida_mlpot.presets import nacl_tosi_fumi
    from aiida_mlpot.structures import random_box
    from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

    profile = load_profile(args.profile)
    print(f'== aiida-mlpot: active learning of molten NaCl on profile `{profile.name}`')
    codes = {
        key: orm.load_code(f'{label}@{args.computer}')
        for key, label in (('lammps', 'lmp'), ('gap_fit', 'gap_fit'), ('python', 'python'))
    }
    atoms = random_box({'Na': 32, 'Cl': 32}, density=1.35, min_distance=2.3, seed=2024)
    structure = orm.StructureData(ase=atoms)
    structure.label = 'NaCl 64-atom random box, 1.35 g/cm3'
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        structure,
        nacl_tosi_fumi('ewald'),
        temperatures=[1100.0, 1400.0],
        oracle='classical',
        protocol=args.protocol,
        codes=codes,
    )
    builder.metadata.label = 'NaCl active learning (Tosi-Fumi teacher)'
    start = time.perf_counter()
    results, node = run_get_node(builder)
    elapsed = time.perf_counter() - start
    print(
        f'\n== {node.process_label}<{node.pk}> finished with exit status {node.exit_status} in {elapsed:.0f} s'
    )
    if 'learning_curve' in results:
        print(iteration_table(results['learning_curve'].get_dict()))
    if 'stopping' in results:
        stopping = results['stopping'].get_dict()
        print(f'stopped: {stopping["criterion"]}: {stopping["reason"]}')
    if 'potential' in results:
        metrics = results['metrics'].get_dict()['overall']
        print(
            f'final potential GapPotentialData<{results["potential"].pk}> trained on {len(results["training_set"])} '
            f'configurations; test set of {len(results["test_set"])}: force RMSE {metrics["forces"]["rmse"]:.4g} '
            f'eV/Å, energy RMSE {metrics["energy_per_atom"]["rmse"]:.4g} meV/atom'
        )
    print(f'inspect it: verdi process show {node.pk}; verdi process report {node.pk}')
    return 0 if node.is_finished_ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
