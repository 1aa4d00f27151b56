"""T1 mapping: round trips on noise-free data, validity rule, B1, and bad input."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidsapp import compute_t1_map, spgr_signal
from bidsapp.t1 import VALIDITY_RULES

ANGLES = np.array([2.0, 5.0, 10.0, 15.0, 20.0])
TR = 0.005
METHODS = ("vfa-linear", "vfa-nonlinear", "two-angle")


def _signals(t1, m0, angles=ANGLES, b1=1.0):
    t1, m0, b1 = (np.asarray(v, dtype=float)[..., None] for v in (t1, m0, b1))
    return spgr_signal(m0, 1.0 / t1, angles, TR, b1)


@pytest.mark.parametrize("method", METHODS)
def test_round_trip_volume(method):
    rng = np.random.default_rng(1)
    t1 = rng.uniform(0.2, 4.0, (6, 5, 4))
    m0 = rng.uniform(500, 5000, (6, 5, 4))
    result = compute_t1_map(_signals(t1, m0), ANGLES, TR, method=method)
    assert result.valid.all()
    np.testing.assert_allclose(result.t1, t1, rtol=1e-6)
    np.testing.assert_allclose(result.m0, m0, rtol=1e-6)
    assert result.t1.shape == (6, 5, 4) and result.method == method


@settings(max_examples=40, deadline=None)
@given(
    t1=st.floats(0.05, 5.0),
    m0=st.floats(1.0, 1e6),
    b1=st.floats(0.6, 1.4),
    method=st.sampled_from(METHODS),
)
def test_round_trip_property(t1, m0, b1, method):
    signals = _signals(t1, m0, b1=b1)
    result = compute_t1_map(signals, ANGLES, TR, method=method, b1=b1)
    assert result.valid
    np.testing.assert_allclose(result.t1, t1, rtol=1e-6)
    np.testing.assert_allclose(result.m0, m0, rtol=1e-6)


def test_b1_map_is_applied_per_voxel():
    t1 = np.array([1.0, 1.0])
    b1 = np.array([0.8, 1.2])
    signals = _signals(t1, 1000.0, b1=b1)
    corrected = compute_t1_map(signals, ANGLES, TR, b1=b1)
    np.testing.assert_allclose(corrected.t1, t1, rtol=1e-6)
    uncorrected = compute_t1_map(signals, ANGLES, TR)
    assert np.all(np.abs(uncorrected.t1 - 1.0) > 0.1)


def test_nonlinear_beats_linear_on_noisy_data():
    rng = np.random.default_rng(2)
    t1 = np.full(2000, 1.2)
    clean = _signals(t1, 1000.0)
    noisy = clean + rng.normal(0, 2.0, clean.shape)
    lin = compute_t1_map(noisy, ANGLES, TR, method="vfa-linear")
    nonlin = compute_t1_map(noisy, ANGLES, TR, method="vfa-nonlinear")
    assert lin.valid.mean() > 0.99 and nonlin.valid.mean() > 0.99
    # the least-squares fit on the SPGR equation has the lower signal residual
    assert np.nanmean(nonlin.residual) <= np.nanmean(lin.residual)
    assert abs(np.nanmedian(nonlin.t1) - 1.2) < 0.05


def test_validity_rule_flags_each_cause():
    good = _signals(1.0, 1000.0)
    rows = {
        "good": good,
        "nan": np.where(np.arange(5) == 2, np.nan, good),
        "inf": np.where(np.arange(5) == 0, np.inf, good),
        "zero": np.zeros(5),
        "negative": -good,
        # S·tan(α/2) falling with α (here S ∝ 1/α²) makes the DESPOT1 slope E1 >= 1
        "not spgr (E1 >= 1)": 1e4 / ANGLES**2,
        "implausible T1": _signals(50.0, 1000.0),  # T1 far above t1_range
        "poor fit": good * np.array([1.0, 1.25, 0.8, 1.2, 0.85]),
    }
    stack = np.stack(list(rows.values()))
    for method in METHODS:
        for validity in VALIDITY_RULES:
            result = compute_t1_map(stack, ANGLES, TR, method=method, validity=validity)
            flags = dict(zip(rows, result.valid, strict=True))
            assert result.validity == validity and result.max_residual == 0.1
            # a poor fit keeps its T1 under the physical rule and is flagged either way
            assert flags.pop("poor fit") == (validity == "physical"), (method, validity)
            assert result.poor_fit.tolist() == [name == "poor fit" for name in rows], (method, validity)
            assert result.residual[list(rows).index("poor fit")] > 0.1
            assert flags.pop("good"), method
            assert not any(flags.values()), (method, validity, flags)
            assert np.isnan(result.t1[~result.valid]).all() and np.isnan(result.m0[~result.valid]).all()
            # no residual where no physically valid fit was made (bad signals, E1 >= 1, T1 out of range)
            assert np.isnan(result.residual[1:7]).all() and np.isfinite(result.residual[[0, 7]]).all()


def test_unknown_validity_rule_raises():
    with pytest.raises(ValueError, match="validity: unknown validity rule 'lenient'"):
        compute_t1_map(_signals(1.0, 1000.0), ANGLES, TR, validity="lenient")


def test_mask_and_invalid_b1_voxels():
    signals = _signals(np.ones(4), 1000.0)
    mask = np.array([True, False, True, True])
    b1 = np.array([1.0, 1.0, np.nan, 0.0])
    result = compute_t1_map(signals, ANGLES, TR, b1=b1, mask=mask)
    assert result.valid.tolist() == [True, False, False, False]


def test_t1_range_is_configurable():
    signals = _signals(8.0, 1000.0)
    assert compute_t1_map(signals, ANGLES, TR).valid
    assert not compute_t1_map(signals, ANGLES, TR, t1_range=(0.1, 5.0)).valid


def test_bad_input_raises_naming_argument():
    signals = _signals(np.ones(3), 1000.0)
    with pytest.raises(ValueError, match="flip_angles"):
        compute_t1_map(signals, ANGLES[:4], TR)
    with pytest.raises(ValueError, match="flip_angles: at least two"):
        compute_t1_map(signals[..., :1], ANGLES[:1], TR)
    with pytest.raises(ValueError, match="tr"):
        compute_t1_map(signals, ANGLES, 0.0)
    with pytest.raises(ValueError, match="tr"):
        compute_t1_map(signals, ANGLES, -0.005)
    with pytest.raises(ValueError, match="method"):
        compute_t1_map(signals, ANGLES, TR, method="despot2")
    with pytest.raises(ValueError, match="b1"):
        compute_t1_map(signals, ANGLES, TR, b1=np.ones(4))
    with pytest.raises(ValueError, match="mask"):
        compute_t1_map(signals, ANGLES, TR, mask=np.ones(2, dtype=bool))
    with pytest.raises(ValueError, match="flip_angles"):
        compute_t1_map(signals, [2, 5, 10, 15, 200], TR)
    with pytest.raises(ValueError, match="flip_angles"):
        compute_t1_map(signals, [2, 5, np.nan, 15, 20], TR)


def test_radians_warn():
    radians = np.deg2rad(ANGLES)
    signals = _signals(1.0, 1000.0, angles=ANGLES)
    with pytest.warns(UserWarning, match="radians"):
        compute_t1_map(signals, radians, TR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_t1_map(signals, ANGLES, TR)
