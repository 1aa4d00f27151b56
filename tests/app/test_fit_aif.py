"""One AIF, one grid: the AIF TSV holds the AIF exactly as the fit uses it."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np

import bidsapp
from bidsapp.config import AIFChoice
from bidsapp.session_steps import aif_step, population_grid, read_aif


def _aif_inputs(folder, t):
    affine = np.diag([3.0, 3.0, 5.0, 1.0])
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2, t.size), np.float32), affine), folder / "conc.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 2), np.uint8), affine), folder / "mask.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 2), np.float32), affine), folder / "t1.nii.gz")
    (folder / "acq.json").write_text(json.dumps({"VolumeTiming": t.tolist(), "BolusArrivalTime": 20.0}))
    return [str(folder / n) for n in ("conc.nii.gz", "mask.nii.gz", "acq.json", "t1.nii.gz")]


def test_population_aif_is_written_on_its_fine_grid_and_read_back_exactly(tmp_path, monkeypatch):
    t = np.arange(40) * 4.7
    conc, mask, acq, t1 = _aif_inputs(tmp_path, t)
    monkeypatch.chdir(tmp_path)
    out = aif_step(conc, mask, acq, t1, AIFChoice("population", "parker"), 0.42, str(tmp_path))
    aif, times = read_aif(out["tsv"], t)
    np.testing.assert_array_equal(times, population_grid(t))
    assert times[0] == t[0] and times[-1] == t[-1] and np.diff(times).max() <= 0.5 + 1e-12
    # written once, exactly: the fit reads the very samples of the analytic curve
    np.testing.assert_array_equal(
        aif, bidsapp.population_aif("parker", times, bolus_arrival=20.0, hematocrit=0.42)
    )
    sidecar = json.loads(Path(out["json"]).read_text())
    assert sidecar["PopulationAIF"] == {"Name": "parker", "BolusArrival": 20.0, "BolusArrivalUnits": "s"}
    assert sidecar["Grid"].startswith("frame intervals in equal sub-steps")


def test_a_table_aif_is_used_at_the_frames(tmp_path, monkeypatch):
    t = np.arange(40) * 4.7
    frames = bidsapp.population_aif("parker", t, bolus_arrival=20.0, hematocrit=0.42)
    table = tmp_path / "user.tsv"
    np.savetxt(table, np.c_[t, frames], header="time\tplasma", comments="", delimiter="\t")
    conc, mask, acq, t1 = _aif_inputs(tmp_path, t)
    monkeypatch.chdir(tmp_path)
    out = aif_step(conc, mask, acq, t1, AIFChoice.parse(str(table)), 0.42, str(tmp_path))
    aif, times = read_aif(out["tsv"], t)
    assert times is None
    np.testing.assert_allclose(aif, frames, rtol=1e-12)
    assert json.loads(Path(out["json"]).read_text())["Grid"] == "frames"


def test_auto_fallback_reports_its_population_curve():
    """A detection that falls back keeps the population curve's arrival, so the fit can
    re-evaluate it between frames."""
    t = np.arange(40) * 5.0
    noise = np.random.default_rng(0).normal(0, 0.01, (4, 4, 2, t.size))
    result = bidsapp.detect_aif(noise, t, fallback="parker")
    assert result.source == "population:parker" and result.bolus_arrival is not None
    np.testing.assert_allclose(
        result.plasma,
        bidsapp.population_aif("parker", t, bolus_arrival=result.bolus_arrival, hematocrit=0.45),
    )
