"""Shared by the end-to-end loop tests on other systems: the same ActiveLearningWorkChain builder, small budgets.

Each test calls ``get_builder_from_protocol`` exactly as for NaCl (the ``fast`` protocol; small budgets as
overrides, nothing system specific in the code): Lennard-Jones argon (the preset), an EAM metal whose pair style
reads a potential file from Debian's LAMMPS, and crystalline NaCl labelled by CP2K GFN1-xTB (the quantum path,
fixed cell) where one configuration of every labelling fails its SCF on purpose. Each must end converged on the
physical criterion: every replica ran its target steps, and the audit errors are below the limits.
"""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from aiida.engine.processes.utils import prune_mapping
from ase.build import bulk

from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.workflows.active_learning import ActiveLearningWorkChain

EAM_FILE = pathlib.Path('/usr/share/lammps/potentials/Cu_u3.eam')

#: Small budgets shared by the tests: a short sampling, a small initial set, short explorations.
SMALL = {
    'selection': {'seed': 1, 'steps': [{'method': 'uniform_force', 'n': 12}, {'method': 'fps', 'n': 8}]},
    'split': {'method': 'random', 'test_fraction': 0.25, 'seed': 1},
    'loop': {'target_steps': 200, 'max_iterations': 4, 'max_per_iteration': 4, 'max_oracle_calls': 40},
    'sampling': {
        'md_parameters': {'equilibration_steps': 500, 'production_steps': 1000, 'dump_interval': 50}
    },
}


def run_loop(
    structure,
    potential,
    temperatures,
    codes,
    oracle='classical',
    overrides=None,
    potential_files=None,
    **kwargs,
):
    """Run the loop built by ``get_builder_from_protocol`` with the ``fast`` protocol and ``overrides``.

    The random baseline is off unless ``random_baseline=True`` is passed (it has a test of its own).
    """
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        structure,
        potential,
        temperatures=temperatures,
        oracle=oracle,
        protocol='fast',
        overrides=overrides or SMALL,
        codes=codes,
        potential_files=potential_files,
        **{'random_baseline': False, **kwargs},
    )
    return run_get_node(builder)


def assert_converged(results, node):
    assert node.is_finished_ok, node.exit_message
    stopping = results['stopping'].get_dict()
    assert stopping['converged'] and stopping['criterion'] == 'converged', stopping
    last = results['learning_curve'].get_dict()['iterations'][-1]
    assert last['n_triggers'] == 0 and last['n_unstable'] == 0 and last['n_audited'] > 0, last
    assert last['audit_force_rmse'] <= node.inputs.loop['audit_force_rmse'], last
    assert_every_refit_has_new_configurations(node)


def assert_every_refit_has_new_configurations(node):
    """Every fit of the loop (``fit_initial``, ``iteration_kk_fit``) trains on more configurations than the one
    before it: no refit of an unchanged training set."""
    fits = sorted(
        (link.link_label, len(link.node.inputs.gap_fit.dataset))
        for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
        if link.link_label == 'fit_initial'
        or (link.link_label.startswith('iteration_') and link.link_label.endswith('_fit'))
    )
    sizes = [size for _, size in fits]
    assert sizes == sorted(set(sizes)), fits


def dataset_labels(node) -> dict[str, int]:
    """Return the label of every DatasetData the run created (at any depth), with how many carry it."""
    labels: dict[str, int] = {}
    for process in [node, *node.called_descendants]:
        for link in process.base.links.get_outgoing(node_class=DatasetData, link_type=LinkType.CREATE).all():
            labels[link.node.label] = labels.get(link.node.label, 0) + 1
    return labels


def nacl_crystal_8() -> orm.StructureData:
    """The 8-atom rock-salt NaCl cell at the Tosi-Fumi lattice constant (5.62 Å)."""
    return orm.StructureData(ase=bulk('NaCl', 'rocksalt', a=5.62, cubic=True))


#: Overrides of the xTB test: configuration `config_00001` of every labelling fails its SCF (2 SCF steps, no retry).
XTB_OVERRIDES = {
    **SMALL,
    'labelling': {
        'cp2k': {'config_overrides': {'config_00001': {'scf': {'max_scf': 2}, 'robust_retry': False}}}
    },
    'loop': {**SMALL['loop'], 'audit_force_rmse': 0.1, 'audit_energy_rmse': 10.0},
}


def validation_error(builder) -> str | None:
    """Return the error the loop's input validation finds in ``builder`` at launch (None: valid)."""
    inputs = ActiveLearningWorkChain.spec().inputs
    error = inputs.validate(inputs.pre_process(prune_mapping(dict(builder))))
    return None if error is None else str(error)
