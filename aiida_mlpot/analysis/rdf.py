"""Partial radial distribution functions g_ab(r) of periodic frames, their difference and artefacts. Pure (no AiiDA).

Definition (per frame, then averaged over frames): for species a and b with N_a and N_b atoms in a cell of
volume V, and n_ab(r) the number of ordered pairs (i in a, j in b, j != i) at a distance in the shell
[r, r + dr),

    g_ab(r) = V / (N_a * N_b') * n_ab(r) / (4/3 π ((r + dr)³ - r³)),    N_b' = N_b, or N_a - 1 if a == b,

so that an ideal gas gives g_ab = 1 at every r, for any N (no (N-1)/N finite-size bias), and the running
coordination number of b around a is n_ab(R) = 4π (N_b'/V) ∫_0^R g_ab(r) r² dr (:func:`coordination_number`).

Pair distances come from freud's neighbour query (:class:`freud.locality.AABBQuery`, freud-analysis, maintained
by the Glotzer group): C++ with a bounding-volume tree, exact for any cell shape (triclinic included), about 8x
faster than ASE's :func:`ase.neighborlist.neighbor_list` on a 2000-atom NaCl cell at r_max = 8 Å (0.65 s against
5.2 s measured here, same 173460 pairs), which matters for RDFs over hundreds of MD frames. The cell is first
brought to ASE's standard (lower-triangular) orientation and the atoms placed by their fractional coordinates,
so freud's upper-triangular, origin-centred box holds them whatever the orientation of the ASE cell. freud's own
:class:`freud.density.RDF` is not used for the histogram: its same-species normalisation depends on
``exclude_ii`` / ``normalization_mode`` choices (an ideal gas tends to (N-1)/N in its default mode) and partial
RDFs need one call per species pair; the histogram and the normalisation above are a few lines of numpy.

``r_max`` must not exceed half the smallest distance between opposite faces of the cell
(:func:`max_rdf_cutoff`): beyond it an atom would see its own periodic images and the pair correlation of a
finite periodic sample stops meaning that of the bulk. Bins are half-open, [r_k, r_k + dr): a pair exactly at
``r_max`` is not counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations_with_replacement

import freud
import numpy as np
from ase import Atoms

__all__ = (
    'coordination_number',
    'max_rdf_cutoff',
    'partial_rdfs',
    'rdf_difference',
    'rdf_overlay_plot',
    'short_range_artefacts',
)

Pair = tuple[str, str]
Rdf = tuple[np.ndarray, np.ndarray]


def max_rdf_cutoff(atoms: Atoms) -> float:
    """Return the largest RDF cutoff (Å) the cell of ``atoms`` allows: half its smallest face-to-face width.

    :raises ValueError: if the cell is not periodic in all three directions or has no volume.
    """
    if not all(atoms.pbc):
        raise ValueError(f'an RDF needs a cell periodic in all three directions, got pbc={list(atoms.pbc)}')
    cell = np.asarray(atoms.cell[:], dtype=float)
    volume = abs(float(np.linalg.det(cell)))
    if volume <= 0.0:
        raise ValueError('an RDF needs a cell with a non-zero volume')
    areas = [np.linalg.norm(np.cross(cell[j], cell[k])) for j, k in ((1, 2), (2, 0), (0, 1))]
    return 0.5 * volume / max(areas)


def _pair_distances(atoms: Atoms, r_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (i, j, d) for every ordered pair i != j closer than ``r_max`` (both (i, j) and (j, i))."""
    standard_cell, _ = atoms.cell.standard_form()
    box = freud.box.Box.from_matrix(np.asarray(standard_cell).T)
    points = box.make_absolute(atoms.get_scaled_positions(wrap=True))
    query = freud.locality.AABBQuery(box, points)
    neighbours = query.query(points, {'r_max': r_max, 'exclude_ii': True}).toNeighborList()
    return (
        np.asarray(neighbours.query_point_indices),
        np.asarray(neighbours.point_indices),
        np.asarray(neighbours.distances, dtype=float),
    )


def partial_rdfs(frames: Sequence[Atoms], r_max: float, n_bins: int = 200) -> dict[Pair, Rdf]:
    """Return the partial RDFs g_ab(r) of ``frames`` averaged over the frames.

    :param frames: periodic configurations (any cell shape; the cell may change between frames, as in NPT;
        every frame must hold the same species).
    :param r_max: largest distance (Å); at most :func:`max_rdf_cutoff` of every frame.
    :param n_bins: number of equal-width bins on [0, r_max].
    :returns: ``{(a, b): (r, g)}`` for every unordered species pair, keys sorted (``('Cl', 'Na')``, never
        ``('Na', 'Cl')``), ``r`` the bin centres (Å) and ``g`` the dimensionless g_ab(r). A pair ``(a, a)`` with a
        single atom of ``a`` has g = 0 (no pair exists).
    :raises ValueError: for no frames, ``r_max`` <= 0 or above the cell's limit (the message names ``r_max``),
        ``n_bins`` < 1, or frames with different species.
    """
    if len(frames) == 0:
        raise ValueError('partial_rdfs needs at least one frame')
    r_max = float(r_max)
    if not r_max > 0.0:
        raise ValueError(f'r_max must be positive, got r_max={r_max}')
    if int(n_bins) < 1:
        raise ValueError(f'n_bins must be at least 1, got {n_bins}')
    n_bins = int(n_bins)
    species = sorted(set(frames[0].get_chemical_symbols()))
    pairs = list(combinations_with_replacement(species, 2))
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shell_volumes = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    totals = {pair: np.zeros(n_bins) for pair in pairs}

    for index, atoms in enumerate(frames):
        limit = max_rdf_cutoff(atoms)
        if r_max > limit * (1.0 + 1e-12):
            raise ValueError(
                f'r_max={r_max} Å exceeds half the smallest width of the cell of frame {index} '
                f'({limit:.4f} Å); use a larger cell or a smaller r_max'
            )
        symbols = atoms.get_chemical_symbols()
        if sorted(set(symbols)) != species:
            raise ValueError(f'frame {index} has species {sorted(set(symbols))}, frame 0 has {species}')
        codes = np.array([species.index(symbol) for symbol in symbols])
        counts_per_species = np.bincount(codes, minlength=len(species))
        volume = atoms.get_volume()
        # freud needs r_max strictly below the half width: at the limit itself, query a hair (1e-6) shorter
        first, second, distance = _pair_distances(atoms, min(r_max, limit * (1.0 - 1e-6)))
        keep = distance < r_max
        bins = np.minimum((distance[keep] / r_max * n_bins).astype(int), n_bins - 1)
        # one histogram over (species of i, species of j, bin); ordered pairs, so (a, b) and (b, a) both appear
        n_species = len(species)
        flat = (codes[first[keep]] * n_species + codes[second[keep]]) * n_bins + bins
        histogram = np.bincount(flat, minlength=n_species * n_species * n_bins).reshape(
            n_species, n_species, n_bins
        )
        for a, b in pairs:
            ia, ib = species.index(a), species.index(b)
            n_a = int(counts_per_species[ia])
            n_b = int(counts_per_species[ib]) if a != b else n_a - 1
            if n_a == 0 or n_b <= 0:
                continue
            # i in a, j in b: for a == b each unordered pair is counted twice, matching N_a (N_a - 1)
            totals[(a, b)] += histogram[ia, ib] * volume / (n_a * n_b) / shell_volumes

    centres = 0.5 * (edges[1:] + edges[:-1])
    return {pair: (centres.copy(), total / len(frames)) for pair, total in totals.items()}


def coordination_number(r: np.ndarray, g: np.ndarray, density: float, r_cut: float) -> float:
    """Return the running coordination number 4π ρ ∫_0^r_cut g(r) r² dr of an RDF on bin centres ``r``.

    The bins are taken as equal-width histogram bins; a bin counts when its centre lies below ``r_cut``.

    :param density: number density (Å⁻³) of the neighbour species b: N_b / V, or (N_a - 1) / V for a == b.
    """
    r = np.asarray(r, dtype=float)
    g = np.asarray(g, dtype=float)
    width = float(r[1] - r[0]) if len(r) > 1 else 2.0 * float(r[0])
    edges_low = r - 0.5 * width
    shell = 4.0 / 3.0 * np.pi * ((edges_low + width) ** 3 - edges_low**3)
    mask = r < r_cut
    return float(density * np.sum(g[mask] * shell[mask]))


def _check_same_grid(pair: Pair, first: Rdf, second: Rdf) -> None:
    if len(first[0]) != len(second[0]) or not np.allclose(first[0], second[0]):
        raise ValueError(
            f'the RDFs of pair {pair} are on different r grids; compute both with the same r_max, n_bins'
        )


def rdf_difference(rdfs: Mapping[Pair, Rdf], reference: Mapping[Pair, Rdf]) -> dict[Pair, float]:
    """Return the |Δg| score per pair: ∫ |g(r) - g_ref(r)| dr over the common grid (Å).

    Both must come from :func:`partial_rdfs` with the same ``r_max`` and ``n_bins``. Only pairs present in both
    are scored. 0 means identical; two RDFs that share no peak score about twice the area under g.

    :raises ValueError: if a shared pair has a different r grid.
    """
    scores = {}
    for pair in sorted(set(rdfs) & set(reference)):
        _check_same_grid(pair, rdfs[pair], reference[pair])
        r, g = rdfs[pair]
        width = float(r[1] - r[0]) if len(r) > 1 else 2.0 * float(r[0])
        scores[pair] = float(np.sum(np.abs(np.asarray(g) - np.asarray(reference[pair][1]))) * width)
    return scores


def short_range_artefacts(
    rdfs: Mapping[Pair, Rdf],
    reference: Mapping[Pair, Rdf],
    threshold: float = 0.1,
    reference_zero: float = 0.01,
    margin: float = 0.2,
) -> dict[Pair, dict]:
    """Return the pairs whose g(r) shows structure where the reference has none, at short range.

    For each pair, the reference's excluded core is r < r_onset, where r_onset is the first bin centre with
    g_ref > ``reference_zero``. A pair is flagged when g(r) > ``threshold`` at some bin below r_onset - ``margin``
    (Å): the unphysical short-range peaks of an ML potential that lets atoms approach closer than the
    reference does. The margin keeps the sampling noise of the onset itself (a few frames put the first
    contact a bin earlier or later) from being taken for an artefact. Gaps between crystal shells are not
    inspected: thermal broadening there is not an artefact.

    :returns: ``{pair: {'r_onset_reference', 'r_first', 'r_peak', 'g_peak'}}`` for flagged pairs only (Å; r_first
        is the first r inside the core where g exceeds the threshold, r_peak / g_peak the core maximum). An empty
        dict means no artefact. A reference with g_ref <= reference_zero everywhere has no core to inspect.
    :raises ValueError: if a shared pair has a different r grid.
    """
    flagged = {}
    for pair in sorted(set(rdfs) & set(reference)):
        _check_same_grid(pair, rdfs[pair], reference[pair])
        r, g = (np.asarray(x, dtype=float) for x in rdfs[pair])
        g_ref = np.asarray(reference[pair][1], dtype=float)
        above_ref = np.flatnonzero(g_ref > reference_zero)
        if len(above_ref) == 0:
            continue
        core = slice(0, int(np.searchsorted(r, r[above_ref[0]] - margin, side='right')))
        hits = np.flatnonzero(g[core] > threshold)
        if len(hits) == 0:
            continue
        peak = int(np.argmax(g[core]))
        flagged[pair] = {
            'r_onset_reference': float(r[above_ref[0]]),
            'r_first': float(r[hits[0]]),
            'r_peak': float(r[peak]),
            'g_peak': float(g[peak]),
        }
    return flagged


def rdf_overlay_plot(
    rdfs: Mapping[Pair, Rdf],
    reference: Mapping[Pair, Rdf],
    path,
    labels: tuple[str, str] = ('ML', 'reference'),
    title: str | None = None,
) -> None:
    """Write a PNG with one panel per species pair: g(r) over g_ref(r), the |Δg| score in each panel's title.

    Pairs flagged by :func:`short_range_artefacts` are marked in their title. Uses the Agg backend.
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib.figure import Figure

    pairs = sorted(set(rdfs) & set(reference))
    scores = rdf_difference(rdfs, reference)
    artefacts = short_range_artefacts(rdfs, reference)
    figure = Figure(figsize=(4.2 * max(len(pairs), 1), 3.6), dpi=100)
    for index, pair in enumerate(pairs):
        axis = figure.add_subplot(1, len(pairs), index + 1)
        axis.plot(*reference[pair], color='black', lw=1.5, label=labels[1])
        axis.plot(*rdfs[pair], color='tab:red', lw=1.2, ls='--', label=labels[0])
        flag = '  short-range artefact' if pair in artefacts else ''
        axis.set_title(f'{pair[0]}-{pair[1]}: |Δg| = {scores[pair]:.3f} Å{flag}', fontsize=9)
        axis.set_xlabel('r (Å)')
        axis.set_ylabel('g(r)')
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
