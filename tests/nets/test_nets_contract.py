"""Input contract and envelope guard of the networks."""

import numpy as np
import pytest

from bidsapp.nets import contract


def test_resample_is_linear_interpolation_from_the_first_frame():
    t = 12.0 + np.arange(0.0, 330.0, 3.3)  # first frame at 12 s, 3.3 s frames
    curves = np.stack([2.0 * (t - 12.0) + 1.0, np.sin((t - 12.0) / 40.0)])
    out = contract.resample(curves, t)
    assert out.shape == (2, contract.GRID.size)
    np.testing.assert_allclose(out[0], 2.0 * contract.GRID + 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[1], np.interp(contract.GRID, t - 12.0, curves[1]), atol=1e-6)


def test_network_input_is_scaled_by_the_aif_peak():
    n = contract.GRID.size
    aif = np.linspace(0.0, 4.0, n)
    conc = np.full((3, 5, n), 2.0)
    conc[0, 0, 0] = np.nan
    x, scale = contract.network_input(conc, aif)
    assert x.shape == (2 * n, 3, 5) and scale == 4.0
    assert x[0, 0, 0] == 0.0 and x[1, 1, 1] == 0.5
    np.testing.assert_allclose(x[n:, 2, 4], aif / 4.0, rtol=1e-6)
    with pytest.raises(ValueError, match="aif"):
        contract.network_input(conc, np.zeros(n))


def test_guard_names_each_quantity_outside_and_refuses_short_series():
    inside = contract.Acquisition(
        duration=320.0,
        temporal_resolution=5.0,
        flip_angle=15.0,
        repetition_time=0.004,
        field_strength=3.0,
        baseline_length=30.0,
    )
    assert contract.check_envelope(inside) == []
    outside = contract.Acquisition(
        duration=320.0, temporal_resolution=12.0, flip_angle=60.0, field_strength=7.0
    )
    messages = contract.check_envelope(outside)
    assert [m.split()[0] for m in messages] == ["temporal_resolution", "flip_angle", "field_strength"]
    with pytest.raises(contract.EnvelopeError, match="flip_angle 60 deg is outside"):
        contract.check_envelope(outside, strict=True)
    with pytest.raises(contract.EnvelopeError, match="duration 200 s is outside the training envelope"):
        contract.check_envelope(contract.Acquisition(duration=200.0))
