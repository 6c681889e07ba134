"""Descriptors of atomic configurations (SOAP via dscribe) and novelty scores; pure, no AiiDA import."""

from aiida_mlpot.descriptors.novelty import atomic_novelty, kernel_distance, rematch_novelty
from aiida_mlpot.descriptors.rematch import RematchReferences, rematch_kernel, similarity_of_distance
from aiida_mlpot.descriptors.soap import DEFAULT_SOAP, atomic_soap, average_soap, make_soap, species_of

__all__ = (
    'DEFAULT_SOAP',
    'RematchReferences',
    'atomic_novelty',
    'atomic_soap',
    'average_soap',
    'kernel_distance',
    'make_soap',
    'rematch_kernel',
    'rematch_novelty',
    'similarity_of_distance',
    'species_of',
)
