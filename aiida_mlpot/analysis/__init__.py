"""analysis of aiida-mlpot."""
