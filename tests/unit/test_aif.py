"""Population AIFs, automatic AIF detection and ROI AIFs."""

import numpy as np
import pytest

from bidsapp import POPULATION_AIFS, aif_from_mask, detect_aif, population_aif
from synthetic_aif import HCT, synthetic_volume

T = np.arange(0.0, 600.0, 1.0)


@pytest.mark.parametrize("name", POPULATION_AIFS)
def test_population_aif_shape_and_delay(name):
    curve = population_aif(name, T, hematocrit=0.0)
    assert curve.shape == T.shape and np.all(np.isfinite(curve)) and np.all(curve >= 0)
    peak = curve.max()
    assert 0.5 < peak < 15.0
    assert curve[-1] < 0.7 * peak  # washes out
    shifted = population_aif(name, T, bolus_arrival=30.0, hematocrit=0.0)
    assert np.all(shifted[T < 30.0] == 0.0)
    np.testing.assert_allclose(shifted[T >= 30.0], curve[: np.sum(T >= 30.0)], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, medium", [("parker", "blood"), ("georgiou", "blood"), ("mcgrath", "blood"),
                                          ("weinmann", "plasma"), ("fritz-hansen", "plasma")])
def test_hematocrit_converts_blood_curves_only(name, medium):
    blood_or_plasma = population_aif(name, T, hematocrit=0.0)
    converted = population_aif(name, T, hematocrit=0.4)
    factor = 1.0 / (1.0 - 0.4) if medium == "blood" else 1.0
    np.testing.assert_allclose(converted, blood_or_plasma * factor)


def test_weinmann_and_fritz_hansen_published_values():
    # Tofts & Kermode: D (a1 + a2) at t = 0 for D = 0.1 mmol/kg
    assert population_aif("weinmann", [0.0]) == pytest.approx(0.1 * (3.99 + 4.78))
    assert population_aif("fritz-hansen", [0.0]) == pytest.approx(2.4 + 0.62)
    expected = 0.1 * (3.99 * np.exp(-0.144) + 4.78 * np.exp(-0.0111))
    assert population_aif("weinmann", [60.0]) == pytest.approx(expected)


def test_population_aif_bad_input():
    with pytest.raises(ValueError, match="name"):
        population_aif("tofts", T)
    with pytest.raises(ValueError, match="hematocrit"):
        population_aif("parker", T, hematocrit=1.0)
    with pytest.raises(ValueError, match="t"):
        population_aif("parker", [0.0, np.nan])
    with pytest.raises(ValueError, match="bolus_arrival"):
        population_aif("parker", T, bolus_arrival=np.inf)


@pytest.mark.parametrize("seed, artery_scale", [(0, 1.0), (1, 1.0), (2, 1.0), (3, 0.45)])
def test_detect_aif_finds_the_artery(seed, artery_scale):
    """artery_scale 0.45: a partial-volume artery whose peak is well below the vein's."""
    conc, t, artery, vein, blood = synthetic_volume(seed=seed, noise_sd=0.05, artery_scale=artery_scale)
    result = detect_aif(conc, t, hematocrit=HCT)
    assert result.source == "image" and not result.warnings
    assert result.mask.sum() >= 3
    assert (result.mask & artery).sum() >= 0.8 * result.mask.sum()
    assert not (result.mask & vein).any()
    assert np.max(np.abs(result.blood - blood)) < 0.05 * blood.max()
    np.testing.assert_allclose(result.plasma, result.blood / (1 - HCT))
    assert 0.5 <= result.quality <= 1.0
    again = detect_aif(conc, t, hematocrit=HCT)
    np.testing.assert_array_equal(again.mask, result.mask)  # deterministic


def test_detect_aif_t10_gate_excludes_non_blood_voxels():
    conc, t, artery, vein, blood = synthetic_volume(seed=3, noise_sd=0.05)
    t10 = np.full(artery.shape, 1.0)
    t10[artery] = 1.6
    t10[vein] = 1.7
    gated = detect_aif(conc, t, t10=t10)
    assert gated.mask.any() and not (gated.mask & ~(artery | vein)).any()
    assert (gated.mask & artery).sum() == gated.mask.sum()
    t10[artery] = 0.9  # artery outside the blood-T1 window: the vein is the only blood left
    gated = detect_aif(conc, t, t10=t10)
    assert not (gated.mask & artery).any()


def test_detect_aif_falls_back_without_an_artery():
    conc, t, artery, vein, _ = synthetic_volume(seed=4, noise_sd=0.05)
    conc[artery | vein] = conc[~(artery | vein)][: (artery | vein).sum()]
    result = detect_aif(conc, t, fallback="georgiou", hematocrit=0.4)
    assert result.source == "population:georgiou"
    assert result.quality < 0.5 and result.warnings and "georgiou" in result.warnings[0]
    assert not result.mask.any()
    np.testing.assert_allclose(result.blood, result.plasma * 0.6)
    assert result.plasma[0] == 0.0 and result.plasma.max() > 1.0
    kept = detect_aif(conc, t, fallback=None)
    assert kept.source == "image" and kept.warnings


def test_detect_aif_pure_noise_uses_fallback():
    rng = np.random.default_rng(5)
    t = np.arange(40) * 5.0
    result = detect_aif(rng.normal(0, 0.1, (10, 10, 2, 40)), t)
    assert result.source == "population:parker"


def test_aif_from_mask():
    conc, t, artery, _, blood = synthetic_volume(seed=6, noise_sd=0.05)
    conc[3, 3, 0, 5] = np.nan
    result = aif_from_mask(conc, artery, t, hematocrit=0.4)
    assert result.source == "mask" and result.mask.sum() == artery.sum() - 1
    assert result.warnings and "non-finite" in result.warnings[0]
    assert np.max(np.abs(result.blood - blood)) < 0.05 * blood.max()
    np.testing.assert_allclose(result.plasma, result.blood / 0.6)
    assert result.quality > 0.8


def test_aif_bad_input():
    conc, t, artery, _, _ = synthetic_volume(seed=7)
    with pytest.raises(ValueError, match="mask"):
        aif_from_mask(conc, np.zeros_like(artery), t)
    with pytest.raises(ValueError, match="mask"):
        aif_from_mask(conc, artery[..., 0], t)
    with pytest.raises(ValueError, match="t"):
        detect_aif(conc, t[:-1])
    with pytest.raises(ValueError, match="t"):
        detect_aif(conc, t[::-1])
    with pytest.raises(ValueError, match="t10"):
        detect_aif(conc, t, t10=np.ones(3))
    with pytest.raises(ValueError, match="fallback"):
        detect_aif(conc, t, fallback="nope")
    with pytest.raises(ValueError, match="hematocrit"):
        detect_aif(conc, t, hematocrit=-0.1)
