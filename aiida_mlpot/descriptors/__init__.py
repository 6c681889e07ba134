"""descriptors of aiida-mlpot."""
