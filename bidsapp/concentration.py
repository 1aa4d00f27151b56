"""Signal ↔ contrast-agent concentration for spoiled gradient-echo (SPGR) DCE-MRI.

Forward model (fast water exchange, linear relaxivity, T2* folded into M0; the SPGR
equation and its inverse are those of :mod:`bidsapp.spgr`):

    R1(t) = 1/T10 + r1 · C(t),      S(t) = spgr_signal(M0, R1(t), α, TR, b1)

Inverse, method ``"spgr"`` (exact): with M0 from ``m0`` or from the mean baseline
signal S0 = mean(S[baseline_frames]) as M0 = S0 / spgr_signal(1, 1/T10, α, TR, b1), and
q = S / (M0 · sin α):

    E1 = (1 − q) / (1 − q · cos α),   R1 = −ln(E1) / TR,   C = (R1 − 1/T10) / r1

Method ``"linear"``: the signal is taken as proportional to R1 (the SPGR equation for
TR·R1 ≪ 1 − cos α), so ΔR1 = R10 · (S − S0)/S0 and C = ΔR1 / r1.

Validity (never clipped):

* a **sample** is invalid when S is not finite, S ≤ 0 (negative or zero signal), or,
  for ``spgr``, when q ≥ 1 — the enhancement reaches or passes the SPGR asymptote
  M0·sin α (R1 → ∞), so no finite concentration explains it;
* a **voxel** is invalid (all its samples invalid) when T10, b1 or M0 are not finite
  and > 0, or its baseline mean is not finite and > 0.

Invalid samples are NaN in ``ConcentrationResult.concentration``. ``voxel_valid`` is
True only where every sample of the voxel is valid.

:func:`concentration_to_signal` and :func:`concentration_from_signal` also take torch
tensors (the networks and the dose simulator use them); :func:`signal_to_concentration`
(baseline, validity masks) works on numpy arrays.

``baseline_frames``: an int n means frames 0..n−1; a ``slice`` or a sequence of frame
indices selects those frames (the OSIPI convention ``slice(1, n)`` skips frame 0).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._validate import flip_angles_deg, positive_scalar, voxel_map
from .spgr import _torch_args, r1_from_ratio, spgr_r1, spgr_signal, torch_of

METHODS = ("spgr", "linear")


@dataclass
class ConcentrationResult:
    """Result of :func:`signal_to_concentration`.

    Attributes
    ----------
    concentration : numpy.ndarray, shape (..., t)
        Concentration in mM; NaN where ``valid`` is False.
    valid : numpy.ndarray of bool, shape (..., t)
        Per-sample validity (see the module docstring).
    voxel_valid : numpy.ndarray of bool, shape (...)
        True where every sample of the voxel is valid.
    baseline_frames : numpy.ndarray of int
        The frame indices used for the baseline (empty when ``m0`` was given).
    """

    concentration: np.ndarray
    valid: np.ndarray
    voxel_valid: np.ndarray
    baseline_frames: np.ndarray


def baseline_indices(baseline_frames: int | slice | Sequence[int], n_frames: int) -> np.ndarray:
    """Resolve ``baseline_frames`` (int n, slice or index sequence) to frame indices.

    Raises ``ValueError`` naming ``baseline_frames`` when it selects no frame, a frame
    outside 0..n_frames−1, or (for an int) n ≥ n_frames.
    """
    if isinstance(baseline_frames, (int, np.integer)) and not isinstance(baseline_frames, bool):
        count = int(baseline_frames)
        if count < 1 or count >= n_frames:
            raise ValueError(f"baseline_frames: {count} must be >= 1 and < the number of frames ({n_frames})")
        return np.arange(count)
    if isinstance(baseline_frames, slice):
        indices = np.arange(n_frames)[baseline_frames]
    else:
        try:
            indices = np.asarray(baseline_frames)
        except (TypeError, ValueError):
            indices = np.asarray([])
        if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
            raise ValueError(
                f"baseline_frames: expected an int, a slice or a sequence of frame indices, "
                f"got {baseline_frames!r}"
            )
        if indices.size and (indices.min() < -n_frames or indices.max() >= n_frames):
            raise ValueError(f"baseline_frames: indices must be in 0..{n_frames - 1}")
        indices = np.arange(n_frames)[indices]
    if indices.size == 0:
        raise ValueError(f"baseline_frames: {baseline_frames!r} selects no frame")
    return indices


def signal_to_concentration(
    signal: ArrayLike,
    t10: ArrayLike,
    tr: float,
    flip_angle: ArrayLike,
    relaxivity: float,
    baseline_frames: int | slice | Sequence[int] | None,
    method: str = "spgr",
    m0: ArrayLike | None = None,
    b1: ArrayLike | None = None,
) -> ConcentrationResult:
    """Convert SPGR DCE signal to contrast-agent concentration.

    Parameters
    ----------
    signal : array_like, shape (..., t)
        Dynamic signal; time is the last axis.
    t10 : float or array_like, shape (...)
        Pre-contrast T1 in s (scalar or a per-voxel map).
    tr : float
        Repetition time in s.
    flip_angle : float
        Nominal flip angle in degrees.
    relaxivity : float
        r1 in /mM/s.
    baseline_frames : int, slice, sequence of int or None
        Pre-contrast frames (see the module docstring); may be None only when ``m0`` is
        given with ``method="spgr"``.
    method : {"spgr", "linear"}
        Exact SPGR inversion or the linear (signal ∝ R1) approximation.
    m0 : float or array_like, shape (...), optional
        Equilibrium signal M0 (``spgr`` only); replaces the baseline estimate.
    b1 : float or array_like, shape (...), optional
        Relative flip-angle scale (``spgr`` only).

    Returns
    -------
    ConcentrationResult
    """
    if method not in METHODS:
        raise ValueError(f"method: unknown conversion {method!r}; choose one of {METHODS}")
    signal = np.asarray(signal, dtype=float)
    if signal.ndim < 1 or signal.shape[-1] < 2:
        raise ValueError(f"signal: expected shape (..., t) with at least 2 frames, got {signal.shape}")
    voxel_shape = signal.shape[:-1]
    tr, alpha_deg, r1 = _acquisition(tr, flip_angle, relaxivity)
    t10_map = voxel_map(t10, voxel_shape, "t10")
    b1_map = voxel_map(b1, voxel_shape, "b1", default=1.0)
    if method == "linear" and (m0 is not None or b1 is not None):
        raise ValueError("m0/b1: only used by method='spgr'")
    if baseline_frames is None and (m0 is None or method != "spgr"):
        raise ValueError("baseline_frames: required unless m0 is given with method='spgr'")

    voxel_ok = np.isfinite(t10_map) & (t10_map > 0) & np.isfinite(b1_map) & (b1_map > 0)
    frames = np.arange(0)
    if baseline_frames is not None:
        frames = baseline_indices(baseline_frames, signal.shape[-1])
        s0 = signal[..., frames].mean(axis=-1)
        baseline_ok = np.isfinite(s0) & (s0 > 0)
        if m0 is None and not np.any(baseline_ok):
            raise ValueError(
                "signal: the baseline mean (baseline_frames) is zero, negative or non-finite in every voxel"
            )
        if m0 is None or method == "linear":
            voxel_ok &= baseline_ok

    r10 = 1.0 / t10_map
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if method == "spgr":
            if m0 is not None:
                m0_map = voxel_map(m0, voxel_shape, "m0")
            else:
                m0_map = s0 / spgr_signal(1.0, r10, alpha_deg, tr, b1_map)
            voxel_ok &= np.isfinite(m0_map) & (m0_map > 0)
            alpha = np.deg2rad(alpha_deg * b1_map)
            # per voxel: q = S / scale, E1 = (1 - q) / (1 - q cos α)
            per_voxel = (m0_map * np.sin(alpha), np.cos(alpha))
        else:
            per_voxel = (s0,)

    flat_signal = signal.reshape(-1, signal.shape[-1])
    flat_maps = [np.broadcast_to(m, voxel_shape).reshape(-1) for m in (r10, voxel_ok, *per_voxel)]
    conc = np.empty(flat_signal.shape)
    valid = np.empty(flat_signal.shape, dtype=bool)
    for block in _voxel_blocks(*flat_signal.shape):
        conc[block], valid[block] = _invert_block(
            flat_signal[block], tr, r1, method, *(m[block] for m in flat_maps)
        )
    conc = conc.reshape(signal.shape)
    valid = valid.reshape(signal.shape)
    return ConcentrationResult(
        concentration=conc,
        valid=valid,
        voxel_valid=np.all(valid, axis=-1),
        baseline_frames=frames,
    )


def _acquisition(tr, flip_angle, relaxivity):
    """Return the validated ``(tr s, flip angle deg, r1 /mM/s)``; ``ValueError`` naming the argument."""
    tr = positive_scalar(tr, "tr")
    alpha_deg = float(flip_angles_deg(positive_scalar(flip_angle, "flip_angle"), "flip_angle"))
    return tr, alpha_deg, positive_scalar(relaxivity, "relaxivity")


def _voxel_blocks(n_voxels, n_frames, samples_per_block=2**21):
    """Slices over voxels holding about ``samples_per_block`` samples each (bounds memory)."""
    step = max(1, samples_per_block // max(1, n_frames))
    return [slice(start, start + step) for start in range(0, n_voxels, step)]


def _invert_block(signal, tr, r1, method, r10, voxel_ok, *per_voxel):
    """Concentration and per-sample validity for a block of curves ``signal[v, t]``."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if method == "spgr":
            scale, cos_alpha = per_voxel
            q = signal / scale[:, None]
            r1_t = r1_from_ratio(q, cos_alpha[:, None], tr)
            sample_ok = (q > 0) & (q < 1)
        else:
            (s0,) = per_voxel
            r1_t = r10[:, None] * signal / s0[:, None]
            sample_ok = signal > 0
        conc = (r1_t - r10[:, None]) / r1
    valid = sample_ok & np.isfinite(signal) & np.isfinite(conc) & voxel_ok[:, None]
    return np.where(valid, conc, np.nan), valid


def concentration_to_signal(
    concentration: ArrayLike,
    t10: ArrayLike,
    m0: ArrayLike,
    tr: float,
    flip_angle: ArrayLike,
    relaxivity: float,
    b1: ArrayLike = 1.0,
) -> np.ndarray:
    """SPGR signal from concentration (the forward model of the module docstring).

    Parameters
    ----------
    concentration : array_like, shape (..., t)
        Concentration in mM.
    t10 : float or array_like, shape (...)
        Pre-contrast T1 in s.
    m0 : float or array_like, shape (...)
        Equilibrium signal.
    tr : float
        Repetition time in s.
    flip_angle : float
        Nominal flip angle in degrees.
    relaxivity : float
        r1 in /mM/s.
    b1 : float or array_like, shape (...)
        Relative flip-angle scale.

    Returns
    -------
    numpy.ndarray, shape (..., t)
        A torch tensor (differentiable) when any of ``concentration``, ``t10``, ``m0``
        or ``b1`` is one; the voxel maps then broadcast against the voxel axes.
    """
    torch = torch_of(concentration, t10, m0, b1)
    if torch is not None:
        tr, alpha_deg, r1 = _acquisition(tr, flip_angle, relaxivity)
        concentration, t10, m0, b1 = _torch_args(torch, concentration, t10, m0, b1)
        return spgr_signal(
            m0[..., None], 1.0 / t10[..., None] + r1 * concentration, alpha_deg, tr, b1[..., None]
        )
    concentration = np.asarray(concentration, dtype=float)
    if concentration.ndim < 1:
        raise ValueError("concentration: expected shape (..., t)")
    voxel_shape = concentration.shape[:-1]
    tr, alpha_deg, r1 = _acquisition(tr, flip_angle, relaxivity)
    t10_map = voxel_map(t10, voxel_shape, "t10")
    m0_map = voxel_map(m0, voxel_shape, "m0")
    b1_map = voxel_map(b1, voxel_shape, "b1")
    flat = concentration.reshape(-1, concentration.shape[-1])
    maps = [m.reshape(-1) for m in np.broadcast_arrays(t10_map, m0_map, b1_map)]
    signal = np.empty(flat.shape)
    for block in _voxel_blocks(*flat.shape):
        t10_b, m0_b, b1_b = (m[block, None] for m in maps)
        signal[block] = spgr_signal(m0_b, 1.0 / t10_b + r1 * flat[block], alpha_deg, tr, b1_b)
    return signal.reshape(concentration.shape)


def concentration_from_signal(signal, t10, m0, tr, flip_angle, relaxivity, b1=1.0):
    """Concentration (mM) of SPGR signals with a known M0: the exact inversion, sample by sample.

    C = (spgr_r1(S, M0, α, TR, b1) − 1/T10) / r1, broadcast over the arguments (units as
    in :func:`concentration_to_signal`); numpy arrays or torch tensors (differentiable).
    No validity bookkeeping: a sample no finite concentration explains is NaN or ±inf.
    For images with a baseline and validity masks use :func:`signal_to_concentration`.
    """
    torch = torch_of(signal, t10, m0, b1)
    if torch is None:
        t10 = np.asarray(t10, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (spgr_r1(signal, m0, flip_angle, tr, b1) - 1.0 / t10) / relaxivity
