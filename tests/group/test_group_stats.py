"""Group statistics against independent implementations.

* ICC: ``pingouin.intraclass_corr`` (test extra) to 1e-6, CIs included.
* AUROC, DeLong CI, paired DeLong p-value, Youden threshold: R's pROC (Debian
  ``r-cran-proc``; ``.ci/run`` installs it) to 1e-6, and always a direct O(m·n)
  implementation of DeLong et al. (1988)'s structural components written here from the
  paper's definitions; the Hanley & McNeil (1982) CT rating example (AUROC 0.893).
"""

import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bidsapp.group import stats

pingouin = pytest.importorskip("pingouin")
PINGOUIN_TYPES = {"ICC2": "ICC(A,1)", "ICC3": "ICC(C,1)", "ICC2k": "ICC(A,k)", "ICC3k": "ICC(C,k)"}


def _pingouin_icc(y):
    n, k = y.shape
    long = pd.DataFrame([(i, j, y[i, j]) for i in range(n) for j in range(k)], columns=["t", "r", "v"])
    old = pingouin.options.get("round.column.CI95")
    pingouin.options["round.column.CI95"] = None  # pingouin rounds CIs to 2 decimals by default
    try:
        return pingouin.intraclass_corr(long, "t", "r", "v").set_index("Type")
    finally:
        pingouin.options["round.column.CI95"] = old


@pytest.mark.parametrize(
    "n, k, rater_sd, seed", [(12, 2, 0.3, 0), (20, 3, 0.1, 1), (6, 4, 1.0, 2), (30, 2, 2.0, 3)]
)
def test_icc_matches_pingouin(n, k, rater_sd, seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, 1)) + rng.normal(0, rater_sd, size=(1, k)) + rng.normal(0, 0.5, size=(n, k))
    ref = _pingouin_icc(y)
    for name, value in stats.icc(y).items():
        row = ref.loc[PINGOUIN_TYPES[name]]
        assert value.icc == pytest.approx(row["ICC"], abs=1e-6)
        np.testing.assert_allclose([value.ci95_low, value.ci95_high], row["CI95"], atol=1e-6)


def test_icc_textbook_example():
    """Shrout & Fleiss (1979) table 2 (6 targets, 4 judges): ICC(2,1) = 0.29, ICC(3,1) = 0.71."""
    y = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)
    result = stats.icc(y)
    assert round(result["ICC2"].icc, 2) == 0.29 and round(result["ICC3"].icc, 2) == 0.71
    assert round(result["ICC2k"].icc, 2) == 0.62 and round(result["ICC3k"].icc, 2) == 0.91


def test_icc_rejects_incomplete_or_tiny_input():
    with pytest.raises(ValueError, match="finite"):
        stats.icc([[1.0, np.nan], [2.0, 2.5]])
    with pytest.raises(ValueError, match="at least 2 subjects"):
        stats.icc([[1.0, 2.0]])


def test_bland_altman_and_wcv_by_hand():
    first, second = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 3.5, 4.0])
    bias, low, high = stats.bland_altman(first, second)
    sd = np.std(second - first, ddof=1)
    assert (
        bias == pytest.approx(0.25)
        and low == pytest.approx(0.25 - 1.96 * sd)
        and high == pytest.approx(0.25 + 1.96 * sd)
    )
    y = np.column_stack([first, second])
    expected = math.sqrt(np.mean([np.var(r, ddof=1) / np.mean(r) ** 2 for r in y]))
    assert stats.within_subject_cv(y) == pytest.approx(expected)


def _delong_reference(x, pos):
    """DeLong et al. (1988) eqs. by brute force: psi(X, Y) = 1, 1/2, 0 for X > Y, =, <."""
    xp, xn = x[pos], x[~pos]
    psi = (xp[:, None] > xn[None, :]) + 0.5 * (xp[:, None] == xn[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10, v01


def _reference_auroc(x, pos):
    auc, v10, v01 = _delong_reference(x, pos)
    var = np.var(v10, ddof=1) / v10.size + np.var(v01, ddof=1) / v01.size
    half = sps.norm.ppf(0.975) * math.sqrt(var)
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def _reference_test(a, b, pos):
    auc_a, a10, a01 = _delong_reference(a, pos)
    auc_b, b10, b01 = _delong_reference(b, pos)
    s10, s01 = np.cov(a10, b10), np.cov(a01, b01)
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / a10.size + (
        s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]
    ) / a01.size
    return auc_a, auc_b, 2 * sps.norm.sf(abs(auc_a - auc_b) / math.sqrt(var))


def _cases():
    rng = np.random.default_rng(7)
    pos = np.array([0] * 11 + [1] * 9, bool)
    a = np.round(rng.normal(size=20) + 0.8 * pos, 1)  # ties (rounded to 0.1)
    b = np.round(0.6 * a + rng.normal(size=20), 1)
    c = np.repeat([1.0, 2.0, 3.0], [7, 7, 6])  # heavy ties
    return {
        "ties": (a, b, pos),
        "heavy_ties": (c, np.round(a), pos),
        "continuous": (rng.normal(size=20) + pos, rng.normal(size=20) + 0.3 * pos, pos),
    }


@pytest.mark.parametrize("case", ["ties", "heavy_ties", "continuous"])
def test_auroc_and_delong_match_the_definitions(case):
    a, b, pos = _cases()[case]
    result = stats.auroc(a, pos)
    auc, low, high = _reference_auroc(a, pos)
    assert (result.auroc, result.ci95_low, result.ci95_high) == pytest.approx((auc, low, high), abs=1e-12)
    assert stats.delong_test(a, b, pos)[:2] + stats.delong_test(a, b, pos)[3:] == pytest.approx(
        _reference_test(a, b, pos), abs=1e-12
    )


def test_hanley_mcneil_ct_example():
    """Hanley & McNeil (1982) table 1: CT ratings 1-5 of 58 normal and 51 abnormal
    subjects; their AUROC is 0.893."""
    normal = np.repeat(np.arange(1, 6), [33, 6, 6, 11, 2])
    abnormal = np.repeat(np.arange(1, 6), [3, 2, 2, 11, 33])
    result = stats.auroc(np.concatenate([abnormal, normal]), np.r_[np.ones(51, bool), np.zeros(58, bool)])
    assert round(result.auroc, 3) == 0.893 and (result.n_positive, result.n_negative) == (51, 58)
    # Youden: call "abnormal" from rating 4 upwards (sensitivity 44/51, specificity 45/58)
    assert result.threshold == 3.5 and result.sensitivity == pytest.approx(44 / 51)
    assert result.specificity == pytest.approx(45 / 58)


def test_auroc_single_class_and_nan_are_clear_errors():
    with pytest.raises(ValueError, match="both classes.*0 positive and 3 negative"):
        stats.auroc([1.0, 2.0, 3.0], [False, False, False])
    with pytest.raises(ValueError, match="finite"):
        stats.auroc([1.0, np.nan, 3.0], [True, False, True])


def test_identical_curves_give_p_one():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    pos = np.array([False, True, False, True])
    assert stats.delong_test(a, a, pos)[3] == 1.0


R_SCRIPT = """
suppressMessages(library(pROC))
d <- read.table(file("stdin"), header = TRUE)
ra <- roc(d$y, d$a, levels = c(0, 1), direction = "<", quiet = TRUE)
rb <- roc(d$y, d$b, levels = c(0, 1), direction = "<", quiet = TRUE)
ci <- ci.auc(ra, method = "delong")
t <- roc.test(ra, rb, method = "delong", paired = TRUE)
best <- coords(ra, "best", best.method = "youden", ret = c("threshold", "sensitivity", "specificity"),
               transpose = TRUE)
cat(sprintf("%.17g", c(ci[2], ci[1], ci[3], auc(rb), t$p.value, best[1:3], ncol(as.matrix(best)))), \
sep = "\\n")
"""


def _proc_available():
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(pROC)"], capture_output=True).returncode == 0


@pytest.mark.skipif(
    not _proc_available(), reason="R with pROC is not installed (.ci/run installs r-cran-proc)"
)
@pytest.mark.parametrize("case", ["ties", "heavy_ties", "continuous"])
def test_auroc_delong_and_youden_match_proc(case):
    a, b, pos = _cases()[case]
    table = "y a b\n" + "".join(
        f"{int(p)} {float(x)!r} {float(z)!r}\n" for p, x, z in zip(pos, a, b, strict=True)
    )
    out = subprocess.run(["Rscript", "-e", R_SCRIPT], input=table, capture_output=True, text=True, check=True)
    auc, low, high, auc_b, p, threshold, sens, spec = (float(v) for v in out.stdout.split()[:8])
    result = stats.auroc(a, pos)
    assert (result.auroc, result.ci95_low, result.ci95_high) == pytest.approx(
        (auc, max(0, low), min(1, high)), abs=1e-6
    )
    auc_a2, auc_b2, _, p2 = stats.delong_test(a, b, pos)
    assert (auc_a2, auc_b2, p2) == pytest.approx((auc, auc_b, p), abs=1e-6)
    if int(float(out.stdout.split()[8])) == 1:  # a unique Youden optimum
        assert (result.threshold, result.sensitivity, result.specificity) == pytest.approx(
            (threshold, sens, spec), abs=1e-6
        )


def test_kruskal_wallis_needs_two_sites():
    assert np.isnan(stats.kruskal_wallis([[1.0, 2.0]])[0])
    h, p = stats.kruskal_wallis([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert (h, p) == pytest.approx(sps.kruskal([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]))
