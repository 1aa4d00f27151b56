"""Sessions, dose pairs and the kinetic truth: physics consistency and test-retest."""

import numpy as np
import pytest

from bidsapp import concentration_to_signal, model_curve, population_aif, relaxivity_for, spgr_signal
from bidsapp.simulate import Grid, Protocol, make_phantom, simulate_dose_pair, simulate_subject
from bidsapp.simulate.subject import RECEIVER_GAIN
from bidsapp.simulate.tissues import CLASS_INDEX

GRID = Grid(matrix=(40, 40, 4), voxel_size=(5.0, 5.0, 5.0))
FAST = Protocol(n_frames=24, temporal_resolution=5.0, baseline_frames=4)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(5, GRID)


@pytest.fixture(scope="module")
def session(phantom):
    return simulate_subject(phantom, FAST, rng=1)


def test_baseline_is_contrast_free_and_arteries_carry_blood(phantom, session):
    assert session.session_input.bolus_arrival >= FAST.earliest_arrival
    assert np.abs(session.concentration[..., : FAST.baseline_frames]).max() < 1e-9
    assert session.aif_plasma[: FAST.baseline_frames].max() < 1e-9
    # voxels without leakage (vessels, CSF and mixtures) hold vp × plasma concentration;
    # the most arterial voxel is nearly whole blood, (1 − Hct) × plasma
    plasma_only = (phantom.ktrans == 0) & (phantom.vp > 0) & (phantom.delay == 0)
    assert plasma_only.sum() > 10
    expected = phantom.vp[plasma_only][:, None] * session.aif_plasma[None, :]
    np.testing.assert_allclose(session.concentration[plasma_only], expected, rtol=1e-5, atol=1e-6)
    most_arterial = np.unravel_index(
        phantom.fractions[..., CLASS_INDEX["artery"]].argmax(), phantom.dseg.shape
    )
    assert session.concentration[most_arterial].max() > 0.7 * session.aif_blood.max()
    expected = session.session_input.amplitude * population_aif(
        "parker", session.t, session.session_input.bolus_arrival, FAST.hematocrit
    )
    np.testing.assert_allclose(session.aif_plasma, expected, rtol=1e-10)


def test_truth_concentration_is_the_extended_tofts_curve_of_the_truth_maps():
    """Fine-grid truth sampled at 1 s equals the model on the acquisition grid."""
    protocol = Protocol(n_frames=150, temporal_resolution=1.0, baseline_frames=10)
    p = make_phantom(9, GRID)
    sim = simulate_subject(p, protocol, rng=2)
    sel = (p.ktrans > 0) & (p.delay == 0)
    ve = np.where(p.ve[sel] > 0, p.ve[sel], 1.0)
    expected = model_curve(
        "extended_tofts", {"Ktrans": p.ktrans[sel], "ve": ve, "vp": p.vp[sel]}, sim.t, sim.aif_plasma
    )
    scale = np.abs(expected).max()
    assert np.abs(sim.concentration[sel] - expected).max() < 0.01 * scale


def test_signals_follow_the_spgr_equation(phantom):
    sim = simulate_subject(phantom, FAST.replace(snr=1e7, b1_amplitude=0.2), rng=3)
    head = phantom.t1 > 0
    m0 = RECEIVER_GAIN * phantom.m0[head]
    for i, angle in enumerate(FAST.vfa_flip_angles):
        expected = spgr_signal(m0, 1 / phantom.t1[head], angle, FAST.vfa_tr, sim.b1[head])
        np.testing.assert_allclose(sim.vfa[head][:, i], expected, rtol=1e-3, atol=1e-3)
    expected = concentration_to_signal(
        sim.concentration[head],
        phantom.t1[head],
        m0,
        FAST.dce_tr,
        FAST.dce_flip_angle,
        relaxivity_for("gadobutrol", 3.0),
        sim.b1[head],
    )
    np.testing.assert_allclose(sim.dce[head], expected, rtol=1e-3, atol=1e-3)
    assert np.abs(sim.b1 - 1).max() == pytest.approx(0.2, rel=1e-5)
    assert sim.b1.std() > 0.02


def test_rician_noise_level_matches_snr(phantom, session):
    brain = np.isin(phantom.dseg, [CLASS_INDEX["white_matter"], CLASS_INDEX["grey_matter"]])
    sigma = session.noise_sigma
    assert session.dce[brain][:, : FAST.baseline_frames].mean() / sigma == pytest.approx(FAST.snr, rel=0.02)
    air = phantom.fractions[..., 0] == 1.0
    background = session.dce[air]
    assert background.min() >= 0  # magnitude data
    assert background.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.05)  # Rayleigh


def test_test_retest_keeps_truth_and_changes_noise_and_aif(phantom, session):
    retest = simulate_subject(phantom, FAST, rng=2)
    assert retest.session_input != session.session_input
    assert not np.allclose(retest.vfa, session.vfa)
    again = simulate_subject(phantom, FAST, rng=1)
    np.testing.assert_array_equal(again.dce, session.dce)
    np.testing.assert_array_equal(again.concentration, session.concentration)


def test_motion_moves_frames_not_truth(phantom):
    still = simulate_subject(phantom, FAST.replace(snr=1e7), rng=4)
    moving = simulate_subject(phantom, FAST.replace(snr=1e7, motion=2.0), rng=4)
    assert moving.motion.shape == (FAST.n_frames, 6) and np.abs(moving.motion).max() == pytest.approx(2.0)
    np.testing.assert_array_equal(moving.concentration, still.concentration)
    moved = np.abs(moving.dce - still.dce).max(axis=(0, 1, 2))
    assert moved[np.abs(moving.motion).max(axis=1) > 0.5].min() > 1.0


def test_dose_pair_goes_through_the_signal_equation(phantom):
    pair = simulate_dose_pair(phantom, FAST.replace(snr=1e7), rng=5, low_dose_fraction=0.2)
    head = phantom.t1 > 0
    r1 = relaxivity_for("gadobutrol", 3.0)
    m0 = RECEIVER_GAIN * phantom.m0[head]
    for fraction, volume in ((0.2, pair.low_clean), (1.0, pair.standard_clean)):
        expected = spgr_signal(
            m0,
            1 / phantom.t1[head] + r1 * fraction * pair.concentration[head],
            FAST.t1w_flip_angle,
            FAST.t1w_tr,
            pair.b1[head],
        )
        np.testing.assert_allclose(volume[head], expected, rtol=1e-5)
    np.testing.assert_allclose(pair.enhancement, pair.standard_clean - pair.pre_clean)
    # SPGR saturates: the low-dose enhancement is not the scaled full-dose enhancement
    vessel = phantom.dseg == CLASS_INDEX["artery"]
    ratio = pair.low_enhancement[vessel] / pair.enhancement[vessel]
    assert ratio.min() > 0.2 * 1.05
    assert pair.time == pytest.approx(pair.time) and pair.noise_sigma > 0
    with pytest.raises(ValueError, match="low_dose_fraction"):
        simulate_dose_pair(phantom, FAST, rng=5, low_dose_fraction=1.5)


def test_protocol_errors_name_the_field():
    with pytest.raises(ValueError, match="baseline_frames"):
        Protocol(n_frames=4, baseline_frames=4)
    with pytest.raises(ValueError, match="bolus_arrival"):
        Protocol(baseline_frames=5, temporal_resolution=5.0, bolus_arrival=10.0)
    assert Protocol(bolus_arrival=30.0).nominal_arrival == 30.0
    assert Protocol(agent="Gadovist").injected_volume_ml() == pytest.approx(7.0)  # 1.0 M, 70 kg
    assert Protocol(agent="gadoterate").injected_volume_ml(0.5) == pytest.approx(7.0)  # 0.5 M
    with pytest.raises(ValueError, match="unknown Protocol field"):
        FAST.replace(frames=3)
    with pytest.raises(ValueError, match="field_strength"):
        simulate_subject(make_phantom(1, GRID, field_strength=1.5), FAST)
