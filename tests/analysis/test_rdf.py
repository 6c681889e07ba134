"""Known-answer tests of the partial RDFs, the |Δg| score and the short-range artefact detection."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from aiida_mlpot.analysis.rdf import (
    coordination_number,
    max_rdf_cutoff,
    partial_rdfs,
    rdf_difference,
    rdf_overlay_plot,
    short_range_artefacts,
)

A_NACL = 5.64
A_CU = 3.6


def shell_count(rdf, density, r_low, r_high):
    """Coordination number between r_low and r_high."""
    r, g = rdf
    return coordination_number(r, g, density, r_high) - coordination_number(r, g, density, r_low)


def peak_position(rdf, r_low, r_high):
    r, g = rdf
    window = (r > r_low) & (r < r_high)
    return float(r[window][np.argmax(g[window])])


def triclinic_cell():
    return np.array([[12.0, 0.0, 0.0], [3.0, 11.0, 0.0], [-2.0, 2.5, 12.5]])


def test_ideal_gas_is_one_in_a_triclinic_cell():
    rng = np.random.default_rng(7)
    cell = triclinic_cell()
    frames = []
    for _ in range(20):
        frac = rng.random((300, 3))
        symbols = ['Na'] * 150 + ['Cl'] * 150
        frames.append(Atoms(symbols, scaled_positions=frac, cell=cell, pbc=True))
    r_max = max_rdf_cutoff(frames[0])
    rdfs = partial_rdfs(frames, r_max, n_bins=20)
    assert sorted(rdfs) == [('Cl', 'Cl'), ('Cl', 'Na'), ('Na', 'Na')]
    for r, g in rdfs.values():
        assert len(r) == len(g) == 20
        # the outer bins hold thousands of pairs: a few per cent of noise
        assert np.mean(g[5:]) == pytest.approx(1.0, abs=0.02)
        assert np.all(np.abs(g[10:] - 1.0) < 0.1)


def test_rocksalt_shells_and_coordination():
    atoms = bulk('NaCl', 'rocksalt', a=A_NACL, cubic=True).repeat(2)  # 64 atoms, widths 11.28 Å
    r_max = 5.5
    rdfs = partial_rdfs([atoms], r_max, n_bins=550)
    volume = atoms.get_volume()
    rho_cl = 32 / volume
    rho_na_other = 31 / volume
    na_cl = rdfs[('Cl', 'Na')]
    assert peak_position(na_cl, 2.0, 3.5) == pytest.approx(A_NACL / 2, abs=0.01)
    assert shell_count(na_cl, rho_cl, 2.0, 3.5) == pytest.approx(6.0, abs=1e-9)
    assert shell_count(na_cl, rho_cl, 4.5, 5.2) == pytest.approx(8.0, abs=1e-9)  # a*sqrt(3)/2 = 4.885 Å
    assert shell_count(na_cl, rho_cl, 0.0, 2.7) == 0.0
    for pair in (('Na', 'Na'), ('Cl', 'Cl')):
        like = rdfs[pair]
        assert peak_position(like, 3.5, 4.5) == pytest.approx(A_NACL / np.sqrt(2), abs=0.01)
        assert shell_count(like, rho_na_other, 0.0, 4.5) == pytest.approx(12.0, abs=1e-9)
        assert shell_count(like, rho_na_other, 4.5, 5.5) == 0.0  # the next shell is at a = 5.64 Å


def test_fcc_primitive_triclinic_cell_matches_cubic():
    """fcc Cu in its rhombohedral primitive cell (repeated) and in the cubic cell: same shells, same g."""
    cubic = bulk('Cu', 'fcc', a=A_CU, cubic=True).repeat(3)  # widths 10.8 Å
    primitive = bulk('Cu', 'fcc', a=A_CU).repeat(6)  # rhombohedral, 216 atoms
    r_max = min(max_rdf_cutoff(primitive), max_rdf_cutoff(cubic))
    assert r_max > 4.5
    rho_cubic = (len(cubic) - 1) / cubic.get_volume()
    for atoms in (cubic, primitive):
        (pair,) = partial_rdfs([atoms], r_max, n_bins=400)
        rdf = partial_rdfs([atoms], r_max, n_bins=400)[pair]
        rho = (len(atoms) - 1) / atoms.get_volume()
        assert peak_position(rdf, 2.0, 3.0) == pytest.approx(A_CU / np.sqrt(2), abs=0.01)
        assert shell_count(rdf, rho, 2.0, 3.0) == pytest.approx(12.0, abs=1e-9)
        assert shell_count(rdf, rho, 3.0, 4.0) == pytest.approx(6.0, abs=1e-9)
        assert shell_count(rdf, rho, 4.0, 4.5) == pytest.approx(24.0, abs=1e-9)  # a*sqrt(3/2) = 4.41 Å
    g_cubic = partial_rdfs([cubic], r_max, n_bins=100)[('Cu', 'Cu')][1]
    g_primitive = partial_rdfs([primitive], r_max, n_bins=100)[('Cu', 'Cu')][1]
    # same crystal, same number density up to the (N-1) normalisation of each cell
    np.testing.assert_allclose(g_cubic * rho_cubic, g_primitive * (215 / primitive.get_volume()), rtol=1e-9)


def test_rotation_invariance():
    atoms = bulk('NaCl', 'rocksalt', a=A_NACL).repeat(4)
    rotated = atoms.copy()
    rotated.rotate(37, (1, 2, 3), rotate_cell=True)
    rdf = partial_rdfs([atoms], 4.5, 90)
    rdf_rotated = partial_rdfs([rotated], 4.5, 90)
    for pair in rdf:
        np.testing.assert_allclose(rdf[pair][1], rdf_rotated[pair][1], atol=1e-9)


def test_frames_are_averaged():
    atoms = bulk('Cu', 'fcc', a=A_CU, cubic=True).repeat(3)
    expanded = atoms.copy()
    expanded.set_cell(atoms.cell * 1.1, scale_atoms=True)
    r_max = 5.0
    (r, g_one) = partial_rdfs([atoms], r_max, 100)[('Cu', 'Cu')]
    g_two = partial_rdfs([expanded], r_max, 100)[('Cu', 'Cu')][1]
    g_mean = partial_rdfs([atoms, expanded], r_max, 100)[('Cu', 'Cu')][1]
    np.testing.assert_allclose(g_mean, 0.5 * (g_one + g_two))


def test_r_max_too_large_names_it():
    atoms = bulk('Cu', 'fcc', a=A_CU, cubic=True).repeat(2)  # widths 7.2 Å
    assert max_rdf_cutoff(atoms) == pytest.approx(3.6)
    with pytest.raises(ValueError, match='r_max=3.7'):
        partial_rdfs([atoms], 3.7)
    partial_rdfs([atoms], 3.6)  # the limit itself is allowed


@pytest.mark.parametrize(
    'kwargs, message',
    [({'r_max': 0.0}, 'r_max'), ({'r_max': 2.0, 'n_bins': 0}, 'n_bins')],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        partial_rdfs([bulk('Cu', 'fcc', a=A_CU, cubic=True).repeat(2)], **kwargs)


def test_non_periodic_and_empty_input():
    with pytest.raises(ValueError, match='periodic'):
        partial_rdfs([Atoms('Cu2', positions=[[0, 0, 0], [2.5, 0, 0]], cell=[10, 10, 10], pbc=False)], 3.0)
    with pytest.raises(ValueError, match='at least one frame'):
        partial_rdfs([], 3.0)


def test_species_must_match_between_frames():
    with pytest.raises(ValueError, match='frame 1'):
        partial_rdfs([bulk('NaCl', 'rocksalt', a=A_NACL).repeat(3), bulk('Cu', 'fcc', a=A_CU).repeat(5)], 3.0)


def test_single_atom_of_a_species_has_no_like_pairs():
    atoms = bulk('Cu', 'fcc', a=A_CU, cubic=True).repeat(2)
    atoms[0].symbol = 'Au'
    rdfs = partial_rdfs([atoms], 3.0, 30)
    assert np.all(rdfs[('Au', 'Au')][1] == 0.0)
    assert shell_count(rdfs[('Au', 'Cu')], 31 / atoms.get_volume(), 0.0, 3.0) == pytest.approx(12.0)


def test_difference_score_known_values():
    r = np.linspace(0.05, 9.95, 100)  # bin width 0.1 Å
    one = np.ones_like(r)
    reference = {('Na', 'Na'): (r, one), ('Cl', 'Na'): (r, one)}
    shifted = {('Na', 'Na'): (r, one + 0.5), ('Cl', 'Na'): (r, one)}
    scores = rdf_difference(shifted, reference)
    assert scores[('Na', 'Na')] == pytest.approx(0.5 * 10.0)
    assert scores[('Cl', 'Na')] == 0.0
    with pytest.raises(ValueError, match='different r grids'):
        rdf_difference({('Na', 'Na'): (r[:50], one[:50])}, reference)


def test_difference_of_crystal_and_its_expansion_is_large_and_symmetric():
    atoms = bulk('Cu', 'fcc', a=A_CU, cubic=True).repeat(3)
    expanded = atoms.copy()
    expanded.set_cell(atoms.cell * 1.05, scale_atoms=True)
    a = partial_rdfs([atoms], 5.0, 100)
    b = partial_rdfs([expanded], 5.0, 100)
    assert rdf_difference(a, a) == {('Cu', 'Cu'): 0.0}
    assert rdf_difference(a, b)[('Cu', 'Cu')] == pytest.approx(rdf_difference(b, a)[('Cu', 'Cu')])
    assert rdf_difference(a, b)[('Cu', 'Cu')] > 1.0


def test_short_range_artefact_is_found_in_the_core_only():
    r = np.linspace(0.025, 7.975, 160)
    reference = np.where(r < 2.5, 0.0, 1.0)
    reference[(r > 3.0) & (r < 3.2)] = 0.0  # a gap between shells: not the core
    ml = reference.copy()
    ml[(r > 1.4) & (r < 1.6)] = 2.0  # unphysical close contacts
    ml[(r > 3.0) & (r < 3.2)] = 0.5  # filled gap: not flagged
    found = short_range_artefacts({('Na', 'Na'): (r, ml)}, {('Na', 'Na'): (r, reference)})
    assert list(found) == [('Na', 'Na')]
    hit = found[('Na', 'Na')]
    assert hit['r_onset_reference'] == pytest.approx(2.525)
    assert 1.4 < hit['r_first'] < 1.45
    assert 1.4 < hit['r_peak'] < 1.6
    assert hit['g_peak'] == 2.0
    assert short_range_artefacts({('Na', 'Na'): (r, reference)}, {('Na', 'Na'): (r, reference)}) == {}


def test_short_range_artefact_on_real_rdfs():
    """A crystal with one pair of atoms pushed together shows a peak where the crystal has none."""
    atoms = bulk('Cu', 'fcc', a=A_CU, cubic=True).repeat(3)
    squeezed = atoms.copy()
    squeezed.positions[1] = squeezed.positions[0] + 0.6 * (squeezed.positions[1] - squeezed.positions[0])
    reference = partial_rdfs([atoms], 5.0, 100)
    ml = partial_rdfs([squeezed], 5.0, 100)
    found = short_range_artefacts(ml, reference)
    # the closest contact; moving the atom also brings it closer to some of the other neighbours of atom 0
    assert found[('Cu', 'Cu')]['r_first'] == pytest.approx(0.6 * A_CU / np.sqrt(2), abs=0.05)
    assert short_range_artefacts(reference, reference) == {}


def test_counts_agree_with_ase_neighbour_list_in_a_skewed_cell():
    """An independent pair search (ASE) gives the same histogram in a strongly tilted, rattled cell."""
    from ase.neighborlist import neighbor_list

    atoms = bulk('NaCl', 'rocksalt', a=A_NACL).repeat(4)
    atoms.set_cell(
        np.dot(atoms.cell, [[1.0, 0.0, 0.0], [0.45, 1.0, 0.0], [-0.3, 0.2, 1.0]]), scale_atoms=True
    )
    atoms.rattle(0.2, seed=3)
    r_max = 0.99 * max_rdf_cutoff(atoms)
    rdfs = partial_rdfs([atoms], r_max, 50)
    symbols = np.array(atoms.get_chemical_symbols())
    i, j, d = neighbor_list('ijd', atoms, r_max)
    mask = (symbols[i] == 'Cl') & (symbols[j] == 'Na')
    counts = np.histogram(d[mask], bins=50, range=(0.0, r_max))[0]
    r, g = rdfs[('Cl', 'Na')]
    n = len(atoms) // 2
    width = r_max / 50
    shell = 4.0 / 3.0 * np.pi * ((r + width / 2) ** 3 - (r - width / 2) ** 3)
    np.testing.assert_allclose(g * n * n / atoms.get_volume() * shell, counts, atol=1e-6)


def test_overlay_plot_is_a_png(tmp_path):
    atoms = bulk('NaCl', 'rocksalt', a=A_NACL, cubic=True).repeat(2)
    squeezed = atoms.copy()
    squeezed.positions[1] = squeezed.positions[0] + 0.5 * (squeezed.positions[1] - squeezed.positions[0])
    path = tmp_path / 'rdf.png'
    rdf_overlay_plot(partial_rdfs([squeezed], 5.0, 100), partial_rdfs([atoms], 5.0, 100), path, title='NaCl')
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert path.stat().st_size > 10_000
