"""data of aiida-mlpot."""
