"""Variable-flip-angle (VFA) T1 mapping from spoiled gradient-echo signals.

Three vectorised estimators of (T1, M0) per voxel, all built on
:func:`bidsapp.spgr.spgr_signal`:

``vfa-linear``
    DESPOT1 linearisation (Deoni et al. MRM 2003;49:515): with
    y = S/sin α and x = S/tan α the SPGR equation is the straight line
    y = E1·x + M0·(1 − E1), E1 = exp(−TR/T1); an ordinary least-squares line per voxel.
``vfa-nonlinear``
    Least squares on the SPGR equation itself, Σ (S_i − S(α_i; M0, R1))², solved with
    the project's batched Levenberg–Marquardt (:mod:`bidsapp.fitting.lm`, the one the
    kinetic fits use) on (M0, R1) over all voxels at once, started from the linear fit.
``two-angle``
    The closed-form two-flip-angle solution (Wang et al. MRM 1987;5:399; Brookes et al.
    JMR 1999;138:167): with y_i = S_i/sin α_i for the first and last angle,
    E1 = (y2 − y1)/(y2·cos α2 − y1·cos α1), M0 = y1·(1 − E1·cos α1)/(1 − E1).

A relative B1 map scales the nominal angles (α = b1·α_nominal) in all three.

Validity rule (``T1MapResult.valid``). With ``validity="physical"`` (the default) a voxel
gets a T1 whenever the fit is physically valid, i.e. all of:

1. it is inside ``mask``;
2. every signal is finite and > 0, and b1 (when given) is finite and > 0;
3. the fit gives 0 < E1 < 1 (a finite, positive T1) and a finite M0 > 0;
4. T1 lies in ``t1_range`` (default 1 ms .. 10 s: physically plausible tissue/fluid);
5. (``vfa-nonlinear`` only) the Levenberg–Marquardt iteration converged.

The goodness of fit is a quality flag, not a validity condition: ``T1MapResult.poor_fit``
marks the physically valid voxels whose relative RMS residual over all angles,
sqrt(mean((S − Ŝ)²)) / mean(S), exceeds ``max_residual`` (default 0.1). Real VFA signals
rarely follow the ideal SPGR curve within 10 % (B1 error, imperfect spoiling, motion
between the angles), and dropping those voxels empties tumour regions. With
``validity="strict"`` the residual rule is a sixth validity condition (poor fits are
invalid).

Invalid voxels have ``t1`` and ``m0`` set to NaN; ``residual`` is NaN where no physically
valid fit was made (it is kept for the poor fits that ``strict`` rejects).
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ._validate import boolean_mask, flip_angles_deg, positive_scalar, voxel_map
from .spgr import spgr_signal, spgr_signal_dr1

METHODS = ("vfa-linear", "vfa-nonlinear", "two-angle")
#: validity rules of :func:`compute_t1_map` (see the module docstring)
VALIDITY_RULES = ("physical", "strict")


@dataclass
class T1MapResult:
    """Result of :func:`compute_t1_map` (arrays of the voxel shape ``signals.shape[:-1]``).

    Attributes
    ----------
    t1 : numpy.ndarray
        T1 in s (NaN where not ``valid``).
    m0 : numpy.ndarray
        Equilibrium signal M0 in signal units (NaN where not ``valid``).
    valid : numpy.ndarray of bool
        The validity rule of the module docstring (``validity``).
    residual : numpy.ndarray
        Relative RMS residual of the fit (NaN where no physically valid fit was made).
    method : str
        The estimator used.
    poor_fit : numpy.ndarray of bool
        Physically valid fits whose ``residual`` exceeds ``max_residual`` (kept in ``valid``
        under ``validity="physical"``, excluded under ``"strict"``).
    validity : str
        The validity rule used (``"physical"`` or ``"strict"``).
    max_residual : float
        The residual threshold of ``poor_fit``.
    """

    t1: np.ndarray
    m0: np.ndarray
    valid: np.ndarray
    residual: np.ndarray
    method: str
    poor_fit: np.ndarray
    validity: str = "physical"
    max_residual: float = 0.1


def compute_t1_map(
    signals: ArrayLike,
    flip_angles: ArrayLike,
    tr: float,
    method: str = "vfa-linear",
    b1: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    *,
    t1_range: tuple[float, float] = (0.001, 10.0),
    max_residual: float = 0.1,
    max_iterations: int = 100,
    validity: str = "physical",
) -> T1MapResult:
    """Map T1 and M0 from variable-flip-angle SPGR signals.

    Parameters
    ----------
    signals : array_like, shape (..., n)
        Signal per voxel and flip angle; the flip-angle axis is last.
    flip_angles : array_like, shape (n,)
        Nominal flip angles in degrees (a warning is raised if all are below π).
    tr : float
        Repetition time in s (> 0).
    method : {"vfa-linear", "vfa-nonlinear", "two-angle"}
        Estimator (see the module docstring). ``two-angle`` uses the first and the last
        angle; the residual is still computed over all angles.
    b1 : array_like, optional
        Relative transmit field (1.0 = nominal), scalar or of the voxel shape.
    mask : array_like of bool, optional
        Voxels to fit (voxel shape); others are returned invalid.
    t1_range : (float, float)
        Plausible T1 range in s for the validity rule.
    max_residual : float
        Relative RMS residual above which a fit is flagged ``poor_fit`` (and, under
        ``validity="strict"``, invalid).
    max_iterations : int
        Iteration cap of the non-linear fit.
    validity : {"physical", "strict"}
        ``physical``: every physically valid fit keeps its T1, poor fits are only flagged;
        ``strict``: poor fits are invalid too (see the module docstring).

    Returns
    -------
    T1MapResult
    """
    if method not in METHODS:
        raise ValueError(f"method: unknown T1 method {method!r}; choose one of {METHODS}")
    if validity not in VALIDITY_RULES:
        raise ValueError(f"validity: unknown validity rule {validity!r}; choose one of {VALIDITY_RULES}")
    signals = np.asarray(signals, dtype=float)
    angles = np.asarray(flip_angles, dtype=float)
    if angles.ndim != 1:
        raise ValueError(f"flip_angles: expected a 1-D sequence of angles, got shape {angles.shape}")
    if angles.size < 2:
        raise ValueError(f"flip_angles: at least two flip angles are needed, got {angles.size}")
    if signals.ndim < 1 or signals.shape[-1] != angles.size:
        raise ValueError(
            f"signals: last axis ({signals.shape[-1] if signals.ndim else 'scalar'}) must match "
            f"the number of flip_angles ({angles.size})"
        )
    angles = flip_angles_deg(angles)
    tr = positive_scalar(tr, "tr")
    voxel_shape = signals.shape[:-1]
    b1_map = voxel_map(b1, voxel_shape, "b1", default=1.0)
    inside = boolean_mask(mask, voxel_shape)

    fit_ok = (
        inside & np.all(np.isfinite(signals) & (signals > 0), axis=-1) & np.isfinite(b1_map) & (b1_map > 0)
    )
    s = signals[fit_ok]  # (V, n)
    # actual angles in radians: (V, n) with a B1 map, else one shared row (1, n)
    alpha = np.deg2rad(angles[None, :] if b1 is None else b1_map[fit_ok][:, None] * angles)
    actual_deg = np.rad2deg(alpha)

    if method == "two-angle":
        e1, m0 = _two_angle(s, alpha)
        converged = np.ones(e1.shape, dtype=bool)
    else:
        e1, m0 = _despot1(s, alpha)
        converged = np.ones(e1.shape, dtype=bool)
        if method == "vfa-nonlinear":
            e1, m0, converged = _levenberg_marquardt(s, alpha, actual_deg, e1, m0, tr, max_iterations)

    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = -tr / np.log(e1)
        predicted = spgr_signal(m0[:, None], 1.0 / t1[:, None], actual_deg, tr)
        residual = np.sqrt(np.mean((s - predicted) ** 2, axis=-1)) / np.mean(s, axis=-1)
    physical = (
        (e1 > 0)
        & (e1 < 1)
        & np.isfinite(t1)
        & np.isfinite(m0)
        & (m0 > 0)
        & (t1 >= t1_range[0])
        & (t1 <= t1_range[1])
        & converged
    )
    poor = physical & ~(residual <= max_residual)
    good = physical & ~poor if validity == "strict" else physical

    valid = np.zeros(voxel_shape, dtype=bool)
    valid[fit_ok] = good
    poor_fit = np.zeros(voxel_shape, dtype=bool)
    poor_fit[fit_ok] = poor
    out_t1 = np.full(voxel_shape, np.nan)
    out_m0 = np.full(voxel_shape, np.nan)
    out_res = np.full(voxel_shape, np.nan)
    out_t1[fit_ok] = np.where(good, t1, np.nan)
    out_m0[fit_ok] = np.where(good, m0, np.nan)
    out_res[fit_ok] = np.where(physical, residual, np.nan)
    return T1MapResult(
        t1=out_t1,
        m0=out_m0,
        valid=valid,
        residual=out_res,
        method=method,
        poor_fit=poor_fit,
        validity=validity,
        max_residual=float(max_residual),
    )


def _despot1(s, alpha):
    """Per-voxel least-squares line y = E1·x + M0(1 − E1), y = S/sin α, x = S/tan α."""
    y = s / np.sin(alpha)
    x = s / np.tan(alpha)
    x_mean = x.mean(axis=-1, keepdims=True)
    y_mean = y.mean(axis=-1, keepdims=True)
    dx = x - x_mean
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.einsum("vn,vn->v", dx, y - y_mean) / np.einsum("vn,vn->v", dx, dx)
        intercept = y_mean[:, 0] - slope * x_mean[:, 0]
        m0 = intercept / (1.0 - slope)
    return slope, m0


def _two_angle(s, alpha):
    """Closed-form E1 and M0 from the first and the last flip angle."""
    y1, y2 = s[:, 0] / np.sin(alpha[:, 0]), s[:, -1] / np.sin(alpha[:, -1])
    c1, c2 = np.cos(alpha[:, 0]), np.cos(alpha[:, -1])
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = (y2 - y1) / (y2 * c2 - y1 * c1)
        m0 = y1 * (1.0 - e1 * c1) / (1.0 - e1)
    return e1, m0


#: lower bound of R1 (1/s) in the non-linear fit: T1 ≤ 10⁶ s, far outside any ``t1_range``
R1_FLOOR = 1e-6
#: stopping rules of the non-linear fit: relative decrease of the sum of squares, relative step
T1_FTOL, T1_XTOL = 1e-10, 1e-8
#: a linear start with a longer T1 (s) lies in the flat valley E1 → 1; such voxels start from T1 = 1 s
START_T1_MAX = 10.0


def _levenberg_marquardt(s, alpha, actual_deg, e1_start, m0_start, tr, max_iterations):
    """Least squares Σ (S − M0·f(α; R1))² on (M0, R1) with the project's Levenberg–Marquardt.

    f = spgr_signal(1, R1, α, TR); the Jacobian is (f, ∂S/∂R1 of
    :func:`bidsapp.spgr.spgr_signal_dr1`). Solved for all voxels at once by
    :func:`bidsapp.fitting.lm.levenberg_marquardt` (float64, CPU) with R1 ≥
    :data:`R1_FLOOR`, stopping rules :data:`T1_FTOL` / :data:`T1_XTOL`. Voxels whose
    linear start is unusable (E1 outside (0, 1), M0 ≤ 0, or T1 above
    :data:`START_T1_MAX`, where M0 and R1 enter only as their product and the fit
    stalls) start from T1 = 1 s with the matching least-squares M0.
    Returns (E1, M0, converged).
    """
    import torch

    from .fitting.lm import levenberg_marquardt

    start_ok = (
        (e1_start > 0) & (e1_start < np.exp(-tr / START_T1_MAX)) & np.isfinite(m0_start) & (m0_start > 0)
    )
    r1 = np.where(start_ok, -np.log(np.where(start_ok, e1_start, 0.5)) / tr, 1.0)
    f0 = spgr_signal(1.0, r1[:, None], actual_deg, tr)
    m0 = np.where(start_ok, m0_start, np.sum(s * f0, axis=-1) / np.sum(f0 * f0, axis=-1))
    angles = torch.as_tensor(actual_deg, dtype=torch.float64)  # [1, n] shared or [V, n] with a B1 map

    def predict(theta, idx):
        deg = angles if angles.shape[0] == 1 else angles[idx]
        m0_, r1_ = theta[:, :1], theta[:, 1:]
        f = spgr_signal(1.0, r1_, deg, tr)  # [v, n]
        jac = torch.stack([f, spgr_signal_dr1(m0_, r1_, deg, tr)])  # [2, v, n]
        return (m0_ * f).T, jac.transpose(1, 2)

    inf = float("inf")
    res = levenberg_marquardt(
        predict,
        torch.as_tensor(s.T, dtype=torch.float64),
        torch.as_tensor(np.stack([m0, r1], axis=1)),
        torch.tensor([-inf, R1_FLOOR], dtype=torch.float64),
        torch.tensor([inf, inf], dtype=torch.float64),
        max_iter=max_iterations,
        ftol=T1_FTOL,
        xtol=T1_XTOL,
    )
    theta = res.theta.numpy()
    return np.exp(-tr * theta[:, 1]), theta[:, 0], res.converged.numpy()
