"""parse_raw of aiida-mlpot."""
