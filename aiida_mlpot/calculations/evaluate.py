"""`EvaluateCalculation`: a GAP's predictions on every configuration of a dataset, computed on the compute node.

The calculation runs :mod:`aiida_mlpot.engines.evaluate` with the ``python`` code of the environment (command
line ``python -m aiida_mlpot.engines.evaluate input.json``), so that evaluating a growing test set never runs
inside a daemon worker. ``prepare_for_submission`` only writes the JSON input and asks for the potential files
and the dataset file to be copied; the :class:`~aiida_mlpot.parsers.evaluate.EvaluateParser` attaches the
``predictions``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiida import orm
from aiida.common.datastructures import CalcInfo
from aiida.common.folders import Folder

from aiida_mlpot.calculations.driver import DriverCalculation
from aiida_mlpot.calculations.ports import missing_code_message
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.potential import GapPotentialData

__all__ = ('PARAMETERS', 'EvaluateCalculation', 'check_dataset', 'validate_inputs', 'validate_parameters')

#: Keys of the ``parameters`` input: (type, default, meaning).
PARAMETERS = {
    'uncertainty': (
        bool,
        False,
        "also compute each frame's GAP predictive std (max over atoms of sqrt(local_gap_variance), eV) "
        "as info['uncertainty']",
    ),
}


def validate_parameters(node, _) -> str | None:
    """Return an error message naming the first unknown key or wrong value of ``parameters``."""
    if node is None:
        return None
    for key, value in node.get_dict().items():
        if key not in PARAMETERS:
            return f'`parameters.{key}`: unknown key; allowed: {", ".join(PARAMETERS)}'
        kind = PARAMETERS[key][0]
        if not isinstance(value, kind):
            return f'`parameters.{key}`: must be a {kind.__name__}; got {value!r}'
    return None


def check_dataset(dataset: DatasetData, species: Sequence[str], name: str = 'dataset') -> str | None:
    """Return why ``dataset`` cannot be evaluated by a potential of ``species`` (empty, unknown species), or None.

    :param name: the input the dataset is given as, named in the message.
    """
    if dataset.n_configs == 0:
        return f'the `{name}` holds no configuration: there is nothing to evaluate'
    unknown = sorted(set(dataset.species) - set(species))
    if unknown:
        return (
            f'the `{name}` holds species {", ".join(unknown)} that the potential does not know (it knows '
            f'{", ".join(species)})'
        )
    return None


def validate_inputs(inputs, _) -> str | None:
    """Refuse an empty dataset and species the potential does not know, naming them."""
    if 'dataset' not in inputs or 'potential' not in inputs:
        return None  # reported by the port validation
    return missing_code_message(inputs, 'python') or check_dataset(
        inputs['dataset'], inputs['potential'].species
    )


class EvaluateCalculation(DriverCalculation):
    """Predict energy, forces and virial (and optionally the GAP predictive std) of every configuration."""

    DRIVER_MODULE = 'aiida_mlpot.engines.evaluate'
    PARSER_NAME = 'mlpot.evaluate'
    FILENAME_DATASET = 'dataset.xyz'
    RESULT_FILES = {'predictions': 'predictions.xyz'}
    RESULT_INVALID = 'the predicted configurations cannot be read or do not match the dataset'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('potential', valid_type=GapPotentialData, help='The GAP to evaluate.')
        spec.input(
            'dataset',
            valid_type=DatasetData,
            help='The configurations to evaluate (their labels, if any, are not used).',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help='Optional settings: '
            + '; '.join(
                f'`{key}` ({kind.__name__}, default {default}): {meaning}'
                for key, (kind, default, meaning) in PARAMETERS.items()
            ),
        )
        spec.inputs.validator = validate_inputs

        spec.output(
            'predictions',
            valid_type=DatasetData,
            help='The configurations in the same order, labelled by the GAP: energy (eV), forces (eV/Å), virial '
            '(eV, periodic cells); config_type, source_uuid, step, frame, split_index and pool_index kept; '
            '`uncertainty` (eV) when asked.',
        )

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write ``input.json``; copy the potential files and the dataset file."""
        potential, dataset = self.inputs.potential, self.inputs.dataset
        parameters = self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {}
        config = {
            'dataset': self.FILENAME_DATASET,
            'potential': {'xml': potential.xml_filename},
            'uncertainty': bool(parameters.get('uncertainty', PARAMETERS['uncertainty'][1])),
        }
        local_copy_list = [
            *((potential.uuid, name, name) for name in potential.filenames),
            (dataset.uuid, dataset.filename, self.FILENAME_DATASET),
        ]
        return self.driver_calcinfo(folder, config, local_copy_list)
