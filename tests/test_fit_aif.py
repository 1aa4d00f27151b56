"""The fit step gives analytic population AIFs to the fit on a fine grid."""

import numpy as np

import bidsapp
from bidsapp.session_steps import fit_aif


def test_population_aif_is_resampled_finely_and_matches_the_frames(tmp_path):
    t = np.arange(40) * 4.7
    tsv = tmp_path / "aif.tsv"
    frames = bidsapp.population_aif("parker", t, bolus_arrival=20.0, hematocrit=0.42)
    np.savetxt(tsv, np.c_[t, frames, frames * 0.58], header="time\tplasma\tblood", comments="", delimiter="\t")
    info = {"Hematocrit": 0.42, "PopulationAIF": {"Name": "parker", "BolusArrival": 20.0}}
    aif, times = fit_aif(tsv, info, t)
    assert times[0] == t[0] and times[-1] == t[-1] and np.diff(times).max() <= 0.5 + 1e-12
    np.testing.assert_allclose(np.interp(t, times, aif), frames, rtol=1e-12, atol=1e-12)
    # without analytic parameters the table is used as it is, at the frames
    aif, times = fit_aif(tsv, {"Hematocrit": 0.42}, t)
    assert times is None
    np.testing.assert_allclose(aif, frames, rtol=1e-9)


def test_auto_fallback_reports_its_population_curve():
    """A detection that falls back keeps the population curve's arrival, so the fit can
    re-evaluate it between frames."""
    t = np.arange(40) * 5.0
    noise = np.random.default_rng(0).normal(0, 0.01, (4, 4, 2, t.size))
    result = bidsapp.detect_aif(noise, t, fallback="parker")
    assert result.source == "population:parker" and result.bolus_arrival is not None
    np.testing.assert_allclose(
        result.plasma, bidsapp.population_aif("parker", t, bolus_arrival=result.bolus_arrival, hematocrit=0.45))
