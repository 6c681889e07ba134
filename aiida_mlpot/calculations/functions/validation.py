"""Calcfunctions of the physical validation: thin wrappers of :mod:`aiida_mlpot.analysis.validation`.

Each turns ``DatasetData`` trajectories and a ``parameters`` ``Dict`` into a ``Dict`` of figures and verdicts
(and the RDF overlay as a PNG ``SinglefileData``); :class:`~aiida_mlpot.workflows.validation.ValidationWorkChain`
calls them per state point. Bad parameters or trajectories too short for a comparison end the calcfunction with
an exit code of :data:`EXIT_CODES`, never a traceback.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np
from aiida import orm
from aiida.engine import calcfunction
from ase import Atoms

from aiida_mlpot.analysis.errors import compute_errors, frame_labels
from aiida_mlpot.analysis.rdf import max_rdf_cutoff, partial_rdfs, rdf_overlay_plot
from aiida_mlpot.analysis.validation import (
    check_tolerances,
    compare_density,
    compare_diffusion,
    compare_solid,
    compare_structure,
    overall_verdict,
    solid_comparison_plot,
)
from aiida_mlpot.calculations.functions.exit_codes import calcfunction_exit
from aiida_mlpot.common.keys import config_index, config_key
from aiida_mlpot.common.units import BAR_TO_EV_PER_ANGSTROM3
from aiida_mlpot.data.dataset import DatasetData

__all__ = (
    'EXIT_CODES',
    'MD_PARAMETERS',
    'compare_crystal',
    'compare_md',
    'compare_npt_density',
    'compare_rerun',
    'frame_interval_fs',
    'join_validation',
    'sample_rerun_frames',
)

EXIT_CODES = {
    'ERROR_INVALID_PARAMETERS': (201, 'invalid parameters: {message}'),
    'ERROR_COMPARISON_FAILED': (301, 'the comparison could not be made: {message}'),
}

#: Keys of the ``parameters`` of :func:`compare_md` and :func:`compare_npt_density`, with their defaults.
MD_PARAMETERS: dict = {
    'discard': 0.2,  # fraction of the potential's frames dropped at the start (equilibration)
    'reference_discard': 0.0,  # same for the reference's frames
    'r_max': None,  # Å; None: the largest the smallest cell allows (max_rdf_cutoff)
    'n_bins': 100,
    'fit_start': 0.1,  # diffusion fit window, fractions of the trajectory length
    'fit_end': 0.5,
    'timestep_fs': None,  # MD time step of the potential's run, to time frames that have a `step` but no `time_fs`
    'reference_timestep_fs': None,  # same for the reference
    'reference_config_type': None,  # keep only the reference frames of this config_type (a merged pool)
    'reference_density': None,  # g/cm³: a reference density instead of reference frames (NPT)
    'tolerances': {},
    'title': None,
}


def _parameters(parameters: orm.Dict | None) -> tuple[dict | None, str | None]:
    values = parameters.get_dict() if parameters is not None else {}
    unknown = sorted(set(values) - set(MD_PARAMETERS))
    if unknown:
        return None, f'unknown key `{unknown[0]}`; known: {", ".join(sorted(MD_PARAMETERS))}'
    merged = {**MD_PARAMETERS, **values}
    for key in ('discard', 'reference_discard'):
        if not 0.0 <= merged[key] < 1.0:
            return None, f'`{key}` must be in [0, 1), got {merged[key]!r}'
    message = check_tolerances(merged['tolerances'] or {})
    if message:
        return None, message
    return merged, None


def frame_interval_fs(frames: Sequence[Atoms], timestep_fs: float | None = None) -> float:
    """Return the time (fs) between consecutive frames: from their ``time_fs``, else their ``step`` × ``timestep_fs``.

    :raises ValueError: fewer than two frames, frames not evenly spaced, or neither ``time_fs`` nor
        ``step`` with a time step.
    """
    if len(frames) < 2:
        raise ValueError('fewer than two frames: no time between frames')
    if all('time_fs' in atoms.info for atoms in frames):
        times = np.array([float(atoms.info['time_fs']) for atoms in frames])
    elif all('step' in atoms.info for atoms in frames) and timestep_fs:
        times = np.array([float(atoms.info['step']) for atoms in frames]) * float(timestep_fs)
    else:
        raise ValueError('the frames have no `time_fs`, and no `step` with a time step to time them')
    gaps = np.diff(times)
    if np.any(gaps <= 0) or not np.allclose(gaps, gaps[0], rtol=1e-6):
        raise ValueError(
            f'the frames are not evenly spaced in time (gaps {sorted(set(gaps.round(6)))[:4]} fs)'
        )
    return float(gaps[0])


def _frames(trajectory: DatasetData, discard: float, config_type: str | None = None) -> list[Atoms]:
    frames = trajectory.to_ase()
    if config_type is not None:
        frames = [atoms for atoms in frames if atoms.info.get('config_type') == config_type]
    return frames[int(round(discard * len(frames))) :]


@calcfunction
def compare_md(trajectory: DatasetData, reference: DatasetData, parameters: orm.Dict):
    """Compare the potential's MD with the reference's at one state point: partial RDFs and diffusion.

    :param trajectory: the potential's MD frames (``MlMdWorkChain`` ``trajectory``).
    :param reference: the reference's frames at the same state point (with ``reference_config_type``, only
        those frames of a merged pool).
    :param parameters: keys of :data:`MD_PARAMETERS`.
    :returns: ``comparison`` (Dict: ``structure`` of :func:`compare_structure`, ``diffusion`` of
        :func:`compare_diffusion`, ``frames``, ``reference_frames``, ``verdict``) and ``rdf_plot`` (PNG).
    """
    values, message = _parameters(parameters)
    if message:
        return calcfunction_exit(EXIT_CODES, 'ERROR_INVALID_PARAMETERS', message=message)
    frames = _frames(trajectory, values['discard'])
    reference_frames = _frames(reference, values['reference_discard'], values['reference_config_type'])
    try:
        if len(frames) < 4 or len(reference_frames) < 4:
            raise ValueError(
                f'{len(frames)} frames and {len(reference_frames)} reference frames: need 4 of each'
            )
        r_max = values['r_max'] or 0.999 * min(max_rdf_cutoff(atoms) for atoms in frames + reference_frames)
        structure = compare_structure(
            frames, reference_frames, r_max, values['n_bins'], tolerances=values['tolerances']
        )
        diffusion = compare_diffusion(
            frames,
            reference_frames,
            frame_interval_fs(frames, values['timestep_fs']),
            frame_interval_fs(reference_frames, values['reference_timestep_fs']),
            tolerances=values['tolerances'],
            fit_start=values['fit_start'],
            fit_end=values['fit_end'],
        )
        rdfs = partial_rdfs(frames, r_max, values['n_bins'])
        reference_rdfs = partial_rdfs(reference_frames, r_max, values['n_bins'])
    except ValueError as exception:
        return calcfunction_exit(EXIT_CODES, 'ERROR_COMPARISON_FAILED', message=str(exception))
    with tempfile.NamedTemporaryFile(suffix='.png') as handle:
        rdf_overlay_plot(rdfs, reference_rdfs, handle.name, title=values['title'])
        png = orm.SinglefileData(io.BytesIO(handle.read()), filename='rdf.png')
    comparison = {
        'frames': len(frames),
        'reference_frames': len(reference_frames),
        'structure': structure,
        'diffusion': diffusion,
    }
    comparison['verdict'] = overall_verdict({'structure': structure, 'diffusion': diffusion})
    return {'comparison': orm.Dict(comparison), 'rdf_plot': png}


@calcfunction
def compare_npt_density(trajectory: DatasetData, parameters: orm.Dict, reference: DatasetData | None = None):
    """Compare the potential's NPT density with the reference's (frames, or ``reference_density`` g/cm³).

    :returns: the Dict of :func:`~aiida_mlpot.analysis.validation.compare_density` with ``frames``.
    """
    values, message = _parameters(parameters)
    if message:
        return calcfunction_exit(EXIT_CODES, 'ERROR_INVALID_PARAMETERS', message=message)
    if (reference is None) == (values['reference_density'] is None):
        return calcfunction_exit(
            EXIT_CODES,
            'ERROR_INVALID_PARAMETERS',
            message='give exactly one of `reference` and reference_density',
        )
    frames = _frames(trajectory, 0.0)
    reference_frames = None
    if reference is not None:
        reference_frames = _frames(reference, 0.0, values['reference_config_type'])
    try:
        if len(frames) < 4 or (reference_frames is not None and len(reference_frames) < 4):
            raise ValueError('an NPT comparison needs at least 4 frames of each run')
        result = compare_density(
            frames,
            reference_frames,
            values['reference_density'],
            discard=values['discard'],
            tolerances=values['tolerances'],
        )
    except ValueError as exception:
        return calcfunction_exit(EXIT_CODES, 'ERROR_COMPARISON_FAILED', message=str(exception))
    result['frames'] = len(frames)
    return orm.Dict(result)


@calcfunction
def sample_rerun_frames(parameters: orm.Dict, **trajectories: DatasetData) -> DatasetData:
    """Return an evenly spaced sample of each trajectory's frames (after ``discard``) for relabelling.

    :param parameters: ``{'n_frames': per trajectory, 'discard': fraction dropped at the start}``.
    :param trajectories: the potential's MD frames, keyed by run (``T1400_V1``, ...): the key becomes the
        frames' ``config_type``; each frame keeps the potential's labels (energy, forces, virial).
    """
    values = parameters.get_dict()
    unknown = sorted(set(values) - {'n_frames', 'discard'})
    if unknown:
        return calcfunction_exit(
            EXIT_CODES, 'ERROR_INVALID_PARAMETERS', message=f'unknown key `{unknown[0]}`'
        )
    n_frames, discard = int(values.get('n_frames', 8)), float(values.get('discard', 0.2))
    if n_frames < 1 or not 0.0 <= discard < 1.0:
        return calcfunction_exit(
            EXIT_CODES, 'ERROR_INVALID_PARAMETERS', message='need n_frames >= 1 and 0 <= discard < 1'
        )
    sample = []
    for key, trajectory in sorted(trajectories.items()):
        frames = _frames(trajectory, discard)
        picks = np.unique(np.linspace(0, len(frames) - 1, min(n_frames, len(frames))).round().astype(int))
        for index in picks:
            atoms = frames[index]
            atoms.info['config_type'] = key
            sample.append(atoms)
    if not sample:
        return calcfunction_exit(EXIT_CODES, 'ERROR_COMPARISON_FAILED', message='no frames to sample')
    return DatasetData.from_ase(sample)


def _pressure_bias(reference: Sequence[Atoms], predicted: Sequence[Atoms]) -> dict:
    """Mean and standard error of P_pred - P_ref (bar) from the virials (the kinetic parts cancel)."""
    differences = []
    for ref, pred in zip(reference, predicted):
        w_ref, w_pred = frame_labels(ref)['virial'], frame_labels(pred)['virial']
        if w_ref is None or w_pred is None:
            continue
        trace = np.trace(np.reshape(w_pred, (3, 3)) - np.reshape(w_ref, (3, 3)))
        differences.append(trace / (3.0 * ref.get_volume()) / BAR_TO_EV_PER_ANGSTROM3)
    if not differences:
        return {'mean_bar': None, 'sem_bar': None, 'count': 0}
    values = np.asarray(differences)
    sem = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
    return {'mean_bar': float(values.mean()), 'sem_bar': sem, 'count': len(values)}


@calcfunction
def compare_rerun(sample: DatasetData, labelled: DatasetData) -> orm.Dict:
    """Errors of the potential on the configurations its own MD visited, against the reference's labels.

    :param sample: frames of :func:`sample_rerun_frames` (the potential's labels, ``config_type`` = run).
    :param labelled: the same frames labelled by the reference (``LabellingWorkChain``; ``label_key`` =
        ``config_00000``, ... the index in ``sample``); frames the labelling excluded are left out.
    :returns: ``{'errors': compute_errors (overall and per run), 'pressure_bias': {'mean_bar', 'sem_bar',
        'count'}, 'pressure_bias_per_run': {run: same}, 'labelled', 'sampled'}``. Figures only: no verdict (no tolerance is defined for them).
    """
    predicted_all = sample.to_ase()
    reference, predicted = [], []
    for atoms in labelled.to_ase():
        index = config_index(str(atoms.info.get('label_key', '')))
        if index is None or index >= len(predicted_all):
            return calcfunction_exit(
                EXIT_CODES,
                'ERROR_COMPARISON_FAILED',
                message=f'a labelled frame has no label_key of the sample: {atoms.info.get("label_key")!r}',
            )
        atoms.info['config_type'] = predicted_all[index].info.get('config_type')
        reference.append(atoms)
        predicted.append(predicted_all[index])
    if not reference:
        return calcfunction_exit(EXIT_CODES, 'ERROR_COMPARISON_FAILED', message='no labelled frames')
    return orm.Dict(
        {
            'errors': compute_errors(reference, predicted),
            'pressure_bias': _pressure_bias(reference, predicted),
            'pressure_bias_per_run': {
                run: _pressure_bias(
                    *zip(*[(r, p) for r, p in zip(reference, predicted) if r.info['config_type'] == run])
                )
                for run in sorted({atoms.info['config_type'] for atoms in reference})
            },
            'labelled': len(reference),
            'sampled': len(predicted_all),
            'excluded': sorted(
                config_key(i)
                for i in set(range(len(predicted_all)))
                - {config_index(str(a.info['label_key'])) for a in reference}
            ),
        }
    )


@calcfunction
def compare_crystal(properties: orm.Dict, reference: orm.Dict, parameters: orm.Dict | None = None):
    """Compare the potential's crystal properties with the reference's, with a verdict per property.

    :param properties: the ``properties`` of a ``SolidPropertiesCalculation`` with the potential.
    :param reference: the same of the reference (a teacher's calculation), or values the user supplies with the
        same keys (``lattice_constant``, ``bulk_modulus_gpa``, ``C11``, ``C12``, ``C44``,
        ``surface_energies_j_m2``, ``vacancy_energy``, ``phonon_frequencies``); only the properties present on
        both sides are judged.
    :param parameters: ``{'tolerances': overrides of TOLERANCES, 'title': of the plot}``.
    :returns: ``comparison`` (Dict of :func:`~aiida_mlpot.analysis.validation.compare_solid`) and, when both sides
        have an equation of state or phonons, ``plot`` (PNG: E(V) and phonon bands overlaid).
    """
    values = parameters.get_dict() if parameters is not None else {}
    unknown = sorted(set(values) - {'tolerances', 'title'})
    message = f'unknown key `{unknown[0]}`; known: tolerances, title' if unknown else None
    message = message or check_tolerances(values.get('tolerances') or {})
    if message:
        return calcfunction_exit(EXIT_CODES, 'ERROR_INVALID_PARAMETERS', message=message)
    ours, theirs = properties.get_dict(), reference.get_dict()
    try:
        comparison = compare_solid(ours, theirs, tolerances=values.get('tolerances'))
    except ValueError as exception:
        return calcfunction_exit(EXIT_CODES, 'ERROR_COMPARISON_FAILED', message=str(exception))
    if len(comparison) == 1:  # only the overall verdict: nothing was compared
        return calcfunction_exit(
            EXIT_CODES, 'ERROR_COMPARISON_FAILED', message='no property is present on both sides'
        )
    outputs = {'comparison': orm.Dict(comparison)}
    if any(key in ours and key in theirs for key in ('eos_volumes_per_atom', 'phonon_frequencies')):
        with tempfile.NamedTemporaryFile(suffix='.png') as handle:
            solid_comparison_plot(ours, theirs, handle.name, title=values.get('title'))
            outputs['plot'] = orm.SinglefileData(io.BytesIO(handle.read()), filename='crystal.png')
    return outputs


def _nest(flat: Mapping[str, orm.Dict]) -> dict:
    result: dict = {}
    for key, node in flat.items():
        point, _, check = key.partition('__')
        result.setdefault(point, {})[check] = node.get_dict()
    return result


@calcfunction
def join_validation(**comparisons: orm.Dict):
    """Join every comparison into one Dict of all figures and verdicts, and the overall verdict.

    :param comparisons: Dicts keyed ``<state point>__<check>`` (``T1400_V1__md``, ``T1400_P1__density``,
        ``T1400_V1__stability``, ...), ``rerun__errors`` and ``crystal__solid`` (of :func:`compare_crystal`).
    :returns: ``validation`` (``{'state_points': {state point: {check: ...}}, 'rerun', 'crystal', 'verdict'}``)
        and ``verdict`` (Str: pass, fail or inconclusive; the rerun figures carry no verdict).
    """
    nested = _nest(comparisons)
    rerun = nested.pop('rerun', {}).get('errors')
    crystal = nested.pop('crystal', {}).get('solid')
    verdict = overall_verdict({'state_points': nested, 'crystal': crystal})
    result = {'state_points': nested, 'verdict': verdict}
    if rerun is not None:
        result['rerun'] = rerun
    if crystal is not None:
        result['crystal'] = crystal
    return {'validation': orm.Dict(result), 'verdict': orm.Str(verdict)}
