"""Stage 3: label the selected configurations.

The classical teacher (Tosi-Fumi + Ewald, the same potential as the sampling stage, one LAMMPS job) is the
physical reference of this demo. Two configurations are additionally labelled with CP2K GFN1-xTB to exercise
the quantum path (Cp2kLabelWorkChain, forces/stress parsing, SCF checks): xTB is a TEST oracle here, its
physics of molten NaCl is wrong (strongly negative pressure), so its labels are printed, never trained on.
"""

from __future__ import annotations

import os

import numpy as np
from aiida.engine import run_get_node

from aiida_mlpot.common.keys import config_index
from aiida_mlpot.common.units import GPA_TO_EV_PER_ANGSTROM3
from aiida_mlpot.workflows.labelling import LabellingWorkChain

#: Number of selected configurations also labelled with CP2K xTB.
N_XTB = 2


def _summary(frames) -> str:
    energies = np.array([atoms.info['energy'] / len(atoms) for atoms in frames])
    forces = np.concatenate([np.linalg.norm(atoms.arrays['forces'], axis=1) for atoms in frames])
    pressures = [
        np.trace(atoms.info['virial']) / (3 * atoms.get_volume()) / GPA_TO_EV_PER_ANGSTROM3
        for atoms in frames
    ]
    return (
        f'E/atom {energies.min():.4f} .. {energies.max():.4f} eV, |f| mean {forces.mean():.3f} max '
        f'{forces.max():.3f} eV/Å, virial pressure {np.mean(pressures):.2f} GPa'
    )


def _check(node, name: str):
    if not node.is_finished_ok:
        raise RuntimeError(
            f'{name} LabellingWorkChain<{node.pk}> failed: {node.exit_status} {node.exit_message}'
        )


def _options(code) -> dict:
    """CP2K with OpenMP threads; if the code is set up for MPI, allow mpirun as root where needed."""
    if code.with_mpi:
        return {'withmpi': True, 'allow_mpi_as_root': os.geteuid() == 0, 'omp_num_threads': 1}
    return {'withmpi': False, 'omp_num_threads': 2}


def run(ctx: dict) -> dict:
    """Label ``ctx['selected']`` (classical teacher) and 2 of its configurations with CP2K xTB; add ``labelled``."""
    builder = LabellingWorkChain.get_builder_from_protocol(
        ctx['codes']['lammps'],
        ctx['selected'],  # the selection's DatasetData: the labels keep config_type, pool_index, ...
        oracle='classical',
        potential=ctx['classical_potential'],
        overrides={'min_success_fraction': 0.9},
    )
    results, node = run_get_node(builder)
    _check(node, 'classical')
    labelled = results['labelled']
    counts = results['counts'].get_dict()
    classical = {atoms.info['label_key']: atoms for atoms in labelled.to_ase()}
    print(
        f'LabellingWorkChain<{node.pk}> (classical teacher, one LAMMPS job): {counts["n_labelled"]}/'
        f'{counts["n_input"]} labelled -> DatasetData<{labelled.pk}>'
    )
    print(f'  {_summary(list(classical.values()))}')
    for key, reason in results['excluded'].get_dict().items():
        print(f'  excluded {key}: {reason}')

    keys = sorted(classical)[:N_XTB]
    code = ctx['codes']['cp2k']
    builder_xtb = LabellingWorkChain.get_builder_from_protocol(
        code,
        {key: ctx['selected_structures'][config_index(key)] for key in keys},
        protocol='xtb',
        overrides={'cp2k': {'max_concurrent': 1}},
        options=_options(code),
    )
    results_xtb, node_xtb = run_get_node(builder_xtb)
    _check(node_xtb, 'CP2K xTB')
    xtb = results_xtb['labelled'].to_ase()
    print(
        f'LabellingWorkChain<{node_xtb.pk}> (CP2K GFN1-xTB, a TEST oracle only): {len(xtb)} configurations '
        f'-> DatasetData<{results_xtb["labelled"].pk}>'
    )
    print(f'  {_summary(xtb)}')
    for atoms in xtb:
        reference = classical[atoms.info['label_key']]
        diff = atoms.arrays['forces'] - reference.arrays['forces']
        print(
            f'  {atoms.info["label_key"]}: Cp2kCalculation {atoms.info["source_uuid"][:8]}, '
            f'force RMS difference xTB - Tosi-Fumi {np.sqrt(np.mean(diff**2)):.3f} eV/Å '
            '(different physics: xTB is not used for fitting)'
        )
    return {'labelled': labelled}
