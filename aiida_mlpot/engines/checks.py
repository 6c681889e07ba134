"""Checks applied to the current MD frame: small classes with ``check(atoms) -> CheckResult`` (no AiiDA import).

Two kinds of checks:

* ``unstable``: the simulation is broken (non-finite energy or forces, two atoms closer than a minimum
  distance, a temperature beyond a multiple of the target, a volume beyond a factor of the start);
* ``extrapolation``: the frame lies too far from the training data of the potential (GAP predictive
  standard deviation of the local energies, or SOAP novelty against the training environments).

Each check reads what it needs from ``atoms`` and its attached calculator and never triggers a new
potential evaluation, so it costs (almost) nothing on top of the MD step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from ase import Atoms

from aiida_mlpot.common.units import KB_EV_PER_K

__all__ = (
    'CheckResult',
    'FiniteCheck',
    'GapVarianceCheck',
    'MinDistanceCheck',
    'SoapNoveltyCheck',
    'TemperatureCheck',
    'VolumeCheck',
    'gap_variance_training_scores',
    'kinetic_temperature',
    'relative_threshold',
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
    """Triggers when two atoms are closer than ``min_distance`` (Å)."""

    name = 'min_distance'

    def __init__(self, min_distance: float):
        self.min_distance = float(min_distance)

    def check(self, atoms: Atoms) -> CheckResult:
        from ase.neighborlist import neighbor_list

        distances = neighbor_list('d', atoms, self.min_distance)
        value = float(distances.min()) if len(distances) else float('inf')
        triggered = bool(len(distances))
        message = f'interatomic distance {value:.3f} Å below {self.min_distance} Å' if triggered else ''
        return CheckResult(self.name, self.kind, triggered, value, self.min_distance, message)


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

    def per_atom(self, atoms: Atoms) -> np.ndarray:
        raise NotImplementedError

    def score(self, atoms: Atoms) -> float:
        """Return the frame score: the maximum of the per-atom scores."""
        values = self.per_atom(atoms)
        return float(np.max(values)) if len(values) else 0.0

    def check(self, atoms: Atoms) -> CheckResult:
        value = self.score(atoms)
        triggered = self.threshold is not None and (not np.isfinite(value) or value > self.threshold)
        message = f'{self.name} score {value:.4g} above threshold {self.threshold:.4g}' if triggered else ''
        return CheckResult(self.name, self.kind, bool(triggered), value, self.threshold, message)


class GapVarianceCheck(ExtrapolationCheck):
    """GAP predictive standard deviation of the local energies (eV): max over atoms of sqrt(variance).

    The calculator attached to ``atoms`` must be a quippy ``Potential`` whose last evaluation ran with
    ``calc_args`` containing ``local_gap_variance``.
    """

    name = 'gap_variance'
    needs_variance = True

    def per_atom(self, atoms: Atoms) -> np.ndarray:
        extra = getattr(atoms.calc, 'extra_results', {}) or {}
        variance = extra.get('atoms', {}).get('local_gap_variance')
        if variance is None:
            raise RuntimeError('the last potential evaluation did not compute `local_gap_variance`')
        return np.sqrt(np.clip(np.asarray(variance, dtype=float).ravel(), 0.0, None))


class SoapNoveltyCheck(ExtrapolationCheck):
    """SOAP novelty: per atom, the smallest SOAP distance sqrt(2 - 2 k) to a training environment of its species.

    ``k`` is the dot product of normalised SOAP power spectra (dscribe). The frame score is the largest
    per-atom distance: 0 for an environment seen in training, up to sqrt(2) for an orthogonal one.
    Works for any potential (no variance needed).
    """

    name = 'soap_novelty'

    def __init__(
        self,
        training_frames: list[Atoms],
        threshold: float | None = None,
        r_cut: float = 5.0,
        n_max: int = 4,
        l_max: int = 3,
        sigma: float = 0.5,
        max_environments: int = 20000,
        seed: int = 0,
        species: list[str] | None = None,
    ):
        from dscribe.descriptors import SOAP

        super().__init__(threshold)
        if not training_frames:
            raise ValueError('SOAP novelty needs at least one training frame')
        symbols = set(species or [])
        for frame in training_frames:
            symbols.update(frame.get_chemical_symbols())
        self.species = sorted(symbols)
        self.soap = SOAP(
            species=self.species,
            r_cut=r_cut,
            n_max=n_max,
            l_max=l_max,
            sigma=sigma,
            periodic=True,
            sparse=False,
        )
        vectors, numbers, frame_index = [], [], []
        for index, frame in enumerate(training_frames):
            vectors.append(self._descriptor(frame))
            numbers.append(frame.numbers)
            frame_index.append(np.full(len(frame), index))
        self._frame_vectors = vectors
        vectors = np.concatenate(vectors)
        numbers = np.concatenate(numbers)
        frame_index = np.concatenate(frame_index)
        if len(vectors) > max_environments:
            keep = np.sort(np.random.default_rng(seed).choice(len(vectors), max_environments, replace=False))
            vectors, numbers, frame_index = vectors[keep], numbers[keep], frame_index[keep]
        self._training = {
            int(z): (vectors[numbers == z], frame_index[numbers == z]) for z in np.unique(numbers)
        }
        self._training_frames = training_frames

    def _descriptor(self, atoms: Atoms) -> np.ndarray:
        vectors = np.atleast_2d(self.soap.create(atoms, n_jobs=1))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)

    def _novelty(
        self, vectors: np.ndarray, numbers: np.ndarray, exclude_frame: int | None = None
    ) -> np.ndarray:
        result = np.full(len(vectors), np.sqrt(2.0))
        for z in np.unique(numbers):
            mask = numbers == z
            if int(z) not in self._training:
                continue
            reference, frames = self._training[int(z)]
            similarity = vectors[mask] @ reference.T
            if exclude_frame is not None:
                similarity[:, frames == exclude_frame] = -np.inf
            best = similarity.max(axis=1) if similarity.shape[1] else np.full(mask.sum(), -np.inf)
            result[mask] = np.sqrt(np.clip(2.0 - 2.0 * np.clip(best, -1.0, 1.0), 0.0, None))
        return result

    def per_atom(self, atoms: Atoms) -> np.ndarray:
        unknown = set(atoms.get_chemical_symbols()) - set(self.species)
        if unknown:
            return np.full(len(atoms), np.sqrt(2.0))
        return self._novelty(self._descriptor(atoms), atoms.numbers)

    def training_scores(self) -> np.ndarray:
        """Return the score of each training frame against the environments of the OTHER frames."""
        scores = []
        for index, frame in enumerate(self._training_frames):
            values = self._novelty(self._frame_vectors[index], frame.numbers, exclude_frame=index)
            scores.append(float(values.max()))
        return np.array(scores)


def gap_variance_training_scores(frames: list[Atoms], calculator) -> np.ndarray:
    """Return the GAP-variance frame score of each of ``frames`` evaluated with a quippy ``calculator``."""
    check = GapVarianceCheck()
    saved, saved_properties = calculator.calc_args, calculator.get_default_properties()
    if GAP_VARIANCE_CALC_ARGS not in saved:
        calculator.calc_args = f'{saved} {GAP_VARIANCE_CALC_ARGS}'.strip()
    calculator.set_default_properties(['energy'])  # no forces: quippy then skips the variance gradient
    try:
        scores = []
        for frame in frames:
            atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
            calculator.reset()
            atoms.calc = calculator
            calculator.calculate(atoms, properties=['energy'])
            scores.append(check.score(atoms))
    finally:
        calculator.calc_args = saved
        calculator.set_default_properties(saved_properties)
        calculator.reset()
    return np.array(scores)


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
