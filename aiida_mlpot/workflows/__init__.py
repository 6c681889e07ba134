"""workflows of aiida-mlpot."""
