"""The one exit-code helper of the calcfunctions and the rules of their tables."""

from __future__ import annotations

import pytest

from aiida_mlpot.calculations.functions import metrics
from aiida_mlpot.calculations.functions.exit_codes import calcfunction_exit, check_exit_code_table

TABLE = {'ERROR_EMPTY': (211, 'the {what} is empty'), 'ERROR_BAD': (212, 'bad')}


def test_calcfunction_exit_formats_the_message():
    exit_code = calcfunction_exit(TABLE, 'ERROR_EMPTY', what='pool')
    assert (exit_code.status, exit_code.message) == (211, 'the pool is empty')
    # not the label in the third field, as the two former copies of this helper had it
    assert exit_code.invalidates_cache is False


@pytest.mark.parametrize(
    ('table', 'named'),
    [
        ({'EMPTY': (211, '')}, '`EMPTY`: an exit code label starts with ERROR_'),
        ({'ERROR_LOW': (150, '')}, '`ERROR_LOW`: status 150 is outside 200-499'),
        ({'ERROR_A': (211, ''), 'ERROR_B': (211, '')}, '`ERROR_B`: status 211 is already `ERROR_A`'),
    ],
)
def test_check_exit_code_table_names_the_problem(table, named):
    assert check_exit_code_table(table) == named


def test_tables_of_the_calcfunctions():
    assert check_exit_code_table(TABLE) is None
    assert check_exit_code_table(metrics.EXIT_CODES) is None
