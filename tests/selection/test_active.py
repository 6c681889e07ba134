"""Choices of the active-learning loop on visited frames: audit frames spread in time, distinct candidates."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from aiida_mlpot.selection.active import choose_distinct, draw_random, spread_in_time


def test_spread_in_time_includes_the_last_and_spreads():
    assert spread_in_time(range(1, 11), 2) == [5, 10]
    assert spread_in_time(range(1, 11), 3) == [4, 7, 10]
    assert spread_in_time([3, 4], 5) == [3, 4]
    assert spread_in_time([], 2) == [] and spread_in_time([1, 2], 0) == []


def _crystal():
    return bulk('NaCl', 'rocksalt', a=5.64, cubic=True)


def _rattled(seed: int, amplitude: float):
    atoms = _crystal()
    atoms.positions += np.random.default_rng(seed).normal(0.0, amplitude, atoms.positions.shape)
    return atoms


SOAP = {'r_cut': 4.0, 'n_max': 4, 'l_max': 3}


def test_choose_distinct_refuses_known_and_duplicates_keeps_order_of_scores():
    training = [_crystal()]
    known = _crystal()
    rattled = _rattled(1, 0.35)
    twin = rattled.copy()
    twin.positions += 1e-4
    compressed = _crystal()
    compressed.set_cell(compressed.cell * 0.85, scale_atoms=True)
    frames = [known, rattled, twin, compressed]
    scores = [0.9, 0.5, 0.6, 0.1]
    choice = choose_distinct(frames, scores, training, max_n=5, min_distance=0.02, soap=SOAP)
    assert choice.novelty[0] < 0.02 < min(choice.novelty[1:])
    assert choice.kept == [2, 3]  # the twin scores higher than its original; the known frame is refused
    assert choice.refused[0].startswith('known') and choice.refused[1].startswith('duplicate')


def test_choose_distinct_caps_and_ranks_missing_scores_first():
    training = [_crystal()]
    frames = [_rattled(seed, 0.3) for seed in range(4)]
    choice = choose_distinct(frames, [0.2, None, 0.5, 0.1], training, max_n=2, min_distance=0.01, soap=SOAP)
    assert choice.kept == [1, 2]
    assert sorted(choice.refused) == [0, 3] and 'max_per_iteration=2' in choice.refused[0]


def test_choose_distinct_checks_lengths():
    with pytest.raises(ValueError, match='2 candidates but 1 scores'):
        choose_distinct([_crystal(), _crystal()], [0.1], [_crystal()], 1, 0.1)


def _visited(seed: int, step: int):
    atoms = _rattled(seed, 0.25)
    atoms.info.update({'energy': -30.0 - seed, 'virial': np.eye(3), 'step': step, 'uncertainty': 0.01 * seed})
    atoms.arrays['forces'] = np.full((len(atoms), 3), 0.1 * seed)
    atoms.arrays['momenta'] = np.ones((len(atoms), 3))
    return atoms


def test_plan_labels_audits_untriggered_frames_and_keeps_distinct_candidates():
    from aiida_mlpot.selection.active import plan_labels

    completed = [_visited(seed, 10 * seed) for seed in range(6)]
    triggered = [_visited(seed, 10 * (seed - 10)) for seed in range(10, 15)]
    flagged = [frame.copy() for frame in triggered[-2:]]
    unstable = [_visited(seed, seed) for seed in range(20, 23)]
    replicas = {
        'T1400': {'outcome': 'completed', 'trajectory': completed, 'flagged': []},
        'T1100': {'outcome': 'extrapolation', 'trajectory': triggered, 'flagged': flagged},
        'T1700': {'outcome': 'unstable', 'trajectory': unstable, 'flagged': []},
    }
    frames, record = plan_labels(replicas, [_crystal()], 2, 10, 0.01, SOAP)
    audits = [frame for frame in frames if frame.info['al_role'] == 'audit']
    # never the start frame; never the triggering or failing last frame
    assert record['replicas']['T1400']['audited_frames'] == [3, 5]
    assert record['replicas']['T1100']['audited_frames'] == [2, 3]
    assert record['replicas']['T1700']['audited_frames'] == [1]
    assert len(audits) == 5 and all('energy' not in f.info and 'forces' not in f.arrays for f in frames)
    assert all('ml_forces' in f.arrays and 'momenta' not in f.arrays for f in frames)
    candidates = [frame for frame in frames if frame.info['al_role'] == 'candidate']
    assert [f.info['al_source'] for f in candidates] == ['last_good_frame', 'flagged', 'flagged']
    assert record['n_candidates'] == 3 and all(entry['kept'] for entry in record['candidates'].values())


def test_audit_errors_compare_ml_predictions_with_oracle_labels():
    from aiida_mlpot.analysis.convergence import audit_errors
    from aiida_mlpot.common.keys import config_key
    from aiida_mlpot.selection.active import as_candidate

    planned = [
        as_candidate(_visited(seed, seed), al_role=role) for seed, role in ((1, 'audit'), (2, 'candidate'))
    ]
    labelled = []
    for index, frame in enumerate(planned):
        reference = frame.copy()
        reference.info = {'energy': frame.info['ml_energy'] - 0.64, 'label_key': config_key(index)}
        reference.arrays['forces'] = frame.arrays['ml_forces'] + 0.2
        labelled.append(reference)
    errors = audit_errors(planned, labelled)
    assert errors['n_configs'] == 1  # only the audited frame counts
    assert errors['force_rmse'] == pytest.approx(0.2)
    assert errors['energy_rmse'] == pytest.approx(640.0 / 8)  # meV/atom over 8 atoms
    assert audit_errors(planned, labelled[1:]) is None


def test_draw_random_is_seeded_and_skips_the_held_out():
    drawn = draw_random(20, 5, seed=3, held_out=[0, 1, 2, 3])
    assert drawn == draw_random(20, 5, seed=3, held_out=[0, 1, 2, 3]) and len(set(drawn)) == 5
    assert not set(drawn) & {0, 1, 2, 3} and drawn == sorted(drawn)
    assert draw_random(20, 5, seed=4, held_out=[0, 1, 2, 3]) != drawn  # another seed, another draw
    assert draw_random(6, 10, seed=1, held_out=[2]) == [0, 1, 3, 4, 5]  # a small pool: all the others
