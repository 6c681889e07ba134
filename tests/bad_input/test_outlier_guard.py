"""Known answer: the outlier guard flags a 1.6 Å Na-Cl pair with 18 eV/Å in a 64- and in a 512-atom cell alike.

The frames are rock-salt NaCl (a = 5.64 Å) with thermal-like labels drawn from a known distribution: forces with
independent Gaussian components of 1 eV/Å (the scale of NaCl near its melting point), energies of -3.3 eV/atom
with extensive fluctuations (0.03 eV x sqrt(N) per frame). One frame of each set has a Cl moved to 1.6 Å of its
Na neighbour (the guard's ``min_distance`` is 1.0 Å, so the geometry alone does not exclude it), 18 eV/Å on the
two atoms along the bond and 3 eV more energy. The energy-per-atom criterion misses it (it dilutes 3 eV by the
number of atoms); the per-frame force criterion finds it at the same number of sigmas in both cells, and flags
none of the clean frames.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.build import bulk

from aiida_mlpot.analysis.outliers import DEFAULT_GUARD, find_outliers

N_FRAMES = 12
DEFECT = 5


def _frames(repeat: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    cell = bulk('NaCl', 'rocksalt', a=5.64, cubic=True).repeat(repeat)
    n_atoms = len(cell)
    frames = []
    for index in range(N_FRAMES):
        atoms = cell.copy()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        atoms.arrays['forces'] = rng.normal(scale=1.0, size=(n_atoms, 3))
        atoms.info['energy'] = -3.3 * n_atoms + rng.normal(scale=0.03 * math.sqrt(n_atoms))
        if index == DEFECT:
            na = 0
            cl = int(
                np.argmin(atoms.get_distances(na, range(n_atoms), mic=True) + 99 * (atoms.numbers == 11))
            )
            bond = atoms.get_distance(na, cl, mic=True, vector=True)
            atoms.positions[cl] = atoms.positions[na] + bond / np.linalg.norm(bond) * 1.6
            unit = bond / np.linalg.norm(bond)
            atoms.arrays['forces'][na] = -18.0 * unit
            atoms.arrays['forces'][cl] = 18.0 * unit
            atoms.info['energy'] += 3.0
            assert atoms.get_distance(na, cl, mic=True) == pytest.approx(1.6)
        frames.append(atoms)
    return frames


@pytest.mark.parametrize('repeat', [2, 4], ids=['64 atoms', '512 atoms'])
def test_defect_found_whatever_the_cell_size(repeat):
    frames = _frames(repeat)
    assert len(frames[0]) == 8 * repeat**3

    without_force_criterion = find_outliers(frames, force_mad_threshold=math.inf)
    assert without_force_criterion == {}, (
        'the energy-per-atom criterion alone was expected to miss the defect'
    )

    outliers = find_outliers(frames)
    assert list(outliers) == [DEFECT], outliers
    assert 'robust sigmas above the median |F|' in outliers[DEFECT]


def test_force_criterion_is_scale_free():
    """The defect stands the same number of sigmas above the thermal forces in both cells (within 15 %)."""
    sigmas = []
    for repeat in (2, 4):
        reason = find_outliers(_frames(repeat))[DEFECT]
        sigmas.append(float(reason.split(' is ')[1].split(' robust')[0]))
    assert (
        sigmas[0] > DEFAULT_GUARD['force_mad_threshold'] and sigmas[1] > DEFAULT_GUARD['force_mad_threshold']
    )
    assert sigmas[1] == pytest.approx(sigmas[0], rel=0.15)


def test_small_frames_skip_the_force_criterion():
    """Fewer atoms than ``min_atoms_for_force``: no median to compare with (in an 8-atom cell the energy per atom
    shows the defect instead); ``max_force`` still applies."""
    frames = _frames(1)
    reasons = find_outliers(frames, min_atoms_for_force=9)
    assert (
        list(reasons) == [DEFECT]
        and 'median |F|' not in reasons[DEFECT]
        and 'energy per atom' in reasons[DEFECT]
    )
    assert '|F| max 18' in find_outliers(frames, min_atoms_for_force=9, max_force=10.0)[DEFECT]
