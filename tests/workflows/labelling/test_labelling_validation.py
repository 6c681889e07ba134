"""Input validation, protocols and exit codes of LabellingWorkChain (no binary is run)."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.build import bulk

from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.presets import nacl_tosi_fumi
from aiida_mlpot.workflows.labelling import LabellingWorkChain, failure_reason


def test_exit_codes_are_unique_and_in_range():
    codes = {label: code.status for label, code in LabellingWorkChain.exit_codes.items()}
    assert len(codes) == len(set(codes.values()))
    own = {label: status for label, status in codes.items() if status >= 200}
    assert own == {
        'ERROR_MISSING_CP2K_DATA': 201,
        'ERROR_TOO_FEW_LABELLED': 410,
        'ERROR_SUB_PROCESS_FAILED_LABELLING': 420,
    }


@pytest.fixture
def fake_code(aiida_localhost):
    """A code node that is never run: validation happens before any submission."""
    return orm.InstalledCode(
        computer=aiida_localhost, filepath_executable='/bin/true', label='never-run'
    ).store()


def _structure(atoms: Atoms | None = None):
    return orm.StructureData(ase=atoms if atoms is not None else bulk('NaCl', 'rocksalt', a=5.64, cubic=True))


def _settings(protocol='xtb', **changes):
    settings = LabellingWorkChain.get_protocol_inputs(protocol)['cp2k']['settings']
    settings.update(changes)
    return settings


def _cp2k(code, **kwargs):
    return {'code': code, 'settings': orm.Dict(_settings()), **kwargs}


def _pbe_explicit_maps():
    return _settings('pbe', basis={'Na': 'DZVP-MOLOPT-SR-GTH'}, pseudo={'Na': 'GTH-PBE', 'Cl': 'GTH-PBE'})


@pytest.mark.parametrize(
    ('case', 'message'),
    [
        ('nothing to label', 'give exactly one of `structures`'),
        ('structures and dataset', 'give exactly one of `structures`'),
        ('no oracle', 'give exactly one oracle'),
        ('both oracles', 'give exactly one oracle'),
        ('cp2k without settings', "required value was not provided for 'settings'"),
        ('unknown settings key', 'unknown key `scf.max_sfc`'),
        ('element not in the basis map', 'refused before submission: Cl: no basis named in the settings'),
        ('xtb beyond Rn', 'refused before submission: GFN1-xTB has no parameters'),
        ('override of an unknown configuration', 'names `b`, which is not a configuration'),
        ('override of the basis', 'cannot change `basis`'),
        ('override with an unknown key', 'unknown key `scf.nope`'),
        ('unknown option', 'unknown key `walltime` in `options`'),
        ('unknown guard key', 'unknown key `max_forces` in the outlier guard'),
        ('fraction', 'between 0 and 1'),
        ('max_concurrent', 'at least 1'),
        ('classical without potential', "required value was not provided for 'potential'"),
    ],
)
def test_invalid_inputs_are_refused(fake_code, case, message):
    structures = {'a': _structure()}
    inputs = {'structures': structures, 'cp2k': _cp2k(fake_code)}
    if case == 'nothing to label':
        inputs.pop('structures')
    elif case == 'structures and dataset':
        inputs['dataset'] = DatasetData.from_ase([bulk('NaCl', 'rocksalt', a=5.64, cubic=True)])
    elif case == 'no oracle':
        inputs.pop('cp2k')
    elif case == 'both oracles':
        inputs['classical'] = {'code': fake_code, 'potential': orm.Dict(nacl_tosi_fumi())}
    elif case == 'cp2k without settings':
        inputs['cp2k'] = {'code': fake_code}
    elif case == 'unknown settings key':
        inputs['cp2k']['settings'] = orm.Dict(_settings(scf={'eps_scf': 1e-6, 'max_scf': 5, 'max_sfc': 5}))
    elif case == 'element not in the basis map':
        inputs['cp2k']['settings'] = orm.Dict(_pbe_explicit_maps())
    elif case == 'xtb beyond Rn':
        atoms = Atoms('NaFr', positions=[[0, 0, 0], [3, 0, 0]], cell=[6, 6, 6], pbc=True)
        inputs['structures'] = {'a': _structure(atoms)}
    elif case == 'override of an unknown configuration':
        inputs['cp2k']['config_overrides'] = orm.Dict({'b': {'scf': {'max_scf': 2}}})
    elif case == 'override of the basis':
        inputs['cp2k']['settings'] = orm.Dict(_settings('pbe'))
        inputs['cp2k']['config_overrides'] = orm.Dict({'a': {'basis': {'default': 'SZV-MOLOPT-SR-GTH'}}})
    elif case == 'override with an unknown key':
        inputs['cp2k']['config_overrides'] = orm.Dict({'a': {'scf': {'nope': 2}}})
    elif case == 'unknown option':
        inputs['options'] = orm.Dict({'walltime': 10})
    elif case == 'unknown guard key':
        inputs['guard'] = orm.Dict({'max_forces': 10})
    elif case == 'fraction':
        inputs['min_success_fraction'] = orm.Float(1.5)
    elif case == 'max_concurrent':
        inputs['cp2k']['max_concurrent'] = orm.Int(0)
    elif case == 'classical without potential':
        inputs.pop('cp2k')
        inputs['classical'] = {'code': fake_code}
    with pytest.raises(ValueError, match=message):
        run_get_node(LabellingWorkChain, **inputs)


def _validate(builder) -> str | None:
    return LabellingWorkChain.spec().inputs.validate(builder._inputs(prune=True))


def test_cp2k_builder_from_protocol(fake_code):
    """The protocol is resolved into `cp2k.settings` when the builder is made; overrides are merged."""
    builder = LabellingWorkChain.get_builder_from_protocol(
        fake_code,
        [_structure(), _structure()],
        protocol='stringent',
        overrides={'cp2k': {'settings': {'scf': {'max_scf': 7}}, 'max_concurrent': 2}},
        options={'max_wallclock_seconds': 600},
    )
    assert _validate(builder) is None
    assert sorted(builder.structures) == ['config_00000', 'config_00001']
    settings = builder.cp2k.settings.get_dict()
    assert settings['cutoff'] == 400  # stringent
    assert settings['qs_method'] == 'GAPW'  # inherited from pbe
    assert settings['scf']['max_scf'] == 7  # override
    assert settings['scf']['ot'] is True
    assert settings['robust_retry'] is True  # default_inputs
    assert builder.cp2k.max_concurrent.value == 2
    assert builder.options.get_dict() == {'max_wallclock_seconds': 600}
    assert 'protocol' not in LabellingWorkChain.spec().inputs  # no run-time protocol port
    assert 'overrides' not in LabellingWorkChain.spec().inputs


def test_builder_from_protocol_refuses_what_does_not_apply(fake_code):
    structures = {'a': _structure()}
    with pytest.raises(ValueError, match='unknown override key `cp2k.max_concurent`'):
        LabellingWorkChain.get_builder_from_protocol(
            fake_code, structures, overrides={'cp2k': {'max_concurent': 2}}
        )
    with pytest.raises(ValueError, match='unknown key `scf.max_sfc`'):
        LabellingWorkChain.get_builder_from_protocol(
            fake_code, structures, overrides={'cp2k': {'settings': {'scf': {'max_sfc': 2}}}}
        )
    with pytest.raises(ValueError, match='unknown protocol `fast`'):
        LabellingWorkChain.get_builder_from_protocol(fake_code, structures, protocol='fast')
    with pytest.raises(ValueError, match='classical oracle only'):
        LabellingWorkChain.get_builder_from_protocol(fake_code, structures, potential=nacl_tosi_fumi())
    with pytest.raises(ValueError, match='cp2k oracle only'):
        LabellingWorkChain.get_builder_from_protocol(
            fake_code, structures, protocol='xtb', oracle='classical', potential=nacl_tosi_fumi()
        )
    with pytest.raises(ValueError, match='override key `cp2k` does not apply'):
        LabellingWorkChain.get_builder_from_protocol(
            fake_code, structures, oracle='classical', potential=nacl_tosi_fumi(), overrides={'cp2k': {}}
        )


def test_classical_builder_carries_no_cp2k_input(fake_code):
    """A classical labelling run records only what applies to it: no CP2K port, no CP2K default."""
    dataset = DatasetData.from_ase([bulk('NaCl', 'rocksalt', a=5.64, cubic=True)])
    builder = LabellingWorkChain.get_builder_from_protocol(
        fake_code,
        dataset,
        oracle='classical',
        potential=nacl_tosi_fumi(),
        overrides={'min_success_fraction': 0.9},
    )
    assert _validate(builder) is None
    inputs = builder._inputs(prune=True)
    assert 'cp2k' not in inputs
    assert inputs['classical']['potential'].get_dict() == nacl_tosi_fumi()
    processed = LabellingWorkChain.spec().inputs.pre_process(dict(inputs))
    assert 'cp2k' not in processed  # the CP2K namespace's defaults (max_concurrent) are not populated
    assert processed['min_success_fraction'].value == 0.9


def test_failure_reason_names_the_last_calculation(aiida_localhost):
    """The reason of an excluded configuration quotes the label chain and its last Cp2kCalculation."""
    from aiida.common.links import LinkType
    from aiida.engine import ProcessState

    chain = orm.WorkflowNode()
    chain.set_process_label('Cp2kLabelWorkChain')
    chain.set_process_state(ProcessState.FINISHED)
    chain.set_exit_status(402)
    chain.set_exit_message('The process failed with an unhandled failure.')
    chain.store()
    for status in (450, 450):
        calc = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:cp2k')
        calc.set_process_state(ProcessState.FINISHED)
        calc.set_exit_status(status)
        calc.set_exit_message('SCF cycle did not converge for the given threshold.')
        calc.base.links.add_incoming(chain, link_type=LinkType.CALL_CALC, link_label='iteration')
        calc.store()
        parameters = orm.Dict({'scf_converged': False})
        parameters.base.links.add_incoming(calc, link_type=LinkType.CREATE, link_label='output_parameters')
        parameters.store()
    reason = failure_reason(chain)
    assert f'Cp2kLabelWorkChain<{chain.pk}> failed (exit status 402' in reason
    assert f'Cp2kCalculation<{calc.pk}> exit status 450' in reason
    assert reason.endswith('(SCF not converged)')
