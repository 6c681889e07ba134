"""selection of aiida-mlpot."""
