"""Kinetic model fitting: batched bounded Levenberg–Marquardt on CPU or CUDA."""

from ..results import FitResult
from .api import FitOptions, fit_model, patlak_linear
from .device import resolve_device

__all__ = ["FitOptions", "FitResult", "fit_model", "patlak_linear", "resolve_device"]
