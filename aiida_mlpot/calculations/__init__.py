"""calculations of aiida-mlpot."""
