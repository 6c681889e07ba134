"""The loop on an EAM metal whose many-body pair style reads a potential file from Debian's LAMMPS."""

from __future__ import annotations

import pytest
from aiida import orm
from ase.build import bulk

from tests.workflows.active_learning.loop_helpers import EAM_FILE, assert_converged, run_loop


@pytest.mark.e2e
def test_loop_converges_on_an_eam_metal_read_from_a_potential_file(codes):
    """Copper with `pair_style eam` and Debian's Cu_u3.eam (a many-body style reading a file), 32 atoms, 900 K."""
    if not EAM_FILE.is_file():
        pytest.skip(f'{EAM_FILE} is not installed (Debian package lammps-data)')
    potential = {'pair_style': 'eam', 'pair_coeff': ['* * Cu_u3.eam'], 'files': ['Cu_u3.eam']}
    files = {'Cu_u3_eam': orm.SinglefileData(EAM_FILE)}
    structure = orm.StructureData(ase=bulk('Cu', 'fcc', a=3.615, cubic=True).repeat(2))
    results, node = run_loop(structure, potential, [900.0], codes, potential_files=files)
    assert_converged(results, node)
