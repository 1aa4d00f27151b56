"""The one result type of parameter maps: :class:`FitResult`.

Returned by :func:`bidsapp.fitting.fit_model` and :func:`bidsapp.fitting.patlak_linear`
(and meant for the networks), read by the derivatives, the report and the group level.
Imports neither torch nor nibabel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .registry.kinetic import get_model

#: ``FitResult.method`` of the non-linear least-squares fit (:func:`bidsapp.fitting.fit_model`)
METHOD_NLLS = "nonlinear least squares (Levenberg-Marquardt)"
#: ``FitResult.method`` of the closed-form Patlak fit (:func:`bidsapp.fitting.patlak_linear`)
METHOD_LINEAR = "linear least squares"


@dataclass
class FitResult:
    """Parameter maps of one kinetic model with their uncertainty.

    Every array has the leading (voxel) shape of the input.

    Attributes
    ----------
    model : str
        Registry name of the kinetic model (:data:`bidsapp.MODELS`).
    params : dict of numpy.ndarray
        Maps keyed by parameter name (``Ktrans``, ``ve``, ``vp``, ``kep``, ``Fp``, ``PS``,
        ``delay`` as the model defines them), in the units of the registry; NaN where a
        value was not estimated.
    stderr : dict of numpy.ndarray
        Uncertainty of each map in the same units: the standard error of a fit (or the
        standard deviation of a network's samples); NaN where not available.
    r2 : numpy.ndarray or None
        Coefficient of determination of the fitted curve.
    sse : numpy.ndarray or None
        Residual sum of squares (mM²).
    converged : numpy.ndarray of bool or None
        Whether the estimator converged.
    valid : numpy.ndarray of bool
        The validity rule of the estimator (``docs/fitting.md`` for the fits).
    method : str
        The estimator that made the maps (e.g. :data:`METHOD_NLLS`).
    """

    model: str
    params: dict
    stderr: dict
    r2: np.ndarray | None
    sse: np.ndarray | None
    converged: np.ndarray | None
    valid: np.ndarray
    method: str = METHOD_NLLS

    def predict(self, t: ArrayLike, aif: ArrayLike, aif_times: ArrayLike | None = None) -> np.ndarray:
        """Fitted curves (mM) at ``t`` (s) for the plasma ``aif`` (mM; NaN where not fitted)."""
        from .models import model_curve

        spec = get_model(self.model)
        p = {k: self.params[k] for k in spec.params}
        return model_curve(self.model, p, t, aif, delay=self.params.get("delay"), aif_times=aif_times)
