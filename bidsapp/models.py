"""Tracer-kinetic models: one forward-model module for fitting, simulation and training.

Every model is written as a sum of *terms* ``coef · B(t)`` where ``B`` is either the
(delayed) plasma curve itself or its exact convolution with ``exp(−k t)``
(:func:`bidsapp.convolution.exp_conv_time_major`; ``k = 0`` is the running integral):

==================  ==================  ==============================================
model               parameters          C(t)
==================  ==================  ==============================================
``tofts``           Ktrans, ve          Ktrans · Cp ⊗ e^{−kep t},  kep = Ktrans/ve
``extended_tofts``  Ktrans, ve, vp      vp·Cp + Ktrans · Cp ⊗ e^{−kep t}
``patlak``          Ktrans, vp          vp·Cp + Ktrans · ∫Cp
``2cxm``            Fp, PS, ve, vp      Fp·[A·Cp ⊗ e^{−α t} + (1 − A)·Cp ⊗ e^{−β t}]
``2cum``            Fp, PS, vp          Fp·[E·∫Cp + (1 − E)·Cp ⊗ e^{−t/Tp}]
==================  ==================  ==============================================

2CXM: α, β are the roots of λ² − (Fp+PS)/vp·λ − PS/ve·λ + Fp·PS/(vp·ve) = 0
(α > β), A = (Fp/vp − β)/(α − β). 2CUM: E = PS/(Fp+PS), Tp = vp/(Fp+PS).

Units: Ktrans, PS, kep in 1/min; Fp in ml/100ml/min (converted with the tissue density
taken as 1 ml/g, i.e. Fp[1/s] = Fp/6000); ve, vp fractions; t and delay in s; Cp (plasma
AIF) and C in mM. A ``delay`` (s) shifts the AIF later: C(t) = model(Cp(t − delay)).

References: Tofts PS et al. JMRI 1999;10:223-232 (Tofts, extended Tofts);
Patlak CS et al. J Cereb Blood Flow Metab 1983;3:1-7; Sourbron SP, Buckley DL. MRM
2011;66:735-745 and Phys Med Biol 2012;57:R1-R33 (2CXM, 2CUM).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import ArrayLike

from .convolution import exp_conv_delayed, exp_conv_time_major, locate_delayed, sample_input, substep_times

PER_MIN = 1.0 / 60.0  # 1/min -> 1/s
FP_UNIT = 1.0 / 6000.0  # ml/100ml/min -> 1/s


@dataclass(frozen=True)
class ModelSpec:
    """Description of one kinetic model.

    ``params`` lists the fitted parameters in order; ``bounds`` the default box
    constraints (lower, upper) used by the fitting engine; ``derived`` the parameters
    computed from the fitted ones (e.g. kep); ``identifiable_if`` maps a parameter to
    the one whose exchange it describes (ve is only determined when Ktrans, or PS for
    2CXM, is significantly above zero).
    """

    name: str
    params: tuple
    units: dict
    bounds: dict
    description: str
    derived: tuple = field(default=())
    identifiable_if: dict = field(default_factory=dict)

    def terms(self, p):
        """List of ``(coef, rate)`` torch tensors (rate in 1/s, ``None`` = plasma term)."""
        return _TERMS[self.name](p)


def _tofts_terms(p):
    ktrans = p["Ktrans"] * PER_MIN
    return [(ktrans, ktrans / p["ve"])]


def _extended_tofts_terms(p):
    return [(p["vp"], None), *_tofts_terms(p)]


def _patlak_terms(p):
    return [(p["vp"], None), (p["Ktrans"] * PER_MIN, torch.zeros_like(p["Ktrans"]))]


def _two_cxm_terms(p):
    fp, ps, ve, vp = p["Fp"] * FP_UNIT, p["PS"] * PER_MIN, p["ve"], p["vp"]
    s = (fp + ps) / vp + ps / ve
    prod = fp * ps / (vp * ve)
    root = torch.sqrt(torch.clamp(s * s - 4.0 * prod, min=0.0))
    alpha = 0.5 * (s + root)
    beta = 0.5 * (s - root)
    # A·(α−β) = Fp/vp − β; written without the division so α = β stays finite
    a_coef = fp * (fp / vp - beta) / torch.clamp(root, min=1e-300)
    return [(a_coef, alpha), (fp - a_coef, beta)]


def _two_cum_terms(p):
    fp, ps, vp = p["Fp"] * FP_UNIT, p["PS"] * PER_MIN, p["vp"]
    total = fp + ps
    return [(fp * ps / total, torch.zeros_like(fp)), (fp * fp / total, total / vp)]


_TERMS = {
    "tofts": _tofts_terms,
    "extended_tofts": _extended_tofts_terms,
    "patlak": _patlak_terms,
    "2cxm": _two_cxm_terms,
    "2cum": _two_cum_terms,
}

_UNITS = {
    "Ktrans": "1/min",
    "kep": "1/min",
    "PS": "1/min",
    "Fp": "ml/100ml/min",
    "ve": "fraction",
    "vp": "fraction",
    "delay": "s",
}

MODELS = {
    "tofts": ModelSpec(
        "tofts", ("Ktrans", "ve"), _UNITS, {"Ktrans": (0.0, 5.0), "ve": (1e-3, 1.0)},
        "Standard Tofts model (Tofts et al. 1999)", ("kep",), {"ve": "Ktrans", "kep": "Ktrans"}),
    "extended_tofts": ModelSpec(
        "extended_tofts", ("Ktrans", "ve", "vp"), _UNITS,
        {"Ktrans": (0.0, 5.0), "ve": (1e-3, 1.0), "vp": (0.0, 1.0)},
        "Extended Tofts model (Tofts et al. 1999)", ("kep",), {"ve": "Ktrans", "kep": "Ktrans"}),
    "patlak": ModelSpec(
        "patlak", ("Ktrans", "vp"), _UNITS, {"Ktrans": (-1.0, 5.0), "vp": (0.0, 1.0)},
        "Patlak model (Patlak et al. 1983)"),
    "2cxm": ModelSpec(
        "2cxm", ("Fp", "PS", "ve", "vp"), _UNITS,
        {"Fp": (1e-3, 300.0), "PS": (0.0, 5.0), "ve": (1e-3, 1.0), "vp": (1e-3, 1.0)},
        "Two-compartment exchange model (Sourbron & Buckley 2011)", (), {"ve": "PS"}),
    "2cum": ModelSpec(
        "2cum", ("Fp", "PS", "vp"), _UNITS,
        {"Fp": (1e-3, 300.0), "PS": (0.0, 5.0), "vp": (1e-3, 1.0)},
        "Two-compartment uptake model (Sourbron & Buckley 2012)"),
}

def get_model(model: str | ModelSpec) -> ModelSpec:
    """Return the :class:`ModelSpec` for ``model`` (a name or a spec)."""
    if isinstance(model, ModelSpec):
        return model
    try:
        return MODELS[str(model).lower().replace("-", "_").replace("extendedtofts", "extended_tofts")]
    except KeyError:
        raise ValueError(f"model: unknown model {model!r}; choose one of {', '.join(MODELS)}") from None


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
            raise ValueError(f"aif_times: expected a 1-D array of at least 2 times, got shape {tuple(grid.shape)}")
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
    if delay is None:
        sub = plasma.sampled()
        cp = sub[:: plasma.n_sub]  # [T, 1]
    else:
        located = plasma.locate(delay.expand(lead).reshape(-1))
        cp = located.value
    for coef, rate in spec.terms(flat):
        if rate is None:
            out += coef * cp
        elif delay is None:
            out += coef * plasma.convolve(sub[..., None], rate)[..., 0]
        else:
            out += coef * plasma.delayed_convolve(rate, located)
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
