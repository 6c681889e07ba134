"""Fixtures of the ML-MD engine tests: a small GAP fitted with the real ``gap_fit`` on the reference NaCl frames."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest
from ase import Atoms

from tests.conftest import executable
from tests.engines.ml_md_helpers import fit_test_gap, split_reference_frames


@dataclasses.dataclass
class FittedGap:
    """A fitted test GAP: its XML (sparseX files next to it), its training frames and held-out 1400 K frames."""

    xml: pathlib.Path
    training: list[Atoms]
    held_out: list[Atoms]

    @property
    def files(self) -> list[pathlib.Path]:
        return sorted(self.xml.parent.glob('gap.xml*'))


@pytest.fixture(scope='session')
def ml_md_gap(nacl_reference_frames, tmp_path_factory) -> FittedGap:
    """GAP (2b + SOAP n4 l3, 100 sparse points) fitted by the real gap_fit to 40 NaCl frames at 1400 K."""
    gap_fit = executable('gap_fit')
    if gap_fit is None:
        pytest.skip('`gap_fit` is not installed')
    training, held_out = split_reference_frames(nacl_reference_frames)
    xml = fit_test_gap(training, tmp_path_factory.getbasetemp() / 'ml_md_gap', gap_fit=gap_fit)
    return FittedGap(xml=xml, training=training, held_out=held_out)


@pytest.fixture(scope='session')
def ml_md_reference_score(ml_md_gap) -> float:
    """99th percentile of the GAP-variance scores (eV) of the training frames."""
    from quippy.potential import Potential

    from aiida_mlpot.engines.checks import gap_variance_training_scores, relative_threshold

    scores = gap_variance_training_scores(ml_md_gap.training, Potential(param_filename=str(ml_md_gap.xml)))
    return relative_threshold(scores, 1.0, 99.0)[1]
