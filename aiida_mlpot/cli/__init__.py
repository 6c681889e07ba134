"""cli of aiida-mlpot."""
