"""The names of LAMMPS pair styles, so that a misspelt or unknown ``pair_style`` is refused at launch, named.

A launch validator reads no binary (the LAMMPS of a remote computer cannot be asked), so the names are a table:
:data:`INSTALLED_PAIR_STYLES`, the ``* Pair styles:`` section of ``lmp -h`` of Debian's LAMMPS (29 Sep 2021,
Update 2, the LAMMPS of this package's tests; accelerator variants are matched through their suffix), and
:data:`OTHER_PAIR_STYLES`, styles of optional packages that build lacks (ML-QUIP, ML-PACE, ML-SNAP, ML-IAP and
other machine-learning packages) that a cluster's LAMMPS may have. Whether the LAMMPS that runs the job has the
style is still its own check (an ``Unrecognized pair style`` error is ``ERROR_PARSER_DETECTED_LAMMPS_RUN_ERROR``).
"""

from __future__ import annotations

import difflib

__all__ = ('INSTALLED_PAIR_STYLES', 'OTHER_PAIR_STYLES', 'unknown_pair_style')

INSTALLED_PAIR_STYLES = frozenset(
    """
    adp agni airebo airebo/morse atm beck body/nparticle body/rounded/polygon body/rounded/polyhedron bop
    born born/coul/dsf born/coul/dsf/cs born/coul/long born/coul/long/cs born/coul/msm born/coul/wolf
    born/coul/wolf/cs brownian brownian/poly buck buck/coul/cut buck/coul/long buck/coul/long/cs
    buck/coul/msm buck/long/coul/long buck/mdf colloid comb comb3 cosine/squared coul/cut coul/cut/global
    coul/debye coul/diel coul/dsf coul/exclude coul/long coul/long/cs coul/msm coul/slater/cut
    coul/slater/long coul/streitz coul/wolf coul/wolf/cs dsmc e3b eam eam/alloy eam/alloy/opt eam/cd
    eam/cd/old eam/fs eam/fs/opt eam/he eam/opt edip edip/multi eim extep gauss gauss/cut gayberne
    gran/hertz/history gran/hooke gran/hooke/history granular gw gw/zbl hbond/dreiding/lj
    hbond/dreiding/morse hybrid hybrid/overlay hybrid/scaled kim lcbop lennard/mdf line/lj list
    lj/charmm/coul/charmm lj/charmm/coul/charmm/implicit lj/charmm/coul/long lj/charmm/coul/long/opt
    lj/charmm/coul/msm lj/charmmfsw/coul/charmmfsh lj/charmmfsw/coul/long lj/class2 lj/class2/coul/cut
    lj/class2/coul/long lj/class2/coul/long/cs lj/cubic lj/cut lj/cut/coul/cut lj/cut/coul/debye
    lj/cut/coul/dsf lj/cut/coul/long lj/cut/coul/long/cs lj/cut/coul/long/opt lj/cut/coul/msm
    lj/cut/coul/wolf lj/cut/dipole/cut lj/cut/dipole/long lj/cut/opt lj/cut/tip4p/cut lj/cut/tip4p/long
    lj/cut/tip4p/long/opt lj/expand lj/expand/coul/long lj/gromacs lj/gromacs/coul/gromacs lj/long/coul/long
    lj/long/coul/long/opt lj/long/dipole/long lj/long/tip4p/long lj/mdf lj/relres lj/sf lj/sf/dipole/sf
    lj/smooth lj/smooth/linear lj96/cut local/density lubricate lubricate/poly lubricateU lubricateU/poly
    meam/spline meam/sw/spline mie/cut momb morse morse/opt morse/smooth/linear nb3b/harmonic nm/cut
    nm/cut/coul/cut nm/cut/coul/long peri/eps peri/lps peri/pmb peri/ves polymorphic python reax rebo
    resquared soft srp sw table tersoff tersoff/mod tersoff/mod/c tersoff/table tersoff/zbl tip4p/cut
    tip4p/long tracker tri/lj ufm ufm/opt vashishta vashishta/table wf/cut yukawa yukawa/colloid zbl zero
    """.split()
)
OTHER_PAIR_STYLES = frozenset(
    """
    quip pace pace/extrapolation snap mliap rann hdnnp nequip allegro deepmd mlip mtp drip ilp/graphene/hbn
    kolmogorov/crespi/full kolmogorov/crespi/z lebedeva/z meam/spline meam/sw/spline sw/mod
    """.split()
)
#: suffixes of the accelerated variants of a style (``lj/cut/omp``, ``eam/kk``)
ACCELERATOR_SUFFIXES = ('gpu', 'intel', 'kk', 'omp', 'opt')


def unknown_pair_style(name: str) -> str | None:
    """Return an error naming ``name`` if it is not a LAMMPS pair style (with the closest names), else None."""
    known = INSTALLED_PAIR_STYLES | OTHER_PAIR_STYLES
    base, _, suffix = name.rpartition('/')
    if name in known or (suffix in ACCELERATOR_SUFFIXES and base in known):
        return None
    close = difflib.get_close_matches(name, sorted(known), n=3)
    hint = f'; did you mean {" or ".join(close)}?' if close else ''
    return f'`{name}` is not a LAMMPS pair style{hint}'
