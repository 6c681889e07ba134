"""The gap_fit log and XML parsers on recorded real outputs (fixtures/ recorded with the wheel's gap_fit)."""

from __future__ import annotations

import pathlib

import pytest

from aiida_mlpot.parsers.parse_raw.gap_fit import parse_gap_fit_log, parse_gap_xml_coordinates

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'


def parse(name: str) -> dict:
    return parse_gap_fit_log((FIXTURES / name).read_text())


def test_successful_fit_log():
    result = parse('nacl_42.log')
    assert result['completed'] and not result['errors'] and not result['out_of_memory']
    assert result['n_targets'] == {'energies': 42, 'local_properties': 0, 'forces': 8064, 'virials': 252}
    assert result['memory_estimate_mb'] == pytest.approx(1230.0)
    assert [d['n_descriptors'] for d in result['descriptors']] == [10722, 18344, 10836, 1344, 1344]
    assert result['descriptors'][3]['n_partial_derivatives'] == 191142
    assert result['descriptors'][3]['string'].startswith('soap n_max=6 l_max=4')
    assert result['timers']['GP sparsify']['wall_s'] == pytest.approx(60.955598007999981)
    assert result['wall_time_s'] == pytest.approx(60.955598007999981)
    assert len(result['cur_errors']) == 2 and result['cur_errors'][0] == pytest.approx(0.70222345845217492e-2)
    assert result['version'].endswith('v0.10.3-dirty')


def test_out_of_memory_log():
    """gap_fit under `ulimit -d 420000` with 1280 sparse points: an allocation fails."""
    result = parse('out_of_memory.log')
    assert not result['completed']
    assert result['out_of_memory']
    assert any('Error allocating' in line for line in result['errors'])
    assert result['memory_estimate_mb'] == pytest.approx(381.0)


def test_abort_log():
    result = parse('abort.log')
    assert not result['completed'] and not result['out_of_memory']
    assert result['errors'][0].startswith('SYSTEM ABORT: main program failed to parse gap string')


def test_xml_coordinates():
    coordinates = parse_gap_xml_coordinates((FIXTURES / 'success' / 'gap.xml').read_text())
    assert [c['n_sparse'] for c in coordinates] == [10, 10, 10, 8, 8]
    assert [c['dimensions'] for c in coordinates] == [1, 1, 1, 21, 21]
    for coordinate in coordinates:
        assert (FIXTURES / 'success' / coordinate['sparseX_filename']).is_file()
