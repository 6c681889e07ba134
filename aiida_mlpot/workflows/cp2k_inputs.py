"""Build CP2K single-point inputs for the labelling oracle from the protocols in ``protocols/cp2k.yaml``.

Pure Python (no AiiDA import): protocol loading and merging, the nested parameter dictionary understood by
aiida-cp2k's ``Cp2kInput``, and the basis/pseudopotential look-up in CP2K's data files (Debian ``cp2k-data``
installs them in ``/usr/share/cp2k``).
"""

from __future__ import annotations

import copy
import pathlib

import yaml
from ase.data import atomic_numbers

PROTOCOL_FILE = pathlib.Path(__file__).parent / 'protocols' / 'cp2k.yaml'

#: File names CP2K writes with ``PROJECT aiida`` and the ``FILENAME`` values used below.
FORCES_FILE = 'aiida-forces-1_0.xyz'
STRESS_FILE = 'aiida-stress-1_0.stress_tensor'
#: Names of the basis/pseudopotential files written next to the input (only the entries needed).
BASIS_FILE = 'BASIS_MLPOT'
POTENTIAL_FILE = 'POTENTIAL_MLPOT'
#: Default directory of CP2K's data files (Debian cp2k-data); override with the ``data_dir`` key.
DEFAULT_DATA_DIR = '/usr/share/cp2k'
#: GFN1-xTB in CP2K has parameters for Z = 1..86.
XTB_MAX_Z = 86


def deep_merge(base: dict, override: dict) -> dict:
    """Return a copy of ``base`` with ``override`` merged in recursively (override wins)."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def get_protocol_names() -> list[str]:
    """Return the names of the CP2K protocols."""
    return sorted(yaml.safe_load(PROTOCOL_FILE.read_text())['protocols'])


def load_protocol(name: str | None = None, overrides: dict | None = None) -> dict:
    """Return the settings of protocol ``name`` (default from the YAML file), with ``overrides`` merged in."""
    content = yaml.safe_load(PROTOCOL_FILE.read_text())
    protocols = content['protocols']
    name = name or content['default_protocol']
    if name not in protocols:
        raise ValueError(f'unknown CP2K protocol `{name}`; known: {sorted(protocols)}')
    settings = copy.deepcopy(protocols[name])
    while 'inherit' in settings:
        parent = settings.pop('inherit')
        settings = deep_merge(protocols[parent], settings)
    settings.setdefault('data_dir', DEFAULT_DATA_DIR)
    settings['name'] = name
    return deep_merge(settings, overrides or {})


def robust_settings(settings: dict) -> dict:
    """Return the settings of the 'robust' retry: the protocol's ``robust`` block merged in."""
    return deep_merge(settings, settings.get('robust', {}))


def read_data_entries(path: str | pathlib.Path) -> dict[tuple[str, str], str]:
    """Index a CP2K basis or GTH potential file: ``{(element, name_or_alias): entry text}``.

    An entry starts at a line whose first field is an element symbol and whose next fields are its name and
    aliases; it runs to the line before the next such header (comment lines are dropped).
    """
    entries: dict[tuple[str, str], str] = {}
    current: list[str] = []
    keys: list[tuple[str, str]] = []

    def flush():
        text = '\n'.join(current) + '\n'
        for key in keys:
            entries.setdefault(key, text)

    for line in pathlib.Path(path).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        fields = stripped.split()
        if fields[0] in atomic_numbers and len(fields) >= 2 and not _is_number(fields[1]):
            if current:
                flush()
            current = [stripped]
            keys = [(fields[0], name) for name in fields[1:]]
        elif current:
            current.append(line)
    if current:
        flush()
    return entries


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _choice(mapping: dict, element: str) -> str | None:
    return mapping.get(element, mapping.get('default'))


def check_elements(settings: dict, elements: list[str]) -> str | None:
    """Return an error message if an element has no basis/pseudopotential (or xTB parameters), else None."""
    unknown = [el for el in elements if el not in atomic_numbers]
    if unknown:
        return f'unknown chemical symbols {unknown}'
    if settings['method'] == 'xtb':
        missing = [el for el in elements if atomic_numbers[el] > XTB_MAX_Z]
        return f'GFN1-xTB has no parameters for {missing}' if missing else None
    data_dir = pathlib.Path(settings['data_dir'])
    problems = []
    for kind, key in (('basis', 'basis_file'), ('pseudo', 'potential_file')):
        path = data_dir / settings[key]
        if not path.is_file():
            return f'CP2K data file {path} does not exist'
        entries = read_data_entries(path)
        for element in elements:
            name = _choice(settings[kind], element)
            if name is None or (element, name) not in entries:
                problems.append(f'{element}: no {kind} `{name}` in {path}')
    return '; '.join(problems) if problems else None


def extract_data_files(settings: dict, elements: list[str]) -> dict[str, str]:
    """Return ``{BASIS_FILE: text, POTENTIAL_FILE: text}`` with only the entries the elements need."""
    data_dir = pathlib.Path(settings['data_dir'])
    files = {}
    for kind, key, filename in (
        ('basis', 'basis_file', BASIS_FILE),
        ('pseudo', 'potential_file', POTENTIAL_FILE),
    ):
        path = data_dir / settings[key]
        entries = read_data_entries(path)
        header = f'# entries extracted by aiida-mlpot from {path}\n'
        files[filename] = header + ''.join(
            entries[(el, _choice(settings[kind], el))] for el in sorted(elements)
        )
    return files


def build_cp2k_parameters(settings: dict, elements: list[str]) -> dict:
    """Return the nested CP2K input dictionary (aiida-cp2k ``parameters``) of an ENERGY_FORCE single point.

    Cell and coordinates are added by ``Cp2kCalculation`` from the structure. Forces and the analytical stress
    tensor are printed to their own files (:data:`FORCES_FILE`, :data:`STRESS_FILE`).
    """
    scf_settings = settings['scf']
    scf: dict = {
        'EPS_SCF': scf_settings['eps_scf'],
        'MAX_SCF': scf_settings['max_scf'],
        'SCF_GUESS': scf_settings.get('guess', 'ATOMIC'),
    }
    if scf_settings.get('ot'):
        scf['OT'] = {
            '_': 'ON',
            'MINIMIZER': scf_settings.get('ot_minimizer', 'DIIS'),
            'PRECONDITIONER': scf_settings.get('ot_preconditioner', 'FULL_SINGLE_INVERSE'),
        }
        scf['OUTER_SCF'] = {
            'MAX_SCF': scf_settings.get('outer_max_scf', 10),
            'EPS_SCF': scf_settings.get('outer_eps_scf', scf_settings['eps_scf']),
        }
    else:
        scf['MIXING'] = {
            'METHOD': scf_settings.get('mixing', 'BROYDEN_MIXING'),
            'ALPHA': scf_settings.get('mixing_alpha', 0.4),
            'NBUFFER': scf_settings.get('mixing_nbuffer', 8),
        }

    dft: dict = {'SCF': scf}
    if settings['method'] == 'xtb':
        xtb = settings['xtb']
        dft['QS'] = {'METHOD': 'xTB', 'XTB': {'DO_EWALD': True, 'CHECK_ATOMIC_CHARGES': False}}
        dft['POISSON'] = {
            'PERIODIC': 'XYZ',
            'POISSON_SOLVER': 'PERIODIC',
            'EWALD': {'EWALD_TYPE': 'SPME', 'ALPHA': xtb['ewald_alpha'], 'GMAX': xtb['ewald_gmax']},
        }
        kinds = [{'_': el, 'ELEMENT': el} for el in sorted(elements)]
    elif settings['method'] == 'dft':
        dft['BASIS_SET_FILE_NAME'] = BASIS_FILE
        dft['POTENTIAL_FILE_NAME'] = POTENTIAL_FILE
        dft['QS'] = {
            'METHOD': settings.get('qs_method', 'GAPW'),
            'EPS_DEFAULT': settings.get('eps_default', 1.0e-12),
        }
        dft['MGRID'] = {'CUTOFF': settings['cutoff'], 'REL_CUTOFF': settings['rel_cutoff'], 'NGRIDS': 5}
        xc: dict = {'XC_FUNCTIONAL': {'_': settings['xc']}}
        if settings.get('dispersion'):
            xc['VDW_POTENTIAL'] = {
                'POTENTIAL_TYPE': 'PAIR_POTENTIAL',
                'PAIR_POTENTIAL': {
                    'TYPE': settings['dispersion'],
                    'PARAMETER_FILE_NAME': settings.get('dispersion_parameter_file', 'dftd3.dat'),
                    'REFERENCE_FUNCTIONAL': settings['xc'],
                },
            }
        dft['XC'] = xc
        kinds = [
            {
                '_': el,
                'ELEMENT': el,
                'BASIS_SET': _choice(settings['basis'], el),
                'POTENTIAL': _choice(settings['pseudo'], el),
            }
            for el in sorted(elements)
        ]
    else:
        raise ValueError(f'unknown CP2K method `{settings["method"]}`')

    return {
        'GLOBAL': {'RUN_TYPE': 'ENERGY_FORCE', 'PRINT_LEVEL': 'MEDIUM'},
        'FORCE_EVAL': {
            'METHOD': 'Quickstep',
            'STRESS_TENSOR': 'ANALYTICAL',
            'DFT': dft,
            'SUBSYS': {'KIND': kinds},
            'PRINT': {
                'FORCES': {'_': 'ON', 'FILENAME': 'forces'},
                'STRESS_TENSOR': {'_': 'ON', 'FILENAME': 'stress'},
            },
        },
    }
