"""Physical validation of a potential against a reference: figures, tolerances and verdicts. Pure (no AiiDA).

Each ``compare_*`` function takes what the potential produced and what the reference produced (MD frames, or
the crystal properties of :func:`solid_properties`) and returns a JSON-able dict of figures, each with its
tolerance and a verdict:

- ``'pass'``: within tolerance;
- ``'fail'``: outside it;
- ``'inconclusive'``: the statistical error of the comparison is larger than half the tolerance (runs too
  short to tell) and the error is not significantly (2 sigma) beyond the tolerance either.

:func:`overall_verdict` joins them (any fail -> fail; else any inconclusive -> inconclusive; else pass). The
tolerances (:data:`TOLERANCES`) and what each check measures are documented in ``docs/topics/validation.md``.
Species pairs are keyed ``'Cl-Na'`` (sorted) so that the result can be stored as an AiiDA ``Dict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from aiida_mlpot.analysis.dynamics import diffusion_coefficients
from aiida_mlpot.analysis.rdf import partial_rdfs, rdf_difference, short_range_artefacts
from aiida_mlpot.analysis.statistics import density_volume_statistics

__all__ = (
    'SOLID_PROPERTIES',
    'TOLERANCES',
    'check_tolerances',
    'compare_density',
    'compare_diffusion',
    'compare_solid',
    'compare_structure',
    'overall_verdict',
    'solid_comparison_plot',
    'solid_properties',
)

PASS, FAIL, INCONCLUSIVE = 'pass', 'fail', 'inconclusive'
#: The crystal properties :func:`solid_properties` can compute.
SOLID_PROPERTIES = ('eos', 'elastic', 'surfaces', 'vacancy', 'phonons')

#: Default tolerances of every check (see docs/topics/validation.md for the reasons).
TOLERANCES: dict[str, float] = {
    'rdf_delta_g': 0.3,  # Å, ∫|g - g_ref| dr per species pair
    'rdf_artefact_g': 0.1,  # g above this inside the reference's excluded core is an artefact
    'density_relative': 0.02,  # |ρ / ρ_ref - 1| in NPT
    'density_drift': 0.02,  # |last-quarter / first-quarter density - 1| of the potential's NPT run
    'diffusion_relative': 0.3,  # |D / D_ref - 1| per species
    'lattice_constant_relative': 0.01,
    'bulk_modulus_relative': 0.1,
    'elastic_constant_relative': 0.15,  # C11, C12, C44 each
    'surface_energy_relative': 0.1,
    'vacancy_energy_absolute': 0.1,  # eV
    'phonon_frequency_relative': 0.1,  # max |Δν| over modes and q-points / max ν_ref
    'phonon_min_frequency': -0.1,  # THz; lowest frequency on the mesh, below it the crystal is unstable
}


def check_tolerances(overrides: Mapping) -> str | None:
    """Return an error message naming the first unknown or non-numeric tolerance key, or None."""
    for key, value in overrides.items():
        if key not in TOLERANCES:
            return f'unknown tolerance `{key}`; known: {", ".join(sorted(TOLERANCES))}'
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            return f'tolerance `{key}` must be a number, got {value!r}'
    return None


def _tolerances(overrides: Mapping | None) -> dict:
    message = check_tolerances(overrides or {})
    if message:
        raise ValueError(message)
    return {**TOLERANCES, **(overrides or {})}


def _relative(value: float, reference: float) -> float:
    return float((value - reference) / abs(reference)) if reference != 0 else float('inf')


def _judge(error: float, tolerance: float, uncertainty: float = 0.0) -> str:
    """Verdict of |error| against tolerance, given the statistical error (one sigma) of the error.

    With an uncertainty up to half the tolerance: pass if |error| <= tolerance, else fail (a potential exactly
    as good as the reference then fails at most about 5 % of the time, a 2-sigma excursion). With a larger
    uncertainty: fail only if |error| exceeds the tolerance by more than 2 sigma, else inconclusive (the runs
    are too short to tell).
    """
    if uncertainty > 0.5 * tolerance:
        return FAIL if abs(error) - 2.0 * uncertainty > tolerance else INCONCLUSIVE
    return PASS if abs(error) <= tolerance else FAIL


def overall_verdict(results: Mapping) -> str:
    """Return the joined verdict of every ``'verdict'`` found (recursively) in ``results``."""
    found = []

    def walk(node):
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == 'verdict' and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)

    walk(results)
    if FAIL in found:
        return FAIL
    if INCONCLUSIVE in found:
        return INCONCLUSIVE
    return PASS


def _pair_key(pair: tuple[str, str]) -> str:
    return f'{pair[0]}-{pair[1]}'


def compare_structure(
    frames: Sequence[Atoms],
    reference_frames: Sequence[Atoms],
    r_max: float,
    n_bins: int = 200,
    tolerances: Mapping | None = None,
) -> dict:
    """Compare the partial RDFs of the potential's MD frames with the reference's (same state point).

    The statistical noise of |Δg| is estimated from the reference itself: |Δg| between the first and the
    second half of its frames, divided by √2 (two independent samples of the full size differ by 1/√2 as much
    as two of half the size). It includes the frames' correlation. When the noise exceeds half ``rdf_delta_g``
    the pair is ``inconclusive`` (more frames, or fewer bins, are needed); with fewer than 2 reference frames it is
    not estimated (0).

    :returns: ``{'r_max', 'n_bins', 'pairs': {'A-B': {'delta_g' (Å), 'delta_g_noise' (Å), 'tolerance',
        'verdict', 'artefact': None or {r_onset_reference, r_first, r_peak, g_peak}}}, 'rdfs': {'A-B': {'r', 'g',
        'g_reference'}}, 'verdict'}``; a pair fails on |Δg| above ``rdf_delta_g`` or on any short-range artefact.
    """
    tol = _tolerances(tolerances)
    rdfs = partial_rdfs(frames, r_max, n_bins)
    reference = partial_rdfs(reference_frames, r_max, n_bins)
    scores = rdf_difference(rdfs, reference)
    half = len(reference_frames) // 2
    if half >= 1:
        noise = rdf_difference(
            partial_rdfs(reference_frames[:half], r_max, n_bins),
            partial_rdfs(reference_frames[half : 2 * half], r_max, n_bins),
        )
        noise = {pair: value / np.sqrt(2.0) for pair, value in noise.items()}
    else:
        noise = {pair: 0.0 for pair in scores}
    artefacts = short_range_artefacts(rdfs, reference, threshold=tol['rdf_artefact_g'])
    pairs = {}
    for pair, score in scores.items():
        verdict = _judge(score, tol['rdf_delta_g'], noise[pair])
        if pair in artefacts:
            verdict = FAIL
        pairs[_pair_key(pair)] = {
            'delta_g': score,
            'delta_g_noise': float(noise[pair]),
            'tolerance': tol['rdf_delta_g'],
            'artefact': artefacts.get(pair),
            'verdict': verdict,
        }
    result = {
        'r_max': float(r_max),
        'n_bins': int(n_bins),
        'pairs': pairs,
        'rdfs': {
            _pair_key(pair): {
                'r': rdfs[pair][0].tolist(),
                'g': rdfs[pair][1].tolist(),
                'g_reference': reference[pair][1].tolist(),
            }
            for pair in scores
        },
    }
    result['verdict'] = overall_verdict({'pairs': pairs})
    return result


def compare_density(
    frames: Sequence[Atoms],
    reference_frames: Sequence[Atoms] | None = None,
    reference_density: float | None = None,
    discard: float = 0.2,
    tolerances: Mapping | None = None,
) -> dict:
    """Compare the NPT density of the potential with the reference's (frames, or a value in g/cm³).

    The relative error is judged against ``density_relative``; its statistical error (block-averaged standard
    errors of both runs, combined) makes the verdict inconclusive when it exceeds half the tolerance. The
    potential's own drift (a run that keeps expanding or collapsing) is judged against ``density_drift``.
    When the block averaging of either run did not converge (``converged`` False: the run is shorter than its
    correlation time, e.g. one barostat oscillation, and its error is only a lower bound), the density verdict
    is inconclusive whatever the difference: measured on 64-atom molten NaCl, eight 1.6-ps NPT runs of the
    same teacher from the same start gave means of 1.15 to 1.38 g/cm³ (the converged value is 1.30), each with
    a block-averaged error of only 0.02.

    :returns: ``{'density', 'density_sem', 'reference_density', 'reference_density_sem' (g/cm³),
        'relative_error', 'relative_error_sem', 'tolerance', 'converged', 'density_verdict', 'drift': {'value', 'sem',
        'tolerance', 'verdict'}, 'verdict'}``; ``verdict`` joins the density and the drift verdicts.
    """
    if (reference_frames is None) == (reference_density is None):
        raise ValueError('give exactly one of reference_frames and reference_density')
    tol = _tolerances(tolerances)
    stats = density_volume_statistics(frames, discard=discard)
    density, density_sem = stats['density']['mean'], stats['density']['sem']
    if reference_frames is not None:
        reference = density_volume_statistics(reference_frames, discard=discard)['density']
        ref_density, ref_sem = reference['mean'], reference['sem']
    else:
        ref_density, ref_sem = float(reference_density), 0.0
    relative = _relative(density, ref_density)
    relative_sem = float(np.hypot(density_sem, ref_sem) / ref_density)
    # a run shorter than its correlation time (a barostat oscillation) has only a lower bound of its error
    converged = bool(stats['density']['converged'] and (reference_frames is None or reference['converged']))
    density_verdict = _judge(relative, tol['density_relative'], relative_sem) if converged else INCONCLUSIVE
    drift, drift_sem = stats['relative_drift'], stats['relative_drift_sem']
    result = {
        'density': density,
        'density_sem': density_sem,
        'reference_density': ref_density,
        'reference_density_sem': ref_sem,
        'relative_error': relative,
        'relative_error_sem': relative_sem,
        'tolerance': tol['density_relative'],
        'converged': converged,
        'verdict': density_verdict,
        'drift': {
            'value': drift,
            'sem': drift_sem,
            'tolerance': tol['density_drift'],
            'verdict': _judge(drift, tol['density_drift'], drift_sem),
        },
    }
    result['verdict'] = overall_verdict({'density': {'verdict': result['verdict']}, 'drift': result['drift']})
    result['density_verdict'] = density_verdict
    return result


def compare_diffusion(
    frames: Sequence[Atoms],
    reference_frames: Sequence[Atoms],
    timestep_fs: float,
    reference_timestep_fs: float | None = None,
    tolerances: Mapping | None = None,
    **fit,
) -> dict:
    """Compare the self-diffusion coefficients (Å²/ps) per species of the potential and of the reference.

    ``timestep_fs`` is the time between frames (the reference's defaults to the same); ``fit`` is passed to
    :func:`aiida_mlpot.analysis.dynamics.diffusion_coefficients` (``fit_start``, ``fit_end``).

    The statistical error of each D is the crude two-halves estimate of
    :func:`~aiida_mlpot.analysis.dynamics.diffusion_coefficients`; combined, it can make a verdict inconclusive.

    :returns: ``{'species': {'Na': {'diffusion', 'diffusion_sem', 'reference_diffusion',
        'reference_diffusion_sem', 'relative_error', 'relative_error_sem', 'tolerance', 'verdict'}}, 'verdict'}``.
    """
    tol = _tolerances(tolerances)
    ours = diffusion_coefficients(frames, timestep_fs, **fit)
    theirs = diffusion_coefficients(reference_frames, reference_timestep_fs or timestep_fs, **fit)
    species = {}
    for element in sorted(set(ours) & set(theirs)):
        d, d_ref = ours[element]['diffusion'], theirs[element]['diffusion']
        relative = _relative(d, d_ref)
        sems = [ours[element]['diffusion_sem'], theirs[element]['diffusion_sem']]
        relative_sem = float(np.hypot(*[x or 0.0 for x in sems]) / abs(d_ref)) if d_ref else 0.0
        species[element] = {
            'diffusion': d,
            'diffusion_sem': sems[0],
            'reference_diffusion': d_ref,
            'reference_diffusion_sem': sems[1],
            'relative_error': relative,
            'relative_error_sem': relative_sem,
            'tolerance': tol['diffusion_relative'],
            'verdict': _judge(relative, tol['diffusion_relative'], relative_sem),
        }
    return {'species': species, 'verdict': overall_verdict(species)}


def solid_properties(
    atoms: Atoms,
    calculator: Calculator,
    properties: Sequence[str] = SOLID_PROPERTIES,
    surfaces: Sequence[Sequence[int]] = ((1, 1, 1), (1, 0, 0)),
    surface_layers: int = 6,
    vacancy_supercell: Sequence[int] = (3, 3, 3),
    phonon_supercell: Sequence[int] = (3, 3, 3),
    phonon_qpoints: Sequence[Sequence[float]] = ((0.0, 0.0, 0.0), (0.5, 0.5, 0.5)),
    phonon_mesh: Sequence[int] = (8, 8, 8),
    fmax: float = 1e-3,
) -> dict:
    """Return the crystal properties of ``atoms`` with ``calculator``, after relaxing its cell and positions.

    ``atoms`` is a cubic crystal in the cell to which the Miller indices refer (the conventional cell for fcc
    and rock salt). The phonons are computed in the cell as given, q-points in its reciprocal basis (a
    conventional cubic cell gives 3N folded modes: its Γ holds the primitive cell's Γ and X modes). Properties:
    ``'eos'`` (lattice constant = first cell length, bulk modulus), ``'elastic'`` (C11, C12, C44, relaxed-ion),
    ``'surfaces'`` (relaxed, keyed by Miller index ``'111'``), ``'vacancy'`` (relaxed), ``'phonons'``.

    :returns: JSON-able dict ``{'relaxed_cell', 'lattice_constant' (Å), 'bulk_modulus_gpa', 'eos_volumes_per_atom'
        (Å³), 'eos_energies_per_atom' (eV, relative to the fitted minimum), 'C11', 'C12', 'C44' (GPa),
        'surface_energies_j_m2': {'111': ...}, 'vacancy_energy' (eV), 'phonon_frequencies' (THz, per q-point),
        'phonon_qpoints', 'phonon_min_frequency' (THz)}``, the keys of the properties asked for.
    """
    from aiida_mlpot.analysis.phonons import phonon_frequencies
    from aiida_mlpot.analysis.solids import (
        elastic_constants,
        equation_of_state,
        relax_structure,
        surface_energy,
        vacancy_formation_energy,
    )

    unknown = set(properties) - set(SOLID_PROPERTIES)
    if unknown:
        raise ValueError(f'unknown properties {sorted(unknown)}')
    relaxed = relax_structure(atoms, calculator, fmax=fmax, cell=True)
    result: dict = {'relaxed_cell': np.asarray(relaxed.cell[:]).tolist()}
    if 'eos' in properties:
        eos = equation_of_state(relaxed, calculator)
        result['lattice_constant'] = eos['cell_lengths'][0]
        result['bulk_modulus_gpa'] = eos['bulk_modulus_gpa']
        n_atoms = len(relaxed)
        result['eos_volumes_per_atom'] = [v / n_atoms for v in eos['volumes']]
        result['eos_energies_per_atom'] = [e / n_atoms - eos['energy_per_atom'] for e in eos['energies']]
    if 'elastic' in properties:
        elastic = elastic_constants(relaxed, calculator)
        result.update({key: elastic[key] for key in ('C11', 'C12', 'C44')})
    if 'surfaces' in properties:
        result['surface_energies_j_m2'] = {
            ''.join(str(int(i)) for i in miller): surface_energy(
                relaxed, calculator, miller, layers=surface_layers, fmax=fmax
            )['relaxed']['energy_j_m2']
            for miller in surfaces
        }
    if 'vacancy' in properties:
        result['vacancy_energy'] = vacancy_formation_energy(
            relaxed, calculator, supercell=vacancy_supercell, fmax=fmax
        )['relaxed']
    if 'phonons' in properties:
        phonons = phonon_frequencies(
            relaxed, calculator, phonon_qpoints, supercell=phonon_supercell, mesh=phonon_mesh
        )
        result['phonon_qpoints'] = phonons['qpoints']
        result['phonon_frequencies'] = phonons['frequencies']
        result['phonon_min_frequency'] = phonons['mesh_min_frequency']
    return result


def compare_solid(properties: Mapping, reference: Mapping, tolerances: Mapping | None = None) -> dict:
    """Compare the crystal properties of :func:`solid_properties` with the reference's (same keys).

    Only the properties present in both are judged; the reference may be values the user supplies (e.g.
    ``{'lattice_constant': 4.08, 'C11': 192}``). Relative errors for lattice constant, bulk modulus, elastic
    constants and surface energies, absolute (eV) for the vacancy, the largest frequency difference over the
    band width for phonons, and the lowest mesh frequency of the potential against ``phonon_min_frequency``.

    :returns: ``{name: {'value', 'reference', 'error', 'tolerance', 'verdict'}, ..., 'verdict'}``.
    """
    tol = _tolerances(tolerances)
    checks: dict = {}

    def add(name, value, ref, error, tolerance):
        checks[name] = {
            'value': value,
            'reference': ref,
            'error': float(error),
            'tolerance': tolerance,
            'verdict': _judge(error, tolerance),
        }

    scalar = (
        ('lattice_constant', 'lattice_constant_relative'),
        ('bulk_modulus_gpa', 'bulk_modulus_relative'),
        ('C11', 'elastic_constant_relative'),
        ('C12', 'elastic_constant_relative'),
        ('C44', 'elastic_constant_relative'),
    )
    for key, tol_key in scalar:
        if key in properties and key in reference:
            add(
                key, properties[key], reference[key], _relative(properties[key], reference[key]), tol[tol_key]
            )
    for miller, value in sorted(properties.get('surface_energies_j_m2', {}).items()):
        ref = reference.get('surface_energies_j_m2', {}).get(miller)
        if ref is not None:
            add(f'surface_energy_{miller}', value, ref, _relative(value, ref), tol['surface_energy_relative'])
    if 'vacancy_energy' in properties and 'vacancy_energy' in reference:
        value, ref = properties['vacancy_energy'], reference['vacancy_energy']
        add('vacancy_energy', value, ref, value - ref, tol['vacancy_energy_absolute'])
    if 'phonon_frequencies' in properties and 'phonon_frequencies' in reference:
        ours, theirs = (
            np.asarray(properties['phonon_frequencies']),
            np.asarray(reference['phonon_frequencies']),
        )
        if ours.shape != theirs.shape:
            raise ValueError(
                f'phonon frequencies of shapes {ours.shape} and {theirs.shape} cannot be compared'
            )
        error = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
        add('phonon_frequencies', ours.tolist(), theirs.tolist(), error, tol['phonon_frequency_relative'])
    if 'phonon_min_frequency' in properties:
        value = properties['phonon_min_frequency']
        checks['phonon_stability'] = {
            'value': value,
            'reference': reference.get('phonon_min_frequency'),
            'tolerance': tol['phonon_min_frequency'],
            'verdict': PASS if value >= tol['phonon_min_frequency'] else FAIL,
        }
    checks['verdict'] = overall_verdict(checks)
    return checks


def solid_comparison_plot(
    properties: Mapping,
    reference: Mapping,
    path,
    labels: tuple[str, str] = ('ML', 'reference'),
    title: str | None = None,
) -> None:
    """Write a PNG of a crystal comparison: E(V) per atom (if both have it) and phonon bands (if both have them).

    Energies are relative to each side's own minimum, so the panel shows the equilibrium volume and the
    curvature (bulk modulus); the phonon panel plots every mode at every q-point of the path, in path order.
    Uses the Agg backend.
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib.figure import Figure

    panels = [
        key
        for key in ('eos_volumes_per_atom', 'phonon_frequencies')
        if key in properties and key in reference
    ]
    figure = Figure(figsize=(4.6 * max(len(panels), 1), 3.8), dpi=100)
    for index, key in enumerate(panels):
        axis = figure.add_subplot(1, len(panels), index + 1)
        if key == 'eos_volumes_per_atom':
            for values, style in ((reference, {'color': 'black', 'marker': 'o', 'ls': '-'}),
                                  (properties, {'color': 'tab:red', 'marker': 's', 'ls': '--'})):  # fmt: skip
                label = labels[1] if values is reference else labels[0]
                axis.plot(
                    values['eos_volumes_per_atom'], values['eos_energies_per_atom'], label=label, **style
                )
            axis.set_xlabel('volume per atom (Å³)')
            axis.set_ylabel('E - E0 per atom (eV)')
            axis.set_title('equation of state', fontsize=9)
        else:
            for values, color, ls in ((reference, 'black', '-'), (properties, 'tab:red', '--')):
                bands = np.asarray(values['phonon_frequencies'])
                lines = axis.plot(np.arange(len(bands)), bands, color=color, lw=1.0, ls=ls)
                lines[0].set_label(labels[1] if values is reference else labels[0])
            axis.set_xlabel('q-point along the path')
            axis.set_ylabel('frequency (THz)')
            axis.set_title('phonons', fontsize=9)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
