"""Bolus arrival and baseline frames (bidsapp.bolus_arrival) at 0.5–5 s frames.

Truth from the simulator (``SessionInput.bolus_arrival``: the time the Parker plasma
curve starts), with Rician noise or noise-free and rounded to integers (the case of a
DICOM digital reference object, where "k noise SDs above the baseline" rules degenerate).
"""

import numpy as np
import pytest

import bidsapp
from bidsapp.bolus_arrival import baseline_frame_count, estimate_bolus_arrival, fit_arrival
from bidsapp.simulate import Grid, Protocol, make_phantom, simulate_subject

GRID = Grid(matrix=(32, 32, 4), voxel_size=(6.875, 6.875, 5.0))
CASES = {  # temporal resolution (s), frames, nominal baseline frames
    0.5: (80, 20),
    1.5: (40, 7),
    5.0: (20, 4),
}


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(0, grid=GRID)


@pytest.mark.parametrize("dt", sorted(CASES))
@pytest.mark.parametrize("noise", ["integer, noise-free", "noise-free", "snr 20"])
@pytest.mark.parametrize("seed", [0, 1])
def test_arrival_within_one_frame_and_no_enhanced_frame_in_the_baseline(phantom, dt, noise, seed):
    n_frames, n_base = CASES[dt]
    snr = 20.0 if noise == "snr 20" else np.inf
    protocol = Protocol(temporal_resolution=dt, n_frames=n_frames, baseline_frames=n_base, snr=snr)
    sim = simulate_subject(phantom, protocol, rng=seed)  # arrival jittered by 1 s SD
    signal = np.round(sim.dce) if noise.startswith("integer") else sim.dce
    truth = sim.session_input.bolus_arrival
    estimate = estimate_bolus_arrival(signal, sim.t, mask=phantom.t1 > 0)
    assert abs(estimate.time - truth) <= dt, (estimate.time, truth)
    true_count = int(np.sum(sim.t < truth))
    assert estimate.baseline_frames == int(np.sum(sim.t < estimate.time))
    # never an enhanced frame in the baseline; at most the last pre-contrast frame lost
    assert true_count - 1 <= estimate.baseline_frames <= true_count
    assert np.all(sim.aif_plasma[: estimate.baseline_frames] == 0)


@pytest.mark.parametrize("arrival_frame", [3, 6, 10])
def test_population_curve_arriving_on_a_frame(arrival_frame):
    t = np.arange(40) * 4.0
    aif = bidsapp.population_aif("parker", t, bolus_arrival=t[arrival_frame])
    signal = 100 + 50 * aif[None, None, None, :] * np.linspace(0.2, 1, 10)[:, None, None, None]
    estimate = estimate_bolus_arrival(signal, t)
    assert abs(estimate.time - t[arrival_frame]) < 4.0
    # Parker starts at 0.15 mM (1.3 % of its peak): that first frame may stay in the baseline
    assert estimate.baseline_frames in (arrival_frame, arrival_frame + 1)
    assert aif[: estimate.baseline_frames].max() <= 0.02 * aif.max()
    assert bool(estimate.warnings) == (estimate.baseline_frames < 3)


def test_no_enhancement_is_nan_with_one_baseline_frame():
    t = np.arange(20) * 2.0
    flat = estimate_bolus_arrival(np.full((3, 3, 1, 20), 10.0), t)
    assert np.isnan(flat.time) and flat.baseline_frames == 1 and "no enhancement" in flat.warnings[0]
    noise = np.random.default_rng(0).normal(100.0, 1.0, (10, 10, 2, 20))
    assert np.isnan(estimate_bolus_arrival(noise, t).time)
    assert baseline_frame_count(t, float("nan")) == 1


def test_sub_frame_arrival_of_a_sampled_curve():
    """A curve that is exactly the model (constant, then quadratic) is recovered to the grid step."""
    t = np.arange(30) * 2.0
    for truth in (11.0, 12.3, 13.9):
        curve = 50.0 + 3.0 * np.clip(t - truth, 0.0, None) ** 2
        assert fit_arrival(curve, t) == pytest.approx(truth, abs=2.0 / 20 + 1e-9)


def test_bad_times_are_rejected():
    with pytest.raises(ValueError, match="t: expected 5 frame times"):
        estimate_bolus_arrival(np.ones((2, 5)), np.arange(4.0))
    with pytest.raises(ValueError, match="strictly increasing"):
        fit_arrival(np.ones(4), [0.0, 1.0, 1.0, 2.0])
