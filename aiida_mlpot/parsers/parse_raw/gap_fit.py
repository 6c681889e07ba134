"""Text to dictionary for ``gap_fit``: the log (stdout + stderr) and the fitted XML. No AiiDA import.

:func:`parse_gap_xml` is the package's one reader of a GAP XML (the potential data type, the gap_fit parser
and the ML-MD driver all read the file through it).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ase.data import chemical_symbols

__all__ = ('MEMORY_ERROR_PATTERNS', 'parse_gap_fit_log', 'parse_gap_xml', 'parse_gap_xml_coordinates')

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


def parse_gap_xml(text: str) -> dict:
    """Return what a gap_fit XML declares.

    Keys: ``xml_label`` (label of the top-level ``<Potential>``, what quippy and ``pair_coeff`` need),
    ``init_args``, ``descriptors`` (descriptor strings), ``cutoff`` (largest descriptor cutoff, Å, or None),
    ``species`` (chemical symbols in order of appearance), ``e0`` (eV per species), ``sparse_files``
    (sparseX file names), ``gap_version`` and ``coordinates`` (one dictionary per ``gpCoordinates``:
    ``label``, ``dimensions``, ``n_sparse``, ``covariance_type``, ``sparseX_filename``).

    :raises ValueError: the text is not XML, or not a GAP XML (no ``<GAP_params>``).
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f'not a valid GAP XML file: {exc}') from exc
    gap_params = root.find('.//GAP_params')
    if gap_params is None:
        raise ValueError('not a GAP XML file: no <GAP_params> element')
    potential = root.find('Potential')
    xml_label = potential.get('label') if potential is not None else gap_params.get('label')
    init_args = potential.get('init_args') if potential is not None else f'IP GAP label={xml_label}'
    descriptors = [(node.text or '').strip() for node in root.iter('descriptor')]
    cutoffs = []
    for descriptor in descriptors:
        match = re.search(r'(?<![_\w])cutoff\s*=\s*([0-9.eEdD+-]+)', descriptor)
        if match:
            cutoffs.append(_float(match.group(1)))
    numbers: list[int] = []
    for descriptor in descriptors:
        found = re.findall(r'\b(?:Z|Z1|Z2)\s*=\s*(\d+)', descriptor)
        for group in re.findall(r'species_Z\s*=\s*\{([^}]*)\}', descriptor):
            found += group.split()
        numbers = list(dict.fromkeys([*numbers, *(int(z) for z in found)]))
    e0 = {
        chemical_symbols[int(node.get('Z'))]: float(node.get('value'))
        for node in root.iter('e0')
        if int(node.get('Z')) in numbers
    }
    coordinates = [
        {
            'label': node.get('label'),
            'dimensions': int(node.get('dimensions', 0)),
            'n_sparse': int(node.get('n_sparseX', 0)),
            'covariance_type': int(node.get('covariance_type', 0)),
            'sparseX_filename': node.get('sparseX_filename'),
        }
        for node in root.iter('gpCoordinates')
    ]
    return {
        'xml_label': xml_label,
        'init_args': init_args,
        'descriptors': descriptors,
        'cutoff': max(cutoffs) if cutoffs else None,
        'species': [chemical_symbols[z] for z in numbers],
        'e0': e0,
        'sparse_files': [c['sparseX_filename'] for c in coordinates if c['sparseX_filename']],
        'gap_version': gap_params.get('gap_version'),
        'coordinates': coordinates,
    }


def parse_gap_xml_coordinates(text: str) -> list[dict]:
    """Return one dictionary per ``gpCoordinates`` of a gap_fit XML (``parse_gap_xml(text)['coordinates']``)."""
    return parse_gap_xml(text)['coordinates']
