"""Registries read by every part of dcequant: kinetic models, population AIFs, references.

Importing this package loads neither numpy nor torch, so the command line can list the
models without the cost of the science stack.
"""

from .aifs import POPULATION_AIF_SPECS, POPULATION_AIFS, PopulationAIF, get_population_aif
from .kinetic import MODEL_NAMES, MODELS, DerivedParameter, GridStart, ModelSpec, Parameter, get_model
from .references import REFERENCES, Reference, cite

__all__ = [
    "MODELS",
    "MODEL_NAMES",
    "ModelSpec",
    "Parameter",
    "DerivedParameter",
    "GridStart",
    "get_model",
    "POPULATION_AIF_SPECS",
    "POPULATION_AIFS",
    "PopulationAIF",
    "get_population_aif",
    "REFERENCES",
    "Reference",
    "cite",
]
