#!/usr/bin/env python
"""Active learning of a GAP for molten NaCl (64 atoms, 1100 K and 1400 K), taught by the Tosi-Fumi force field.

Run it with `bash scripts/run-example.sh --loop` (sets everything up first) or, once set up, with
`python examples/active_learning_nacl.py`. One top-level process, `ActiveLearningWorkChain`, does everything:
classical sampling, the initial selection, labels from the classical teacher (Tosi-Fumi + Ewald: physically
meaningful and fast), a `fast` GAP fit on top of a Coulomb baseline (Δ-learning), then explorations by ML MD
that are audited by the teacher, until every replica runs stably and the audited error is small. It prints the
iteration table at the end, then the PK of the run and the commands that show it: `aiida-mlpot status PK` (the
same table, also while it runs), `aiida-mlpot report PK --out DIR` (figures and a summary), `verdi process status
PK` (the call tree) and `verdi process report PK` (every step's report line).
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile', default=None, help='AiiDA profile (default: the default profile)')
    parser.add_argument('--computer', default='localhost', help='computer the codes are on')
    parser.add_argument('--protocol', default='fast', help='fast, balanced or stringent')
    args = parser.parse_args(argv)

    from aiida import load_profile, orm
    from aiida.engine import run_get_node

    from aiida_mlpot.cli.active_learning import baseline_rows, baseline_table, iteration_table
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
        print(iteration_table(results['learning_curve'].get_dict()['iterations']))
    if 'stopping' in results:
        stopping = results['stopping'].get_dict()
        print(f'stopped: {stopping["criterion"]}: {stopping["reason"]}')
    if 'potential' in results:
        metrics = results['metrics'].get_dict()['overall']
        print(
            f'final potential GapPotentialData<{results["potential"].pk}> trained on {len(results["training_set"])} '
            f'configurations; on the test set at its fit: force RMSE {metrics["forces"]["rmse"]:.4g} eV/Å, energy '
            f'RMSE {metrics["energy_per_atom"]["rmse"]:.4g} meV/atom; the test set is now {len(results["test_set"])} '
            'configurations (audits included)'
        )
    rows = baseline_rows(node)
    if rows:  # random_baseline: on for the classical oracle
        print('\nactive learning vs random selection at the same label budget, on the same final test set:')
        print(baseline_table(rows))
    print(f'\nthe run is ActiveLearningWorkChain<{node.pk}>; look at it with')
    print(f'  aiida-mlpot status {node.pk}')
    print(f'  aiida-mlpot report {node.pk} --out report_{node.pk}')
    print(f'  verdi process status -c -m 2 {node.pk}')
    return 0 if node.is_finished_ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
