"""Signal <-> concentration: round trips, validity flags, baseline selection, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidsapp import concentration_to_signal, signal_to_concentration, spgr_signal

TR, FA, R1 = 0.004, 15.0, 4.5


def _curve(n=40):
    t = np.arange(n) * 5.0
    return np.where(t < 30, 0.0, 3.0 * np.exp(-(t - 30) / 120.0) * (1 - np.exp(-(t - 30) / 8.0)))


def test_round_trip_4d_with_t10_and_b1_maps():
    rng = np.random.default_rng(0)
    shape = (5, 4, 3)
    conc = rng.uniform(0.0, 5.0, shape)[..., None] * (_curve() / _curve().max())
    t10 = rng.uniform(0.5, 2.5, shape)
    m0 = rng.uniform(100, 10000, shape)
    b1 = rng.uniform(0.7, 1.3, shape)
    signal = concentration_to_signal(conc, t10, m0, TR, FA, R1, b1=b1)
    result = signal_to_concentration(signal, t10, TR, FA, R1, baseline_frames=6, b1=b1)
    assert result.valid.all() and result.voxel_valid.all() and result.voxel_valid.shape == shape
    np.testing.assert_allclose(result.concentration, conc, atol=1e-6, rtol=1e-6)
    via_m0 = signal_to_concentration(signal, t10, TR, FA, R1, baseline_frames=None, m0=m0, b1=b1)
    np.testing.assert_allclose(via_m0.concentration, conc, atol=1e-6, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    peak=st.floats(0.01, 20.0),
    t10=st.floats(0.2, 4.0),
    fa=st.floats(5.0, 60.0),
    r1=st.floats(2.0, 10.0),
)
def test_round_trip_property(peak, t10, fa, r1):
    conc = peak * _curve() / _curve().max()
    signal = concentration_to_signal(conc, t10, 1000.0, TR, fa, r1)
    result = signal_to_concentration(signal, t10, TR, fa, r1, baseline_frames=5)
    assert result.voxel_valid
    np.testing.assert_allclose(result.concentration, conc, atol=1e-6, rtol=1e-6)


def test_linear_method_matches_spgr_in_its_regime():
    # TR*R1*cos(a) << 1 - cos(a): S is nearly proportional to R1 (here within ~1 %)
    conc = 0.5 * _curve() / _curve().max()
    signal = concentration_to_signal(conc, 1.0, 1000.0, 0.002, 60.0, R1)
    linear = signal_to_concentration(signal, 1.0, 0.002, 60.0, R1, 6, method="linear")
    assert linear.voxel_valid
    np.testing.assert_allclose(linear.concentration, conc, atol=0.02 * conc.max())
    # and it departs from the exact inversion outside that regime
    signal = concentration_to_signal(conc, 1.0, 1000.0, 0.002, 15.0, R1)
    linear = signal_to_concentration(signal, 1.0, 0.002, 15.0, R1, 6, method="linear")
    assert np.max(np.abs(linear.concentration - conc)) > 0.05 * conc.max()


def test_impossible_samples_are_flagged_not_clipped():
    t10, m0 = 1.0, 1000.0
    base = spgr_signal(m0, 1.0 / t10, FA, TR)
    asymptote = m0 * np.sin(np.deg2rad(FA))
    signal = np.array([base, base, base, asymptote * 1.01, asymptote, -5.0, 0.0, np.nan, np.inf, base])
    result = signal_to_concentration(signal, t10, TR, FA, R1, baseline_frames=[0, 1, 2])
    expected = [True, True, True, False, False, False, False, False, False, True]
    assert result.valid.tolist() == expected
    assert np.isnan(result.concentration[~result.valid]).all()
    assert np.nanmax(result.concentration) < 1.0  # no fake large values
    assert not result.voxel_valid


def test_voxel_problems_give_invalid_voxels():
    conc = _curve()
    signal = np.stack([concentration_to_signal(conc, 1.0, 1000.0, TR, FA, R1)] * 4)
    signal[1, :6] = 0.0  # all-zero baseline in one voxel
    t10 = np.array([1.0, 1.0, np.nan, -1.0])
    result = signal_to_concentration(signal, t10, TR, FA, R1, baseline_frames=6)
    assert result.voxel_valid.tolist() == [True, False, False, False]
    assert np.isnan(result.concentration[1:]).all()


def test_baseline_frame_forms():
    conc = _curve()
    signal = concentration_to_signal(conc, 1.0, 1000.0, TR, FA, R1)
    as_int = signal_to_concentration(signal, 1.0, TR, FA, R1, 5)
    as_slice = signal_to_concentration(signal, 1.0, TR, FA, R1, slice(0, 5))
    as_list = signal_to_concentration(signal, 1.0, TR, FA, R1, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(as_int.baseline_frames, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(as_int.concentration, as_slice.concentration)
    np.testing.assert_allclose(as_int.concentration, as_list.concentration)
    skip_first = signal_to_concentration(signal, 1.0, TR, FA, R1, slice(1, 5))
    np.testing.assert_array_equal(skip_first.baseline_frames, [1, 2, 3, 4])


def test_bad_input_raises_naming_argument():
    signal = concentration_to_signal(_curve(), 1.0, 1000.0, TR, FA, R1)
    ok = dict(t10=1.0, tr=TR, flip_angle=FA, relaxivity=R1, baseline_frames=5)
    cases = {
        "baseline_frames": [
            dict(baseline_frames=signal.size),
            dict(baseline_frames=0),
            dict(baseline_frames=slice(50, 60)),
            dict(baseline_frames=[0, 99]),
            dict(baseline_frames=None),
            dict(baseline_frames=[0.5, 1.5]),
        ],
        "tr": [dict(tr=0.0), dict(tr=-1.0), dict(tr=np.nan)],
        "relaxivity": [dict(relaxivity=0.0)],
        "flip_angle": [dict(flip_angle=0.0), dict(flip_angle=200.0)],
        "t10": [dict(t10=np.ones(3))],
        "method": [dict(method="cubic")],
    }
    for name, variants in cases.items():
        for variant in variants:
            with pytest.raises(ValueError, match=name):
                signal_to_concentration(signal, **{**ok, **variant})
    with pytest.raises(ValueError, match="b1"):
        signal_to_concentration(np.stack([signal] * 2), **ok, b1=np.ones(3))
    with pytest.raises(ValueError, match="signal"):
        signal_to_concentration(np.zeros((3, 10)), **ok)
    with pytest.warns(UserWarning, match="radians"):
        signal_to_concentration(signal, **{**ok, "flip_angle": np.deg2rad(FA)})
