"""The CP2K oracle runs in batches of `cp2k.max_concurrent` jobs (the outline's while_ loop, no private engine API)."""

from __future__ import annotations

import time

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlpot.workflows.labelling import LabellingWorkChain

from .conftest import nacl_cell8

pytestmark = pytest.mark.e2e

#: Makes one 8-atom xTB job about twice as slow as the others: a 3.2x finer Ewald grid (128, FFT-friendly;
#: 140 or 160 take over a minute) and a tighter SCF.
SLOW = {'xtb': {'ewald_gmax': 128}, 'scf': {'eps_scf': 1.0e-9}}


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Return the largest number of intervals (start, end) open at the same time."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_max_overlap():
    assert max_overlap([(0, 2), (1, 3), (2.5, 4)]) == 2
    assert max_overlap([(0, 1), (1, 2)]) == 1  # an end and a start at the same time do not overlap
    assert max_overlap([(0, 5), (1, 2), (1.5, 3)]) == 3


def test_batches_of_max_concurrent(code_cp2k):
    """max_concurrent=2, jobs (slow, fast, next): `slow` and `fast` run together, `next` starts when BOTH ended.

    The cost of batches is the slot left idle between the end of `fast` and the end of `slow` (printed).
    Checked on the children's ctime/mtime (the mtime of a terminated process node is the time it was sealed).
    """
    builder = LabellingWorkChain.get_builder_from_protocol(
        code_cp2k,
        {
            'a_slow': orm.StructureData(ase=nacl_cell8(0.10)),
            'b_fast': orm.StructureData(ase=nacl_cell8(0.05)),
            'c_next': orm.StructureData(ase=nacl_cell8(0.12)),
        },
        protocol='xtb',
        overrides={
            'cp2k': {
                'settings': {'omp_num_threads': 1},
                'config_overrides': {'a_slow': SLOW},
                'max_concurrent': 2,
            }
        },
    )
    start = time.perf_counter()
    results, node = run_get_node(builder)
    print(f'batches of 2, 3 xTB jobs: {time.perf_counter() - start:.1f} s')
    assert node.is_finished_ok, node.exit_message
    assert results['counts']['n_labelled'] == 3

    children = {
        link.link_label: link.node
        for link in node.base.links.get_outgoing(node_class=orm.WorkChainNode).all()
    }
    slow, fast, nxt = (children[f'label_{key}'] for key in ('a_slow', 'b_fast', 'c_next'))
    t0 = slow.ctime
    for label, child in (('slow', slow), ('fast', fast), ('next', nxt)):
        print(
            f'{label}: start {(child.ctime - t0).total_seconds():6.2f} s, '
            f'end {(child.mtime - t0).total_seconds():6.2f} s'
        )
    print(f'idle slot while the batch waited for `slow`: {(slow.mtime - fast.mtime).total_seconds():.1f} s')
    intervals = [(child.ctime.timestamp(), child.mtime.timestamp()) for child in (slow, fast, nxt)]
    assert max_overlap(intervals) == 2  # never more than max_concurrent at once, and the first two together
    assert fast.mtime < slow.mtime  # the scenario: one member of the first batch is slower
    assert nxt.ctime >= slow.mtime  # the next batch starts when the slowest member of the first has ended
