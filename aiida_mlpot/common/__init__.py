"""common of aiida-mlpot."""
