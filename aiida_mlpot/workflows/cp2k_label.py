"""`Cp2kLabelWorkChain` (``mlpot.cp2k.label``): one CP2K single point of the labelling oracle, with its recovery.

A subclass of aiida-cp2k's ``Cp2kBaseWorkChain`` (a ``BaseRestartWorkChain``): same inputs and outputs, plus
``robust_parameters``, the CP2K input of the protocol's ``robust`` settings. Its process handlers are keyed on
exit-code labels of ``Cp2kCalculation`` (as set by this package's parser ``mlpot.cp2k``):

* :meth:`~Cp2kLabelWorkChain.switch_to_robust_parameters` (priority 410): ``ERROR_SCF_NOT_CONVERGED``,
  ``ERROR_OUTPUT_INCOMPLETE`` or ``ERROR_OUT_OF_WALLTIME`` -> rerun ONCE from scratch with
  ``robust_parameters`` (a wavefunction restart folder is dropped); it stops the other handlers of that
  iteration. Without ``robust_parameters``, or once they have been used, it leaves the failure to
  the handlers below.
* aiida-cp2k's ``restart_incomplete_calculation`` (priority 401, disabled unless enabled through
  ``handler_overrides``): restart from the wavefunction of the failed calculation. ``LabellingWorkChain`` enables
  it when the settings ask for ``wavefunction_restarts`` and sets ``max_iterations`` to
  1 + (robust retry) + ``wavefunction_restarts``: for the ``pbe`` protocols the sequence is normal -> robust ->
  robust restarted from its wavefunction.

Any other failure is unhandled: aiida-core aborts with ``ERROR_UNHANDLED_FAILURE`` (402) without a pointless
identical rerun. The work chain's exit status and the last calculation's are what ``LabellingWorkChain``
records as the reason a configuration was excluded.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ProcessHandlerReport, process_handler
from aiida_cp2k.calculations import Cp2kCalculation
from aiida_cp2k.workchains import Cp2kBaseWorkChain

from aiida_mlpot.workflows.recovery import RecoveryMixin

__all__ = ('Cp2kLabelWorkChain',)


class Cp2kLabelWorkChain(RecoveryMixin, Cp2kBaseWorkChain):
    """Run a CP2K single point for labelling; on SCF trouble switch once to the protocol's robust settings."""

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input(
            'robust_parameters',
            valid_type=orm.Dict,
            required=False,
            help="CP2K input parameters of the robust retry (the protocol's `robust` settings merged in); used "
            'once, for a calculation that failed with SCF not converged, incomplete output or out of walltime.',
        )

    def setup(self):
        """Set up the inputs of the first calculation; the robust parameters are not used yet."""
        super().setup()
        self.ctx.robust_applied = False

    @process_handler(
        priority=410,
        exit_codes=[
            Cp2kCalculation.exit_codes.ERROR_SCF_NOT_CONVERGED,
            Cp2kCalculation.exit_codes.ERROR_OUTPUT_INCOMPLETE,
            Cp2kCalculation.exit_codes.ERROR_OUT_OF_WALLTIME,
        ],
    )
    def switch_to_robust_parameters(self, calculation):
        """Rerun once from scratch with ``robust_parameters``; later failures go to the handlers below."""
        if self.ctx.robust_applied or 'robust_parameters' not in self.inputs:
            return None
        self.ctx.robust_applied = True
        self.ctx.inputs.parameters = self.inputs.robust_parameters
        self.ctx.inputs.pop('parent_calc_folder', None)
        self.report(
            f'{calculation.process_label}<{calculation.pk}> failed with exit status {calculation.exit_status} '
            f'({calculation.exit_message}): retrying once with the robust settings'
        )
        return ProcessHandlerReport(do_break=True)
