"""Parser of aiida-cp2k's ``Cp2kCalculation`` that returns the labels of a single point.

Design decision: aiida-cp2k's ``Cp2kCalculation`` declares ``output_parameters`` (Dict, required) and a dynamic
output namespace, and it lets the caller choose the parser through ``metadata.options.parser_name``. The
upstream parser returns no forces or stress for a single point, so ``Cp2kLabelParser`` (entry point
``mlpot.cp2k``) replaces it: it reads ``aiida.out`` plus the ``PRINT FORCES`` / ``PRINT STRESS_TENSOR``
files (retrieved through ``settings.additional_retrieve_list``) and attaches ONE ``output_parameters`` Dict
with energy (eV), forces (eV/Å), stress (eV/Å³, ASE sign) and virial (eV) in the units of
:mod:`aiida_mlpot.common.units`. Keeping the labels in the calculation's own output (rather than in a
calcfunction over the retrieved folder) means the labels are created by the CalcJob that computed them, so
``output_parameters.creator`` is the labelling calculation, and ``Cp2kBaseWorkChain`` (which exposes the
calculation's outputs) passes them on unchanged.

Exit codes (those declared by ``Cp2kCalculation``): ``ERROR_OUTPUT_MISSING`` (210), ``ERROR_OUTPUT_READ``
(301), ``ERROR_OUTPUT_PARSE`` (302: no energy or forces), ``ERROR_OUTPUT_INCOMPLETE`` (303),
``ERROR_OUTPUT_CONTAINS_ABORT`` (304), ``ERROR_OUT_OF_WALLTIME`` (400) and ``ERROR_SCF_NOT_CONVERGED`` (450);
and one of the package's own, 305 ``ERROR_EXECUTABLE_NOT_RUNNABLE`` (the shell could not start the CP2K
executable: :mod:`aiida_mlpot.parsers.executable`), checked first.
Debian's CP2K exits 0 with only a warning when the SCF did not converge; this parser turns that into 450,
which ``Cp2kLabelWorkChain`` (``mlpot.cp2k.label``) handles with the robust settings. ``output_parameters`` is
attached whenever the output could be read, also on failure, so the reason is inspectable.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import exceptions
from aiida.parsers import Parser

from aiida_mlpot.inputs.cp2k import FORCES_FILE, STRESS_FILE
from aiida_mlpot.parsers.executable import executable_failure
from aiida_mlpot.parsers.parse_raw.cp2k import parse_cp2k_single_point


class Cp2kLabelParser(Parser):
    """Parse energy, forces, stress/virial and SCF convergence of a CP2K ENERGY_FORCE calculation."""

    def parse(self, **kwargs):
        """Parse the retrieved folder of a ``Cp2kCalculation`` into ``output_parameters``."""
        try:
            retrieved = self.retrieved
        except exceptions.NotExistent:
            return self.exit_codes.ERROR_NO_RETRIEVED_FOLDER

        output_filename = self.node.base.attributes.get('output_filename', 'aiida.out')
        failure = executable_failure(self, [output_filename])
        if failure:
            return failure
        names = retrieved.base.repository.list_object_names()
        if output_filename not in names:
            return self.exit_codes.ERROR_OUTPUT_MISSING
        try:
            output = retrieved.base.repository.get_object_content(output_filename)
            forces_text = (
                retrieved.base.repository.get_object_content(FORCES_FILE) if FORCES_FILE in names else None
            )
            stress_text = (
                retrieved.base.repository.get_object_content(STRESS_FILE) if STRESS_FILE in names else None
            )
        except (OSError, UnicodeDecodeError):
            return self.exit_codes.ERROR_OUTPUT_READ

        volume = None
        if 'structure' in self.node.inputs:
            volume = float(self.node.inputs.structure.get_cell_volume())
        try:
            result = parse_cp2k_single_point(output, forces_text, stress_text, volume)
        except (ValueError, IndexError) as exception:
            self.logger.error(f'parsing the CP2K output failed: {exception}')
            return self.exit_codes.ERROR_OUTPUT_PARSE

        self.out('output_parameters', orm.Dict(result))

        if result['out_of_walltime']:
            return self.exit_codes.ERROR_OUT_OF_WALLTIME
        if result['aborted']:
            if 'SCF run NOT converged' in output:
                return self.exit_codes.ERROR_SCF_NOT_CONVERGED
            return self.exit_codes.ERROR_OUTPUT_CONTAINS_ABORT
        if not result['completed']:
            return self.exit_codes.ERROR_OUTPUT_INCOMPLETE
        if not result['scf_converged']:
            return self.exit_codes.ERROR_SCF_NOT_CONVERGED
        if result['energy'] is None or result['forces'] is None:
            return self.exit_codes.ERROR_OUTPUT_PARSE
        n_sites = len(self.node.inputs.structure.sites) if 'structure' in self.node.inputs else None
        if n_sites is not None and len(result['forces']) != n_sites:
            self.logger.error(f'{len(result["forces"])} forces for {n_sites} atoms')
            return self.exit_codes.ERROR_OUTPUT_PARSE
        return None
