"""CP2K single-point inputs of the labelling oracle, built from a settings dictionary (pure: no AiiDA import).

The settings are the resolved ``cp2k.settings`` of ``LabellingWorkChain`` (a protocol of
``workflows/protocols/labelling.yaml`` with the caller's overrides merged in). This module

* checks them (:func:`validate_settings`: known keys, types, the keys each method needs) and the elements
  they must cover (:func:`check_elements`: only what the settings say, no file is read);
* reads CP2K's basis/pseudopotential data files (:func:`check_data_files`, :func:`extract_data_files`;
  Debian ``cp2k-data`` installs them in ``/usr/share/cp2k``). These read files and are called when the work
  chain runs (by a calcfunction, so the extracted entries are nodes of the graph), never by an input
  validator;
* builds the nested parameter dictionary understood by aiida-cp2k's ``Cp2kInput``
  (:func:`build_cp2k_parameters`).
"""

from __future__ import annotations

import numbers
import pathlib

from ase.data import atomic_numbers

__all__ = (
    'BASIS_FILE',
    'DEFAULT_DATA_DIR',
    'FORCES_FILE',
    'METHODS',
    'POTENTIAL_FILE',
    'STRESS_FILE',
    'build_cp2k_parameters',
    'check_data_files',
    'check_elements',
    'extract_data_files',
    'read_data_entries',
    'validate_settings',
)

#: File names CP2K writes with ``PROJECT aiida`` and the ``FILENAME`` values used below.
FORCES_FILE = 'aiida-forces-1_0.xyz'
STRESS_FILE = 'aiida-stress-1_0.stress_tensor'
#: Names of the basis/pseudopotential files written next to the input (only the entries needed).
BASIS_FILE = 'BASIS_MLPOT'
POTENTIAL_FILE = 'POTENTIAL_MLPOT'
#: Directory of CP2K's data files when the settings give no ``data_dir`` (Debian cp2k-data).
DEFAULT_DATA_DIR = '/usr/share/cp2k'
#: GFN1-xTB in CP2K has parameters for Z = 1..86.
XTB_MAX_Z = 86
#: The methods: GFN1-xTB (a fast test oracle) and Kohn-Sham DFT with GTH pseudopotentials.
METHODS = ('xtb', 'dft')

_REAL = (numbers.Real,)
_INT = (numbers.Integral,)
_STR = (str,)
_BOOL = (bool,)
#: Element -> name maps (``default`` for every element not named).
_NAME_MAP = 'name map'
_TYPE_NAMES = {
    numbers.Real: 'a number',
    numbers.Integral: 'an integer',
    str: 'a string',
    bool: 'true or false',
}

_SCF_SCHEMA: dict = {
    'eps_scf': _REAL,
    'max_scf': _INT,
    'guess': _STR,
    'mixing': _STR,
    'mixing_alpha': _REAL,
    'mixing_nbuffer': _INT,
    'ot': _BOOL,
    'ot_minimizer': _STR,
    'ot_preconditioner': _STR,
    'outer_max_scf': _INT,
    'outer_eps_scf': _REAL,
}
#: Every key of the settings and its type (a nested dict is a sub-schema).
SCHEMA: dict = {
    'method': _STR,
    'scf': _SCF_SCHEMA,
    'xtb': {'ewald_alpha': _REAL, 'ewald_gmax': _INT},
    'xc': _STR,
    'dispersion': (str, type(None)),  # None: no dispersion correction
    'dispersion_parameter_file': _STR,
    'qs_method': _STR,
    'eps_default': _REAL,
    'cutoff': _REAL,
    'rel_cutoff': _REAL,
    'data_dir': _STR,
    'basis_file': _STR,
    'potential_file': _STR,
    'basis': _NAME_MAP,
    'pseudo': _NAME_MAP,
    'robust': None,  # the same schema (a partial settings dictionary), checked recursively
    'robust_retry': _BOOL,
    'wavefunction_restarts': _INT,
    'omp_num_threads': _INT,
}
#: Keys each method needs.
REQUIRED = {
    'xtb': ('method', 'scf', 'xtb'),
    'dft': ('method', 'scf', 'xc', 'cutoff', 'rel_cutoff', 'basis_file', 'potential_file', 'basis', 'pseudo'),
}
_REQUIRED_SCF = ('eps_scf', 'max_scf')


def _check_schema(values, schema: dict, path: str) -> str | None:
    if not isinstance(values, dict):
        return f'`{path or "settings"}` must be a dictionary, got {type(values).__name__}'
    for key, value in values.items():
        name = f'{path}{key}'
        if key not in schema:
            known = ', '.join(sorted(schema))
            return f'unknown key `{name}` in the CP2K settings; known here: {known}'
        kind = schema[key]
        if kind is None:
            message = _check_schema(value, SCHEMA, f'{name}.')
        elif isinstance(kind, dict):
            message = _check_schema(value, kind, f'{name}.')
        elif kind == _NAME_MAP:
            ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
            message = None if ok else f'`{name}` must map elements (or `default`) to names'
        elif not isinstance(value, kind) or (isinstance(value, bool) and bool not in kind):
            message = f'`{name}` must be {_TYPE_NAMES[kind[0]]}, got {value!r}'
        else:
            message = None
        if message:
            return message
    return None


def validate_settings(settings: dict) -> str | None:
    """Return what is wrong with the CP2K ``settings`` (unknown key, wrong type, missing key), or None.

    The ``robust`` block (merged in for the one robust retry) is checked against the same schema.
    """
    message = _check_schema(settings, SCHEMA, '')
    if message:
        return message
    method = settings.get('method')
    if method not in METHODS:
        return f'`method` must be one of {METHODS}, got `{method}`'
    missing = [key for key in REQUIRED[method] if key not in settings]
    missing += [f'scf.{key}' for key in _REQUIRED_SCF if key not in settings['scf']]
    if missing:
        return f'the `{method}` CP2K settings lack {", ".join(f"`{key}`" for key in missing)}'
    if settings.get('wavefunction_restarts', 0) < 0:
        return '`wavefunction_restarts` must be at least 0'
    if settings.get('omp_num_threads', 1) < 1:
        return '`omp_num_threads` must be at least 1'
    if 'method' in settings.get('robust', {}):
        return 'the `robust` block cannot change the `method`'
    return None


def _choice(mapping: dict, element: str) -> str | None:
    return mapping.get(element, mapping.get('default'))


def check_elements(settings: dict, elements: list[str]) -> str | None:
    """Return why ``settings`` cannot label ``elements`` (from the settings alone, no file read), or None.

    Unknown chemical symbols; elements beyond GFN1-xTB's parameters; for DFT, elements that neither the
    ``basis`` nor the ``pseudo`` map names (explicitly or through ``default``). Whether the named entries exist
    in the data files is :func:`check_data_files`'s business.
    """
    unknown = [el for el in elements if el not in atomic_numbers]
    if unknown:
        return f'unknown chemical symbols {unknown}'
    if settings['method'] == 'xtb':
        missing = [el for el in elements if atomic_numbers[el] > XTB_MAX_Z]
        return f'GFN1-xTB has no parameters for {missing}' if missing else None
    problems = [
        f'{element}: no {kind} named in the settings'
        for kind in ('basis', 'pseudo')
        for element in elements
        if _choice(settings[kind], element) is None
    ]
    return '; '.join(problems) if problems else None


def _data_path(settings: dict, key: str) -> pathlib.Path:
    return pathlib.Path(settings.get('data_dir', DEFAULT_DATA_DIR)) / settings[key]


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


def check_data_files(settings: dict, elements: list[str]) -> str | None:
    """Return what the CP2K data files lack for ``elements`` (a file, a basis or a pseudopotential), or None.

    Reads ``data_dir``/``basis_file`` and ``data_dir``/``potential_file`` of a ``dft`` setting (``xtb`` needs
    no file). Called when the work chain runs, on the machine of the AiiDA daemon.
    """
    message = check_elements(settings, elements)
    if message or settings['method'] != 'dft':
        return message
    problems = []
    for kind, key in (('basis', 'basis_file'), ('pseudo', 'potential_file')):
        path = _data_path(settings, key)
        if not path.is_file():
            return f'CP2K data file {path} does not exist'
        entries = read_data_entries(path)
        for element in elements:
            name = _choice(settings[kind], element)
            if (element, name) not in entries:
                problems.append(f'{element}: no {kind} `{name}` in {path}')
    return '; '.join(problems) if problems else None


def extract_data_files(settings: dict, elements: list[str]) -> dict[str, str]:
    """Return ``{BASIS_FILE: text, POTENTIAL_FILE: text}`` with only the entries the elements need.

    :raises KeyError: an entry is missing (call :func:`check_data_files` first).
    """
    files = {}
    for kind, key, filename in (
        ('basis', 'basis_file', BASIS_FILE),
        ('pseudo', 'potential_file', POTENTIAL_FILE),
    ):
        path = _data_path(settings, key)
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
