"""functions of aiida-mlpot."""
