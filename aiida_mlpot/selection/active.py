"""Choices the active-learning loop makes about visited MD frames (pure numpy + ASE, no AiiDA import).

* :func:`spread_in_time`: which frames of an exploration to audit (relabel although nothing triggered):
  spread over the run, the last one included, so that the audit measures the error along the trajectory the
  potential actually produced, late (most explored) frames included.
* :func:`choose_distinct`: which candidates to label: highest score first, each kept only if it is new with
  respect to the training set AND to the candidates already kept (per-atom SOAP distance,
  :func:`aiida_mlpot.descriptors.atomic_novelty`), at most ``max_n``. Every refusal has a reason, so the
  loop can record the decision.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms

__all__ = ('CandidateChoice', 'choose_distinct', 'spread_in_time')


def spread_in_time(eligible: Sequence[int], n: int) -> list[int]:
    """Return ``n`` items of ``eligible`` (in time order) spread evenly over it, the last one included.

    Item ``ceil((k + 1) m / n) - 1`` of the ``m`` eligible ones for k = 0 .. n-1; all of them when m <= n.
    """
    eligible = list(eligible)
    if n <= 0 or not eligible:
        return []
    m = len(eligible)
    if m <= n:
        return eligible
    return [eligible[math.ceil((k + 1) * m / n) - 1] for k in range(n)]


@dataclasses.dataclass
class CandidateChoice:
    """Result of :func:`choose_distinct`: kept indices (in the order chosen) and a reason per refused index."""

    kept: list[int]
    refused: dict[int, str]
    novelty: list[float]
    """novelty of every candidate against the training set (max over atoms of the SOAP distance)"""


def _rank(scores: Sequence[float | None]) -> list[int]:
    """Indices by decreasing score; a missing score ranks first (the last good frame before an instability)."""

    def key(index: int) -> float:
        value = scores[index]
        if value is None or not np.isfinite(value):
            return -math.inf
        return -float(value)

    return sorted(range(len(scores)), key=lambda index: (key(index), index))


def choose_distinct(
    frames: Sequence[Atoms],
    scores: Sequence[float | None],
    training: Sequence[Atoms],
    max_n: int,
    min_distance: float,
    soap: dict | None = None,
) -> CandidateChoice:
    """Return the candidates to label: by decreasing score, new to the training set and to each other.

    :param frames: candidate configurations (flagged frames, last good frames of unstable runs).
    :param scores: their extrapolation scores (None: no score, e.g. an instability; ranked first).
    :param training: the current training configurations.
    :param max_n: at most this many are kept.
    :param min_distance: a candidate whose per-atom SOAP novelty (max over atoms of the distance to the
        nearest environment of the same species) is below this against the training set, or against a
        candidate kept before it, is refused as a duplicate.
    :param soap: SOAP settings (see :data:`aiida_mlpot.descriptors.DEFAULT_SOAP`).
    """
    from aiida_mlpot.descriptors import atomic_novelty

    if len(frames) != len(scores):
        raise ValueError(f'{len(frames)} candidates but {len(scores)} scores')
    if not frames:
        return CandidateChoice([], {}, [])
    novelty = [float(x) for x in atomic_novelty(list(frames), list(training), soap)] if training else []
    kept: list[int] = []
    refused: dict[int, str] = {}
    for index in _rank(scores):
        if len(kept) >= max_n:
            refused[index] = f'beyond max_per_iteration={max_n}'
            continue
        if novelty and novelty[index] < min_distance:
            refused[index] = f'known: SOAP distance {novelty[index]:.3g} to the training set < {min_distance}'
            continue
        if kept:
            distance = float(atomic_novelty([frames[index]], [frames[k] for k in kept], soap)[0])
            if distance < min_distance:
                refused[index] = (
                    f'duplicate: SOAP distance {distance:.3g} to a kept candidate < {min_distance}'
                )
                continue
        kept.append(index)
    return CandidateChoice(kept, refused, novelty)
