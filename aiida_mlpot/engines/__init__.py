"""engines of aiida-mlpot."""
