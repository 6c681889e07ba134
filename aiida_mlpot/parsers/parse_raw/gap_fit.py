"""Text to dictionary for ``gap_fit``: the log (stdout + stderr) and the fitted XML. No AiiDA import."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

__all__ = ('MEMORY_ERROR_PATTERNS', 'parse_gap_fit_log', 'parse_gap_xml_coordinates')

#: Text in the log that means the process ran out of memory (allocation failure or a memory rlimit).
MEMORY_ERROR_PATTERNS = (
    'cannot allocate memory',
    'allocation would exceed memory limit',
    'memoryerror',
    'out of memory',
    'failed to map segment',
    'error allocating',
    'std::bad_alloc',
)
_UNIT_MB = {'B': 1.0 / 1024**2, 'KB': 1.0 / 1024, 'MB': 1.0, 'GB': 1024.0, 'TB': 1024.0**2}
_TIMER = re.compile(
    r'^TIMER:\s+(.+?)\s+done in\s+([0-9.eEdD+-]+)\s+cpu secs,\s+([0-9.eEdD+-]+)\s+wall clock secs'
)
_MEMORY = re.compile(
    r'^(PEAK|Peak1|Peak2|Free system memory|Total system memory)\s+([0-9.]+)\s*([KMGT]?B)\s*$'
)
_TARGETS = re.compile(r'^Number of target (\w+) \(property name: (\w+)\) found:\s+(\d+)')
_DESCRIPTOR = re.compile(r'^Descriptor (\d+):\s*(.*)$')


def _float(text: str) -> float:
    return float(text.replace('d', 'e').replace('D', 'e'))


def _to_mb(value: str, unit: str) -> float:
    return float(value) * _UNIT_MB[unit]


def parse_gap_fit_log(text: str) -> dict:
    """Return what a ``gap_fit`` log reports.

    Keys: ``completed`` (the run reached ``libAtoms::Finalise``), ``version``, ``descriptors`` (list of
    ``{'index', 'string', 'n_descriptors', 'n_partial_derivatives'}``), ``n_targets`` (energies,
    forces, virials...), ``memory_estimate_mb`` (gap_fit's own PEAK), ``system_memory_mb``,
    ``free_memory_mb``, ``timers`` (``{name: {'cpu_s', 'wall_s'}}``), ``wall_time_s`` (of the whole
    sparsification + fit, ``GP sparsify``), ``cur_errors`` (final error of each CUR decomposition),
    ``errors`` (``SYSTEM ABORT`` / signal lines), ``out_of_memory`` (a memory error is in the log),
    ``signal`` (name of a fatal signal, e.g. ``SIGSEGV``) and ``warnings``.
    """
    result: dict = {
        'completed': False,
        'version': None,
        'descriptors': [],
        'n_targets': {},
        'memory_estimate_mb': None,
        'system_memory_mb': None,
        'free_memory_mb': None,
        'timers': {},
        'wall_time_s': None,
        'cur_errors': [],
        'errors': [],
        'warnings': [],
        'out_of_memory': False,
        'signal': None,
    }
    current = None
    cur_last = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        lower = line.lower()
        if line.startswith('libAtoms::Hello World: git version'):
            result['version'] = line.split('git version', 1)[1].strip()
        elif line.startswith('libAtoms::Finalise: Bye-Bye'):
            result['completed'] = True
        elif match := _DESCRIPTOR.match(line):
            current = {'index': int(match.group(1)), 'string': match.group(2).strip()}
            result['descriptors'].append(current)
        elif line.startswith('Number of descriptors:') and current is not None:
            current['n_descriptors'] = int(line.split(':', 1)[1])
        elif line.startswith('Number of partial derivatives of descriptors:') and current is not None:
            current['n_partial_derivatives'] = int(line.split(':', 1)[1])
        elif match := _TARGETS.match(line):
            result['n_targets'][match.group(1)] = int(match.group(3))
        elif match := _MEMORY.match(line):
            value = _to_mb(match.group(2), match.group(3))
            key = {
                'PEAK': 'memory_estimate_mb',
                'Total system memory': 'system_memory_mb',
                'Free system memory': 'free_memory_mb',
            }.get(match.group(1))
            if key:
                result[key] = value
        elif match := _TIMER.match(line):
            result['timers'][match.group(1)] = {
                'cpu_s': _float(match.group(2)),
                'wall_s': _float(match.group(3)),
            }
        elif line.startswith('cur_decomposition:'):
            error = re.search(r'error:\s*([0-9.eEdD+-]+)', line)
            if error:
                cur_last = _float(error.group(1))
        elif line.startswith('Finished CUR decomposition') and cur_last is not None:
            result['cur_errors'].append(cur_last)
            cur_last = None
        elif line.startswith('SYSTEM ABORT') or line.startswith('Traceback') or 'Error' in line.split(':')[0]:
            result['errors'].append(line)
        elif line.startswith('Program received signal'):
            result['errors'].append(line)
            signal = re.search(r'signal (SIG\w+)', line)
            result['signal'] = signal.group(1) if signal else 'unknown'
        elif line.upper().startswith('WARNING'):
            result['warnings'].append(line)
        if any(pattern in lower for pattern in MEMORY_ERROR_PATTERNS):
            result['out_of_memory'] = True
            if line not in result['errors']:
                result['errors'].append(line)
    sparsify = result['timers'].get('GP sparsify')
    if sparsify:
        result['wall_time_s'] = sparsify['wall_s']
    return result


def parse_gap_xml_coordinates(text: str) -> list[dict]:
    """Return one dictionary per ``gpCoordinates`` of a gap_fit XML: label, dimensions, n_sparse, sparseX file."""
    root = ET.fromstring(text)
    coordinates = []
    for node in root.iter('gpCoordinates'):
        coordinates.append(
            {
                'label': node.get('label'),
                'dimensions': int(node.get('dimensions', 0)),
                'n_sparse': int(node.get('n_sparseX', 0)),
                'covariance_type': int(node.get('covariance_type', 0)),
                'sparseX_filename': node.get('sparseX_filename'),
            }
        )
    return coordinates
