"""`ActiveLearningWorkChain`: from a structure and a classical force field to a GAP that MD can trust.

The outline is the algorithm::

    sample the state points with the classical force field (SamplingWorkChain)
    select the initial set from the pool (select_configurations) and label it (LabellingWorkChain)
    split it into training and test sets (split_dataset) and fit (GapFitWorkChain)
    while not finished:
        explore: ML MD with the current GAP at every state point (MlMdWorkChain, one replica each)
        plan: audit frames (visited without a trigger) + distinct candidates (flagged frames, the last
              good frame of an unstable run)                                   (plan_iteration)
        label them with the oracle                                             (LabellingWorkChain)
        assess: the audit errors on what the MD visited, and the verdict       (assess_iteration)
        grow the training set (candidates; the audits when the audit failed), else the test set (audits)
                                                                               (grow_training_set)
        refit, unless the verdict stops the loop                               (GapFitWorkChain)
    results: the potential, its training and test sets, the learning curve    (learning_curve)

Why the audit: the GAP predictive variance measures novelty, not error (docs/active_learning.md): a potential
can be wrong and confident. So each iteration relabels a few frames the ML MD visited without triggering and
measures the true error there; the loop is converged only when every replica ran ``target_steps`` without a
trigger or an instability AND that audit error is below the limits. Hard limits (``max_iterations``,
``max_oracle_calls``) end it otherwise, with a dedicated exit code and every output attached.

Δ-learning: when the classical potential is coulombic with charges, the GAP is fitted on top of a fixed-charge
Coulomb baseline with the same charges (``delta_learning``, default on): the local GAP then only learns the
short-range difference, which cut the error on visited frames by an order of magnitude for molten NaCl.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence

from aiida import orm
from aiida.common import AttributeDict
from aiida.common.links import LinkType
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_mlpot.calculations.evaluate import EvaluateCalculation
from aiida_mlpot.calculations.functions.active_learning import (
    assess_iteration,
    exploration_starts,
    grow_training_set,
    learning_curve,
    plan_iteration,
    random_baseline_set,
    stopped_verdict,
)
from aiida_mlpot.calculations.functions.metrics import compute_error_metrics
from aiida_mlpot.calculations.functions.selection import select_configurations, split_dataset
from aiida_mlpot.calculations.gap_fit import declared_memory_mb
from aiida_mlpot.calculations.lammps import validate_atoms, validate_potential_inputs
from aiida_mlpot.calculations.ports import define_potential_ports, load_code_by_label
from aiida_mlpot.common.keys import config_key
from aiida_mlpot.data.dataset import DatasetData
from aiida_mlpot.data.potential import GapPotentialData
from aiida_mlpot.inputs.gap_fit import DatasetStats, dataset_stats, plan_memory
from aiida_mlpot.potentials.classical import is_coulombic
from aiida_mlpot.selection import validate_selection_spec, validate_split_spec
from aiida_mlpot.workflows.gap_fit import GapFitWorkChain
from aiida_mlpot.workflows.labelling import LabellingWorkChain
from aiida_mlpot.workflows.ml_md import MlMdWorkChain
from aiida_mlpot.workflows.protocols.utils import ProtocolMixin, populate_builder
from aiida_mlpot.workflows.recovery import RecoveryMixin
from aiida_mlpot.workflows.sampling import SamplingWorkChain
from aiida_mlpot.workflows.state_points import exploration_key, sampling_point, validate_state_points
from aiida_mlpot.workflows.validation import ValidationWorkChain

__all__ = ('ORACLES', 'ActiveLearningWorkChain', 'call_label', 'check_fit_memory', 'largest_fitting_size')

#: The oracles of ``get_builder_from_protocol`` and the labelling protocol each uses.
ORACLES = {'classical': None, 'cp2k-xtb': 'xtb', 'cp2k-pbe': 'pbe'}
#: virial sigma (eV per atom) of an NVT-only loop labelled by GFN1-xTB: so large that the virial is not fitted.
#: GFN1-xTB's analytical stress on molten NaCl at the Tosi-Fumi volume is about -40 GPa (virial ~ -43 eV per
#: 8-atom cell): fitted with the protocols' 0.05 eV per atom it dominates the fit and doubled the test force RMSE
#: (0.084 -> 0.154 eV/Å, measured with gap_fit on the xTB loop test's data). At a fixed cell nothing uses it.
XTB_FIXED_CELL_VIRIAL_SIGMA = 100.0
#: Keys of the ``loop`` input and their meaning (see the port's help).
LOOP_KEYS = {
    'target_steps': 'ML-MD steps every replica must run without trigger or instability',
    'audit_per_replica': 'frames per replica relabelled although nothing triggered (spread in time)',
    'max_per_iteration': 'candidates labelled per iteration, at most',
    'min_distance': 'SOAP distance below which a candidate duplicates a training or a kept configuration',
    'soap': 'SOAP settings of that distance',
    'audit_force_rmse': 'eV/Å: largest audit force RMSE (components) of a converged loop',
    'audit_energy_rmse': 'meV/atom: largest audit energy RMSE of a converged loop (None: not checked)',
    'max_iterations': 'hard limit on exploration iterations',
    'max_oracle_calls': 'hard limit on configurations sent to the oracle (initial set included)',
    'sampling_volume_scales': 'NVT state points: volume factors sampled by the classical MD',
    'baseline_cutoff': 'Å: cutoff of the Coulomb baseline of the Δ-learning fit',
    'trigger': "what stops a replica: 'variance' (the GAP predictive variance, default) or 'rematch' (the REMatch "
    'similarity to the training set, its critical similarity calibrated from the training set)',
}
#: The potentials ``validate`` validates (the second one with ``random_baseline``).
VALIDATED = ('active_learning', 'random_baseline')
#: ``loop.trigger``: the ML-MD extrapolation method of the replicas.
TRIGGERS = {'variance': 'gap_variance', 'rematch': 'rematch'}
_LOOP_INT = ('target_steps', 'audit_per_replica', 'max_per_iteration', 'max_iterations', 'max_oracle_calls')
_LOOP_POSITIVE = ('min_distance', 'audit_force_rmse', 'baseline_cutoff')


def validate_loop(node, _) -> str | None:
    """Validate the ``loop`` settings: known keys, positive numbers."""
    values = node.get_dict()
    unknown = sorted(set(values) - set(LOOP_KEYS))
    if unknown:
        return f'`loop.{unknown[0]}`: unknown key; known: {", ".join(LOOP_KEYS)}'
    missing = sorted(
        set(LOOP_KEYS) - set(values) - {'soap', 'audit_energy_rmse', 'baseline_cutoff', 'trigger'}
    )
    if missing:
        return f'`loop.{missing[0]}`: missing'
    for key in _LOOP_INT:
        value = values[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < (0 if key == 'audit_per_replica' else 1)
        ):
            return f'`loop.{key}`: must be a positive integer, got {value!r}'
    for key in (*_LOOP_POSITIVE, 'audit_energy_rmse'):
        value = values.get(key)
        if value is None and key != 'min_distance':
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            return f'`loop.{key}`: must be a positive number, got {value!r}'
    scales = values['sampling_volume_scales']
    if not isinstance(scales, list) or not scales or 1.0 not in [float(x) for x in scales]:
        return '`loop.sampling_volume_scales`: a non-empty list that contains 1.0 (the exploration volume)'
    trigger = values.get('trigger', 'variance')
    if trigger not in TRIGGERS:
        return f'`loop.trigger`: unknown trigger {trigger!r}; choose from {", ".join(TRIGGERS)}'
    soap = values.get('soap')
    if soap is not None and not isinstance(soap, dict):
        return '`loop.soap`: must be a dictionary of SOAP settings'
    return None


def validate_start(value: Mapping) -> str | None:
    """Validate how the loop starts: from the sampling (``sampling``, ``selection``) or from ``training_set``."""
    if 'training_set' not in value:
        if 'test_set' in value:
            return '`test_set`: only used with `training_set`'
        for port in ('sampling', 'selection', 'split'):
            if not value.get(port):
                return f'`{port}`: required unless the loop starts from a `training_set`'
        return None
    for port in ('sampling', 'selection'):
        if value.get(port):
            return f'`{port}`: not used when the loop starts from `training_set`; leave it out'
    if 'test_set' in value and 'split' in value:
        return '`split`: not used when `test_set` is given; leave it out'
    if 'test_set' not in value and 'split' not in value:
        return '`split`: required to split `training_set` when no `test_set` is given'
    symbols = set(value['structure'].get_symbols_set()) if 'structure' in value else None
    for port in ('training_set', 'test_set'):
        if port not in value:
            continue
        dataset = value[port]
        if len(dataset) == 0:
            return f'`{port}`: empty'
        for label in ('energy', 'forces'):
            if not dataset.has_property(label):
                return f'`{port}`: `{label}` missing in some configuration (energies and forces are needed)'
        if symbols is None:
            continue
        extra = sorted(set(dataset.species) - symbols)
        if extra:
            return f'`{port}`: species `{extra[0]}` is not in `structure` ({", ".join(sorted(symbols))})'
        absent = sorted(symbols - set(dataset.species))
        if absent and port == 'training_set':
            return f'`training_set`: no configuration has the species `{absent[0]}` of `structure`'
    return None


def validate_inputs(value, _) -> str | None:
    """Validate the combination: how the loop starts, the structure, selection and split specs, the oracle's
    potential, Δ-learning charges."""
    for check in (validate_start, validate_trigger, validate_extras):
        message = check(value)
        if message:
            return message
    if 'structure' in value:
        atoms = value['structure'].get_ase()
        message = validate_atoms(atoms)
        if message:
            return f'`structure`: {message}'
        points = value['state_points'].get_list() if 'state_points' in value else []
        if not all(atoms.pbc) and any(isinstance(p, dict) and 'pressure_bar' in p for p in points):
            return '`structure`: NPT state points (`pressure_bar`) need a structure periodic in all three directions'
    for port, check in (('selection', validate_selection_spec), ('split', validate_split_spec)):
        if port in value:
            message = check(value[port].get_dict())
            if message:
                return f'`{port}`: {message}'
    if 'classical_potential' in value and 'structure' in value:
        message = validate_potential_inputs(
            value['classical_potential'].get_dict(),
            value.get('potential_files'),
            value['structure'].get_ase().get_chemical_symbols(),
        )
        if message:
            return f'`classical_potential`: {message}'
    if 'structure' in value and 'classical_potential' in value and 'delta_learning' in value:
        potential = value['classical_potential'].get_dict()
        if value['delta_learning'].value and is_coulombic(potential):
            symbols = set(value['structure'].get_symbols_set())
            missing = sorted(symbols - set(potential.get('charges') or {}))
            if missing:
                return (
                    f'`classical_potential.charges.{missing[0]}`: missing, needed by the Δ-learning baseline'
                )
    return None


def trigger_extrapolation(extrapolation: Mapping, trigger: str) -> dict:
    """Return the ``extrapolation`` settings of the replicas for ``loop.trigger``.

    ``variance``: as given. ``rematch``: the method becomes ``rematch``; when the settings were those of
    another method (the protocols' ``gap_variance``), their ``threshold`` and ``relative_threshold`` are
    dropped, so that the critical similarity is calibrated from the training set (the replicas always get it)
    with the REMatch default factor; settings that already name ``method: rematch`` are kept as given.
    """
    settings = dict(extrapolation)
    if trigger == 'rematch' and settings.get('method') != 'rematch':
        settings['method'] = 'rematch'
        for key in ('threshold', 'relative_threshold', 'reference_score'):
            settings.pop(key, None)
    return settings


def validate_trigger(value: Mapping) -> str | None:
    """Refuse an exploration extrapolation method that contradicts ``loop.trigger``."""
    if 'loop' not in value:
        return None
    trigger = value['loop'].get_dict().get('trigger', 'variance')
    try:
        method = value['exploration']['md']['parameters'].get_dict()['extrapolation']['method']
    except (KeyError, TypeError, AttributeError):
        return None
    contradicts = method == 'rematch' if trigger == 'variance' else method in ('soap_novelty', 'none')
    if trigger in TRIGGERS and contradicts:
        return (
            f'`exploration.md.parameters.extrapolation.method`: {method!r} contradicts `loop.trigger` '
            f'{trigger!r}; set `loop.trigger` and leave the method to it'
        )
    return None


def call_label(iteration: int, step: str) -> str:
    """Return the call link label of ``step`` in ``iteration``, so that the process tree reads by iteration.

    Iteration 0 is the initial set (``label_initial``, ``fit_initial``); iteration ``k`` runs
    ``iteration_kk_explore_<state point>``, ``iteration_kk_plan``, ``_label``, ``_assess``, ``_grow``, ``_fit``.
    """
    return f'{step}_initial' if iteration == 0 else f'iteration_{iteration:02d}_{step}'


def validate_extras(value: Mapping) -> str | None:
    """Validate what runs after the loop: the random baseline needs the pool, the validation the teacher."""
    if 'random_baseline' in value and value['random_baseline'].value and 'training_set' in value:
        return (
            '`random_baseline`: it draws from the sampling pool, and a loop started from `training_set` has none; '
            'set it to False'
        )
    if (
        'validate' in value
        and value['validate'].value
        and not (value.get('labelling') or {}).get('classical')
    ):
        return '`validate`: the validation compares with the classical teacher; it needs the classical oracle'
    if 'validation_protocol' in value:
        protocols = ValidationWorkChain.get_available_protocols()
        if value['validation_protocol'].value not in protocols:
            return (
                f'`validation_protocol`: unknown protocol {value["validation_protocol"].value!r}; choose from '
                f'{", ".join(protocols)}'
            )
    return None


def _fits(parameters: Mapping, stats: DatasetStats, limit_mb: float) -> bool:
    """Return whether ``plan_memory`` (the reductions GapFitWorkChain applies before launching) can fit it."""
    try:
        plan_memory(parameters, stats, limit_mb)
    except ValueError:
        return False
    return True


def _scaled(stats: DatasetStats, n_configs: int) -> DatasetStats:
    """Return ``stats`` of ``n_configs`` configurations like the average one of ``stats``."""
    factor = n_configs / stats.n_configs
    return dataclasses.replace(
        stats,
        n_configs=n_configs,
        atoms_per_species={
            symbol: round(count * factor) for symbol, count in stats.atoms_per_species.items()
        },
        n_energies=round(stats.n_energies * factor),
        n_force_components=round(stats.n_force_components * factor),
        n_virial_components=round(stats.n_virial_components * factor),
    )


def largest_fitting_size(parameters: Mapping, stats: DatasetStats, limit_mb: float) -> int:
    """Return the largest number of configurations like those of ``stats`` whose fit fits ``limit_mb`` (0: none)."""
    low, high = 0, max(stats.n_configs, 1)
    while _fits(parameters, _scaled(stats, high), limit_mb):  # grow until it no longer fits
        low, high = high, 2 * high
    while high - low > 1:  # the memory estimate grows with the number of configurations
        middle = (low + high) // 2
        low, high = (middle, high) if _fits(parameters, _scaled(stats, middle), limit_mb) else (low, middle)
    return low


def check_fit_memory(
    parameters: Mapping, stats: DatasetStats, limit_mb: float | None, source: str = ''
) -> str | None:
    """Return why a fit of ``stats`` with ``parameters`` cannot fit ``limit_mb``, or None when it can.

    "Can" means: after the reductions ``GapFitWorkChain`` applies before launching (``plan_memory``: sparse
    points halved down to the minimum), gap_fit's estimated peak memory is within the declared memory. Without a
    declared memory (``limit_mb`` None) nothing is refused. The message says what to change: the declared memory,
    the descriptors and sparse points, or the training size (the largest that fits is given).
    """
    if limit_mb is None:
        return None
    try:
        plan_memory(parameters, stats, limit_mb)
    except ValueError as exception:
        largest = largest_fitting_size(parameters, stats, limit_mb)
        declared = f' ({source})' if source else ''
        return (
            f'{stats.n_configs} configurations ({stats.n_atoms} atoms): {exception}{declared}. Change one of: '
            "the memory (`fitting.gap_fit.metadata.options.max_memory_kb`, or the computer's "
            '`default_memory_per_machine`); the descriptors or sparse points (`fitting.gap_fit.parameters`: '
            'n_max, l_max, n_sparse); the training size: at most '
            f'{largest} configurations like these fit, so lower `loop.max_per_iteration`, `loop.max_oracle_calls` '
            'or the initial `selection`'
        )
    return None


#: The single input ports after ``structure`` and ``classical_potential``: name -> (type, help, options).
INPUTS = {
    'state_points': (
        orm.List,
        'Where the potential will be used: `{temperature_K}` (NVT at the volume of `structure`) or '
        '`{temperature_K, pressure_bar}` (NPT). Physics, not protocol: always from the caller.',
        {'validator': validate_state_points},
    ),
    'training_set': (
        DatasetData,
        'A labelled training set (energies and forces, virials optional) to start from: the loop then skips the '
        'sampling, the initial selection and labelling, and starts at the fit.',
        {'required': False},
    ),
    'test_set': (
        DatasetData,
        'With `training_set`: its held-out set (labelled likewise). Without it, `split` splits `training_set`.',
        {'required': False},
    ),
    'selection': (
        orm.Dict,
        'Selection spec of the initial set from the sampling pool (`select_configurations`); required unless '
        '`training_set` is given.',
        {'required': False},
    ),
    'split': (
        orm.Dict,
        'Split spec of the initial labelled set (or of `training_set` without `test_set`) into training and test '
        'sets (`split_dataset`).',
        {'required': False},
    ),
    'loop': (
        orm.Dict,
        'Loop settings and stopping criteria: ' + '; '.join(f'`{k}` {v}' for k, v in LOOP_KEYS.items()),
        {'validator': validate_loop},
    ),
    'delta_learning': (
        orm.Bool,
        'Fit the GAP on top of a Coulomb baseline with the charges of a coulombic classical potential.',
        {'default': lambda: orm.Bool(True)},
    ),
    'random_baseline': (
        orm.Bool,
        'At the end, also label and fit, at the label budget of the final training set, a potential on '
        'configurations drawn at random from the sampling pool, and test both on the final test set '
        '(get_builder_from_protocol: on for the classical oracle).',
        {'default': lambda: orm.Bool(False)},
    ),
    'validate': (
        orm.Bool,
        "At the end, validate the final potential (and the random baseline's) with ValidationWorkChain against "
        'the classical teacher at the state points (classical oracle only).',
        {'default': lambda: orm.Bool(False)},
    ),
    'validation_protocol': (
        orm.Str,
        "Protocol of ValidationWorkChain (default: its default protocol); get_builder_from_protocol sets the loop's.",
        {'required': False},
    ),
}
#: The stages' inputs, exposed: namespace -> (process, ports the loop sets itself, help).
STAGES = {
    'sampling': (
        SamplingWorkChain,
        ('structure', 'potential', 'potential_files', 'state_points'),
        'Inputs of the sampling MD (LAMMPS code, MD settings); required unless `training_set` is given.',
    ),
    'labelling': (LabellingWorkChain, ('structures', 'dataset'), 'Inputs of every labelling (the oracle).'),
    'fitting': (
        GapFitWorkChain,
        ('gap_fit.dataset', 'test_dataset'),
        'Inputs of every fit (gap_fit code, parameters; the evaluation code).',
    ),
    'exploration': (
        MlMdWorkChain,
        ('md.structure', 'md.restart_from', 'md.restart_frame', 'md.potential', 'md.training'),
        'Inputs of every ML-MD replica (python code, MD and extrapolation settings).',
    ),
}
_OPTIONAL = {'required': False}
#: The output ports: name -> (type, help, options).
OUTPUTS = {
    'potential': (GapPotentialData, 'The final potential.', {}),
    'training_set': (DatasetData, 'The training set of the final potential.', {}),
    'test_set': (DatasetData, 'Held-out configurations: the initial test split and every audit.', {}),
    'metrics': (orm.Dict, 'Test-set errors of the final potential.', {}),
    'learning_curve': (
        orm.Dict,
        'Per iteration: training size, cumulative oracle calls, test and audit errors, steps reached and outcome '
        'per replica, candidates kept.',
        {},
    ),
    'stopping': (orm.Dict, 'The verdict that ended the loop and which criterion.', {}),
    'pool': (DatasetData, 'The sampling pool (absent when the loop started from `training_set`).', _OPTIONAL),
    'random_baseline.potential': (
        GapPotentialData,
        'The potential fitted on configurations drawn at random from the pool, as many as the final training set.',
        _OPTIONAL,
    ),
    'random_baseline.training_set': (
        DatasetData,
        "Its training set (the oracle's labels of the drawn configurations).",
        _OPTIONAL,
    ),
    'random_baseline.metrics': (
        orm.Dict,
        'Its errors on the final test set (initial test split and every audit).',
        _OPTIONAL,
    ),
    'random_baseline.active_learning_metrics': (
        orm.Dict,
        'The errors of the final active-learning potential on the same final test set.',
        _OPTIONAL,
    ),
    'random_baseline.selection': (
        orm.Dict,
        'How the configurations were drawn: budget, seed, pool indices, held-out ones excluded.',
        _OPTIONAL,
    ),
}
_ATTACHED = 'the outputs of the loop are attached.'
_LAST = 'the outputs are those of the last potential.'
#: Exit codes: (status, label, message).
EXIT_CODES = (
    (401, 'ERROR_SUB_PROCESS_FAILED_SAMPLING', 'the sampling failed: {message}'),
    (402, 'ERROR_SUB_PROCESS_FAILED_SELECTION', 'the selection failed: {message}'),
    (403, 'ERROR_SUB_PROCESS_FAILED_LABELLING', 'the labelling failed: {message}'),
    (404, 'ERROR_SUB_PROCESS_FAILED_FITTING', 'the fit failed: {message}'),
    (405, 'ERROR_SUB_PROCESS_FAILED_EXPLORATION', 'the ML MD failed: {message}'),
    (406, 'ERROR_SUB_PROCESS_FAILED_RANDOM_BASELINE', 'the random baseline failed: {message}; ' + _ATTACHED),
    (407, 'ERROR_SUB_PROCESS_FAILED_VALIDATION', 'the validation failed: {message}; ' + _ATTACHED),
    (
        410,
        'ERROR_MAX_ITERATIONS',
        'not converged after {iterations} iterations (max_iterations): {reason}; ' + _LAST,
    ),
    (
        411,
        'ERROR_MAX_ORACLE_CALLS',
        'not converged within {calls} oracle calls (max_oracle_calls): {reason}; ' + _LAST,
    ),
    (
        412,
        'ERROR_REFIT_EXCEEDS_MEMORY',
        'the fit of iteration {iteration} was not launched, the memory plan says it will not fit: {message}; '
        + _LAST,
    ),
)


def _flat_outputs(node) -> dict:
    """Return the outputs of ``node`` by link label, a namespace's entries as ``<namespace>_<key>``."""
    flat = {}
    for link in node.base.links.get_outgoing(link_type=LinkType.RETURN).all():
        flat[link.link_label.replace('__', '_')] = link.node
    return flat


def _failure(node) -> str:
    return f'{node.process_label}<{node.pk}> exit status {node.exit_status}: {node.exit_message}'


class ActiveLearningWorkChain(RecoveryMixin, ProtocolMixin, WorkChain):
    """Build a GAP by active learning: sample, select, label, fit, then explore/audit/label/refit until trusted."""

    _protocol_file = pathlib.Path(__file__).parent / 'protocols' / 'active_learning.yaml'

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The starting configuration.')
        define_potential_ports(
            spec,
            name='classical_potential',
            help='The classical force field of the sampling MD (any LAMMPS pair style; the classical oracle too).',
        )
        for name, (valid_type, help_text, options) in INPUTS.items():
            spec.input(name, valid_type=valid_type, serializer=orm.to_aiida_type, help=help_text, **options)
        for namespace, (process, exclude, help_text) in STAGES.items():
            options = {'help': help_text}
            if namespace == 'sampling':  # not with a training set
                options.update(required=False, populate_defaults=False)
            spec.expose_inputs(process, namespace=namespace, exclude=exclude, namespace_options=options)
            spec.inputs[namespace].dynamic = False
        spec.inputs.validator = validate_inputs

        spec.outline(
            cls.setup,
            if_(cls.should_sample)(
                cls.run_sampling,
                cls.inspect_sampling,
                cls.select_initial,
                cls.run_labelling,
                cls.inspect_initial_labelling,
            ).else_(
                cls.start_from_training_set,
            ),
            cls.run_fit,
            cls.inspect_fit,
            while_(cls.should_explore)(
                cls.run_exploration,
                cls.plan,
                if_(cls.has_frames_to_label)(
                    cls.run_labelling,
                    cls.inspect_labelling,
                ),
                cls.assess,
                if_(cls.should_refit)(
                    cls.run_fit,
                    cls.inspect_fit,
                ),
            ),
            if_(cls.should_run_random_baseline)(
                cls.run_random_labelling,
                cls.run_random_fit,
                cls.inspect_random_baseline,
            ),
            if_(cls.should_validate)(
                cls.run_validation,
                cls.inspect_validation,
            ),
            cls.results,
        )

        for name, (valid_type, help_text, options) in OUTPUTS.items():
            spec.output(name, valid_type=valid_type, help=help_text, **options)
        for which in VALIDATED:
            spec.output_namespace(
                f'validation.{which}',
                valid_type=orm.Data,
                dynamic=True,
                required=False,
                help=f'The outputs of ValidationWorkChain on the {which.replace("_", " ")} potential '
                '(`validation`, `verdict`, `rdf_plots_<run>`, ...).',
            )
        for status, label, message in EXIT_CODES:
            spec.exit_code(status, label, message=message)

    # --- builder ----------------------------------------------------------------------------------------------
    @classmethod
    def get_builder_from_protocol(
        cls,
        structure: orm.StructureData,
        classical_potential: Mapping | orm.Dict,
        temperatures: Sequence[float],
        pressures: Sequence[float] | None = None,
        oracle: str = 'classical',
        protocol: str | None = None,
        overrides: Mapping | None = None,
        codes: Mapping[str, orm.AbstractCode] | None = None,
        potential_files: Mapping[str, orm.SinglefileData] | None = None,
        options: Mapping | None = None,
        training_set: DatasetData | None = None,
        test_set: DatasetData | None = None,
        random_baseline: bool | None = None,
        validate: bool = False,
    ):
        """Return a builder of the loop for ``structure`` with ``classical_potential`` at the given state points.

        :param temperatures: temperatures (K) where the potential will be used; with ``pressures`` (bar) the
            state points are their grid in NPT, otherwise NVT at the volume of ``structure``.
        :param oracle: ``classical`` (the classical potential is the teacher), ``cp2k-xtb`` (a fast fixed-cell
            test oracle) or ``cp2k-pbe`` (production DFT). With ``cp2k-xtb`` and no ``pressures`` the virial is not
            fitted (sigma ``XTB_FIXED_CELL_VIRIAL_SIGMA``) unless ``overrides`` sets its sigma.
        :param protocol: ``fast``, ``balanced`` (default) or ``stringent``; the same name is used for every stage.
        :param overrides: inputs keyed like the ports (``loop``, ``selection``, ``sampling``, ``labelling``,
            ``fitting``, ``exploration``, ...); an unknown key is a ``ValueError`` naming it.
        :param codes: ``lammps``, ``cp2k``, ``gap_fit``, ``python``; default: the codes ``aiida-mlpot setup``
            registers on ``localhost`` (``lmp``, ``cp2k``, ``gap_fit``, ``python``).
        :param potential_files: ``SinglefileData`` the classical potential's ``files`` name, by key.
        :param options: ``metadata.options`` merged into every calculation's.
        :param training_set: a labelled training set to start from: no sampling, selection or initial
            labelling (their inputs are left out), the loop starts at the fit.
        :param test_set: with ``training_set``, its held-out set; without it ``split`` splits ``training_set``.
        :param random_baseline: at the end, also fit a potential on as many configurations drawn at random from the
            pool and test both on the final test set; default (None): on for the classical oracle, off for the
            CP2K oracles (their labels cost) and without a pool (``training_set``).
        :param validate: at the end, validate the final potential(s) with ``ValidationWorkChain`` against the
            classical teacher (classical oracle only), with the same protocol name.
        """
        if test_set is not None and training_set is None:
            raise ValueError('`test_set` is only used with `training_set`')
        if oracle not in ORACLES:
            raise ValueError(f'unknown oracle `{oracle}`; choose from {", ".join(ORACLES)}')
        codes = _codes(codes, oracle)
        potential = (
            classical_potential
            if isinstance(classical_potential, orm.Dict)
            else orm.Dict(classical_potential)
        )
        overrides = dict(overrides or {})
        unused = ('sampling', 'selection') + (('split',) if test_set is not None else ())
        for key in unused if training_set is not None else ():
            if key in overrides:
                raise ValueError(f'override `{key}`: not used when the loop starts from `training_set`')
        inputs = cls.get_protocol_inputs(protocol, overrides)
        name = protocol or cls.get_default_protocol()
        state_points = [
            {'temperature_K': float(t), **({'pressure_bar': float(p)} if p is not None else {})}
            for t in temperatures
            for p in (pressures if pressures else [None])
        ]
        builder = cls.get_builder()
        own = ['loop', 'delta_learning']
        if training_set is None:
            own += ['selection', 'split']
        elif test_set is None:
            own += ['split']
        populate_builder(builder, {key: inputs[key] for key in own if key in inputs})
        builder.structure = structure
        builder.classical_potential = potential
        if potential_files:
            builder.potential_files = dict(potential_files)
        builder.state_points = orm.List(state_points)
        if random_baseline is None:
            random_baseline = oracle == 'classical' and training_set is None
        builder.random_baseline = orm.Bool(bool(random_baseline))
        builder.validate = orm.Bool(bool(validate))
        if validate:
            builder.validation_protocol = orm.Str(name)

        if training_set is None:
            sampling = SamplingWorkChain.get_builder_from_protocol(
                codes['lammps'], structure, name, inputs.get('sampling'), options,
                potential=potential, state_points=[{'temperature_K': 1.0, 'volume_scale': 1.0}],
            )  # fmt: skip
            for key in ('structure', 'potential', 'potential_files', 'state_points'):
                sampling.pop(key, None)
            builder.sampling = sampling
        else:
            builder.training_set = training_set
            if test_set is not None:
                builder.test_set = test_set

        if oracle == 'classical':
            labelling = LabellingWorkChain.get_builder_from_protocol(
                codes['lammps'], [structure], None, inputs.get('labelling'), options,
                oracle='classical', potential=potential, potential_files=potential_files,
            )  # fmt: skip
        else:
            labelling = LabellingWorkChain.get_builder_from_protocol(
                codes['cp2k'], [structure], ORACLES[oracle], inputs.get('labelling'), options, oracle='cp2k'
            )
        for key in ('structures', 'dataset'):
            labelling.pop(key, None)
        builder.labelling = _set_inputs(labelling)  # without the other oracle's (empty) namespace

        ports = cls.spec().inputs
        fitting = GapFitWorkChain.get_protocol_inputs(name, inputs.get('fitting'))
        if oracle == 'cp2k-xtb' and not pressures and not _sets_virial_sigma(overrides):
            sigma = fitting['gap_fit']['parameters'].setdefault('default_sigma', {})
            sigma['virial'] = XTB_FIXED_CELL_VIRIAL_SIGMA
        exploration = MlMdWorkChain.get_protocol_inputs(name, inputs.get('exploration'))
        for namespace, child, code in (
            ('gap_fit', fitting, codes['gap_fit']),
            ('evaluate', fitting, codes['python']),
            ('md', exploration, codes['python']),
        ):
            child.setdefault(namespace, {})['code'] = code  # with the code: the namespace is validated whole
            metadata = child[namespace].setdefault('metadata', {})
            metadata['options'] = {**metadata.get('options', {}), **(options or {})}
        populate_builder(builder.fitting, fitting, ports['fitting'])
        populate_builder(builder.exploration, exploration, ports['exploration'])
        return builder

    # --- steps ------------------------------------------------------------------------------------------------
    def _iteration_label(self, role: str) -> str:
        """Return the node label of a data set of ``role`` in the current iteration: ``train_02``, ..."""
        return f'{role}_{self.ctx.iteration:02d}' if self.ctx.iteration else role

    @staticmethod
    def _label_inner_datasets(node, path: str) -> None:
        """Label the unlabelled data sets made inside the child ``node`` (``path``) by where they were made.

        E.g. the frames of one sampling state point become ``sampling/md_T1400_V1/dataset``: the call link labels
        down to the calculation, then the output's link label.
        """
        for process in node.called_descendants:
            call = process.base.links.get_incoming(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).first()
            made = process.base.links.get_outgoing(node_class=DatasetData, link_type=LinkType.CREATE).all()
            for link in made:
                if not link.node.label:
                    link.node.label = f'{path}/{call.link_label}/{link.link_label}'

    def _failed(self, name: str, exit_code, outputs: tuple[str, ...] = ()):
        """Return ``exit_code`` (formatted with the reason) if ``ctx.<name>`` failed or lacks ``outputs``."""
        node = self.ctx[name]
        if node.is_finished_ok and set(outputs) <= set(node.outputs):
            return None
        return exit_code.format(message=_failure(node))

    def setup(self):
        """Read the settings; the state points of the sampling and of the exploration."""
        self.ctx.loop = self.inputs.loop.get_dict()
        self.ctx.iteration = 0
        self.ctx.oracle_calls = 0
        self.ctx.records = []
        self.ctx.verdict = None
        self.ctx.explore = {}
        for point in self.inputs.state_points.get_list():
            self.ctx.explore[exploration_key(point)] = point
        sampling_points = []
        for point in self.inputs.state_points.get_list():
            scales = (
                [1.0] if point.get('pressure_bar') is not None else self.ctx.loop['sampling_volume_scales']
            )
            sampling_points += [sampling_point(point, scale) for scale in scales]
        self.ctx.sampling_points = sampling_points
        potential = self.inputs.classical_potential.get_dict()
        self.ctx.delta = bool(self.inputs.delta_learning.value and is_coulombic(potential))
        if self.ctx.delta:
            charges = {
                symbol: potential['charges'][symbol] for symbol in self.inputs.structure.get_symbols_set()
            }
            self.ctx.baseline = {'type': 'coulomb', 'charges': charges}
            if self.ctx.loop.get('baseline_cutoff') is not None:
                self.ctx.baseline['cutoff'] = float(self.ctx.loop['baseline_cutoff'])
            self.report(f'Δ-learning: the GAP is fitted on top of a Coulomb baseline with charges {charges}')

    def run_sampling(self):
        """Sample the state points with the classical force field."""
        inputs = AttributeDict(self.exposed_inputs(SamplingWorkChain, 'sampling'))
        inputs.structure = self.inputs.structure
        inputs.potential = self.inputs.classical_potential
        if 'potential_files' in self.inputs:
            inputs.potential_files = self.inputs.potential_files
        inputs.state_points = orm.List(self.ctx.sampling_points)
        inputs.metadata = {'call_link_label': 'sampling'}
        node = self.submit(SamplingWorkChain, **inputs)
        self.report(f'sampling {len(self.ctx.sampling_points)} state points: {node.process_label}<{node.pk}>')
        return ToContext(sampling=node)

    def inspect_sampling(self):
        """Keep the pool; the exploration of every state point starts from its last sampled frame."""
        failed = self._failed('sampling', self.exit_codes.ERROR_SUB_PROCESS_FAILED_SAMPLING, ('pool',))
        if failed:
            return failed
        self.ctx.pool = self.ctx.sampling.outputs.pool
        self.ctx.pool.label = 'pool'
        self._label_inner_datasets(self.ctx.sampling, 'sampling')
        self.out('pool', self.ctx.pool)
        starts = exploration_starts(
            self.ctx.pool,
            orm.List(sorted(self.ctx.explore)),
            self.inputs.structure,
            metadata={'call_link_label': 'exploration_starts'},
        )
        self.ctx.starts = {key: starts[key] for key in self.ctx.explore}
        return None

    def select_initial(self):
        """Select the initial set from the pool (calcfunction)."""
        result, node = select_configurations.run_get_node(
            self.ctx.pool, self.inputs.selection, metadata={'call_link_label': 'select_initial'}
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_SELECTION.format(message=_failure(node))
        self.ctx.to_label = result['selected']
        self.ctx.to_label.label = 'selected'
        self.report(
            f'selected {len(self.ctx.to_label)} of {len(self.ctx.pool)} pool frames for the initial set'
        )
        return None

    def _labelling_inputs(self, dataset: DatasetData, link: str) -> AttributeDict:
        """Return the inputs of a ``LabellingWorkChain`` of ``dataset`` called ``link``."""
        inputs = AttributeDict(self.exposed_inputs(LabellingWorkChain, 'labelling'))
        inputs.dataset = dataset
        overrides = inputs.get('cp2k', {}).get('config_overrides')
        if overrides is not None:
            # keyed `config_00001`, ...: they apply to that configuration of every labelling that has one
            keys = {config_key(index) for index in range(len(dataset))}
            inputs.cp2k = AttributeDict(inputs.cp2k)
            kept = {key: value for key, value in overrides.get_dict().items() if key in keys}
            if kept:
                inputs.cp2k.config_overrides = orm.Dict(kept)
            else:
                del inputs.cp2k['config_overrides']
        inputs.metadata = {'call_link_label': link}
        return inputs

    def run_labelling(self):
        """Label ``ctx.to_label`` with the oracle."""
        label = call_label(self.ctx.iteration, 'label')
        inputs = self._labelling_inputs(self.ctx.to_label, label)
        self.ctx.labelling_link = label
        node = self.submit(LabellingWorkChain, **inputs)
        self.ctx.oracle_calls += len(self.ctx.to_label)  # sent: counted whether labelled or refused
        self.report(f'labelling {len(self.ctx.to_label)} configurations: {node.process_label}<{node.pk}>')
        return ToContext(labelling=node)

    def _labelled(self):
        """Return the labels of ``ctx.labelling`` (labelled by role) and None, or None and the exit code."""
        failed = self._failed('labelling', self.exit_codes.ERROR_SUB_PROCESS_FAILED_LABELLING, ('labelled',))
        if failed:
            return None, failed
        labelled = self.ctx.labelling.outputs.labelled
        labelled.label = self._iteration_label('labelled') if self.ctx.iteration else 'labelled_initial'
        self._label_inner_datasets(self.ctx.labelling, self.ctx.labelling_link)
        return labelled, None

    def _split_initial(self, labelled: DatasetData):
        """Split ``labelled`` into the initial training and test sets (calcfunction ``split_dataset``)."""
        result, node = split_dataset.run_get_node(
            labelled, self.inputs.split, metadata={'call_link_label': 'split_initial'}
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_SELECTION.format(message=_failure(node))
        self.ctx.train, self.ctx.test = result['train'], result['test']
        self.ctx.train.label, self.ctx.test.label = 'train', 'test'
        self.report(f'initial set: {len(self.ctx.train)} training, {len(self.ctx.test)} test configurations')
        return None

    def inspect_initial_labelling(self):
        """Split the labelled initial set into training and test sets (calcfunction)."""
        labelled, error = self._labelled()
        if error:
            return error
        return self._split_initial(labelled)

    def should_sample(self) -> bool:
        """Return whether the loop samples, selects and labels its initial set (no ``training_set`` given)."""
        return 'training_set' not in self.inputs

    def start_from_training_set(self):
        """Start from ``training_set`` (and ``test_set``, else a split of it); every replica starts from ``structure``.

        Nothing is sampled: there is no pool, and the oracle calls are counted from here.
        """
        self.ctx.starts = {key: self.inputs.structure for key in self.ctx.explore}
        if 'test_set' not in self.inputs:
            return self._split_initial(self.inputs.training_set)
        self.ctx.train, self.ctx.test = self.inputs.training_set, self.inputs.test_set
        self.report(
            f'starting from training_set<{self.ctx.train.pk}> ({len(self.ctx.train)} configurations) and '
            f'test_set<{self.ctx.test.pk}> ({len(self.ctx.test)})'
        )
        return None

    def _fit_inputs(
        self, train: DatasetData, test: DatasetData, link: str
    ) -> tuple[AttributeDict, str | None]:
        """Return the inputs of a ``GapFitWorkChain`` on ``train`` tested on ``test`` (the Coulomb baseline under
        Δ-learning), and why the memory plan refuses it (None: it fits)."""
        inputs = AttributeDict(self.exposed_inputs(GapFitWorkChain, 'fitting'))
        inputs.gap_fit = AttributeDict(inputs.gap_fit)
        inputs.gap_fit.dataset = train
        if self.ctx.delta:
            parameters = inputs.gap_fit.parameters.get_dict()
            parameters['baseline'] = self.ctx.baseline
            inputs.gap_fit.parameters = orm.Dict(parameters)
        inputs.test_dataset = test
        inputs.metadata = {'call_link_label': link}
        options = dict(inputs.gap_fit.get('metadata', {}).get('options', {}))
        limit_mb, source = declared_memory_mb(options, inputs.gap_fit.code.computer)
        problem = check_fit_memory(
            inputs.gap_fit.parameters.get_dict(), dataset_stats(train.to_ase()), limit_mb, source
        )
        return inputs, problem

    def run_fit(self):
        """Fit the GAP to the training set (with the Coulomb baseline under Δ-learning); test on the test set."""
        inputs, problem = self._fit_inputs(
            self.ctx.train, self.ctx.test, call_label(self.ctx.iteration, 'fit')
        )
        if problem:
            self.report(f'fit of iteration {self.ctx.iteration} refused before launching: {problem}')
            state = {
                'criterion': 'refit_exceeds_memory',
                'reason': f'the fit of iteration {self.ctx.iteration} would not fit the memory: {problem}',
                'iteration': self.ctx.iteration,
                'oracle_calls': self.ctx.oracle_calls,
            }
            previous = {'verdict': self.ctx.verdict} if self.ctx.verdict is not None else {}
            self.ctx.verdict = stopped_verdict(
                orm.Dict(state), metadata={'call_link_label': 'stopped_verdict'}, **previous
            )
            self._attach_outputs()
            return self.exit_codes.ERROR_REFIT_EXCEEDS_MEMORY.format(
                iteration=self.ctx.iteration, message=problem
            )
        node = self.submit(GapFitWorkChain, **inputs)
        self.report(f'fitting on {len(self.ctx.train)} configurations: {node.process_label}<{node.pk}>')
        return ToContext(fit=node)

    def inspect_fit(self):
        """Keep the potential and its test metrics."""
        failed = self._failed(
            'fit', self.exit_codes.ERROR_SUB_PROCESS_FAILED_FITTING, ('potential', 'metrics')
        )
        if failed:
            return failed
        node = self.ctx.fit
        self.ctx.potential = node.outputs.potential
        self.ctx.potential_train = self.ctx.train
        self.ctx.metrics = node.outputs.metrics
        if 'predictions' in node.outputs:
            node.outputs.predictions.label = f'predictions_{self.ctx.iteration:02d}'
        overall = node.outputs.metrics.get_dict()['overall']
        self.report(
            f'potential<{self.ctx.potential.pk}>: test force RMSE {overall["forces"]["rmse"]:.4g} eV/Å, energy '
            f'RMSE {overall["energy_per_atom"]["rmse"]:.4g} meV/atom'
        )
        return None

    def should_explore(self) -> bool:
        """Return whether another iteration runs (no verdict yet, or one that does not stop the loop)."""
        return self.ctx.verdict is None or not self.ctx.verdict.get_dict()['stop']

    def run_exploration(self):
        """Run one ML-MD replica per state point with the current potential (they run concurrently)."""
        self.ctx.iteration += 1
        base = self.exposed_inputs(MlMdWorkChain, 'exploration')
        replicas = {}
        for index, (key, point) in enumerate(sorted(self.ctx.explore.items())):
            inputs = AttributeDict(base)
            inputs.md = AttributeDict(base['md'])
            parameters = inputs.md.parameters.get_dict()
            md = parameters.setdefault('md', {})
            md['temperature_K'] = float(point['temperature_K'])
            if point.get('pressure_bar') is not None:
                md.update({'ensemble': 'npt', 'pressure_bar': float(point['pressure_bar'])})
            md['n_steps'] = int(self.ctx.loop['target_steps'])
            md['seed'] = int(md.get('seed', 1)) + 1000 * self.ctx.iteration + index
            parameters['extrapolation'] = trigger_extrapolation(
                parameters.get('extrapolation', {}), self.ctx.loop.get('trigger', 'variance')
            )
            inputs.md.parameters = orm.Dict(parameters)
            inputs.md.potential = self.ctx.potential
            inputs.md.training = self.ctx.potential_train
            inputs.md.structure = self.ctx.starts[key]
            inputs.metadata = {'call_link_label': call_label(self.ctx.iteration, f'explore_{key}')}
            node = self.submit(MlMdWorkChain, **inputs)
            replicas[f'replica_{key}'] = node
        self.report(f'iteration {self.ctx.iteration}: exploring {", ".join(sorted(self.ctx.explore))}')
        return ToContext(**replicas)

    def plan(self):
        """Choose the frames to label: audit frames and distinct candidates (calcfunction ``plan_iteration``)."""
        sources = {}
        for key in sorted(self.ctx.explore):
            node = self.ctx[f'replica_{key}']
            unstable = node.exit_status == MlMdWorkChain.exit_codes.ERROR_UNSTABLE_MD_GAVE_UP.status
            if not (node.is_finished_ok or unstable) or not {'trajectory', 'summary'} <= set(node.outputs):
                return self.exit_codes.ERROR_SUB_PROCESS_FAILED_EXPLORATION.format(message=_failure(node))
            sources[f'summary_{key}'] = node.outputs.summary
            sources[f'trajectory_{key}'] = node.outputs.trajectory
            node.outputs.trajectory.label = self._iteration_label(f'trajectory_{key}')
            if 'flagged' in node.outputs:
                sources[f'flagged_{key}'] = node.outputs.flagged
                node.outputs.flagged.label = self._iteration_label(f'flagged_{key}')
            self._label_inner_datasets(node, call_label(self.ctx.iteration, f'explore_{key}'))
            summary = node.outputs.summary.get_dict()
            self.report(
                f'{key}: {summary.get("outcome")} after {summary.get("steps_done")} steps '
                f'(max {summary.get("extrapolation_method")} score {summary.get("max_score")}, threshold '
                f'{summary.get("threshold")})'
            )
            if summary.get('outcome') in ('completed', 'extrapolation') and 'final_structure' in node.outputs:
                self.ctx.starts[key] = node.outputs.final_structure
        loop = self.ctx.loop
        spec = {
            'audit_per_replica': loop['audit_per_replica'],
            'max_per_iteration': loop['max_per_iteration'],
            'min_distance': loop['min_distance'],
            'iteration': self.ctx.iteration,
            'budget': max(loop['max_oracle_calls'] - self.ctx.oracle_calls, 0),
        }
        if loop.get('soap'):
            spec['soap'] = loop['soap']
        result, node = plan_iteration.run_get_node(
            self.ctx.potential_train,
            orm.Dict(spec),
            metadata={'call_link_label': call_label(self.ctx.iteration, 'plan')},
            **sources,
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_SELECTION.format(message=_failure(node))
        self.ctx.decision = result['decision']
        self.ctx.to_label = result.get('to_label')
        if self.ctx.to_label is not None:
            self.ctx.to_label.label = self._iteration_label('planned')
        decision = self.ctx.decision.get_dict()
        self.report(
            f'iteration {self.ctx.iteration}: {decision["n_audit"]} audit frames, {decision["n_candidates"]} candidates'
        )
        return None

    def has_frames_to_label(self) -> bool:
        """Return whether the plan has frames for the oracle."""
        return self.ctx.to_label is not None

    def inspect_labelling(self):
        """Keep the labels of this iteration."""
        labelled, error = self._labelled()
        if error:
            return error
        self.ctx.labelled = labelled
        return None

    def assess(self):
        """Audit errors and the verdict (``assess_iteration``); grow the training and test sets (``grow_training_set``)."""
        loop = self.ctx.loop
        criteria = {
            key: loop.get(key)
            for key in (
                'audit_force_rmse',
                'audit_energy_rmse',
                'max_iterations',
                'max_oracle_calls',
                'target_steps',
            )
        }
        state = {'iteration': self.ctx.iteration, 'oracle_calls': self.ctx.oracle_calls}
        labels = {}
        if self.ctx.to_label is not None:
            labels = {'planned': self.ctx.to_label, 'labelled': self.ctx.labelled}
        result = assess_iteration(
            self.ctx.decision,
            orm.Dict(criteria),
            orm.Dict(state),
            metadata={'call_link_label': call_label(self.ctx.iteration, 'assess')},
            **labels,
        )
        self.ctx.verdict = result['verdict']
        verdict = self.ctx.verdict.get_dict()
        audit = result.get('audit')
        record = {
            'decision': self.ctx.decision,
            'verdict': self.ctx.verdict,
            'metrics': self.ctx.metrics,
            'train': self.ctx.potential_train,
        }
        if audit is not None:
            record['audit'] = audit
            audit_dict = audit.get_dict()
            self.report(
                f'iteration {self.ctx.iteration}: audit force RMSE {audit_dict["force_rmse"]:.4g} eV/Å, energy RMSE '
                f'{audit_dict["energy_rmse"]:.4g} meV/atom on {audit_dict["n_configs"]} frames'
            )
        self.ctx.records.append({name: node.uuid for name, node in record.items()})
        self.report(f'iteration {self.ctx.iteration}: {verdict["reason"]}')
        if labels:
            grown = grow_training_set(
                self.ctx.train,
                self.ctx.test,
                self.ctx.verdict,
                metadata={'call_link_label': call_label(self.ctx.iteration, 'grow')},
                **labels,
            )
            self.ctx.train, self.ctx.test = grown['train'], grown['test']
            for role in ('train', 'test', 'candidates', 'audit'):
                if role in grown:
                    grown[role].label = self._iteration_label(role)

    def should_refit(self) -> bool:
        """Refit unless the verdict stops the loop (the current potential is then the result) or no configuration
        joined the training set (a passed audit whose replicas gave no kept candidate: the same fit again would
        give the same potential; the next exploration runs on with it, new seeds and from the replicas' last
        frames)."""
        if self.ctx.verdict.get_dict()['stop']:
            return False
        if len(self.ctx.train) == len(self.ctx.potential_train):
            self.report(
                f'iteration {self.ctx.iteration}: the training set is unchanged ({len(self.ctx.train)} '
                f'configurations): potential<{self.ctx.potential.pk}> explores on without a refit'
            )
            return False
        return True

    def _attach_outputs(self) -> None:
        """Attach what exists so far: the learning curve, the last potential, its data sets, the verdict."""
        nodes = {}
        for index, record in enumerate(self.ctx.records, start=1):
            for name, uuid in record.items():
                nodes[f'{name}_{index:02d}'] = orm.load_node(uuid)
        curve = learning_curve(metadata={'call_link_label': 'learning_curve'}, **nodes)
        self.out('learning_curve', curve)
        if 'potential' in self.ctx:
            self.out('potential', self.ctx.potential)
            self.out('metrics', self.ctx.metrics)
            final_train = self.ctx.potential_train
        else:
            final_train = self.ctx.get('train')
        final_test = self.ctx.get('test')
        given = {self.inputs[port].uuid for port in ('training_set', 'test_set') if port in self.inputs}
        for role, node, port in (('train', final_train, 'training_set'), ('test', final_test, 'test_set')):
            if node is None:
                continue
            if node.uuid not in given:  # the caller's data sets keep their label
                node.description = f'{port} of the run (data set `{node.label}`)'
                node.label = f'{role}_final'
            self.out(port, node)
        if self.ctx.verdict is not None:
            self.out('stopping', self.ctx.verdict)
        for name, node in self.ctx.get('random_outputs', {}).items():
            self.out(f'random_baseline.{name}', node)
        for which, outputs in self.ctx.get('validation_outputs', {}).items():
            for name, node in outputs.items():
                self.out(f'validation.{which}.{name}', node)

    # --- after the loop: the random baseline and the validation ----------------------------------------------
    def should_run_random_baseline(self) -> bool:
        """Return whether the random baseline runs (asked for, and there is a pool and a final potential)."""
        return bool(self.inputs.random_baseline.value) and 'pool' in self.ctx and 'potential' in self.ctx

    def run_random_labelling(self):
        """Draw as many pool configurations as the final training set holds (``random_baseline_set``) and label them."""
        seed = self.inputs.selection.get_dict().get('seed', 1) if 'selection' in self.inputs else 1
        spec = {'n': len(self.ctx.potential_train), 'seed': int(seed)}
        result, node = random_baseline_set.run_get_node(
            self.ctx.pool,
            orm.Dict(spec),
            self.ctx.test,
            metadata={'call_link_label': 'random_baseline_select'},
        )
        if not node.is_finished_ok:
            return self._baseline_failed(_failure(node))
        self.ctx.random_selection = result['record']
        result['selected'].label = 'random_selected'
        inputs = self._labelling_inputs(result['selected'], 'random_baseline_label')
        node = self.submit(LabellingWorkChain, **inputs)
        record = result['record'].get_dict()
        self.report(
            f'random baseline: {record["n_drawn"]} pool configurations drawn (budget {record["n_budget"]}, seed '
            f'{record["seed"]}, {record["n_held_out"]} held out), labelling: {node.process_label}<{node.pk}>'
        )
        return ToContext(random_labelling=node)

    def run_random_fit(self):
        """Fit the random baseline; evaluate the final potential on the same final test set (concurrently)."""
        node = self.ctx.random_labelling
        if not node.is_finished_ok or 'labelled' not in node.outputs:
            return self._baseline_failed(_failure(node))
        train = node.outputs.labelled
        train.label = 'random_train'
        self._label_inner_datasets(node, 'random_baseline_label')
        inputs, problem = self._fit_inputs(train, self.ctx.test, 'random_baseline_fit')
        if problem:
            return self._baseline_failed(f'the memory plan refuses its fit: {problem}')
        fit = self.submit(GapFitWorkChain, **inputs)
        evaluate = AttributeDict(self.exposed_inputs(GapFitWorkChain, 'fitting')['evaluate'])
        evaluate.potential = self.ctx.potential
        evaluate.dataset = self.ctx.test
        evaluate.metadata = {
            **evaluate.get('metadata', {}),
            'call_link_label': 'random_baseline_evaluate_final',
        }
        evaluation = self.submit(EvaluateCalculation, **evaluate)
        self.report(
            f'random baseline: fitting on {len(train)} configurations: {fit.process_label}<{fit.pk}>; the final '
            f'potential on the final test set ({len(self.ctx.test)}): {evaluation.process_label}<{evaluation.pk}>'
        )
        return ToContext(random_fit=fit, final_evaluation=evaluation)

    def inspect_random_baseline(self):
        """Keep both potentials' errors on the final test set (``compute_error_metrics``)."""
        fit, evaluation = self.ctx.random_fit, self.ctx.final_evaluation
        for node, outputs in ((fit, ('potential', 'metrics')), (evaluation, ('predictions',))):
            if not node.is_finished_ok or not set(outputs) <= set(node.outputs):
                return self._baseline_failed(_failure(node))
        results, node = compute_error_metrics.run_get_node(
            self.ctx.test,
            evaluation.outputs.predictions,
            metadata={'call_link_label': 'random_baseline_metrics_final'},
        )
        if not node.is_finished_ok:
            return self._baseline_failed(_failure(node))
        fit.outputs.predictions.label = 'predictions_random'
        evaluation.outputs.predictions.label = 'predictions_final'
        self._label_inner_datasets(fit, 'random_baseline_fit')
        self.ctx.random_outputs = {
            'potential': fit.outputs.potential,
            'training_set': fit.inputs.gap_fit.dataset,
            'metrics': fit.outputs.metrics,
            'active_learning_metrics': results['metrics'],
            'selection': self.ctx.random_selection,
        }
        errors = {
            name: self.ctx.random_outputs[key].get_dict()['overall']['forces']['rmse']
            for name, key in (('active learning', 'active_learning_metrics'), ('random', 'metrics'))
        }
        self.report(
            f'on the final test set ({len(self.ctx.test)} configurations), force RMSE: active learning '
            f'{errors["active learning"]:.4g} eV/Å, random {errors["random"]:.4g} eV/Å '
            f'({len(self.ctx.potential_train)} training configurations each)'
        )
        return None

    def _baseline_failed(self, message: str):
        self.report(f'random baseline failed: {message}')
        self._attach_outputs()
        return self.exit_codes.ERROR_SUB_PROCESS_FAILED_RANDOM_BASELINE.format(message=message)

    def should_validate(self) -> bool:
        """Return whether ``validate`` asks for the validation of the final potential(s)."""
        return bool(self.inputs.validate.value) and 'potential' in self.ctx

    def run_validation(self):
        """Validate the final potential (and the random baseline's) with ``ValidationWorkChain`` (the teacher)."""
        potentials = {'active_learning': self.ctx.potential}
        if 'random_outputs' in self.ctx:
            potentials['random_baseline'] = self.ctx.random_outputs['potential']
        codes = {'python': self.inputs.exploration.md.code, 'lammps': self.inputs.labelling.classical.code}
        protocol = self.inputs.validation_protocol.value if 'validation_protocol' in self.inputs else None
        launched = {}
        for which, potential in potentials.items():
            builder = ValidationWorkChain.get_builder_from_protocol(
                codes,
                self.inputs.structure,
                protocol,
                potential=potential,
                state_points=self.inputs.state_points.get_list(),
                teacher=self.inputs.labelling.classical.potential,
                teacher_files=dict(self.inputs.get('potential_files', {})) or None,
            )
            builder.metadata.call_link_label = f'validation_{which}'
            node = self.submit(builder)
            launched[f'validation_{which}'] = node
            self.report(
                f'validating the {which.replace("_", " ")} potential: {node.process_label}<{node.pk}>'
            )
        return ToContext(**launched)

    def inspect_validation(self):
        """Expose every validation's outputs under ``validation.<potential>`` (namespaces flattened)."""
        self.ctx.validation_outputs = {}
        for which in VALIDATED:
            node = self.ctx.get(f'validation_{which}')
            if node is None:
                continue
            if not node.is_finished_ok:
                self._attach_outputs()
                return self.exit_codes.ERROR_SUB_PROCESS_FAILED_VALIDATION.format(message=_failure(node))
            self.ctx.validation_outputs[which] = _flat_outputs(node)
            self._label_inner_datasets(node, f'validation_{which}')
            verdict = node.outputs.verdict.value if 'verdict' in node.outputs else None
            self.report(f'validation of the {which.replace("_", " ")} potential: {verdict}')
        return None

    def results(self):
        """Attach the final potential, its data sets, the learning curve and the stopping verdict."""
        self._attach_outputs()
        verdict = self.ctx.verdict.get_dict()
        if verdict['criterion'] == 'max_iterations':
            return self.exit_codes.ERROR_MAX_ITERATIONS.format(
                iterations=verdict['iteration'], reason=verdict['reason']
            )
        if verdict['criterion'] == 'max_oracle_calls':
            return self.exit_codes.ERROR_MAX_ORACLE_CALLS.format(
                calls=verdict['oracle_calls'], reason=verdict['reason']
            )
        self.report(
            f'converged after {verdict["iteration"]} iterations and {verdict["oracle_calls"]} oracle calls'
        )
        return None


def _set_inputs(namespace: Mapping) -> dict:
    """Return the inputs set in a builder ``namespace`` as a plain nested dict, empty namespaces left out."""
    inputs = {}
    for key, value in namespace.items():
        if isinstance(value, Mapping) and not isinstance(value, orm.Data):
            value = _set_inputs(value)
            if not value:
                continue
        inputs[key] = value
    return inputs


def _sets_virial_sigma(overrides: Mapping) -> bool:
    """Return whether ``overrides`` sets ``fitting.gap_fit.parameters.default_sigma.virial`` itself."""
    sigma = overrides.get('fitting', {}).get('gap_fit', {}).get('parameters', {}).get('default_sigma', {})
    return 'virial' in sigma


def _codes(codes: Mapping | None, oracle: str) -> dict:
    """Return the codes the loop needs, defaulting to those ``aiida-mlpot setup`` registers on localhost."""
    codes = dict(codes or {})
    needed = ['lammps', 'gap_fit', 'python'] + (['cp2k'] if oracle != 'classical' else [])
    unknown = sorted(set(codes) - {'lammps', 'cp2k', 'gap_fit', 'python'})
    if unknown:
        raise ValueError(f'unknown code key `{unknown[0]}`; known: lammps, cp2k, gap_fit, python')
    labels = {'lammps': 'lmp', 'cp2k': 'cp2k', 'gap_fit': 'gap_fit', 'python': 'python'}
    for key in needed:
        if key not in codes:
            codes[key] = load_code_by_label(f'{labels[key]}@localhost')
    return codes
