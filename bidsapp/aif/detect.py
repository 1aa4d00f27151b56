"""Image-derived arterial input functions: automatic detection and user ROIs.

``detect_aif`` is a deterministic variant of the cluster-analysis method of Mouridsen K,
Christensen S, Gyldensted L, Østergaard L. Automatic selection of arterial input
function using cluster analysis. MRM 2006;55:524-531:

1. **Candidates** — voxels inside ``mask`` whose curve is finite everywhere. With
   ``signal_model`` (recommended, see "Signal-domain pooling") the curves used for
   selection are the relative enhancements S/S0 − 1 rather than concentrations.
2. **Area** — keep candidates whose area under the curve is at or above both the
   ``area_percentile`` (default 90th) percentile of the candidates' areas and
   ``vessel_area_fraction`` (default 0.25) × their 99.5th percentile (the large-vessel
   level: in a 64×64×8 brain the 90th percentile alone leaves ~1000 tissue voxels that
   swamp the ~20 arterial ones in the clustering); then, when ``t10`` is given, only
   those whose pre-contrast T1 lies in ``blood_t1_range`` (blood T1 is about 1.4–2.2 s at
   1.5 T and 3 T).
3. **Smoothness** — irregularity = σ/peak, with σ the curve's noise SD estimated from the
   median absolute deviation of the first differences of its second half (robust to the
   sharp bolus itself, which a raw second-derivative roughness would penalise); drop the
   voxels above the ``roughness_percentile`` (default 75th) percentile and those above
   ``max_roughness`` (default 0.1, i.e. a peak below 10 σ: no clear enhancement).
4. **Clustering** — k-means (``n_clusters``, default 5) on area-normalised curves
   (shape only). Initialisation is deterministic: voxels are ordered by time to peak
   (ties: larger area first) and the k initial centroids are the mean curves of k
   consecutive equal-size groups. Among the clusters with at least ``min_voxels`` voxels
   (when any has that many) whose mean curve peaks at ≥ 50 % of the highest cluster peak,
   the one whose mean curve reaches half its peak first is kept (the half-maximum time is
   interpolated linearly between frames, so a sinus delayed by less than one frame is
   still later; ties: the higher peak). Mouridsen ranks clusters by first moment, but in
   DCE the long wash-out tail dominates the first moment. The clustering is repeated once
   inside the kept cluster when it holds at least 2·k voxels (Mouridsen's two-pass
   scheme), which removes the partial-volume rim of the vessel.
5. **Curve** — without ``signal_model``: the mean of the selected voxels' concentration
   curves. Concentrations measured in a vessel are whole-blood concentrations: ``blood``
   is that curve, ``plasma`` is blood / (1 − Hct).

Signal-domain pooling (``signal_model = {tr, flip_angle, relaxivity[, b1]}``)
-----------------------------------------------------------------------------
Arterial blood at the bolus peak is close to the SPGR asymptote S → M0·sin α (at 3 T,
α = 15°, TR = 5 ms, 0.1 mmol/kg: S/S0 ≈ 10 of a possible ≈ 12), where the inversion
signal → concentration is steep: a 2 % error in a voxel's T10 (VFA T1 noise) or in its
baseline S0 changes the peak concentration by ≈ 10 %, and a voxel whose T10 is
underestimated looks like the best arterial voxel. On the simulated 64×64×8 studies
this inflated the concentration-domain AIF peak 1.9–2.6× (pure sinus voxels with T10
1.54 s instead of 1.75 s reached 14 mM instead of 6 mM blood). With ``signal_model``:

* the relative signal S/S0 of every voxel is recovered exactly from its concentration
  and T10 (the forward model of :func:`bidsapp.signal_to_concentration` with
  M0 = S0 / f(T10)); samples that are NaN because the signal passed the asymptote are set
  to the asymptote (instead of dropping the voxel, which would bias against the purest
  arterial voxels);
* steps 2–4 select on S/S0 − 1, which does not depend on T10 errors;
* the curve is the concentration of the **mean relative signal** of the selected voxels
  (averaging before the nonlinear inversion; on the sensitivity of the SPGR inversion to
  T10, M0 and noise at high concentration see Schabel MC, Parker DL. Phys Med Biol
  2008;53:2345–2373), converted with the **median
  T10 of the blood-like voxels**: candidates whose peak enhancement is ≥
  ``t10_pool_enhancement`` (0.8) × the selected mean's and whose half-maximum time is
  within ``t10_pool_arrival`` (0.1) frame intervals of it, and the selected voxels — the pure arterial voxels
  of the same vessel, not the (later) sinus, whose blood T1 can differ. The pooled b1 is
  the median over the selected voxels (exact for a smooth B1 field).

Arterial baseline (``baseline_frames``, with ``signal_model``)
-------------------------------------------------------------
The concentration's pre-contrast signal S0 is the mean of the series baseline frames,
which end at the one bolus-arrival estimate of :mod:`bidsapp.bolus_arrival`. That
estimate comes from the mean of the most enhancing voxels (mostly the larger, later
sinus) and is sub-frame but not exact: at 5 s frames it can fall 1–2 s after the
arterial arrival, so that the last baseline frame is on the arterial upslope. Tissue
barely enhances in that frame, arterial blood does a lot (Parker AIF 1.5 s after
arrival at 3 T, 15°: S/S0 ≈ 2), and S0 averaged over 4 frames is then ≈ 25 % too high
(simulated 5 s study, seed 6: image AIF area −17 %, population fallback). So the arrival
of the selected arterial voxels is fitted (:func:`bidsapp.bolus_arrival.fit_arrival` of
their mean relative signal). Series baseline frames at or after it are dropped from the
AIF's baseline from the first one whose mean relative signal is more than 3 standard
errors above that of the frames before the arterial arrival (standard error from the
across-voxel scatter of those frames; the fit alone is early by a frame in some noisy
sessions, and dropping an unenhanced frame only adds noise). Each selected voxel's
relative signal is then divided by its mean over the kept frames (its S0 re-taken from
the frames before the arterial upslope), with a note in ``warnings``. Frames are only
ever dropped from the arterial baseline, never added.

Quality score (0..1, the product of these factors, each in [0, 1]):

* timing: 1 if the peak is neither in the first frame nor in the last two frames, else 0;
* peak-to-tail: clip((peak/tail − 1) / (``peak_to_tail_ref`` − 1), 0, 1), with tail the
  mean of the last 20 % of samples (a first pass that returns to a low plateau scores 1
  at a ratio ≥ 3; a venous or tissue-like curve scores low);
* noise: clip(1 − 10·σ/peak, 0, 1), σ the noise SD of the mean curve (as in step 3);
* voxel count: min(1, n_selected / ``min_voxels``);
* area plausibility (only with ``population_check = <population AIF name>``): the ratio r
  of the image plasma AIF's area over ``t`` to that of the population AIF aligned to the
  bolus arrival of the series; the factor is 1 for r between the geometric midpoints of
  ``plausible_area_ratio`` (default (0.6, 1.67)) and 1 (0.77–1.29), falls linearly in
  log r to 0 at the limits. Partial volume scales a vessel voxel's curve down without
  changing its shape, so no shape criterion can see it; a voxel made of 50 % artery gives
  r ≈ 0.5. When no voxel is purely arterial (e.g. 32×32×4 at 6.9 mm voxels, vessel
  diameter ~7 mm) r falls to 0.25–0.65 on the simulated studies, the score to < 0.5,
  and the fallback triggers with the warning "partial volume likely". The window
  accepts the population spread of AIF areas (Parker et al. 2006) only roughly; pass
  ``population_check=None`` for doses other than ~0.1 mmol/kg.
* an image curve with NaN samples (the mean signal reaches the asymptote) scores 0.

When the score is below ``min_quality`` (or no voxel qualifies) and ``fallback`` names a
population AIF, that curve is returned instead (``source = "population:<name>"``) shifted
to the bolus arrival of the series; the reason is in ``warnings``. The bolus arrival is
``bolus_arrival`` when given (the participant workflow passes the one estimate of
:mod:`bidsapp.bolus_arrival` that also set the baseline frames), else
:func:`bidsapp.bolus_arrival.fit_arrival` of the mean of the step-2 curves. A population
curve starts at its shift (C = 0 before), so the shift is the arrival itself. (Step 4's
half-maximum times only rank clusters and pool T10 by their relative timing; they are not
an arrival estimate.)

Calamante's venous-output scaling (scale the AIF so its integral matches the sinus's) is
not applied (Hansen AE et al. MRM 2009;62:1055–1059 discuss its limits): on these phantoms
the sinus is no larger than the artery, so it is partial-volumed exactly when the artery is.
"""

from dataclasses import dataclass, field, fields, replace

import numpy as np
from numpy.typing import ArrayLike

from .._validate import boolean_mask
from ..bolus_arrival import baseline_frame_count, fit_arrival
from ..concentration import concentration_to_signal, signal_to_concentration
from ..spgr import spgr_signal
from .population import POPULATION_AIFS, blood_to_plasma, check_hematocrit, population_aif


@dataclass
class AIFResult:
    """An arterial input function.

    Attributes
    ----------
    t : numpy.ndarray
        Times in s.
    plasma : numpy.ndarray
        Plasma concentration in mM.
    blood : numpy.ndarray
        Whole-blood concentration in mM (plasma · (1 − Hct)).
    mask : numpy.ndarray of bool
        Voxels averaged into the curve (all False for a population AIF).
    quality : float
        Quality score 0..1 of the image curve (see the module docstring); for a population
        fallback, the score of the rejected image curve (0 when there was none).
    source : str
        "image", "mask" or "population:<name>".
    hematocrit : float
        Haematocrit used for blood → plasma.
    warnings : list of str
        Human-readable notes (fallback reason, dropped voxels).
    bolus_arrival : float or None
        For a population curve, the bolus arrival (s) it was shifted to, so the analytic
        curve can be re-evaluated on a finer grid; None for image or mask curves.
    blood_t10 : dict or None
        For an image curve with ``signal_model``: the blood T10 the curve was converted
        with — ``value`` (s), ``standard_error`` (s, bootstrap over the pool voxels),
        ``voxels`` (pool size) and ``method``. The AIF area moves by about −2 × its
        relative error (docs/aif.md). None otherwise.
    """

    t: np.ndarray
    plasma: np.ndarray
    blood: np.ndarray
    mask: np.ndarray
    quality: float
    source: str
    hematocrit: float
    warnings: list[str] = field(default_factory=list)
    bolus_arrival: float | None = None
    blood_t10: dict | None = None


@dataclass(frozen=True)
class AIFOptions:
    """Tuning of :func:`detect_aif` (the steps and the quality score of the module docstring).

    The defaults are those of the participant workflow except ``population_check`` (the workflow
    sets it to its fallback AIF). Every field is also accepted by :func:`detect_aif` as a keyword.

    Attributes
    ----------
    fallback : str or None
        Population AIF used when the image curve scores below ``min_quality``; None keeps
        the image curve (with a warning) or raises if no voxel qualifies.
    min_quality : float
        Quality threshold in [0, 1].
    blood_t1_range : (float, float)
        T10 window in s accepted as blood when ``t10`` is given.
    n_clusters : int
        k of the k-means step.
    area_percentile : float
        Percentile (0-100) of the candidates' areas below which voxels are dropped (step 2).
    vessel_area_fraction : float
        Step 2 also drops voxels whose area is below this fraction of the 99.5th
        percentile of the candidates' areas (the large-vessel level).
    t10_pool_enhancement, t10_pool_arrival : float
        With ``signal_model``: the T10 used for the conversion is the median over the
        step-2 candidates whose peak enhancement is ≥ ``t10_pool_enhancement`` × that of
        the selected mean curve and whose half-maximum time is within
        ``t10_pool_arrival`` frame intervals of it.
    roughness_percentile : float
        Percentile (0-100) of the candidates' σ/peak above which voxels are dropped (step 3).
    max_roughness : float
        Largest accepted σ/peak (step 3).
    peak_to_tail_ref : float
        Peak-to-tail ratio that scores 1 in the quality score.
    min_voxels : int
        Voxel count that scores 1 in the quality score; smallest preferred cluster (step 4).
    population_check : str or None
        Name of a population AIF whose area (over ``t``, shifted to the bolus arrival)
        the image plasma AIF's area is compared with; the quality score is
        multiplied by the plausibility factor of the module docstring. None: no check.
    plausible_area_ratio : (float, float)
        Area ratios (image / population) at and beyond which the plausibility factor is 0;
        it is 1 between their geometric midpoints with 1 (default 0.77–1.29).

    Raises
    ------
    ValueError
        On construction, naming the field: an unknown population AIF in ``fallback`` or
        ``population_check``, ``min_quality`` outside [0, 1], or invalid area-ratio limits.
    """

    fallback: str | None = "parker"
    min_quality: float = 0.5
    blood_t1_range: tuple[float, float] = (1.4, 2.2)
    n_clusters: int = 5
    area_percentile: float = 90.0
    vessel_area_fraction: float = 0.25
    t10_pool_enhancement: float = 0.8
    t10_pool_arrival: float = 0.1
    roughness_percentile: float = 75.0
    max_roughness: float = 0.1
    peak_to_tail_ref: float = 3.0
    min_voxels: int = 3
    population_check: str | None = None
    plausible_area_ratio: tuple[float, float] = (0.6, 1.67)

    def __post_init__(self):
        """Check the fields (``ValueError`` naming the field)."""
        if self.fallback is not None and self.fallback not in POPULATION_AIFS:
            raise ValueError(
                f"fallback: unknown population AIF {self.fallback!r}; choose one of {POPULATION_AIFS}"
            )
        if not 0.0 <= float(self.min_quality) <= 1.0:
            raise ValueError(f"min_quality: must be in [0, 1], got {self.min_quality!r}")
        if self.population_check is not None and self.population_check not in POPULATION_AIFS:
            raise ValueError(
                f"population_check: unknown population AIF {self.population_check!r}; "
                f"choose one of {POPULATION_AIFS}"
            )
        area_plausibility(1.0, self.plausible_area_ratio)  # validates the limits

    @classmethod
    def from_kwargs(cls, kwargs: dict, base: "AIFOptions | None" = None) -> "AIFOptions":
        """Return ``base`` (default: the defaults) with the keywords ``kwargs`` replaced.

        Raises ``ValueError`` naming an unknown keyword.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(
                f"detect_aif: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return replace(base if base is not None else cls(), **kwargs)


def _check_inputs(concentration, t, mask):
    concentration = np.asarray(concentration, dtype=float)
    t = np.asarray(t, dtype=float)
    if t.ndim != 1 or t.size < 3:
        raise ValueError(f"t: expected a 1-D array of at least 3 times, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError("t: times must be finite and strictly increasing")
    if concentration.ndim < 1 or concentration.shape[-1] != t.size:
        raise ValueError(
            f"concentration: last axis must match len(t) = {t.size}, got shape {concentration.shape}"
        )
    return concentration, t, boolean_mask(mask, concentration.shape[:-1])


def curve_quality(
    curve: ArrayLike,
    n_voxels: int,
    peak_to_tail_ref: float = 3.0,
    min_voxels: int = 3,
) -> float:
    """Quality score 0..1 of an arterial curve (the rule of the module docstring)."""
    curve = np.asarray(curve, dtype=float)
    n = curve.size
    peak_index = int(np.argmax(curve))
    peak = curve[peak_index]
    if not np.isfinite(peak) or peak <= 0:
        return 0.0
    timing = 1.0 if 1 <= peak_index < n - 2 else 0.0
    tail = np.mean(curve[-max(1, n // 5) :])
    ratio = peak / tail if tail > 0 else np.inf
    peak_to_tail = float(np.clip((ratio - 1.0) / (peak_to_tail_ref - 1.0), 0.0, 1.0))
    noise = float(np.clip(1.0 - 10.0 * _noise_sd(curve) / peak, 0.0, 1.0))
    count = min(1.0, n_voxels / float(min_voxels))
    return timing * peak_to_tail * noise * count


def _noise_sd(curves):
    """Estimate the noise SD of curves ``[..., t]`` robustly to the bolus.

    Noise SD of curves [..., t] from the median absolute deviation of the first differences of their second
    half (robust to the bolus): σ ≈ 1.4826·MAD/√2.
    """
    diffs = np.diff(np.asarray(curves)[..., curves.shape[-1] // 2 :], axis=-1)
    deviation = np.abs(diffs - np.median(diffs, axis=-1, keepdims=True))
    return 1.4826 * np.median(deviation, axis=-1) / np.sqrt(2.0)


def _kmeans(shapes, order, k, max_iterations=100):
    """Cluster ``shapes`` by deterministic Lloyd k-means.

    Deterministic Lloyd k-means; initial centroids are the means of k consecutive equal-size groups of voxels
    taken in the given ``order``.
    """
    k = min(k, shapes.shape[0])
    groups = np.array_split(order, k)
    centroids = np.stack([shapes[g].mean(axis=0) for g in groups])
    labels = np.full(shapes.shape[0], -1)
    for _ in range(max_iterations):
        distances = (centroids**2).sum(axis=-1)[None, :] - 2.0 * shapes @ centroids.T
        new_labels = np.argmin(distances, axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for j in range(k):
            if np.any(labels == j):
                centroids[j] = shapes[labels == j].mean(axis=0)
    return labels


def _earliest_cluster(curves, t, k, min_size):
    """Return the indices (into ``curves``) of the arterial k-means cluster.

    Among clusters whose mean curve peaks at ≥ 50 % of the highest cluster peak, the one
    whose mean curve peaks first (ties: the higher peak).
    """
    area = curves @ _trapezoid_weights(t)
    shapes = curves / area[:, None]
    labels = _kmeans(shapes, np.lexsort((-area, np.argmax(curves, axis=-1))), k)
    present = np.unique(labels)
    means = np.stack([curves[labels == j].mean(axis=0) for j in present])
    peaks = means.max(axis=-1)
    sizes = np.array([np.sum(labels == j) for j in present])
    eligible = np.flatnonzero((peaks >= 0.5 * peaks.max()) & (sizes >= min(min_size, sizes.max())))
    arrival = _half_maximum_time(means, t)
    best = min(eligible, key=lambda j: (arrival[j], -peaks[j]))
    return np.flatnonzero(labels == present[best])


def _half_maximum_time(curves, t):
    """Return the time (s) at which each curve first reaches half its peak.

    Time (s) at which each curve ``[c, t]`` first reaches half its peak, linearly interpolated between frames
    (resolves the arterial–venous delay below one frame).
    """
    peaks = curves.max(axis=-1, keepdims=True)
    above = curves >= 0.5 * peaks
    first = np.argmax(above, axis=-1)
    before = np.maximum(first - 1, 0)
    rows = np.arange(curves.shape[0])
    low, high = curves[rows, before], curves[rows, first]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(high > low, (0.5 * peaks[:, 0] - low) / (high - low), 1.0)
    return np.where(first > 0, t[before] + np.clip(fraction, 0.0, 1.0) * (t[first] - t[before]), t[first])


def _trapezoid_weights(t):
    """Weights w with Σ w_i·C_i equal to the trapezoidal integral of C over t."""
    weights = np.zeros_like(t)
    weights[1:] += np.diff(t) / 2.0
    weights[:-1] += np.diff(t) / 2.0
    return weights


def _select_arterial(curves, t, roughness_percentile, max_roughness, k, min_size):
    """Return the indices into ``curves`` (the area-selected voxels) of the arterial voxels (steps 3–4)."""
    peak = curves.max(axis=-1)
    keep = np.flatnonzero(peak > 0)
    if keep.size == 0:
        return keep
    roughness = _noise_sd(curves[keep]) / peak[keep]
    keep = keep[(roughness <= np.percentile(roughness, roughness_percentile)) & (roughness <= max_roughness)]
    if keep.size <= 1:
        return keep
    chosen = keep[_earliest_cluster(curves[keep], t, k, min_size)]
    if chosen.size >= 2 * k:
        chosen = chosen[_earliest_cluster(curves[chosen], t, k, min_size)]
    return chosen


def _check_signal_model(signal_model, t10, voxel_shape):
    """Return the validated ``signal_model`` dict (b1 flattened to the voxels) or None."""
    if signal_model is None:
        return None
    if t10 is None:
        raise ValueError("signal_model: needs t10 (the T10 map the concentration was computed with)")
    missing = {"tr", "flip_angle", "relaxivity"} - set(signal_model)
    unknown = set(signal_model) - {"tr", "flip_angle", "relaxivity", "b1"}
    if missing or unknown:
        raise ValueError(
            f"signal_model: needs keys tr, flip_angle, relaxivity (optional b1); "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    b1 = np.broadcast_to(np.asarray(signal_model.get("b1", 1.0), dtype=float), voxel_shape).reshape(-1)
    return {
        "tr": float(signal_model["tr"]),
        "flip_angle": float(signal_model["flip_angle"]),
        "relaxivity": float(signal_model["relaxivity"]),
        "b1": b1,
    }


def _relative_signal(concentration, t10, model):
    """Relative SPGR signal S/S0 ``[v, t]`` of voxels ``[v]`` from their concentration (mM).

    The exact forward model of :func:`bidsapp.signal_to_concentration` with M0 = S0 / f(T10),
    so S/S0 is the measured signal over its baseline mean whatever the voxel's T10 error.
    Samples that are NaN (signal at or above the SPGR asymptote) are set to the asymptote
    S/S0 = sin(α·b1) / f(T10); non-positive or non-finite T10 gives NaN.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(t10) & (t10 > 0)
        safe_t10 = np.where(ok, t10, 1.0)
        s0 = spgr_signal(1.0, 1.0 / safe_t10, model["flip_angle"], model["tr"], model["b1"])
        asymptote = np.sin(np.deg2rad(model["flip_angle"] * model["b1"])) / s0
        finite = np.isfinite(concentration)
        relative = concentration_to_signal(
            np.where(finite, concentration, 0.0),
            safe_t10,
            1.0 / s0,
            model["tr"],
            model["flip_angle"],
            model["relaxivity"],
            model["b1"],
        )
        relative = np.where(finite, relative, asymptote[:, None])
    return np.where(ok[:, None], relative, np.nan)


BOOTSTRAP_SAMPLES = 200  # resamples of the T10 pool for the blood T10 standard error


def _pooled_t10(t10, pool, b1_pooled, vfa):
    """Estimate the blood T10 of the pool voxels (flat indices ``pool``).

    Returns ``(value s, standard error s, method)``. The value is the VFA fit of their mean VFA signals when
    ``vfa`` is given
    (noise averaged before the non-linear T1 estimate, which per-voxel fits at clinical SNR
    scatter by several per cent), else the median of their T10 values; the median is also
    the fallback when the pooled fit is not valid. The standard error is the SD of the same
    estimate over ``BOOTSTRAP_SAMPLES`` resamples of the pool voxels (with replacement,
    fixed seed: deterministic); NaN for a single voxel.
    """
    voxel_t10 = t10.reshape(-1)[pool]
    resamples = np.random.default_rng(0).integers(0, pool.size, (BOOTSTRAP_SAMPLES, pool.size))
    median = (
        float(np.median(voxel_t10)),
        np.median(voxel_t10[resamples], axis=1),
        "median of the voxel T10s",
    )
    if vfa is not None:
        from ..t1 import compute_t1_map

        signals = np.asarray(vfa["signals"], float).reshape(-1, np.shape(vfa["signals"])[-1])[pool]
        means = np.concatenate([signals.mean(axis=0)[None, :], signals[resamples].mean(axis=1)])
        fit = compute_t1_map(
            means,
            vfa["flip_angles"],
            vfa["tr"],
            method=vfa.get("method", "vfa-nonlinear"),
            b1=np.full(means.shape[0], b1_pooled),
        )
        if fit.valid[0]:
            median = (float(fit.t1[0]), fit.t1[1:][fit.valid[1:]], "VFA fit of the mean VFA signal")
    value, resampled, method = median
    standard_error = (
        float(np.std(resampled, ddof=1)) if pool.size > 1 and resampled.size > 1 else float("nan")
    )
    return value, standard_error, method


def _arterial_baseline(relative, t, baseline_frames):
    """Re-reference the arterial relative signals to the frames before their upslope.

    Returns the relative signals ``[v, t]`` of the selected arterial voxels, re-referenced to the
    frames before the arterial upslope when the series baseline (``baseline_frames``
    frames) reaches into it, and a note (None when unchanged). See "Arterial baseline"
    in the module docstring.
    """
    if baseline_frames is None:
        return relative, None
    mean = relative.mean(axis=0)
    arrival = fit_arrival(mean, t)
    n_arterial = baseline_frame_count(t, arrival)
    if not np.isfinite(arrival) or n_arterial >= int(baseline_frames):
        return relative, None
    # keep the frames the fit put on the upslope unless they are significantly enhanced: > 3 standard
    # errors (across-voxel scatter of the earlier baseline frames) above the earlier frames' mean
    before = relative[:, :n_arterial]
    with np.errstate(invalid="ignore", divide="ignore"):
        standard_error = np.std(before, ddof=1) / np.sqrt(relative.shape[0]) if before.size > 1 else np.nan
        elevated = mean[n_arterial : int(baseline_frames)] - before.mean() > 3.0 * standard_error * np.sqrt(
            1.0 + 1.0 / n_arterial
        )
    if not elevated.any():
        return relative, None
    n_arterial += int(np.argmax(elevated))
    note = (
        f"AIF baseline: the arterial upslope starts at {arrival:.2f} s, before the end of the "
        f"{int(baseline_frames)} series baseline frames; the AIF's pre-contrast signal is the mean of "
        f"the first {n_arterial} frame(s)"
    )
    return relative / relative[:, :n_arterial].mean(axis=1, keepdims=True), note


def _pooled_concentration(relative, t10_pooled, b1, model):
    """Convert the mean relative signal of the pool voxels to whole-blood concentration (mM).

    Whole-blood concentration (mM) of the mean relative signal of voxels ``[v, t]`` with the pooled blood T10
    (s) and their median b1 (NaN where the mean reaches the SPGR asymptote).
    """
    b1_pooled = float(np.median(b1))
    m0 = 1.0 / spgr_signal(1.0, 1.0 / t10_pooled, model["flip_angle"], model["tr"], b1_pooled)
    return signal_to_concentration(
        relative.mean(axis=0),
        t10_pooled,
        model["tr"],
        model["flip_angle"],
        model["relaxivity"],
        None,
        m0=m0,
        b1=b1_pooled,
    ).concentration


def area_ratio_to_population(
    plasma: ArrayLike,
    t: ArrayLike,
    name: str,
    hematocrit: float,
    bolus_arrival: float,
) -> float:
    """Return the area ratio of ``plasma`` to the population AIF ``name``.

    Area of ``plasma`` (mM, over ``t`` s) over that of the population AIF ``name`` shifted to
    ``bolus_arrival`` (s).
    """
    arrival = max(0.0, float(bolus_arrival))
    weights = _trapezoid_weights(t)
    return float(plasma @ weights) / float(
        population_aif(name, t, bolus_arrival=arrival, hematocrit=hematocrit) @ weights
    )


def area_plausibility(ratio: float, limits: tuple[float, float] = (0.6, 1.67)) -> float:
    """Return the plausibility factor (0..1) of an area ratio.

    Plausibility factor 0..1 of an area ratio: 0 at or beyond ``limits``, 1 between the geometric midpoints of
    each limit with 1, linear in log(ratio) in between.
    """
    low, high = float(limits[0]), float(limits[1])
    if not 0.0 < low < 1.0 < high:
        raise ValueError(f"plausible_area_ratio: expected 0 < low < 1 < high, got {limits!r}")
    if not np.isfinite(ratio) or ratio <= 0:
        return 0.0
    log_ratio = np.log(ratio)
    bound = np.log(low) if log_ratio < 0 else np.log(high)
    return float(np.clip(2.0 - 2.0 * log_ratio / bound, 0.0, 1.0))


def _series_arrival(bolus_arrival, reference_curve, t):
    """Return the bolus arrival time (s) of the series.

    Bolus arrival (s): ``bolus_arrival`` if given, else the piecewise fit of ``reference_curve`` (None or no
    enhancement: NaN).
    """
    if bolus_arrival is not None:
        return float(bolus_arrival)
    if reference_curve is None:
        return float("nan")
    return fit_arrival(reference_curve, t)


def _population_fallback(name, t, hematocrit, arrival, quality, voxel_shape, reason):
    if np.isfinite(arrival):
        arrival = max(0.0, float(arrival))
        warning = f"{reason}; using the population AIF {name!r} with bolus arrival {arrival:.2f} s"
    else:
        arrival = 0.0
        warning = f"{reason}; using the population AIF {name!r} unshifted (no bolus arrival found)"
    plasma = population_aif(name, t, bolus_arrival=arrival, hematocrit=hematocrit)
    return AIFResult(
        t=t,
        plasma=plasma,
        blood=plasma * (1.0 - hematocrit),
        mask=np.zeros(voxel_shape, dtype=bool),
        quality=float(quality),
        source=f"population:{name}",
        hematocrit=hematocrit,
        warnings=[warning],
        bolus_arrival=arrival,
    )


def detect_aif(
    concentration: ArrayLike,
    t: ArrayLike,
    t10: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    *,
    hematocrit: float = 0.45,
    signal_model: dict | None = None,
    bolus_arrival: float | None = None,
    vfa: dict | None = None,
    baseline_frames: int | None = None,
    options: AIFOptions | None = None,
    **tuning,
) -> AIFResult:
    """Detect an arterial input function automatically (algorithm: module docstring).

    Parameters
    ----------
    concentration : array_like, shape (..., t)
        Concentration in mM (e.g. ``[x, y, z, t]``), computed with each voxel's own T10.
    t : array_like, shape (t,)
        Frame times in s, strictly increasing.
    t10 : array_like, shape (...), optional
        Pre-contrast T1 map in s; when given, only voxels with T10 in ``blood_t1_range``
        are candidates.
    mask : array_like of bool, shape (...), optional
        Search region (e.g. a brain or body mask).
    hematocrit : float
        Large-vessel haematocrit for blood → plasma.
    signal_model : dict, optional
        The SPGR acquisition the concentration was computed with: ``tr`` (s),
        ``flip_angle`` (degrees), ``relaxivity`` (/mM/s) and optionally ``b1`` (relative
        flip-angle scale, scalar or map of the voxel shape). Requires ``t10``. When given,
        voxels are selected on their relative signal and the curve is converted from the
        selected voxels' mean relative signal with their median T10 (module docstring,
        "Signal-domain pooling"); strongly recommended for measured data.
    bolus_arrival : float, optional
        Bolus arrival of the series in s (e.g. :func:`bidsapp.bolus_arrival.estimate_bolus_arrival`
        ``.time``), the shift of the population curve of the fallback and of the area check.
        None: estimated from the mean of the step-2 candidate curves.
    vfa : dict, optional
        With ``signal_model``: the variable-flip-angle data the T10 map came from, on the
        voxel grid — ``signals`` (shape ``(..., angles)``), ``flip_angles`` (degrees),
        ``tr`` (s) and optionally ``method`` (default ``vfa-nonlinear``). The blood T10 is
        then fitted once to the mean VFA signal of the T10 pool instead of taken as the
        median of its voxels' T10 (less noise; see docs/aif.md).
    options : AIFOptions, optional
        Tuning of the steps and the quality score (default: ``AIFOptions()``).
    **tuning
        Any :class:`AIFOptions` field as a keyword (e.g. ``fallback=None``,
        ``min_quality=0.3``); it overrides the same field of ``options``.
    baseline_frames : int, optional
        With ``signal_model``: the number of leading frames whose mean signal was the
        pre-contrast signal S0 of the concentration. When the arterial upslope starts
        before their end, the AIF's S0 is re-taken from the frames before the arterial
        arrival (module docstring, "Arterial baseline"). None: no check.

    Returns
    -------
    AIFResult

    Raises
    ------
    ValueError
        Naming the argument: inconsistent shapes, invalid options, or no candidate voxel
        with ``fallback=None``.
    """
    opts = AIFOptions.from_kwargs(tuning, options)
    fallback, min_quality, population_check = opts.fallback, opts.min_quality, opts.population_check
    area_percentile, vessel_area_fraction, blood_t1_range = (
        opts.area_percentile,
        opts.vessel_area_fraction,
        opts.blood_t1_range,
    )
    roughness_percentile, max_roughness = opts.roughness_percentile, opts.max_roughness
    n_clusters, min_voxels, peak_to_tail_ref = opts.n_clusters, opts.min_voxels, opts.peak_to_tail_ref
    t10_pool_enhancement, t10_pool_arrival = opts.t10_pool_enhancement, opts.t10_pool_arrival
    concentration, t, mask = _check_inputs(concentration, t, mask)
    if vfa is not None and (
        signal_model is None or np.shape(vfa["signals"])[:-1] != np.shape(concentration)[:-1]
    ):
        raise ValueError(
            "vfa: needs signal_model, and its signals must share the voxel shape of the concentration"
        )
    hct = check_hematocrit(hematocrit)
    voxel_shape = concentration.shape[:-1]
    if t10 is not None:
        t10 = np.asarray(t10, dtype=float)
        if t10.shape != voxel_shape:
            raise ValueError(f"t10: shape {t10.shape} does not match the voxel shape {voxel_shape}")
    model = _check_signal_model(signal_model, t10, voxel_shape)
    flat = concentration.reshape(-1, t.size)
    if model is not None:  # select on the relative enhancement S/S0 − 1 (independent of T10 errors)
        flat = _relative_signal(flat, t10.reshape(-1), model) - 1.0
    area = flat @ _trapezoid_weights(t)  # NaN/inf wherever a sample is not finite
    index = np.flatnonzero(mask.reshape(-1) & np.isfinite(area))
    if index.size:
        threshold = max(
            np.percentile(area[index], area_percentile),
            vessel_area_fraction * np.percentile(area[index], 99.5),
        )
        index = index[(area[index] >= threshold) & (area[index] > 0)]
    if t10 is not None:
        voxel_t1 = t10.reshape(-1)[index]
        with np.errstate(invalid="ignore"):
            index = index[(voxel_t1 >= blood_t1_range[0]) & (voxel_t1 <= blood_t1_range[1])]
    curves = flat[index]

    chosen = (
        _select_arterial(curves, t, roughness_percentile, max_roughness, n_clusters, min_voxels)
        if index.size
        else index
    )
    if chosen.size == 0:
        reason = "no candidate arterial voxel found"
        if fallback is None:
            raise ValueError(f"concentration: {reason} (and fallback=None)")
        arrival = _series_arrival(bolus_arrival, curves.mean(axis=0) if index.size else None, t)
        return _population_fallback(fallback, t, hct, arrival, 0.0, voxel_shape, reason)

    baseline_note = blood_t10 = None
    if model is None:
        blood = curves[chosen].mean(axis=0)
    else:
        reference = curves[chosen].mean(axis=0)
        arrival_offset = _half_maximum_time(curves, t) - _half_maximum_time(reference[None, :], t)[0]
        blood_like = (curves.max(axis=-1) >= t10_pool_enhancement * reference.max()) & (
            np.abs(arrival_offset) <= t10_pool_arrival * np.median(np.diff(t))
        )
        blood_like[chosen] = True  # the selected voxels always belong to the pool
        b1_chosen = model["b1"][index[chosen]]
        t10_blood, t10_se, t10_method = _pooled_t10(t10, index[blood_like], float(np.median(b1_chosen)), vfa)
        blood_t10 = {
            "value": t10_blood,
            "standard_error": t10_se,
            "voxels": int(np.sum(blood_like)),
            "method": t10_method,
        }
        relative, baseline_note = _arterial_baseline(curves[chosen] + 1.0, t, baseline_frames)
        blood = _pooled_concentration(relative, t10_blood, b1_chosen, model)
    quality = curve_quality(blood, chosen.size, peak_to_tail_ref, min_voxels)
    arrival = _series_arrival(bolus_arrival, curves.mean(axis=0), t)
    notes = [] if baseline_note is None else [baseline_note]
    if not np.all(np.isfinite(blood)):
        quality = 0.0
        notes.append("the mean arterial signal reaches the SPGR asymptote")
    elif population_check is not None:
        ratio = (
            area_ratio_to_population(blood_to_plasma(blood, hct), t, population_check, hct, arrival)
            if np.isfinite(arrival)
            else float("nan")
        )
        plausibility = area_plausibility(ratio, opts.plausible_area_ratio)
        quality *= plausibility
        if plausibility < 1.0:
            notes += [
                f"image AIF area is {ratio:.2f} x the population AIF {population_check!r}"
                + (" (partial volume likely: no pure arterial voxel)" if ratio < 1.0 else "")
            ]
    selected = np.zeros(voxel_shape, dtype=bool)
    selected.reshape(-1)[index[chosen]] = True
    if quality < min_quality:
        reason = "; ".join(notes + [f"image AIF quality {quality:.2f} < min_quality {min_quality:.2f}"])
        if fallback is not None:
            return _population_fallback(fallback, t, hct, arrival, quality, voxel_shape, reason)
        warnings = [f"{reason}; kept the image AIF because fallback=None"]
    else:
        warnings = notes
    return AIFResult(
        t=t,
        plasma=blood_to_plasma(blood, hct),
        blood=blood,
        mask=selected,
        quality=float(quality),
        source="image",
        hematocrit=hct,
        warnings=warnings,
        blood_t10=blood_t10,
    )


def aif_from_mask(
    concentration: ArrayLike,
    mask: ArrayLike,
    t: ArrayLike,
    hematocrit: float = 0.45,
    *,
    peak_to_tail_ref: float = 3.0,
    min_voxels: int = 3,
) -> AIFResult:
    """Arterial input function averaged over a user-given ROI.

    Parameters
    ----------
    concentration : array_like, shape (..., t)
        Concentration in mM (blood concentration inside a vessel).
    mask : array_like of bool, shape (...)
        The arterial ROI; voxels with any non-finite sample are left out (with a warning).
    t : array_like, shape (t,)
        Frame times in s.
    hematocrit : float
        Haematocrit for blood → plasma.
    peak_to_tail_ref, min_voxels : float, int
        Constants of the quality score.

    Returns
    -------
    AIFResult
        ``source == "mask"``; ``quality`` by the rule of the module docstring.
    """
    concentration, t, mask = _check_inputs(concentration, t, mask)
    hct = check_hematocrit(hematocrit)
    if not mask.any():
        raise ValueError("mask: the AIF mask selects no voxel")
    usable = mask & np.all(np.isfinite(concentration), axis=-1)
    if not usable.any():
        raise ValueError("mask: no voxel in the AIF mask has a finite concentration curve")
    warnings = []
    dropped = int(mask.sum() - usable.sum())
    if dropped:
        warnings.append(f"{dropped} mask voxel(s) with non-finite concentration left out")
    blood = concentration[usable].mean(axis=0)
    n_used = int(usable.sum())
    return AIFResult(
        t=t,
        plasma=blood_to_plasma(blood, hct),
        blood=blood,
        mask=usable,
        quality=float(curve_quality(blood, n_used, peak_to_tail_ref, min_voxels)),
        source="mask",
        hematocrit=hct,
        warnings=warnings,
    )
