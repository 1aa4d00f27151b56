"""Arterial input functions: population curves, automatic detection and ROI curves."""

from .detect import AIFOptions, AIFResult, aif_from_mask, detect_aif
from .population import POPULATION_AIFS, population_aif

__all__ = ["population_aif", "POPULATION_AIFS", "detect_aif", "AIFOptions", "aif_from_mask", "AIFResult"]
