"""EvaluateCalculation: inputs refused before submission, the job it writes, and a real run with the `python` code.

The GAP is the recorded gap_fit output of tests/parsers/gap_fit/fixtures/success (NaCl, 2b + SOAP).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from ase.build import bulk

FIXTURES = pathlib.Path(__file__).parents[2] / 'parsers' / 'gap_fit' / 'fixtures'


@pytest.fixture(scope='module')
def potential(aiida_profile):
    from aiida_mlpot.data.potential import GapPotentialData

    return GapPotentialData.from_files(FIXTURES / 'success' / 'gap.xml').store()


@pytest.fixture(scope='module')
def dataset(aiida_profile):
    from aiida_mlpot.data.dataset import DatasetData
    from aiida_mlpot.data.extxyz import read_frames

    with open(FIXTURES / 'success_dataset.xyz') as handle:
        return DatasetData.from_ase(read_frames(handle)).store()


def inputs(code, potential, dataset, **extra):
    return {
        'code': code,
        'potential': potential,
        'dataset': dataset,
        'metadata': {'options': {'max_wallclock_seconds': 600}},
        **extra,
    }


def test_bad_inputs_refused_before_submission(code_python, potential):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.evaluate import EvaluateCalculation
    from aiida_mlpot.data.dataset import DatasetData

    empty = DatasetData.from_ase([])
    with pytest.raises(ValueError, match='`dataset` holds no configuration'):
        run_get_node(EvaluateCalculation, **inputs(code_python, potential, empty))
    potassium = DatasetData.from_ase([bulk('KCl', 'rocksalt', a=6.3)])
    with pytest.raises(ValueError, match='holds species K that the potential does not know'):
        run_get_node(EvaluateCalculation, **inputs(code_python, potential, potassium))
    nacl = DatasetData.from_ase([bulk('NaCl', 'rocksalt', a=5.64)])
    with pytest.raises(ValueError, match='`parameters.uncertainity`: unknown key'):
        run_get_node(
            EvaluateCalculation,
            **inputs(code_python, potential, nacl, parameters=orm.Dict({'uncertainity': True})),
        )
    with pytest.raises(ValueError, match='`parameters.uncertainty`: must be a bool'):
        run_get_node(
            EvaluateCalculation,
            **inputs(code_python, potential, nacl, parameters=orm.Dict({'uncertainty': 1})),
        )


def test_prepare_for_submission(code_python, potential, dataset):
    """Dry run: the driver's command line, its JSON input, the potential and dataset files copied."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.evaluate import EvaluateCalculation

    extra = {'parameters': orm.Dict({'uncertainty': True})}
    builder_inputs = inputs(code_python, potential, dataset, **extra)
    builder_inputs['metadata'].update(dry_run=True, store_provenance=False)
    _, node = run_get_node(EvaluateCalculation, **builder_inputs)
    folder = pathlib.Path(node.dry_run_info['folder'])
    script = (folder / '_aiidasubmit.sh').read_text()
    assert "'-m' 'aiida_mlpot.engines.evaluate' 'input.json'" in script
    config = json.loads((folder / 'input.json').read_text())
    assert config == {
        'dataset': 'dataset.xyz',
        'potential': {'xml': 'gap.xml'},
        'predictions': 'predictions.xyz',
        'summary': 'summary.json',
        'uncertainty': True,
    }
    copied = sorted(path.name for path in folder.iterdir() if path.name.startswith(('gap.xml', 'dataset')))
    assert copied == sorted([*potential.filenames, 'dataset.xyz'])


@pytest.mark.e2e
def test_real_run_matches_the_calculator(code_python, potential, dataset):
    """The real driver on the compute node (here: localhost) predicts what the potential's calculator does."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_mlpot.calculations.evaluate import EvaluateCalculation

    extra = {'parameters': orm.Dict({'uncertainty': True})}
    results, node = run_get_node(EvaluateCalculation, **inputs(code_python, potential, dataset, **extra))
    assert node.is_finished_ok, node.exit_message
    predictions = results['predictions']
    assert predictions.n_configs == dataset.n_configs == 4
    assert {'energy', 'forces', 'virial'} <= set(predictions.properties)
    calculator = potential.get_calculator()
    for frame, predicted in zip(dataset.to_ase(), predictions.to_ase()):
        frame.calc = calculator
        assert predicted.info['energy'] == pytest.approx(frame.get_potential_energy(), abs=1e-9)
        assert np.allclose(predicted.arrays['forces'], frame.get_forces(), atol=1e-9)
        assert predicted.info['config_type'] == frame.info['config_type']
        assert predicted.info['uncertainty'] > 0
