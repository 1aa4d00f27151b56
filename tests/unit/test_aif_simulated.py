"""detect_aif on the project's own simulated studies (truth from bidsapp.simulate).

Regression for the biased automatic AIF: at 64×64×8 and the simulator's default SNR
(30) the detected plasma AIF must match the truth (area within ±10 %, peak within
±15 %) and come from artery voxels; at 32×32×4 no voxel is purely arterial (partial
volume), which the quality score must report, triggering the population fallback.
"""

import numpy as np
import pytest

from bidsapp import compute_t1_map, detect_aif, signal_to_concentration
from bidsapp.aif.detect import area_plausibility
from bidsapp.simulate import Grid, Protocol, make_phantom, simulate_subject
from bidsapp.simulate.tissues import CLASS_INDEX

GRIDS = {
    "64x64x8": Grid(matrix=(64, 64, 8), voxel_size=(3.4375, 3.4375, 5.0)),
    "32x32x4": Grid(matrix=(32, 32, 4), voxel_size=(6.875, 6.875, 5.0)),
}


def _simulated_detection(grid, seed):
    """(phantom, simulation, AIFResult) the way the participant workflow detects it."""
    phantom = make_phantom(seed, grid=grid)
    protocol = Protocol()
    sim = simulate_subject(phantom, protocol, rng=seed + 100)
    t1 = compute_t1_map(sim.vfa, np.asarray(protocol.vfa_flip_angles), protocol.vfa_tr)
    t10 = np.where(t1.valid, t1.t1, 1.0)
    conc = signal_to_concentration(
        sim.dce, t10, protocol.dce_tr, protocol.dce_flip_angle, sim.relaxivity, protocol.baseline_frames
    )
    mask = t1.valid & conc.voxel_valid & (phantom.t1 > 0)
    model = {"tr": protocol.dce_tr, "flip_angle": protocol.dce_flip_angle, "relaxivity": sim.relaxivity}
    result = detect_aif(
        conc.concentration,
        sim.t,
        t10=t10,
        mask=mask,
        hematocrit=protocol.hematocrit,
        fallback="parker",
        signal_model=model,
        population_check="parker",
    )
    return phantom, sim, result


def _area(curve, t):
    return float(np.sum(np.diff(t) * (curve[1:] + curve[:-1]) / 2.0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detected_aif_matches_truth_at_64x64x8(seed):
    phantom, sim, result = _simulated_detection(GRIDS["64x64x8"], seed)
    assert result.source == "image" and not result.warnings and result.quality >= 0.9
    assert np.all(phantom.dseg[result.mask] == CLASS_INDEX["artery"])  # not the sinus, not tissue
    area_ratio = _area(result.plasma, sim.t) / _area(sim.aif_plasma, sim.t)
    peak_ratio = result.plasma.max() / sim.aif_plasma.max()
    assert 0.9 <= area_ratio <= 1.1, area_ratio
    assert 0.85 <= peak_ratio <= 1.15, peak_ratio
    np.testing.assert_allclose(result.blood, result.plasma * (1.0 - sim.protocol.hematocrit))
    # the blood T10 the curve was converted with, and a standard error that covers its error
    t10 = result.blood_t10
    true_t10 = float(np.mean(phantom.t1[result.mask]))
    assert t10["voxels"] >= result.mask.sum() and t10["method"] == "median of the voxel T10s"
    assert 0.002 < t10["standard_error"] / t10["value"] < 0.1
    assert abs(t10["value"] - true_t10) < 4.0 * t10["standard_error"], (t10, true_t10)


def test_partial_volume_at_32x32x4_is_reported_and_falls_back():
    phantom, sim, result = _simulated_detection(GRIDS["32x32x4"], 0)
    assert phantom.fractions[..., CLASS_INDEX["artery"]].max() < 0.9  # no pure arterial voxel exists
    assert result.source == "population:parker" and result.quality < 0.5
    assert not result.mask.any()
    assert any("partial volume likely" in w for w in result.warnings)
    # the fallback is aligned to the image bolus arrival (within one frame of the truth)
    dt = sim.t[1] - sim.t[0]
    onset = lambda c: sim.t[np.argmax(c >= 0.1 * c.max())]  # noqa: E731
    assert abs(onset(result.plasma) - onset(sim.aif_plasma)) <= dt


def test_area_plausibility_factor():
    assert area_plausibility(1.0) == 1.0
    assert area_plausibility(0.78) == 1.0 and area_plausibility(1.28) == 1.0
    assert area_plausibility(0.6) == 0.0 and area_plausibility(0.3) == 0.0 and area_plausibility(1.7) == 0.0
    assert 0.0 < area_plausibility(0.7) < 1.0
    assert area_plausibility(np.nan) == 0.0
    with pytest.raises(ValueError, match="plausible_area_ratio"):
        area_plausibility(1.0, (1.2, 2.0))


def test_signal_model_and_population_check_bad_input():
    conc = np.zeros((4, 4, 1, 10))
    t = np.arange(10.0)
    model = {"tr": 0.005, "flip_angle": 15.0, "relaxivity": 4.5}
    with pytest.raises(ValueError, match="signal_model: needs t10"):
        detect_aif(conc, t, signal_model=model)
    with pytest.raises(ValueError, match="signal_model: needs keys"):
        detect_aif(conc, t, t10=np.ones((4, 4, 1)), signal_model={"tr": 0.005, "flip_angle": 15.0})
    with pytest.raises(ValueError, match="population_check"):
        detect_aif(conc, t, population_check="tofts")
