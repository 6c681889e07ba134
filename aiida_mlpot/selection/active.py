"""Choices the active-learning loop makes about visited MD frames (pure numpy + ASE, no AiiDA import).

* :func:`spread_in_time`: which frames of an exploration to audit (relabel although nothing triggered):
  spread over the run, the last one included, so that the audit measures the error along the trajectory the
  potential actually produced, late (most explored) frames included.
* :func:`choose_distinct`: which candidates to label: highest score first, each kept only if it is new with
  respect to the training set AND to the candidates already kept (per-atom SOAP distance,
  :func:`aiida_mlpot.descriptors.atomic_novelty`), at most ``max_n``. Every refusal has a reason, so the
  loop can record the decision.
* :func:`draw_random`: the random baseline's training configurations: drawn uniformly at random (seeded) from
  the pool, none of those held out for testing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence

import numpy as np
from ase import Atoms

from aiida_mlpot.selection.basic import select_random

__all__ = ('CandidateChoice', 'choose_distinct', 'draw_random', 'spread_in_time')


def draw_random(n_pool: int, n: int, seed: int, held_out: Collection[int] = ()) -> list[int]:
    """Return ``n`` pool indices drawn uniformly at random (``seed``), none of ``held_out``; all others if fewer.

    The random baseline of the loop: the same label budget as the active-learning training set, spent on
    configurations drawn at random from the same pool, the held-out (test) configurations excluded so that both
    potentials are tested on configurations neither was trained on.
    """
    excluded = {int(index) for index in held_out}
    available = [index for index in range(n_pool) if index not in excluded]
    picks = select_random(len(available), n, seed=seed, allow_fewer=True)
    return [available[int(index)] for index in picks]


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


#: Label names of the package convention and the names they get on a frame sent to the oracle.
_ML_NAMES = {'energy': 'ml_energy', 'virial': 'ml_virial', 'forces': 'ml_forces'}


def as_candidate(frame: Atoms, **info) -> Atoms:
    """Return a copy of an ML-MD frame to send to the oracle: ML labels renamed ``ml_*``, ``info`` added.

    The ML predictions are kept (the audit compares them with the oracle's labels) but under names that
    cannot be mistaken for reference labels. Frames flagged by the driver already carry ``ml_*`` names.
    """
    candidate = frame.copy()
    candidate.calc = None
    for name, renamed in _ML_NAMES.items():
        store = candidate.arrays if name == 'forces' else candidate.info
        if name in store:
            store[renamed] = store.pop(name)
    candidate.arrays.pop('momenta', None)
    candidate.info.update(info)
    return candidate


def plan_labels(
    replicas: dict[str, dict],
    training: Sequence[Atoms],
    audit_per_replica: int,
    max_candidates: int,
    min_distance: float,
    soap: dict | None = None,
) -> tuple[list[Atoms], dict]:
    """Return the frames of one iteration to send to the oracle (audit frames, then candidates) and the record.

    :param replicas: per exploration replica ``{'outcome': ..., 'trajectory': [Atoms], 'flagged': [Atoms]}``.
        Frame 0 of a trajectory is the start frame (not visited); when the run did not complete, its last frame
        is the triggering (extrapolation) or failing (unstable) frame.
    :param training: the current training configurations (candidates must be new to them).
    :param audit_per_replica: frames visited WITHOUT a trigger, spread in time, relabelled to measure the
        error on what the MD visits.
    :param max_candidates: at most this many candidates (flagged frames, and the last good frame of an
        unstable run) are kept, by decreasing score, distinct (:func:`choose_distinct`).
    :return: the frames (``info['al_role']`` ``audit`` or ``candidate``, ``info['al_replica']``, ML labels as
        ``ml_*``) and a JSON-serialisable record of every choice with its reason.
    """
    audit, pool, sources = [], [], []
    record: dict = {'replicas': {}, 'audit': [], 'candidates': {}}
    for key in sorted(replicas):
        replica = replicas[key]
        trajectory = list(replica.get('trajectory') or [])
        outcome = replica['outcome']
        visited = list(range(1, len(trajectory) - (0 if outcome == 'completed' else 1)))
        picked = spread_in_time(visited, audit_per_replica)
        for index in picked:
            frame = trajectory[index]
            audit.append(as_candidate(frame, al_role='audit', al_replica=key))
            record['audit'].append({'replica': key, 'frame': index, 'step': frame.info.get('step')})
        sources_here = []
        for index, frame in enumerate(replica.get('flagged') or []):
            pool.append(as_candidate(frame, al_role='candidate', al_replica=key, al_source='flagged'))
            sources.append(
                {'replica': key, 'source': 'flagged', 'frame': index, 'step': frame.info.get('step')}
            )
            sources_here.append(index)
        if outcome == 'unstable' and len(trajectory) >= 2:
            frame = trajectory[-2]
            pool.append(as_candidate(frame, al_role='candidate', al_replica=key, al_source='last_good_frame'))
            sources.append({'replica': key, 'source': 'last_good_frame', 'frame': len(trajectory) - 2,
                            'step': frame.info.get('step')})  # fmt: skip
        record['replicas'][key] = {
            'outcome': outcome,
            'steps_done': replica.get('steps_done'),
            'n_frames': len(trajectory),
            'audited_frames': picked,
            'n_flagged': len(sources_here),
        }
    scores = [frame.info.get('uncertainty') for frame in pool]
    choice = choose_distinct(pool, scores, training, max_candidates, min_distance, soap)
    candidates = [pool[index] for index in choice.kept]
    for index, source in enumerate(sources):
        entry = {
            **source,
            'score': scores[index],
            'novelty': choice.novelty[index] if choice.novelty else None,
        }
        entry['kept'] = index in choice.kept
        if index in choice.refused:
            entry['reason'] = choice.refused[index]
        record['candidates'][str(index)] = entry
    record['n_audit'] = len(audit)
    record['n_candidates'] = len(candidates)
    return audit + candidates, record
