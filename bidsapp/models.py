"""Tracer-kinetic models: one forward-model module for fitting, simulation and training.

The models themselves (parameters, units, bounds, terms, grid-start recipe, citations)
are entries of the registry :mod:`bidsapp.registry.kinetic`, re-exported here as
:data:`MODELS`, :class:`ModelSpec` and :func:`get_model`. Every model is a sum of terms
``coef · B(t)``; this module evaluates them with one basis evaluator,
:meth:`PlasmaInput.basis` — the plasma curve (rate ``None``) or its exact convolution
with ``exp(−rate·t)`` (:func:`bidsapp.convolution.exp_conv_time_major`; rate 0 is the running
integral), optionally read at ``t − delay`` — which the model curve
(:func:`evaluate`, :func:`model_curve`), the fitting problem
(:mod:`bidsapp.fitting.problem`) and the grid start (:mod:`bidsapp.fitting.start`) all
use.

Units: Ktrans, PS, kep in 1/min; Fp in ml/100ml/min; ve, vp fractions; t and delay in
s; Cp (plasma AIF) and C in mM. A ``delay`` (s) shifts the AIF later:
C(t) = model(Cp(t − delay)).
"""

import math
from collections.abc import Mapping

import numpy as np
import torch
from numpy.typing import ArrayLike

from .convolution import exp_conv_delayed, exp_conv_time_major, locate_delayed, sample_input, substep_times
from .registry.kinetic import FP_UNIT, MODELS, PER_MIN, ModelSpec, get_model

__all__ = [
    "MODELS",
    "ModelSpec",
    "get_model",
    "PER_MIN",
    "FP_UNIT",
    "PlasmaInput",
    "prepare_inputs",
    "evaluate",
    "model_curve",
]

MAX_SUBSTEPS = 32


class PlasmaInput:
    """The plasma AIF as seen by the models: piecewise linear on its own time grid.

    Parameters
    ----------
    t : torch.Tensor ``[T]``
        Frame times (s) at which tissue curves are predicted.
    aif : torch.Tensor
        Plasma concentration (mM) at ``aif_times`` (default: at ``t``).
    aif_times : torch.Tensor, optional
        A finer (or different) AIF time grid in s. The convolution then splits each
        frame interval into ``n_sub`` equal sub-steps (default: enough to resolve the
        AIF grid, at most 32), which removes the error of sampling a fast first pass
        only at the frames.
    """

    def __init__(self, t, aif, aif_times=None, n_sub=None):
        self.t = t
        self.aif = aif
        self.aif_times = t if aif_times is None else aif_times
        if n_sub is None:
            if aif_times is None:
                n_sub = 1
            else:
                ratio = float((t[1:] - t[:-1]).max() / (self.aif_times[1:] - self.aif_times[:-1]).min())
                n_sub = int(min(max(math.ceil(ratio - 1e-9), 1), MAX_SUBSTEPS))
        self.n_sub = int(n_sub)
        self.times = substep_times(t, self.n_sub)  # [(T-1)·S + 1]
        self._undelayed = None

    def sampled(self):
        """AIF at the sub-step times ``[(T-1)·S + 1, 1]`` (no delay)."""
        if self._undelayed is None:
            self._undelayed = sample_input(self.aif, self.aif_times, self.times[:, None])[0]
        return self._undelayed

    def at_frames(self):
        """AIF at the frame times, ``[T, 1]`` (a view)."""
        return self.sampled()[:: self.n_sub]

    def convolve(self, c, k, with_grad=False):
        """:func:`exp_conv_time_major` of input ``c [(T-1)·S + 1, n, M]`` sampled like this AIF."""
        return exp_conv_time_major(c, self.t, k, self.n_sub, with_grad)

    def locate(self, delay):
        """Return this AIF read at ``t − delay`` for per-voxel delays ``[n]`` (s): :func:`locate_delayed`."""
        return locate_delayed(self.aif, self.aif_times, self.t, delay)

    @staticmethod
    def delayed_convolve(k, located, with_grad=False):
        """:func:`exp_conv_delayed` of this AIF, located by :meth:`locate`, with rates ``k [n]`` (1/s)."""
        return exp_conv_delayed(located, k, with_grad)

    def basis(self, rate=None, located=None, with_grad=False):
        """One basis curve of the models at the frame times, ``[T, n]`` (mM, or mM·s for a rate).

        The one evaluator of the model terms ``coef · B(t)``, used by the model curve, the
        fitting problem and the grid start.

        Parameters
        ----------
        rate : torch.Tensor ``[n]``, optional
            ``None``: the plasma curve itself (``[T, 1]`` undelayed); otherwise the exact
            convolution Cp ⊗ e^{−rate·t} (rate in 1/s; 0 gives the running integral ∫Cp).
        located : optional
            This AIF read at t − delay for per-voxel delays (:meth:`locate`); ``None``
            for no delay (the undelayed bases are sub-stepped, see the class docstring).
        with_grad : bool
            Also return ∂B/∂rate (``None`` for the plasma curve) and ∂B/∂s, the
            derivative along the read-out time s = t − delay (``None`` without delay).
        """
        if rate is None:
            value = self.at_frames() if located is None else located.value
            return (value, None, None if located is None else located.slope) if with_grad else value
        if located is not None:
            return self.delayed_convolve(rate, located, with_grad)
        out = self.convolve(self.sampled()[..., None], rate, with_grad)
        return (out[0][..., 0], out[1][..., 0], None) if with_grad else out[..., 0]


def prepare_inputs(t, aif, device=None, aif_times=None):
    """Validate times (s), the plasma ``aif`` (mM) and its optional own time grid.

    Returns float64 tensors ``t``, ``aif`` and ``aif_times`` (``None`` when the AIF is
    given at ``t``).
    """
    t = _as_tensor(t, device)
    aif = _as_tensor(aif, device)
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"t: expected a 1-D array of at least 2 times, got shape {tuple(t.shape)}")
    _check_times("t", t)
    grid = t
    if aif_times is not None:
        grid = _as_tensor(aif_times, device)
        _check_times("aif_times", grid)
        if grid.ndim != 1 or grid.numel() < 2:
            raise ValueError(
                f"aif_times: expected a 1-D array of at least 2 times, got shape {tuple(grid.shape)}"
            )
    if aif.shape != grid.shape:
        what = "aif_times" if aif_times is not None else "t"
        raise ValueError(f"aif: length {aif.numel()} does not match {what} (length {grid.numel()})")
    if not torch.isfinite(aif).all():
        raise ValueError("aif: contains NaN or infinite values")
    return t, aif, (grid if aif_times is not None else None)


def _as_tensor(x, device):
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=torch.float64)
    return torch.as_tensor(np.array(x, dtype=float), dtype=torch.float64, device=device)


def _check_times(name, t):
    if not torch.isfinite(t).all() or not bool((t[1:] > t[:-1]).all()):
        raise ValueError(f"{name}: times must be finite and strictly increasing (seconds)")


def evaluate(spec, p, plasma, delay=None):
    """Tissue concentration ``[..., T]`` for parameter tensors ``p`` (torch, float64).

    ``plasma`` is a :class:`PlasmaInput`; ``delay`` (s) broadcasts with the parameters.
    A delay reads the undelayed response at t − delay (:func:`exp_conv_delayed`).
    """
    values = [p[n] for n in spec.params] + ([delay] if delay is not None else [])
    lead = torch.broadcast_shapes(*(v.shape for v in values))
    flat = {n: p[n].expand(lead).reshape(-1) for n in spec.params}
    n = max(flat[spec.params[0]].numel(), 1)
    out = torch.zeros(plasma.t.numel(), n, dtype=torch.float64, device=plasma.t.device)
    located = None if delay is None else plasma.locate(delay.expand(lead).reshape(-1))
    for coef, rate in spec.terms(flat):
        out += coef * plasma.basis(rate, located)
    return out.T.reshape(lead + (plasma.t.numel(),))


def model_curve(
    model: str | ModelSpec,
    params: Mapping[str, ArrayLike | torch.Tensor],
    t: ArrayLike,
    aif: ArrayLike | torch.Tensor,
    delay: ArrayLike | torch.Tensor | None = None,
    aif_times: ArrayLike | None = None,
) -> np.ndarray | torch.Tensor:
    """Tissue concentration (mM) predicted by a kinetic model.

    Parameters
    ----------
    model : str
        One of ``tofts``, ``extended_tofts``, ``patlak``, ``2cxm``, ``2cum``.
    params : dict
        Parameter name -> scalar or array (common leading shape); units as in
        :data:`MODELS` (Ktrans, PS in 1/min; Fp in ml/100ml/min; ve, vp fractions).
    t : array_like ``(T,)``
        Frame times in s (strictly increasing; non-uniform allowed).
    aif : array_like
        Plasma concentration in mM at ``t`` (or at ``aif_times``), taken as linear
        between samples and 0 before its first sample.
    delay : float or array, optional
        Bolus delay in s (AIF shifted later); scalar or leading-shape array.
    aif_times : array_like, optional
        Time grid (s) of ``aif`` when it is not sampled at ``t`` (e.g. a finer grid).

    Returns
    -------
    numpy.ndarray ``[..., T]`` (a torch tensor if the parameters are tensors).
    """
    spec = get_model(model)
    missing = [name for name in spec.params if name not in params]
    if missing:
        raise ValueError(f"params: model {spec.name!r} needs {', '.join(missing)}")
    as_torch = any(isinstance(params[n], torch.Tensor) for n in spec.params)
    device = next((params[n].device for n in spec.params if isinstance(params[n], torch.Tensor)), None)
    t_, aif_, grid = prepare_inputs(t, aif, device, aif_times)
    tensors = [torch.as_tensor(params[n], dtype=torch.float64, device=device) for n in spec.params]
    if delay is not None:
        tensors.append(torch.as_tensor(delay, dtype=torch.float64, device=device))
    tensors = torch.broadcast_tensors(*tensors)
    p = dict(zip(spec.params, tensors, strict=False))
    out = evaluate(spec, p, PlasmaInput(t_, aif_, grid), tensors[-1] if delay is not None else None)
    return out if as_torch else out.cpu().numpy()
