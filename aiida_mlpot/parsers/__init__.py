"""parsers of aiida-mlpot."""
