"""Spoiled gradient-echo (SPGR / FLASH) steady-state signal equation.

The one place the SPGR equation lives; T1 mapping, signal-to-concentration, the
simulator and the networks all use it.

    S = M0 · sin(α) · (1 − E1) / (1 − cos(α) · E1),   E1 = exp(−TR · R1)

with α the actual flip angle (nominal angle × relative B1), TR in s and R1 in 1/s.
T2* decay is folded into M0 (short TE assumption). Its inverse, with
q = S / (M0 · sin α):

    E1 = (1 − q) / (1 − q · cos α),   R1 = −ln(E1) / TR

Every function takes numpy arrays (or scalars) and returns numpy arrays, or takes torch
tensors and returns torch tensors (differentiable, on the tensors' device) when any
argument is a tensor — the same equations for the fits, the networks' physics loss and
the dose simulator. torch is never imported here.

Reference: Deoni SCL, Rutt BK, Peters TM. MRM 2003;49:515-526 (DESPOT1).
"""

import sys

import numpy as np
from numpy.typing import ArrayLike


def torch_of(*values):
    """Return the torch module when any of ``values`` is a torch tensor, else ``None``.

    Looks torch up in ``sys.modules`` only: if torch was never imported, no argument can
    be a tensor.
    """
    torch = sys.modules.get("torch")
    if torch is not None and any(isinstance(v, torch.Tensor) for v in values):
        return torch
    return None


def _torch_args(torch, *values):
    """``values`` as tensors of the dtype and device of the first tensor among them."""
    ref = next(v for v in values if isinstance(v, torch.Tensor))
    return [
        v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=ref.dtype, device=ref.device)
        for v in values
    ]


def spgr_signal(
    m0: ArrayLike, r1: ArrayLike, flip_angle: ArrayLike, tr: float, b1: ArrayLike = 1.0
) -> np.ndarray:
    """Steady-state SPGR signal.

    Parameters
    ----------
    m0 : array_like or torch.Tensor
        Equilibrium magnetisation (signal units, includes receive gain and T2*).
    r1 : array_like or torch.Tensor
        Longitudinal relaxation rate in 1/s.
    flip_angle : array_like or torch.Tensor
        Nominal flip angle in degrees.
    tr : float or torch.Tensor
        Repetition time in s.
    b1 : array_like or torch.Tensor, optional
        Relative transmit field; the actual angle is ``b1 * flip_angle``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Signal, broadcast over the inputs.
    """
    torch = torch_of(m0, r1, flip_angle, tr, b1)
    if torch is not None:
        m0, r1, flip_angle, tr, b1 = _torch_args(torch, m0, r1, flip_angle, tr, b1)
        alpha = torch.deg2rad(flip_angle * b1)
        e1 = torch.exp(-tr * r1)
        return m0 * torch.sin(alpha) * (1.0 - e1) / (1.0 - torch.cos(alpha) * e1)
    alpha = np.deg2rad(np.asarray(flip_angle, dtype=float) * np.asarray(b1, dtype=float))
    e1 = np.exp(-float(tr) * np.asarray(r1, dtype=float))
    return np.asarray(m0, dtype=float) * np.sin(alpha) * (1.0 - e1) / (1.0 - np.cos(alpha) * e1)


def spgr_signal_dr1(m0, r1, flip_angle, tr, b1=1.0):
    """∂S/∂R1 of :func:`spgr_signal` (signal units · s).

    ∂S/∂R1 = M0 · TR · E1 · sin α · (1 − cos α) / (1 − E1 · cos α)²; the derivative with
    respect to M0 is ``spgr_signal(1, r1, flip_angle, tr, b1)``. Arguments as in
    :func:`spgr_signal`.
    """
    torch = torch_of(m0, r1, flip_angle, tr, b1)
    if torch is not None:
        m0, r1, flip_angle, tr, b1 = _torch_args(torch, m0, r1, flip_angle, tr, b1)
        alpha = torch.deg2rad(flip_angle * b1)
        e1 = torch.exp(-tr * r1)
        sin_a, cos_a = torch.sin(alpha), torch.cos(alpha)
    else:
        alpha = np.deg2rad(np.asarray(flip_angle, dtype=float) * np.asarray(b1, dtype=float))
        tr = float(tr)
        e1 = np.exp(-tr * np.asarray(r1, dtype=float))
        sin_a, cos_a = np.sin(alpha), np.cos(alpha)
        m0 = np.asarray(m0, dtype=float)
    return m0 * tr * e1 * sin_a * (1.0 - cos_a) / (1.0 - e1 * cos_a) ** 2


def r1_from_ratio(q, cos_alpha, tr):
    """R1 (1/s) from the normalised signal ``q = S / (M0 · sin α)`` (the inverse SPGR equation).

    NaN or infinite where no finite R1 explains ``q`` (q ≤ 0 or q ≥ 1); numpy or torch.
    """
    torch = torch_of(q, cos_alpha, tr)
    log = torch.log if torch is not None else np.log
    return -log((1.0 - q) / (1.0 - q * cos_alpha)) / tr


def spgr_r1(signal, m0, flip_angle, tr, b1=1.0):
    """R1 (1/s) that gives ``signal`` with equilibrium signal ``m0``: the inverse of :func:`spgr_signal`.

    Arguments as in :func:`spgr_signal`; NaN (or ±inf) where the signal is not in
    (0, M0 · sin α) — no finite R1 explains it. numpy or torch.
    """
    torch = torch_of(signal, m0, flip_angle, tr, b1)
    if torch is not None:
        signal, m0, flip_angle, tr, b1 = _torch_args(torch, signal, m0, flip_angle, tr, b1)
        alpha = torch.deg2rad(flip_angle * b1)
        return r1_from_ratio(signal / (m0 * torch.sin(alpha)), torch.cos(alpha), tr)
    alpha = np.deg2rad(np.asarray(flip_angle, dtype=float) * np.asarray(b1, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.asarray(signal, dtype=float) / (np.asarray(m0, dtype=float) * np.sin(alpha))
        return r1_from_ratio(q, np.cos(alpha), float(tr))
