"""Group statistics on arrays.

Group statistics on arrays: ICC, Bland–Altman, wCV, AUROC with DeLong CIs and tests, Youden threshold,
Kruskal–Wallis. numpy/scipy only (no files, no pandas).

Values are in the units of the biomarker they summarise (e.g. Ktrans in 1/min); ICC,
AUROC, sensitivity, specificity, wCV and p-values are dimensionless.

References
----------
Shrout PE, Fleiss JL. Intraclass correlations: uses in assessing rater reliability.
    Psychol Bull 1979;86:420-428.
McGraw KO, Wong SP. Forming inferences about some intraclass correlation coefficients.
    Psychol Methods 1996;1:30-46 (and correction p. 390).
DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated
    receiver operating characteristic curves: a nonparametric approach. Biometrics
    1988;44:837-845.
Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under
    correlated receiver operating characteristic curves. IEEE Signal Process Lett
    2014;21:1389-1393.
Youden WJ. Index for rating diagnostic tests. Cancer 1950;3:32-35.
Bland JM, Altman DG. Statistical methods for assessing agreement between two methods of
    clinical measurement. Lancet 1986;1:307-310.
Kruskal WH, Wallis WA. Use of ranks in one-criterion variance analysis. J Am Stat Assoc
    1952;47:583-621.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

ICC_TYPES = ("ICC2", "ICC3", "ICC2k", "ICC3k")


@dataclass(frozen=True)
class ICC:
    """One intraclass correlation with its 95 % confidence interval (dimensionless)."""

    icc_type: str
    icc: float
    ci95_low: float
    ci95_high: float


def _wide(ratings):
    y = np.asarray(ratings, float)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError(f"ICC needs at least 2 subjects x 2 measurements, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("ICC: ratings must be finite (drop incomplete subjects first)")
    return y


def icc(ratings: ArrayLike, alpha: float = 0.05) -> dict[str, ICC]:
    """ICC(2,1), ICC(3,1), ICC(2,k), ICC(3,k) with (1 - alpha) CIs.

    ``ratings`` is ``(n subjects, k measurements)``, complete. Two-way ANOVA without
    interaction: ICC2 = ICC(A,1) absolute agreement (random measurements), ICC3 =
    ICC(C,1) consistency (fixed measurements) (Shrout & Fleiss 1979 cases 2 and 3;
    McGraw & Wong 1996). CIs: F-based for ICC3/ICC3k; Satterthwaite-approximated
    degrees of freedom for ICC2/ICC2k (McGraw & Wong 1996, table 7), the same formulas
    as ``pingouin.intraclass_corr``. Returns ``{icc_type: ICC}``; with perfect agreement
    (zero residual mean square) the CIs are NaN (not estimated).
    """
    y = _wide(ratings)
    n, k = y.shape
    grand = y.mean()
    ss_rows = k * np.sum((y.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((y.mean(axis=0) - grand) ** 2)
    ss_err = np.sum((y - grand) ** 2) - ss_rows - ss_cols
    df_rows, df_err = n - 1, (n - 1) * (k - 1)
    msb, msj, mse = ss_rows / df_rows, ss_cols / (k - 1), ss_err / df_err
    with np.errstate(divide="ignore", invalid="ignore"):
        icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
        icc3 = (msb - mse) / (msb + (k - 1) * mse)
        icc2k = (msb - mse) / (msb + (msj - mse) / n)
        icc3k = (msb - mse) / msb
        f3 = msb / mse
        f3l = f3 / sps.f.ppf(1 - alpha / 2, df_rows, df_err)
        f3u = f3 * sps.f.ppf(1 - alpha / 2, df_err, df_rows)
        fj = msj / mse
        a = n * (1 + (k - 1) * icc2) - k * icc2
        v = df_err * (k * icc2 * fj + a) ** 2 / (df_rows * k**2 * icc2**2 * fj**2 + a**2)
        f2u = sps.f.ppf(1 - alpha / 2, n - 1, v)
        f2l = sps.f.ppf(1 - alpha / 2, v, n - 1)
        l2 = n * (msb - f2u * mse) / (f2u * (k * msj + (k * n - k - n) * mse) + n * msb)
        u2 = n * (f2l * msb - mse) / (k * msj + (k * n - k - n) * mse + n * f2l * msb)
        values = {
            "ICC2": (icc2, l2, u2),
            "ICC3": (icc3, (f3l - 1) / (f3l + k - 1), (f3u - 1) / (f3u + k - 1)),
            "ICC2k": (icc2k, l2 * k / (1 + l2 * (k - 1)), u2 * k / (1 + u2 * (k - 1))),
            "ICC3k": (icc3k, 1 - 1 / f3l, 1 - 1 / f3u),
        }
    return {name: ICC(name, *(float(x) for x in vals)) for name, vals in values.items()}


def bland_altman(first: ArrayLike, second: ArrayLike) -> tuple[float, float, float]:
    """Bland–Altman (1986) bias and 95 % limits of agreement of ``second - first``.

    Returns ``(bias, loa_low, loa_high)`` in the units of the measurements: the mean
    difference and mean ± 1.96 × SD of the differences (SD with n - 1).
    """
    d = np.asarray(second, float) - np.asarray(first, float)
    if d.size < 2:
        return np.nan, np.nan, np.nan
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    return bias, bias - 1.96 * sd, bias + 1.96 * sd


def within_subject_cv(ratings: ArrayLike) -> float:
    """Return the root-mean-square within-subject coefficient of variation (fraction).

    Root-mean-square within-subject coefficient of variation (fraction): ``sqrt(mean_i(s_i^2 / m_i^2))`` with
    ``s_i`` the SD (n - 1) and ``m_i`` the mean of subject i's repeated measurements. NaN when a subject mean
    is 0.
    """
    y = _wide(ratings)
    m = y.mean(axis=1)
    if np.any(m == 0):
        return np.nan
    return float(np.sqrt(np.mean(y.var(axis=1, ddof=1) / m**2)))


def _classes(values, positive):
    x = np.asarray(values, float)
    pos = np.asarray(positive, bool)
    if x.shape != pos.shape or x.ndim != 1:
        raise ValueError(f"AUROC: values {x.shape} and labels {pos.shape} must be 1-D of equal length")
    if not np.all(np.isfinite(x)):
        raise ValueError("AUROC: values must be finite (drop subjects with NaN summaries first)")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUROC needs both classes, got {n_pos} positive and {n_neg} negative subjects")
    return x, pos


def _placements(x, pos):
    """Return the DeLong structural components of positives and negatives.

    Structural components of DeLong et al. (1988) via midranks (Sun & Xu 2014): ``v10[i]`` = P(positive i >
    random negative) (+ 1/2 ties), ``v01[j]`` likewise.
    """
    xp, xn = x[pos], x[~pos]
    m, n = xp.size, xn.size
    r_all = sps.rankdata(np.concatenate([xp, xn]))
    r_p, r_n = sps.rankdata(xp), sps.rankdata(xn)
    v10 = (r_all[:m] - r_p) / n
    v01 = 1.0 - (r_all[m:] - r_n) / m
    return v10, v01


def _delong_var(v10, v01, w10=None, w01=None):
    """DeLong (co)variance of one AUROC (or two, paired) from the placement values."""
    if w10 is None:
        return np.var(v10, ddof=1) / v10.size + np.var(v01, ddof=1) / v01.size
    c10 = np.cov(np.vstack([v10, w10]), ddof=1)
    c01 = np.cov(np.vstack([v01, w01]), ddof=1)
    return c10 / v10.size + c01 / v01.size


@dataclass(frozen=True)
class ROC:
    """AUROC of one biomarker with its DeLong CI and Youden threshold.

    AUROC of one biomarker (higher values = positive) with its DeLong 95 % CI and the Youden-optimal threshold
    (biomarker units) with sensitivity and specificity.
    """

    auroc: float
    ci95_low: float
    ci95_high: float
    n_positive: int
    n_negative: int
    threshold: float
    sensitivity: float
    specificity: float


def roc_curve(values: ArrayLike, positive: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the empirical ROC curve of ``values``.

    ``(thresholds, sensitivity, specificity)`` with a subject called positive when its value is above the
    threshold; thresholds are -inf, the midpoints between consecutive distinct values and +inf (as R's pROC).
    """
    x, pos = _classes(values, positive)
    u = np.unique(x)
    thresholds = np.concatenate([[-np.inf], (u[:-1] + u[1:]) / 2, [np.inf]])
    sens = (x[pos][None, :] > thresholds[:, None]).mean(axis=1)
    spec = (x[~pos][None, :] < thresholds[:, None]).mean(axis=1)
    return thresholds, sens, spec


def auroc(values: ArrayLike, positive: ArrayLike, alpha: float = 0.05) -> ROC:
    """AUROC (Mann–Whitney, ties count 1/2) of ``values`` for the ``positive`` class.

    The 95 % CI is ``auc ± z(1 - alpha/2) × sqrt(var_DeLong)``, clipped to [0, 1] (as
    pROC's ``ci.auc(method = "delong")``). No direction is chosen from the data: an
    AUROC below 0.5 means lower values in the positive class. The threshold maximises
    Youden's J = sensitivity + specificity - 1 (the lowest such threshold on ties).
    Raises ``ValueError`` when a class is empty.
    """
    x, pos = _classes(values, positive)
    v10, v01 = _placements(x, pos)
    auc = float(v10.mean())
    half = (
        sps.norm.ppf(1 - alpha / 2) * np.sqrt(_delong_var(v10, v01))
        if min(v10.size, v01.size) > 1
        else np.nan
    )
    thresholds, sens, spec = roc_curve(x, pos)
    best = int(np.argmax(sens + spec))
    return ROC(
        auc,
        float(max(0.0, auc - half)),
        float(min(1.0, auc + half)),
        int(pos.sum()),
        int((~pos).sum()),
        float(thresholds[best]),
        float(sens[best]),
        float(spec[best]),
    )


def delong_test(
    values_a: ArrayLike,
    values_b: ArrayLike,
    positive: ArrayLike,
) -> tuple[float, float, float, float]:
    """Paired DeLong test of two AUROCs on the same subjects.

    Returns ``(auroc_a, auroc_b, delta = a - b, two-sided p-value)`` from
    ``z = delta / sqrt(var_a + var_b - 2 cov)`` (DeLong et al. 1988); p is 1 when both
    ROC curves are identical (zero variance of the difference).
    """
    xa, pos = _classes(values_a, positive)
    xb, _ = _classes(values_b, positive)
    a10, a01 = _placements(xa, pos)
    b10, b01 = _placements(xb, pos)
    s = _delong_var(a10, a01, b10, b01)
    auc_a, auc_b = float(a10.mean()), float(b10.mean())
    var = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    delta = auc_a - auc_b
    if not var > 0:
        return auc_a, auc_b, delta, 1.0 if delta == 0 else float("nan")
    return auc_a, auc_b, delta, float(2 * sps.norm.sf(abs(delta) / np.sqrt(var)))


def kruskal_wallis(groups: Sequence[ArrayLike]) -> tuple[float, float]:
    """Return the Kruskal–Wallis H statistic and its p-value.

    Kruskal–Wallis H (tie-corrected) and its chi-square p-value over ``groups`` (a list of 1-D arrays, one per
    site); ``(nan, nan)`` with fewer than two non-empty groups or when every value is tied.
    """
    groups = [np.asarray(g, float)[np.isfinite(g)] for g in groups]
    groups = [g for g in groups if g.size]
    if len(groups) < 2:
        return np.nan, np.nan
    try:
        h, p = sps.kruskal(*groups)
    except ValueError:  # all values identical
        return np.nan, np.nan
    return float(h), float(p)
