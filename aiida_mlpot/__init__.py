"""aiida-mlpot: automated, provenance-tracked construction of GAP machine-learned potentials with AiiDA."""

__version__ = '0.1.0'
