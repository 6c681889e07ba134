"""Checks applied to an MD frame: small classes with ``check(atoms) -> CheckResult``, and :func:`assess_frame`.

Two kinds of checks:

* ``unstable``: the simulation is broken (non-finite energy or forces, two atoms closer than a minimum
  distance, a temperature beyond a multiple of the target, a volume beyond a factor of the start);
* ``extrapolation``: the frame lies too far from the training data of the potential (GAP predictive
  standard deviation of the local energies, SOAP novelty against the training environments, or the REMatch
  similarity of the whole frame to the training configurations).

:func:`assess_frame` applies them to one frame the way every engine of the ML-MD driver needs it (no AiiDA
import). A check reads what it needs from ``atoms`` and its attached calculator and never triggers a new
potential evaluation, so it costs (almost) nothing on top of the MD step; the exception is a
:class:`GapVarianceCheck` given its own ``calculator``, which evaluates the frame (frames of an engine
that cannot return the variance, e.g. LAMMPS, or the training frames behind a relative threshold).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from aiida_mlpot.analysis.geometry import min_distance, too_close
from aiida_mlpot.common.units import KB_EV_PER_K
from aiida_mlpot.descriptors.novelty import MAX_DISTANCE, ReferenceEnvironments, kernel_distance
from aiida_mlpot.descriptors.rematch import RematchReferences, similarity_of_distance

__all__ = (
    'GAP_VARIANCE_CALC_ARGS',
    'CheckResult',
    'TrainingReferenceCheck',
    'FiniteCheck',
    'FrameAssessment',
    'GapVarianceCheck',
    'MinDistanceCheck',
    'RematchCheck',
    'SoapNoveltyCheck',
    'TemperatureCheck',
    'VolumeCheck',
    'assess_frame',
    'gap_variance_training_scores',
    'is_traced',
    'kinetic_temperature',
    'relative_threshold',
    'stability_checks',
)

#: quippy ``calc_args`` that makes a GAP return the per-atom predictive variance of the local energies.
GAP_VARIANCE_CALC_ARGS = 'local_gap_variance'


@dataclasses.dataclass
class CheckResult:
    """Outcome of one check on one frame."""

    name: str
    kind: str
    triggered: bool
    value: float
    threshold: float | None
    message: str = ''

    def as_dict(self) -> dict:
        """Return a JSON-serialisable dictionary."""
        value = float(self.value) if np.isfinite(self.value) else str(self.value)
        return {**dataclasses.asdict(self), 'value': value}


class Check:
    """Base class: ``check(atoms)`` returns a :class:`CheckResult`; ``kind`` is ``unstable`` or ``extrapolation``."""

    name = 'check'
    kind = 'unstable'

    def check(self, atoms: Atoms) -> CheckResult:
        raise NotImplementedError

    def __call__(self, atoms: Atoms) -> CheckResult:
        return self.check(atoms)


class FiniteCheck(Check):
    """Triggers when the energy, forces or stress held by the calculator are not finite."""

    name = 'finite'

    def check(self, atoms: Atoms) -> CheckResult:
        results = getattr(atoms.calc, 'results', {}) or {}
        bad = [
            key
            for key in ('energy', 'forces', 'stress')
            if key in results and not np.all(np.isfinite(results[key]))
        ]
        return CheckResult(
            self.name,
            self.kind,
            bool(bad),
            float(len(bad)),
            0.0,
            f'non-finite {", ".join(bad)}' if bad else '',
        )


class MinDistanceCheck(Check):
    """Triggers when two atoms are closer than ``min_distance`` (Å), as :func:`~aiida_mlpot.analysis.geometry.too_close`.

    The value is the closest distance when triggered, ``inf`` otherwise (no pair below the limit).
    """

    name = 'min_distance'

    def __init__(self, min_distance: float):
        self.min_distance = float(min_distance)

    def check(self, atoms: Atoms) -> CheckResult:
        message = too_close(atoms, self.min_distance)  # the package's one "too close" measure
        value = min_distance(atoms, cutoff=self.min_distance) if message else float('inf')
        return CheckResult(self.name, self.kind, bool(message), value, self.min_distance, message or '')


class TemperatureCheck(Check):
    """Triggers when the instantaneous kinetic temperature exceeds ``factor`` times the target (K)."""

    name = 'temperature'

    def __init__(self, target_K: float, factor: float):
        self.limit = float(target_K) * float(factor)

    def check(self, atoms: Atoms) -> CheckResult:
        value = kinetic_temperature(atoms)
        triggered = not np.isfinite(value) or value > self.limit
        message = f'temperature {value:.0f} K above {self.limit:.0f} K' if triggered else ''
        return CheckResult(self.name, self.kind, bool(triggered), value, self.limit, message)


class VolumeCheck(Check):
    """Triggers when the volume leaves [V0 / factor, V0 * factor] (a broken NPT run)."""

    name = 'volume'

    def __init__(self, reference_volume: float, factor: float):
        self.reference_volume = float(reference_volume)
        self.factor = float(factor)

    def check(self, atoms: Atoms) -> CheckResult:
        ratio = atoms.get_volume() / self.reference_volume
        triggered = not np.isfinite(ratio) or ratio > self.factor or ratio < 1.0 / self.factor
        message = f'volume ratio {ratio:.3f} outside [1/{self.factor}, {self.factor}]' if triggered else ''
        return CheckResult(self.name, self.kind, bool(triggered), float(ratio), self.factor, message)


class ExtrapolationCheck(Check):
    """Base class of extrapolation measures: ``score(atoms)`` (frame score) compared with ``threshold``.

    With ``threshold=None`` the score is measured and reported but never triggers.
    """

    kind = 'extrapolation'
    #: whether the frame's potential evaluation must include the GAP variance
    needs_variance = False

    def __init__(self, threshold: float | None = None):
        self.threshold = threshold
        #: seconds (wall, CPU) spent scoring frames in :meth:`check`, and the number of frames scored
        self.time_s = 0.0
        self.cpu_time_s = 0.0
        self.n_checks = 0

    def per_atom(self, atoms: Atoms) -> np.ndarray:
        raise NotImplementedError

    def score(self, atoms: Atoms) -> float:
        """Return the frame score: the maximum of the per-atom scores."""
        values = self.per_atom(atoms)
        return float(np.max(values)) if len(values) else 0.0

    def check(self, atoms: Atoms) -> CheckResult:
        start, cpu_start = time.perf_counter(), time.process_time()
        value = self.score(atoms)
        self.time_s += time.perf_counter() - start
        self.cpu_time_s += time.process_time() - cpu_start
        self.n_checks += 1
        triggered = self.threshold is not None and (not np.isfinite(value) or value > self.threshold)
        message = self.message(value) if triggered else ''
        return CheckResult(self.name, self.kind, bool(triggered), value, self.threshold, message)

    def message(self, value: float) -> str:
        """Return the message of a triggered check with score ``value``."""
        return f'{self.name} score {value:.4g} above threshold {self.threshold:.4g}'

    def summary(self) -> dict:
        """Return what the run summary reports of the measure: its cost per scored frame (ms)."""
        n_checks = max(self.n_checks, 1)
        return {
            'n_score_evaluations': self.n_checks,
            'time_per_check_ms': 1e3 * self.time_s / n_checks if self.n_checks else None,
            'cpu_time_per_check_ms': 1e3 * self.cpu_time_s / n_checks if self.n_checks else None,
        }


class GapVarianceCheck(ExtrapolationCheck):
    """GAP predictive standard deviation of the local energies (eV): max over atoms of sqrt(variance).

    Without ``calculator``, the calculator attached to ``atoms`` must be a quippy ``Potential`` whose last
    evaluation ran with ``calc_args`` containing ``local_gap_variance`` (the ASE engine asks for it on the
    scored steps). With a quippy ``calculator``, each frame is evaluated by it (energy only: quippy then
    skips the variance gradient), whatever is attached to the frame.
    """

    name = 'gap_variance'

    def __init__(self, threshold: float | None = None, calculator=None):
        super().__init__(threshold)
        self.calculator = calculator

    @property
    def needs_variance(self) -> bool:
        """Whether the MD's own evaluation of a scored frame must include the variance."""
        return self.calculator is None

    def per_atom(self, atoms: Atoms) -> np.ndarray:
        extra = (
            self._evaluate(atoms) if self.calculator is not None else getattr(atoms.calc, 'extra_results', {})
        )
        variance = (extra or {}).get('atoms', {}).get('local_gap_variance')
        if variance is None:
            raise RuntimeError('the last potential evaluation did not compute `local_gap_variance`')
        return np.sqrt(np.clip(np.asarray(variance, dtype=float).ravel(), 0.0, None))

    def _evaluate(self, frame: Atoms) -> dict:
        """Evaluate ``frame`` with the check's calculator and the variance; return its ``extra_results``."""
        calculator = self.calculator
        saved, saved_properties = calculator.calc_args, calculator.get_default_properties()
        if GAP_VARIANCE_CALC_ARGS not in saved:
            calculator.calc_args = f'{saved} {GAP_VARIANCE_CALC_ARGS}'.strip()
        calculator.set_default_properties(['energy'])
        try:
            atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
            calculator.reset()
            atoms.calc = calculator
            calculator.calculate(atoms, properties=['energy'])
            return calculator.extra_results
        finally:
            calculator.calc_args = saved
            calculator.set_default_properties(saved_properties)
            calculator.reset()


class TrainingReferenceCheck(ExtrapolationCheck):
    """Base of the checks that score a frame against a reference set built from the training frames.

    :param training_frames: the training configurations of the potential.
    :param reference: keyword settings of ``reference_class`` (a reference set of
        :mod:`aiida_mlpot.descriptors`), merged over ``reference_defaults``: ``soap`` (merged over
        :data:`~aiida_mlpot.descriptors.soap.DEFAULT_SOAP`), ``species`` (species the MD frames may hold besides
        those of the training frames), ``seed`` and the settings of the reference set itself.
    """

    reference_class: type
    reference_defaults: dict = {}
    #: the check, as named in the error on an empty training set
    what = ''

    def __init__(self, training_frames: Sequence[Atoms], threshold: float | None = None, **reference):
        super().__init__(threshold)
        if not training_frames:
            raise ValueError(f'{self.what} needs at least one training frame')
        self.reference = self.reference_class(training_frames, **{**self.reference_defaults, **reference})


class SoapNoveltyCheck(TrainingReferenceCheck):
    """SOAP novelty: per atom, the smallest SOAP distance sqrt(2 - 2 k) to a training environment of its species.

    A thin wrapper over :class:`aiida_mlpot.descriptors.novelty.ReferenceEnvironments` (the package's one
    novelty kernel): the frame score is the largest per-atom distance, 0 for an environment seen in
    training, up to sqrt(2) (:data:`~aiida_mlpot.descriptors.novelty.MAX_DISTANCE`, also the distance of an
    atom whose species has no training environment). Works for any potential (no variance needed). Settings
    (see :class:`TrainingReferenceCheck`): ``soap``, ``species``, ``max_environments`` (default 20000 here),
    ``seed``.
    """

    name = 'soap_novelty'
    reference_class = ReferenceEnvironments
    reference_defaults = {'max_environments': 20000}
    what = 'SOAP novelty'

    def per_atom(self, atoms: Atoms) -> np.ndarray:
        if set(atoms.get_chemical_symbols()) - set(self.reference.species):
            return np.full(len(atoms), MAX_DISTANCE)  # a species the descriptor cannot even describe
        return self.reference.per_atom(atoms)

    def training_scores(self) -> np.ndarray:
        """Return the score of each training frame against the environments of the OTHER frames."""
        return self.reference.leave_one_out()


class RematchCheck(TrainingReferenceCheck):
    """REMatch similarity of the whole frame to the training configurations (or an FPS subset of them).

    The frame's per-atom SOAP vectors are matched with those of each reference configuration by the
    entropy-regularised best match (:mod:`aiida_mlpot.descriptors.rematch`, dscribe's Sinkhorn solve); the
    frame is new when even its closest reference is not similar enough. The score is the REMatch distance
    d = sqrt(2 - 2 k_max) to the closest reference (0 for a training frame, larger for newer frames, like the
    other measures); the threshold on it is a critical similarity k_c = 1 - threshold^2 / 2: the check
    triggers when k_max < k_c. A frame with a species the training frames lack has k_max = 0.

    Settings (see :class:`TrainingReferenceCheck`): ``max_references``, compare with at most this many training
    frames, chosen by farthest-point sampling in the REMatch distance (None: all); ``alpha``, the entropic
    regularisation of the match; ``soap``; ``seed``, the first farthest-point pick; ``species``.
    """

    name = 'rematch'
    reference_class = RematchReferences
    what = 'the REMatch trigger'

    @property
    def critical_similarity(self) -> float | None:
        """The similarity below which the check triggers (None without a threshold)."""
        return None if self.threshold is None else similarity_of_distance(self.threshold)

    def score(self, atoms: Atoms) -> float:
        """Return the REMatch distance of ``atoms`` to its closest reference configuration."""
        return float(kernel_distance(self.reference.similarity(atoms)))

    def per_atom(self, atoms: Atoms) -> np.ndarray:
        """The REMatch score belongs to the whole frame: one value."""
        return np.array([self.score(atoms)])

    def message(self, value: float) -> str:
        similarity = similarity_of_distance(value) if np.isfinite(value) else value
        return f'REMatch similarity {similarity:.5f} below the critical {self.critical_similarity:.5f}'

    def training_scores(self) -> np.ndarray:
        """Return each training frame's distance to the closest reference other than itself (leave one out)."""
        return kernel_distance(self.reference.leave_one_out())

    def summary(self) -> dict:
        """Return the cost per check and the reference set: its size, how it was chosen, the critical k."""
        reference = self.reference
        return {
            **super().summary(),
            'critical_similarity': self.critical_similarity,
            'n_references': reference.n_references,
            'n_training_frames': reference.n_training,
            'reference_selection': reference.selection,
            'rematch_alpha': reference.alpha,
            'rematch_setup_time_s': reference.setup_time_s,
        }


def gap_variance_training_scores(frames: Sequence[Atoms], calculator) -> np.ndarray:
    """Return the GAP-variance frame score of each of ``frames`` evaluated with a quippy ``calculator``."""
    check = GapVarianceCheck(calculator=calculator)
    return np.array([check.score(frame) for frame in frames])


def relative_threshold(
    training_scores: np.ndarray, factor: float, percentile: float = 99.0
) -> tuple[float, float]:
    """Return (threshold, reference): reference = ``percentile`` of the training scores, threshold = factor x it."""
    scores = np.asarray(training_scores, dtype=float)
    scores = scores[np.isfinite(scores)]
    if not len(scores):
        raise ValueError('no finite training score to build a relative threshold from')
    reference = float(np.percentile(scores, percentile))
    return float(factor) * reference, reference


def kinetic_temperature(atoms: Atoms) -> float:
    """Return the instantaneous kinetic temperature (K) with 3N degrees of freedom."""
    if len(atoms) == 0:
        return 0.0
    return float(2.0 * atoms.get_kinetic_energy() / (3.0 * len(atoms) * KB_EV_PER_K))


def stability_checks(stability: dict, temperature_K: float, reference_volume: float) -> list[Check]:
    """Return the checks of the driver's ``stability`` section, :class:`FiniteCheck` first (see assess_frame)."""
    checks = [FiniteCheck()]
    if stability['max_temperature_factor'] is not None:
        checks.append(TemperatureCheck(temperature_K, stability['max_temperature_factor']))
    if stability['max_volume_factor'] is not None:
        checks.append(VolumeCheck(reference_volume, stability['max_volume_factor']))
    if stability['min_distance'] is not None:
        checks.append(MinDistanceCheck(stability['min_distance']))
    return checks


def is_traced(step: int, check_interval: int, dump_interval: int) -> bool:
    """Return whether step ``step`` of a run is recorded in the traces (and scored): a check or a dump step."""
    return step % check_interval == 0 or step % dump_interval == 0


@dataclasses.dataclass
class FrameAssessment:
    """What :func:`assess_frame` found on a frame: the checks that failed, and the extrapolation score."""

    failed: list[CheckResult]
    score: float | None = None

    @property
    def outcome(self) -> str | None:
        """``unstable`` or ``extrapolation`` when a check failed, else None (the frame is trusted)."""
        return self.failed[0].kind if self.failed else None


def assess_frame(
    atoms: Atoms,
    step: int,
    checks: Sequence[Check],
    measure: ExtrapolationCheck | None = None,
    check_interval: int = 1,
    dump_interval: int = 1,
    stability_interval: int = 1,
) -> FrameAssessment:
    """Return the assessment of the frame at ``step`` (counted from the start of the run) of an MD.

    The first check (:class:`FiniteCheck` in :func:`stability_checks`) runs on every frame; the others at
    multiples of ``stability_interval`` and only if the first passed. A frame that passes them is scored by
    ``measure`` at multiples of ``check_interval`` or ``dump_interval`` (:func:`is_traced`), but only the
    score at a multiple of ``check_interval`` can fail the frame (a frame scored because it is dumped is
    recorded, never a trigger). An unstable frame is not scored.
    """
    results = [checks[0](atoms)] if checks else []
    if results and not results[0].triggered and step % stability_interval == 0:
        results += [check(atoms) for check in checks[1:]]
    failed = [result for result in results if result.triggered]
    score = None
    if not failed and measure is not None and is_traced(step, check_interval, dump_interval):
        result = measure.check(atoms)
        score = result.value
        if step % check_interval == 0 and result.triggered:
            failed = [result]
    return FrameAssessment(failed, score)
