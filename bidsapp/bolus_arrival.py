"""Bolus arrival time (s) and the pre-contrast (baseline) frames of a dynamic series.

One estimate serves the whole pipeline: the baseline of the signal → concentration
conversion, the shift of a population AIF and the arrival marked in the report.

Method
------
1. **Reference curve** (:func:`enhancing_curve`): the mean signal curve of the
   ``top_fraction`` (1 %) voxels with the largest enhancement max(S) − mean(S) — in
   practice the arteries and veins. The mean over all frames, not the first frame, is the
   reference level, so the selection does not bias any baseline frame low when noise is
   present.
2. **Piecewise regression** (:func:`fit_arrival`) after Cheong LH, Koh TS, Hou Z. An
   automatic approach for estimating bolus arrival time in dynamic contrast MRI using
   piecewise continuous regression models. Phys Med Biol 2003;48:N83–N88: a constant
   baseline, then their quadratic (LQ) or linear (LL) rise, with a step j ≥ 0 allowed at
   the arrival::

       S(t) = a                               t < BAT
       S(t) = a + j + c·(t − BAT)^p           t ≥ BAT,  p = 2 or 1,  c ≥ 0, j ≥ 0

   (the shapes of :data:`SHAPES`; the best fit over them is kept for every candidate BAT).
   Differences from Cheong's models, each measured on the simulator (Parker AIF through
   the SPGR signal): the step is needed because frames sample the curve, not its shape
   between frames — a bolus that rises within one frame interval, or a population AIF
   that starts at a non-zero value (Parker's 0.15 mM), is a jump that a continuous model
   follows by starting its quadratic ~1 frame early (−0.9 to −1.2 frames at 0.5 s frames
   without the step, −0.1 to +0.5 with it); the baseline slope is left out because with
   3–5 baseline frames (5–10 s frames) it trades off against the step (up to −2.9 frames
   at 10 s frames); the linear rise is needed at 5 s frames, where the two or three
   upslope samples rise linearly and a quadratic from BAT cannot follow them (it moved
   the estimate past the first enhanced frame). The fit uses the frames from the first
   to two frames after the one where the curve first reaches ``upslope_fraction`` (20 %)
   of its rise, but not past the end of its steepest rise (the upper, concave part of
   the first pass is left out; the two extra frames keep a step-like rise
   identifiable). For a fixed BAT the model is linear in a, j, c, so BAT is found by an
   exhaustive search over ``substeps`` (20) equally spaced candidates per frame interval
   (sub-frame resolution, no starting value, no local minimum); a frame acquired at BAT
   belongs to the upslope. Nothing depends on a noise estimate of the baseline, so
   noise-free, integer-quantised data (where "k noise SDs above the baseline" rules
   degenerate: the SD is 0) work as well as noisy data, at any frame spacing.
3. **Baseline frames** (:func:`baseline_frame_count`): the frames acquired strictly
   before BAT (the last frame before the upslope ends the baseline).

The arrival is "no enhancement" (NaN) when the curve's rise is not above
``min_rise_sd`` noise SDs of the reference curve (σ from the median absolute deviation
of its first differences) or not positive.
"""

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

METHOD = (
    "piecewise constant then step + linear or quadratic rise fit (after Cheong et al. 2003, Phys Med "
    "Biol 48:N83) to the mean signal of the 1 % most enhancing voxels"
)


@dataclass(frozen=True)
class BolusArrival:
    """A bolus arrival estimate.

    Attributes
    ----------
    time : float
        Bolus arrival time in s (sub-frame; NaN when no enhancement was found).
    baseline_frames : int
        Frames acquired strictly before ``time`` (at least 1).
    method : str
        How ``time`` was estimated.
    warnings : list of str
        Notes (no enhancement, fewer than 3 baseline frames).
    """

    time: float
    baseline_frames: int
    method: str = METHOD
    warnings: list[str] = field(default_factory=list)


def _check_times(t, n):
    t = np.asarray(t, dtype=float)
    if t.ndim != 1 or t.size != n:
        raise ValueError(f"t: expected {n} frame times, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError("t: frame times must be finite and strictly increasing")
    return t


def enhancing_curve(
    signal: ArrayLike,
    mask: ArrayLike | None = None,
    top_fraction: float = 0.01,
) -> np.ndarray | None:
    """Return the mean curve of the most enhancing voxels.

    Mean curve ``[t]`` of the ``top_fraction`` voxels of ``signal [..., t]`` (inside ``mask``) with the
    largest enhancement max − mean over time; None if no voxel.
    """
    signal = np.asarray(signal, dtype=float)
    flat = signal.reshape(-1, signal.shape[-1])
    with np.errstate(invalid="ignore"):
        enhancement = flat.max(axis=1) - flat.mean(axis=1)  # not finite where a sample is not
    keep = np.isfinite(enhancement)
    if mask is not None:
        keep &= np.asarray(mask, bool).reshape(-1)
    candidates = np.flatnonzero(keep)  # no copy of the series: it may be GBs
    if candidates.size == 0:
        return None
    n_top = max(1, int(round(top_fraction * candidates.size)))
    top = candidates[np.argpartition(enhancement[candidates], candidates.size - n_top)[-n_top:]]
    return flat[np.sort(top)].mean(axis=0)


def _noise_sd(curve):
    """Noise SD of ``curve`` from the median absolute deviation of its first differences."""
    diffs = np.diff(curve)
    return 1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2.0)


def _candidates(t, substeps):
    """Candidate arrival times: ``substeps`` equal steps in every frame interval of ``t``."""
    fractions = np.arange(substeps) / substeps
    return (t[:-1, None] + fractions[None, :] * np.diff(t)[:, None]).reshape(-1)


def fit_arrival(
    curve: ArrayLike,
    t: ArrayLike,
    upslope_fraction: float = 0.2,
    substeps: int = 20,
    min_rise_sd: float = 5.0,
) -> float:
    """Bolus arrival time (s) of one enhancing curve by the piecewise fit of the module docstring.

    Parameters
    ----------
    curve : array_like, shape (t,)
        Signal (or concentration) curve; enhancement is an increase.
    t : array_like, shape (t,)
        Frame times in s, strictly increasing.
    upslope_fraction : float
        The fit ends two frames after the first frame where the curve reaches this
        fraction of its rise (maximum − first frame), or at the end of the steepest
        rise before the maximum if earlier.
    substeps : int
        Candidate arrival times per frame interval.
    min_rise_sd : float
        A rise of at most this many noise SDs of ``curve`` is "no enhancement".

    Returns
    -------
    float
        Arrival time in s, NaN when there is no enhancement.
    """
    curve = np.asarray(curve, dtype=float)
    t = _check_times(t, curve.size)
    if curve.size < 4 or not np.all(np.isfinite(curve)):
        return float("nan")
    peak_index = int(np.argmax(curve))
    rise = curve[peak_index] - curve[0]
    if peak_index == 0 or not rise > min_rise_sd * _noise_sd(curve):
        return float("nan")
    crossing = int(np.argmax(curve >= curve[0] + upslope_fraction * rise))
    steepest = int(np.argmax(np.diff(curve[: peak_index + 1]))) + 1
    end = max(min(crossing + 2, steepest), min(3, curve.size - 1))
    tw, yw = t[: end + 1], curve[: end + 1]
    scale = tw[-1] - tw[0]
    x = (tw - tw[0]) / scale  # unit time span keeps the normal equations well conditioned
    bats = (_candidates(tw, substeps) - tw[0]) / scale
    after = x[None, :] - bats[:, None]
    sse = np.min([_fit_sse(yw, after, terms) for terms in SHAPES], axis=0)
    if not np.any(np.isfinite(sse)):
        return float("nan")
    return float(tw[0] + scale * bats[int(np.argmin(sse))])


#: the enhancement terms after the arrival: step H, linear d, quadratic d² (d = t − BAT)
SHAPES = (("step", "quadratic"), ("step", "linear"), ("quadratic",), ("linear",), ("step",))


def _fit_sse(y, after, terms):
    """Return the residual sum of squares of a non-negative piecewise fit for every candidate arrival.

    Residual sum of squares of y ≈ a + Σ (coefficient ≥ 0) × term over ``terms`` for every row of ``after``
    (time − candidate arrival); inf where a coefficient is negative or the fit is singular (that shape is then
    covered by a shorter one).
    """
    onset = np.clip(after, 0.0, None)
    columns = {"step": (after >= 0).astype(float), "linear": onset, "quadratic": onset**2}
    design = np.stack([np.ones_like(after)] + [columns[name] for name in terms], axis=-1)
    gram = np.einsum("kni,knj->kij", design, design)
    rhs = np.einsum("kni,n->ki", design, y)
    usable = np.abs(np.linalg.det(gram)) > 1e-12
    coef = np.zeros(rhs.shape)
    coef[usable] = np.linalg.solve(gram[usable], rhs[usable][..., None])[..., 0]
    residual = y[None, :] - np.einsum("kni,ki->kn", design, coef)
    return np.where(usable & np.all(coef[:, 1:] >= 0, axis=1), np.sum(residual**2, axis=1), np.inf)


def baseline_frame_count(t: ArrayLike, arrival: float) -> int:
    """Frames of ``t`` (s) acquired strictly before ``arrival`` (s); at least 1."""
    if not np.isfinite(arrival):
        return 1
    return max(1, int(np.sum(np.asarray(t, dtype=float) < arrival)))


def estimate_bolus_arrival(
    signal: ArrayLike,
    t: ArrayLike,
    mask: ArrayLike | None = None,
    top_fraction: float = 0.01,
    **fit_options,
) -> BolusArrival:
    """Bolus arrival and baseline frames of a dynamic series (method: module docstring).

    Parameters
    ----------
    signal : array_like, shape (..., t)
        Dynamic signal (e.g. ``[x, y, z, t]``); any positive-enhancing quantity works.
    t : array_like, shape (t,)
        Frame times in s, strictly increasing.
    mask : array_like of bool, shape (...), optional
        Voxels to consider.
    top_fraction : float
        Fraction of voxels averaged into the reference curve.
    **fit_options
        Passed to :func:`fit_arrival`.

    Returns
    -------
    BolusArrival
    """
    signal = np.asarray(signal, dtype=float)
    t = _check_times(t, signal.shape[-1])
    curve = enhancing_curve(signal, mask, top_fraction)
    arrival = float("nan") if curve is None or t.size < 4 else fit_arrival(curve, t, **fit_options)
    if not np.isfinite(arrival):
        return BolusArrival(
            arrival, 1, warnings=["bolus arrival: no enhancement found; using 1 baseline frame"]
        )
    n_base = baseline_frame_count(t, arrival)
    warnings = (
        []
        if n_base >= 3
        else [f"only {n_base} baseline frame(s) before the bolus arrival at {arrival:.2f} s"]
    )
    return BolusArrival(arrival, n_base, warnings=warnings)
