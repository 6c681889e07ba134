"""The ASE engine of the ML-MD driver: an ASE integrator with the quippy calculator, one frame per step.

Selected with ``md.engine = 'ase'`` (the default) in the driver's parameters (:mod:`aiida_mlpot.engines.ml_md`,
which reads the input, checks and writes every frame; this module only advances the dynamics; no AiiDA).
The potential is evaluated once per step for energy, forces and stress together (quippy re-runs the whole
evaluation for a property not asked for at first). The GAP variance is only requested on the steps whose
frame the driver scores, so its cost is divided by ``check_interval``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
from ase import Atoms

from aiida_mlpot.common.units import BAR_TO_EV_PER_ANGSTROM3, FS_TO_ASE_TIME
from aiida_mlpot.engines.checks import GAP_VARIANCE_CALC_ARGS

__all__ = ('AseEngine', 'make_dynamics')


def make_dynamics(atoms: Atoms, md: dict, rng: np.random.Generator):
    """Return the ASE integrator of the ``md`` section (the driver's parameters) for ``atoms``.

    nvt: ``Langevin`` or ``Bussi``; npt: ``IsotropicMTKNPT`` (mtk) or ``NPTBerendsen`` (berendsen).
    """
    timestep = md['timestep_fs'] * FS_TO_ASE_TIME
    temperature = md['temperature_K']
    if md['ensemble'] == 'nvt':
        if md['thermostat'] == 'langevin':
            from ase.md.langevin import Langevin

            friction = md['friction_per_fs'] / FS_TO_ASE_TIME
            return Langevin(
                atoms, timestep, temperature_K=temperature, friction=friction, fixcm=False, rng=rng
            )
        from ase.md.bussi import Bussi

        return Bussi(atoms, timestep, temperature_K=temperature, taut=md['taut_fs'] * FS_TO_ASE_TIME, rng=rng)
    taut, taup = md['taut_fs'] * FS_TO_ASE_TIME, md['taup_fs'] * FS_TO_ASE_TIME
    npt = {'temperature_K': temperature, 'pressure_au': md['pressure_bar'] * BAR_TO_EV_PER_ANGSTROM3}
    if md['barostat'] == 'mtk':
        from ase.md.nose_hoover_chain import IsotropicMTKNPT

        return IsotropicMTKNPT(atoms, timestep, tdamp=taut, pdamp=taup, **npt)
    from ase.md.nptberendsen import NPTBerendsen

    beta = md['compressibility_per_bar'] / BAR_TO_EV_PER_ANGSTROM3
    return NPTBerendsen(atoms, timestep, taut=taut, taup=taup, compressibility_au=beta, fixcm=False, **npt)


class AseEngine:
    """Integrate ``parameters['md']['n_steps']`` steps of ASE MD from ``atoms`` with a quippy ``calculator``.

    :param atoms: the start frame (positions and cell; its ``momenta`` are not read, give ``momenta``).
    :param momenta: start momenta; None: Maxwell-Boltzmann at the target temperature (``md.seed``), no drift.
    :param calc_args: the potential's own quippy ``calc_args`` (the variance is added on scored steps).

    Protocol of the driver's engines: :meth:`start` evaluates the first frame, :meth:`frames` yields
    ``(step, atoms)`` for steps 0..n_steps (steps of this run; here always the same, live ``atoms`` with
    the calculator's results), :meth:`summary` gives the engine's summary entries, ``md_time_s`` the time
    spent integrating. ``rolls_back`` (False): on a failure the run ends on the failing frame itself.
    """

    name = 'ase'
    rolls_back = False
    #: a failure of the engine itself (never here: a broken ASE step shows in the stability checks)
    failure = None
    #: the frames carry the calculator's own evaluation, the GAP variance included on the scored steps
    frames_have_variance = True

    def __init__(
        self,
        atoms: Atoms,
        calculator,
        parameters: dict,
        momenta: np.ndarray | None = None,
        calc_args: str = '',
    ):
        md = parameters['md']
        self.n_steps = md['n_steps']
        self.stability_interval = parameters['stability']['interval']
        self.atoms = atoms
        self.calculator = calculator
        self.calc_args = calc_args
        self.variance_args = f'{calc_args} {GAP_VARIANCE_CALC_ARGS}'.strip()
        rng = np.random.default_rng(md['seed'])
        if momenta is not None:
            atoms.set_momenta(momenta)
            self.velocities = 'from_structure'
        else:
            from ase.md.velocitydistribution import Stationary, thermalize_momenta

            thermalize_momenta(atoms, md['temperature_K'], rng=rng)
            Stationary(atoms)
            self.velocities = 'maxwell_boltzmann'
        atoms.calc = calculator
        self.dynamics = make_dynamics(atoms, md, rng)
        self.variance_at: Callable[[int], bool] | None = None
        self.md_time_s = 0.0

    def start(self, variance_at: Callable[[int], bool] | None = None) -> None:
        """Evaluate the start frame; ``variance_at(step)``: whether that step's evaluation needs the variance."""
        self.variance_at = variance_at
        self.calculator.calc_args = self.variance_args if variance_at is not None else self.calc_args
        self.calculator.reset()
        self.atoms.get_forces()

    def frames(self) -> Iterator[tuple[int, Atoms]]:
        """Yield ``(step, atoms)`` after each step (step 0: the start frame), until the caller stops."""
        yield 0, self.atoms
        for step in range(1, self.n_steps + 1):
            if self.variance_at is not None:
                self.calculator.calc_args = self.variance_args if self.variance_at(step) else self.calc_args
            tick = time.perf_counter()
            self.dynamics.step()
            self.dynamics.nsteps += 1
            self.md_time_s += time.perf_counter() - tick
            yield step, self.atoms

    def summary(self) -> dict:
        """Return the engine's entries of the run summary."""
        return {'integrator': type(self.dynamics).__name__, 'velocities': self.velocities}
