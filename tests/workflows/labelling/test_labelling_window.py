"""The CP2K oracle runs as a rolling window: a slot is refilled as soon as ANY running job finishes."""

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


def test_third_job_starts_before_the_slowest_of_the_first_two_finishes(code_cp2k):
    """max_concurrent=2, jobs (slow, fast, next): `next` starts when `fast` ends, while `slow` still runs.

    With batches, `next` would start only after `slow` ended. Checked on the children's ctime/mtime (mtime of a
    terminated process node is the time it was sealed)."""
    inputs = {
        'structures': {
            'a_slow': orm.StructureData(ase=nacl_cell8(0.10)),
            'b_fast': orm.StructureData(ase=nacl_cell8(0.05)),
            'c_next': orm.StructureData(ase=nacl_cell8(0.12)),
        },
        'cp2k_code': code_cp2k,
        'protocol': orm.Str('xtb'),
        'overrides': orm.Dict({'omp_num_threads': 1}),
        'config_overrides': orm.Dict({'a_slow': SLOW}),
        'max_concurrent': orm.Int(2),
    }
    start = time.perf_counter()
    results, node = run_get_node(LabellingWorkChain, **inputs)
    print(f'rolling window, 3 xTB jobs: {time.perf_counter() - start:.1f} s')
    assert node.is_finished_ok, node.exit_message
    assert results['counts']['n_labelled'] == 3

    children = {
        link.link_label: link.node
        for link in node.base.links.get_outgoing(node_class=orm.WorkChainNode).all()
    }
    slow, fast, nxt = (children[f'label_{key}_attempt0'] for key in ('a_slow', 'b_fast', 'c_next'))
    t0 = slow.ctime
    for label, child in (('slow', slow), ('fast', fast), ('next', nxt)):
        print(
            f'{label}: start {(child.ctime - t0).total_seconds():6.2f} s, end {(child.mtime - t0).total_seconds():6.2f} s'
        )
    assert fast.ctime < nxt.ctime and slow.ctime < nxt.ctime  # submitted in key order, two at first
    assert nxt.ctime >= fast.mtime  # never more than max_concurrent running at once
    assert nxt.ctime < slow.mtime  # ... but the free slot was refilled while the slow job still ran
