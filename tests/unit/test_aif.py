"""Population AIFs, automatic AIF detection and ROI AIFs."""

import numpy as np
import pytest
from synthetic_aif import HCT, synthetic_volume

from bidsapp import (
    POPULATION_AIFS,
    AIFOptions,
    aif_from_mask,
    concentration_to_signal,
    detect_aif,
    population_aif,
    signal_to_concentration,
)

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


@pytest.mark.parametrize(
    "name, medium",
    [
        ("parker", "blood"),
        ("georgiou", "blood"),
        ("mcgrath", "blood"),
        ("weinmann", "plasma"),
        ("fritz-hansen", "plasma"),
    ],
)
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


def test_detect_aif_options_and_keywords_agree():
    conc, t, artery, vein, _ = synthetic_volume(seed=4, noise_sd=0.05)
    conc[artery | vein] = conc[~(artery | vein)][: (artery | vein).sum()]
    by_keyword = detect_aif(conc, t, fallback="georgiou", min_quality=0.6)
    by_options = detect_aif(conc, t, options=AIFOptions(fallback="georgiou", min_quality=0.6))
    assert by_keyword.source == by_options.source == "population:georgiou"
    np.testing.assert_array_equal(by_keyword.plasma, by_options.plasma)
    # a keyword overrides the same field of ``options``
    kept = detect_aif(conc, t, options=AIFOptions(fallback="georgiou"), fallback=None)
    assert kept.source == "image"
    with pytest.raises(ValueError, match="unknown option.*fallbak"):
        detect_aif(conc, t, fallbak=None)
    with pytest.raises(ValueError, match="min_quality"):
        AIFOptions(min_quality=1.5)
    with pytest.raises(ValueError, match="plausible_area_ratio"):
        AIFOptions(plausible_area_ratio=(1.2, 2.0))


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


def _area(curve, t):
    return float(np.sum(np.diff(t) * (curve[1:] + curve[:-1]) / 2.0))


def _signal_volume(seed, noise_sd):
    """Synthetic volume as SPGR signal (3 T-like: TR 5 ms, 15°, r1 4.5 /mM/s; T10 1.7 s in the
    vessels, 1.2 s in tissue, M0 1) with Gaussian noise of SD ``noise_sd`` × the tissue S0."""
    conc, t, artery, vein, blood = synthetic_volume(seed=seed, noise_sd=0.0)
    model = {"tr": 0.005, "flip_angle": 15.0, "relaxivity": 4.5}
    t10 = np.where(artery | vein, 1.7, 1.2)
    signal = concentration_to_signal(conc, t10, 1.0, model["tr"], model["flip_angle"], model["relaxivity"])
    s0_tissue = concentration_to_signal(
        np.zeros(1), 1.2, 1.0, model["tr"], model["flip_angle"], model["relaxivity"]
    )[0]
    signal = signal + np.random.default_rng(seed).normal(0.0, noise_sd * s0_tissue, signal.shape)
    return signal, t, t10, model, artery, blood


@pytest.mark.parametrize("seed", [0, 1])
def test_detect_aif_rebaselines_an_arterial_upslope_frame(seed):
    """The series baseline reaches one frame into the arterial upslope (the frame at the
    bolus arrival, 20 s): the AIF's S0 must come from the frames before it."""
    signal, t, t10, model, artery, blood = _signal_volume(seed, noise_sd=0.005)
    n_base = int(np.sum(t <= 20.0))  # frames 0-5: the last one is on the arterial upslope
    conc = signal_to_concentration(
        signal, t10, model["tr"], model["flip_angle"], model["relaxivity"], n_base
    ).concentration
    kwargs = {"t10": t10, "hematocrit": HCT, "fallback": None, "signal_model": model}
    old = detect_aif(conc, t, **kwargs)  # no baseline check: S0 includes the upslope frame
    new = detect_aif(conc, t, **kwargs, baseline_frames=n_base)
    assert new.source == "image" and (new.mask & artery).sum() == new.mask.sum() >= 3
    assert _area(old.blood, t) / _area(blood, t) < 0.9  # the contaminated S0 lowers the whole curve
    assert abs(_area(new.blood, t) / _area(blood, t) - 1.0) < 0.02
    assert any("AIF baseline" in w and "first 5 frame" in w for w in new.warnings)
    # a baseline that ends before the upslope is left as it is
    clean = signal_to_concentration(
        signal, t10, model["tr"], model["flip_angle"], model["relaxivity"], 5
    ).concentration
    unchanged = detect_aif(clean, t, **kwargs, baseline_frames=5)
    np.testing.assert_array_equal(unchanged.blood, detect_aif(clean, t, **kwargs).blood)
    assert not any("AIF baseline" in w for w in unchanged.warnings)


def test_arterial_baseline_drops_only_significantly_enhanced_frames():
    """A series baseline frame the arterial arrival fit puts on the upslope stays in the AIF's
    baseline unless it is > 3 standard errors above the frames before it."""
    from bidsapp.aif.detect import _arterial_baseline

    t = np.arange(12.0)
    rise = np.where(t >= 5.0, 0.5 * (t - 5.0) ** 2, 0.0)  # arrives exactly at frame 5
    noise = np.random.default_rng(0).normal(0.0, 0.01, (10, t.size))
    relative = 1.0 + rise + noise
    same, note = _arterial_baseline(relative, t, 6)  # frame 5 is unenhanced: kept
    assert same is relative and note is None
    relative[:, 5] += 0.2  # now frame 5 is clearly enhanced: dropped, S0 from frames 0-4
    rebased, note = _arterial_baseline(relative, t, 6)
    assert "first 5 frame" in note
    np.testing.assert_allclose(rebased, relative / relative[:, :5].mean(axis=1, keepdims=True))
    assert _arterial_baseline(relative, t, None) == (relative, None)
