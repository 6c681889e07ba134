"""ValidationWorkChain end to end on 64-atom molten NaCl: the test GAP (fitted by the real gap_fit to Tosi-Fumi
labels at 1400 K) against its teacher (Tosi-Fumi + Ewald in the real LAMMPS), with the real python ML-MD driver.

Short runs (tests): the point is that every check runs and gives a verdict and the PNGs, not the verdicts'
values; the figures are printed (``-s``) for the record.
"""

from __future__ import annotations

import json

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.workflows.validation import ValidationWorkChain
from tests.calculations.ml_md.conftest import gap_potential  # noqa: F401
from tests.engines.conftest import ml_md_gap  # noqa: F401

VERDICTS = {'pass', 'fail', 'inconclusive'}

#: Short runs: 400 steps of 2 fs of ML MD (a frame every 5 steps), the teacher 2 ps equilibration + 1.6 ps.
SHORT = {
    'ml_md': {'md': {'parameters': {'md': {'n_steps': 400, 'dump_interval': 5}}}},
    'reference_md': {
        'md_parameters': {'equilibration_steps': 1000, 'production_steps': 800, 'dump_interval': 5}
    },
    'parameters': {'discard': 0.1, 'n_bins': 60, 'rerun_frames': 3},
}


@pytest.fixture
def liquid(ml_md_gap):  # noqa: F811
    """A held-out 1400 K melt frame of the teacher (the start of every run)."""
    atoms = ml_md_gap.held_out[-1].copy()
    atoms.calc = None
    for key in list(atoms.info):
        atoms.info.pop(key)
    return orm.StructureData(ase=atoms)


def test_unknown_parameter_is_refused_by_name(code_python, code_lmp, gap_potential, liquid):  # noqa: F811
    builder = ValidationWorkChain.get_builder_from_protocol(
        {'python': code_python, 'lammps': code_lmp}, liquid, 'fast',
        potential=gap_potential, state_points=[{'temperature_K': 1400.0}], teacher=nacl_tosi_fumi(),
    )  # fmt: skip
    with pytest.raises(ValueError, match='parameters.rdf_bins'):
        builder.parameters = orm.Dict({'discard': 0.1, 'rdf_bins': 50})
    with pytest.raises(ValueError, match='unknown override key `ml_md.steps`'):
        ValidationWorkChain.get_builder_from_protocol(
            {'python': code_python, 'lammps': code_lmp}, liquid, 'fast', {'ml_md': {'steps': 3}},
            potential=gap_potential, state_points=[{'temperature_K': 1400.0}], teacher=nacl_tosi_fumi(),
        )  # fmt: skip


@pytest.mark.e2e
def test_validation_against_the_teacher(code_python, code_lmp, gap_potential, liquid):  # noqa: F811
    """NVT and NPT at 1400 K, 1 bar: RDF, diffusion, density, stability and the rerun check, with PNG."""
    builder = ValidationWorkChain.get_builder_from_protocol(
        {'python': code_python, 'lammps': code_lmp}, liquid, 'fast', SHORT,
        potential=gap_potential, state_points=[{'temperature_K': 1400.0, 'pressure_bar': 1.0}],
        teacher=nacl_tosi_fumi(),
    )  # fmt: skip
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    validation = results['validation'].get_dict()
    summary = json.loads(json.dumps(validation))
    summary['state_points']['T1400_V1']['md']['structure'].pop('rdfs')
    print(json.dumps(summary, indent=1))
    assert results['verdict'].value in VERDICTS
    assert results['verdict'].value == validation['verdict']
    points = validation['state_points']
    assert set(points) == {'T1400_V1', 'T1400_P1'}
    md = points['T1400_V1']['md']
    assert set(md['structure']['pairs']) == {'Cl-Cl', 'Cl-Na', 'Na-Na'}
    for pair in md['structure']['pairs'].values():
        assert pair['verdict'] in VERDICTS and pair['delta_g'] >= 0.0
    assert set(md['diffusion']['species']) == {'Cl', 'Na'}
    assert md['diffusion']['species']['Na']['reference_diffusion'] > 0.0
    density = points['T1400_P1']['density']
    assert density['verdict'] in VERDICTS
    assert 1.0 < density['reference_density'] < 1.6  # the teacher's 1400 K melt at 1 bar (1.295 g/cm³)
    assert points['T1400_V1']['stability']['verdict'] == 'pass'
    rerun = validation['rerun']
    assert rerun['labelled'] == rerun['sampled'] == 6
    assert rerun['errors']['overall']['forces']['rmse'] > 0.0
    assert set(rerun['errors']['per_config_type']) == {'T1400_V1', 'T1400_P1'}
    assert rerun['pressure_bias']['count'] == 6
    png = results['rdf_plots']['T1400_V1']
    with png.open(mode='rb') as handle:
        assert handle.read(8) == b'\x89PNG\r\n\x1a\n'
    assert 'T1400_P1' not in results['rdf_plots']
