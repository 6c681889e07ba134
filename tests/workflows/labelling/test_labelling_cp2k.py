"""End-to-end tests of LabellingWorkChain with the real cp2k.psmp (GFN1-xTB test oracle, one PBE/GAPW point)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms

from aiida_mlpot.workflows.cp2k_label import Cp2kLabelWorkChain
from aiida_mlpot.workflows.labelling import LabellingWorkChain

from .conftest import nacl_box64, nacl_cell8, strained

pytestmark = pytest.mark.e2e

H_DISPLACEMENT = 0.01  # Å
EPS_STRAIN = 0.002
SCF_FAIL = {'scf': {'max_scf': 2}, 'robust_retry': False}


@pytest.fixture(scope='module')
def xtb_run(code_cp2k):
    """ONE xTB labelling run covering: 8- and 64-atom cells, finite differences, a refused configuration,
    an SCF failure without retry and an SCF failure fixed by the robust retry."""
    base = nacl_cell8()
    plus, minus = base.copy(), base.copy()
    plus.positions[0, 0] += H_DISPLACEMENT
    minus.positions[0, 0] -= H_DISPLACEMENT
    close = base.copy()
    close.positions[1] = close.positions[0] + [0.3, 0.0, 0.0]
    configs = {
        'small': base,
        'small_dx_p': plus,
        'small_dx_m': minus,
        'small_exx_p': strained(base, (0, 0), EPS_STRAIN),
        'small_exx_m': strained(base, (0, 0), -EPS_STRAIN),
        'box64': nacl_box64(),
        'close_pair': close,
        'scf_fail': nacl_cell8(0.15),
        'scf_retry': nacl_cell8(0.12),
    }
    builder = LabellingWorkChain.get_builder_from_protocol(
        code_cp2k,
        {key: orm.StructureData(ase=atoms) for key, atoms in configs.items()},
        protocol='xtb',
        overrides={
            'cp2k': {
                'settings': {'scf': {'eps_scf': 1.0e-8}, 'omp_num_threads': 1},
                'config_overrides': {'scf_fail': SCF_FAIL, 'scf_retry': {'scf': {'max_scf': 2}}},
                'max_concurrent': 4,
            },
            'min_success_fraction': 0.5,
        },
    )
    start = time.perf_counter()
    results, node = run_get_node(builder)
    print(f'xTB labelling of {len(configs)} configurations: {time.perf_counter() - start:.1f} s')
    frames = {atoms.info['label_key']: atoms for atoms in results['labelled'].to_ase()}
    return node, results, frames


def test_outputs_and_exclusions(xtb_run):
    node, results, frames = xtb_run
    assert node.is_finished_ok, node.exit_message
    excluded = results['excluded'].get_dict()
    assert set(excluded) == {'close_pair', 'scf_fail'}
    assert 'refused before labelling: interatomic distance 0.300 Å' in excluded['close_pair']
    assert 'SCF not converged' in excluded['scf_fail']
    assert 'Cp2kLabelWorkChain' in excluded['scf_fail']
    counts = results['counts'].get_dict()
    assert counts['n_input'] == 9
    assert counts['n_labelled'] == 7
    assert counts['n_retried'] == 1
    assert set(frames) == {
        'small',
        'small_dx_p',
        'small_dx_m',
        'small_exx_p',
        'small_exx_m',
        'box64',
        'scf_retry',
    }
    for key, atoms in frames.items():
        n = len(atoms)
        assert np.isfinite(atoms.info['energy'])
        assert atoms.arrays['forces'].shape == (n, 3)
        assert np.asarray(atoms.info['virial']).shape == (3, 3)
        assert np.abs(atoms.arrays['forces'].sum(axis=0)).max() < 1e-3, key
    assert len(frames['box64']) == 64


def test_every_label_links_to_its_calculation(xtb_run):
    node, results, frames = xtb_run
    for key, atoms in frames.items():
        calc = orm.load_node(atoms.info['source_uuid'])
        assert isinstance(calc, orm.CalcJobNode)
        assert calc.process_type == 'aiida.calculations:cp2k'
        assert calc.is_finished_ok
        assert calc.inputs.structure.uuid == node.inputs.structures[key].uuid
        # the labelled dataset was created by the collect_labels calcfunction from the calc's output
        creator = results['labelled'].creator
        assert creator.process_label == 'collect_labels'
        assert calc.outputs.output_parameters.uuid in {
            n.node.uuid for n in creator.base.links.get_incoming().all()
        }


def test_retry_is_a_handler_of_the_label_chain(xtb_run):
    """`scf_retry` fails its SCF (max_scf 2): Cp2kLabelWorkChain reruns it ONCE with the robust settings;
    `scf_fail` (robust retry off) fails after one calculation; the others need one calculation each."""
    node, _, _ = xtb_run
    children = {
        link.link_label: link.node
        for link in node.base.links.get_outgoing(node_class=orm.WorkChainNode).all()
    }
    assert set(children) == {f'label_{key}' for key in node.inputs.structures if key != 'close_pair'}
    assert {child.process_label for child in children.values()} == {'Cp2kLabelWorkChain'}

    def calcs(key):
        return sorted(children[key].called, key=lambda calc: calc.ctime)

    retry = children['label_scf_retry']
    assert retry.is_finished_ok
    first, second = calcs('label_scf_retry')
    assert first.exit_status == 450  # ERROR_SCF_NOT_CONVERGED
    assert first.inputs.parameters['FORCE_EVAL']['DFT']['SCF']['MAX_SCF'] == 2
    parameters = second.inputs.parameters.get_dict()
    assert parameters['FORCE_EVAL']['DFT']['SCF']['MAX_SCF'] == 400  # the protocol's robust settings
    assert parameters['FORCE_EVAL']['DFT']['SCF']['MIXING']['ALPHA'] == 0.2
    assert retry.outputs.final_input_parameters.uuid == second.inputs.parameters.uuid

    failed = children['label_scf_fail']
    assert failed.exit_status == Cp2kLabelWorkChain.exit_codes.ERROR_UNHANDLED_FAILURE.status
    assert [calc.exit_status for calc in calcs('label_scf_fail')] == [450]
    assert all(len(calcs(f'label_{key}')) == 1 for key in ('small', 'box64'))


def test_forces_match_finite_difference(xtb_run):
    """F_x of atom 0 = -(E(x+h) - E(x-h)) / 2h within 1 %: proves units and sign of the forces."""
    _, _, frames = xtb_run
    fd = -(frames['small_dx_p'].info['energy'] - frames['small_dx_m'].info['energy']) / (2 * H_DISPLACEMENT)
    analytic = frames['small'].arrays['forces'][0, 0]
    print(f'F_x(atom 0): analytic {analytic:.6f} eV/A, finite difference {fd:.6f} eV/A')
    assert abs(analytic) > 0.1
    assert analytic == pytest.approx(fd, rel=0.01)


def test_virial_matches_strain_derivative(xtb_run):
    """W_xx = -dE/d(eps_xx) within a few percent: proves units and sign of the virial."""
    _, _, frames = xtb_run
    fd = -(frames['small_exx_p'].info['energy'] - frames['small_exx_m'].info['energy']) / (2 * EPS_STRAIN)
    analytic = np.asarray(frames['small'].info['virial'])[0, 0]
    print(f'W_xx: analytic {analytic:.4f} eV, finite difference {fd:.4f} eV')
    assert analytic == pytest.approx(fd, rel=0.05)


def test_too_few_labelled_is_a_4xx_exit_code(code_cp2k):
    """Every configuration fails: the work chain ends with ERROR_TOO_FEW_LABELLED and still reports why."""
    builder = LabellingWorkChain.get_builder_from_protocol(
        code_cp2k,
        {'a': orm.StructureData(ase=nacl_cell8())},
        overrides={'cp2k': {'settings': {**SCF_FAIL, 'omp_num_threads': 1}}},
    )
    results, node = run_get_node(builder)
    assert node.exit_status == LabellingWorkChain.exit_codes.ERROR_TOO_FEW_LABELLED.status
    assert 'labelled' not in results
    assert 'a' in results['excluded'].get_dict()


def test_pbe_gapw_single_point(code_cp2k):
    """The production path: PBE+D3, GAPW, GTH pseudopotentials and MOLOPT basis from cp2k-data.

    Kept short: a 2-atom primitive cell, 150 Ry and diagonalisation instead of OT (the protocol uses 300 Ry
    and OT, which is slow for tiny cells). About 40 s on 2 loaded cores."""
    from ase.build import bulk

    atoms = bulk('NaCl', 'rocksalt', a=5.64)
    atoms.positions[0] += [0.1, 0.05, 0.0]
    settings = {
        'cutoff': 150,
        'rel_cutoff': 30,
        'eps_default': 1.0e-10,
        'scf': {'eps_scf': 1.0e-5, 'ot': False},
        'robust_retry': False,
        'wavefunction_restarts': 0,
    }
    builder = LabellingWorkChain.get_builder_from_protocol(
        code_cp2k,
        {'prim': orm.StructureData(ase=atoms)},
        protocol='pbe',
        overrides={'cp2k': {'settings': settings}},
    )
    start = time.perf_counter()
    results, node = run_get_node(builder)
    print(f'PBE/GAPW 2-atom single point: {time.perf_counter() - start:.1f} s')
    assert node.is_finished_ok, node.exit_message
    (frame,) = results['labelled'].to_ase()
    calc = orm.load_node(frame.info['source_uuid'])
    parameters = calc.inputs.parameters.get_dict()
    assert parameters['FORCE_EVAL']['DFT']['QS']['METHOD'] == 'GAPW'
    assert set(calc.inputs.file) == {'basis_mlpot', 'potential_mlpot'}
    assert 'Na DZVP-MOLOPT-SR-GTH' in calc.inputs.file['basis_mlpot'].get_content()
    # the data files are outputs of a calcfunction called by the labelling work chain, not stored in a step
    creator = calc.inputs.file['basis_mlpot'].creator
    assert creator.process_label == 'cp2k_data_files'
    assert creator.caller.uuid == node.uuid
    assert frame.info['energy'] < -1000  # about -62 Ha for NaCl with semicore Na
    assert np.abs(frame.arrays['forces'].sum(axis=0)).max() < 0.05


def test_element_without_basis_is_refused(code_cp2k):
    """Pu has no DZVP-MOLOPT-SR-GTH basis in cp2k-data: the work chain reads the data files when it runs and
    stops with ERROR_MISSING_CP2K_DATA before any CP2K job (the validator reads no file)."""
    atoms = Atoms('NaPu', positions=[[0, 0, 0], [2.5, 0, 0]], cell=[6, 6, 6], pbc=True)
    builder = LabellingWorkChain.get_builder_from_protocol(
        code_cp2k, {'a': orm.StructureData(ase=atoms)}, protocol='pbe'
    )
    _, node = run_get_node(builder)
    assert node.exit_status == LabellingWorkChain.exit_codes.ERROR_MISSING_CP2K_DATA.status
    assert 'refused before submission' in node.exit_message
    assert 'Pu: no basis `DZVP-MOLOPT-SR-GTH`' in node.exit_message
    assert 'Na:' not in node.exit_message
    assert not [child for child in node.called if child.process_label == 'Cp2kLabelWorkChain']
