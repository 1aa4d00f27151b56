"""Session steps without Nipype and progress reporting (the group ROI helpers are in test_group_level.py)."""

import io
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp import session_steps
from bidsapp.bids_raw import dce_path
from bidsapp.cli.progress import Progress
from bidsapp.config import AIFChoice
from bidsapp.derivatives import Entry, resolve_provenance
from bidsapp.simulate import simulate_study

PARKER = AIFChoice("population", "parker")


@pytest.fixture(scope="module")
def session(simulated_study):
    """One noise-free session (no session label), 12×12×2 voxels of 18×18×5 mm."""
    return simulated_study(matrix=(12, 12, 2), voxel_size=(18.0, 18.0, 5.0), protocol={"snr": np.inf})


def test_fixed_t10_chain_with_a_population_aif(session, tmp_path, monkeypatch):
    """No VFA: --t10, --aif parker, --baseline-frames, tofts fit; each step writes its manifest."""
    monkeypatch.chdir(tmp_path)
    dce = dce_path(session, "01", None)
    t1 = session_steps.fixed_t1_step(dce, 1.3)
    assert np.allclose(nib.load(t1["t1"]).get_fdata(), 1.3)
    conc = session_steps.concentration_step(
        dce, t1["t1"], t1["mask"], None, 4.5, 4, "fixed T10 = 1.3 s", session
    )
    info = json.loads(Path(conc["acquisition"]).read_text())
    assert (
        info["Relaxivity"] == 4.5
        and info["BaselineFrames"] == 4
        and info["RelaxivitySource"].startswith("user")
    )
    aif = session_steps.aif_step(
        conc["conc"], conc["mask"], conc["acquisition"], t1["t1"], PARKER, 0.4, session
    )
    sidecar = json.loads(Path(aif["json"]).read_text())
    assert sidecar["Source"] == "population:parker" and sidecar["Hematocrit"] == 0.4
    table = np.loadtxt(aif["tsv"], skiprows=1)
    np.testing.assert_allclose(table[:, 2], table[:, 1] * 0.6)
    fit = session_steps.fit_step(
        "tofts", conc["conc"], conc["mask"], conc["acquisition"], aif["tsv"], aif["json"], False, "cpu"
    )
    entries = json.loads(Path(fit["manifest"]).read_text())
    names = {(e["suffix"], e["desc"]) for e in entries}
    assert {
        ("Ktrans", "tofts"),
        ("ve", "tofts"),
        ("kep", "tofts"),
        ("Ktrans", "toftsStderr"),
        ("R2map", "tofts"),
        ("mask", "tofts"),
    } <= names
    ktrans = next(e for e in entries if (e["suffix"], e["desc"]) == ("Ktrans", "tofts"))
    assert ktrans["sidecar"]["Units"] == "1/min" and ktrans["sidecar"]["AIF"]["Source"] == "population:parker"
    # subject/session URIs and the T1 method are not the fit's: the datasink adds them
    assert "File" not in ktrans["sidecar"]["AIF"] and "Sources" not in ktrans["sidecar"]
    assert "T1Method" not in ktrans["sidecar"]
    sidecar = resolve_provenance(Entry(**ktrans), "01", "A", {"T1Method": "vfa-linear"})
    assert sidecar["AIF"] == {
        "Source": "population:parker",
        "Quality": None,
        "File": "bids::sub-01/ses-A/perf/sub-01_ses-A_desc-aif_timeseries.tsv",
    }
    assert sidecar["Sources"] == [
        "bids::sub-01/ses-A/perf/sub-01_ses-A_desc-conc_dce.nii.gz",
        sidecar["AIF"]["File"],
    ]
    assert (
        sidecar["T1Method"] == "vfa-linear" and "File" not in ktrans["sidecar"]["AIF"]
    )  # the entry is unchanged
    with pytest.raises(KeyError, match="T1Method"):
        resolve_provenance(Entry(**ktrans), "01", None)


@pytest.mark.parametrize("validity", ["physical", "strict"])
def test_t1_step_writes_the_residual_map_and_counts_poor_fits(session, tmp_path, monkeypatch, validity):
    """Distorted VFA signals: under ``physical`` the poor fits keep their T1 (and the T1
    mask the concentration step uses), under ``strict`` they are dropped; both count them."""
    monkeypatch.chdir(tmp_path)
    vfa = sorted(str(p) for p in (session / "sub-01" / "anat").glob("*_VFA.nii.gz"))
    distorted = []
    for index, path in enumerate(vfa):  # a 25 % bend at the second angle in half the voxels
        img = nib.load(path)
        data = np.asarray(img.dataobj, float)
        if index == 1:
            data[:6] *= 1.25
        target = tmp_path / Path(path).name
        nib.save(nib.Nifti1Image(data.astype(np.float32), img.affine), target)
        Path(str(target).replace(".nii.gz", ".json")).write_text(
            Path(path.replace(".nii.gz", ".json")).read_text()
        )
        distorted.append(str(target))
    out = session_steps.t1_step(distorted, None, "vfa-linear", str(session), validity)
    residual = nib.load(out["residual"]).get_fdata()
    t1, mask = nib.load(out["t1"]).get_fdata(), nib.load(out["mask"]).get_fdata() > 0
    entries = {e["suffix"]: e for e in json.loads(Path(out["manifest"]).read_text())}
    assert entries["T1residual"]["desc"] == "vfa" and entries["T1residual"]["sidecar"]["Units"] == "fraction"
    meta = entries["T1map"]["sidecar"]
    poor = residual > meta["PoorFitResidualThreshold"]
    assert meta["T1Validity"] == validity and meta["NumberOfPoorFitVoxels"] == poor.sum() > 0
    assert poor[:6].any() and not poor[6:].any()
    assert mask[poor].all() == (validity == "physical") and (t1[poor] > 0).all() == (validity == "physical")
    assert meta["NumberOfT1Voxels"] == mask.sum()


def test_report_says_how_many_t1_fits_are_poor():
    from bidsapp.report.subject import _t1_quality

    meta = {
        "T1Validity": "physical",
        "PoorFitResidualThreshold": 0.1,
        "NumberOfT1Voxels": 200,
        "NumberOfPoorFitVoxels": 50,
        "PoorFitVoxelsKept": True,
    }
    text = _t1_quality(meta)
    assert "200 voxels have a T1; 50 (25.0 %) of them are flagged as poor fits" in text and "kept" in text
    text = _t1_quality({**meta, "T1Validity": "strict", "PoorFitVoxelsKept": False})
    assert "200 voxels have a T1; 50 further voxels were poor fits" in text and "dropped" in text
    assert _t1_quality({}) == ""  # derivatives written before the flag existed


def test_one_bolus_arrival_sets_the_baseline_and_the_population_shift(session, tmp_path, monkeypatch):
    """concentration_step records the sub-frame arrival, its method and the frames before it;
    aif_step shifts a population AIF to that same arrival."""
    monkeypatch.chdir(tmp_path)
    dce = dce_path(session, "01", None)
    truth_aif = session / "derivatives/truth/sub-01/perf/sub-01_desc-truth_timeseries.json"
    truth = json.loads(truth_aif.read_text())["BolusArrivalTime"]
    t1 = session_steps.fixed_t1_step(dce, 1.3)
    conc = session_steps.concentration_step(
        dce, t1["t1"], t1["mask"], None, 4.5, None, "fixed T10 = 1.3 s", session
    )
    info = json.loads(Path(conc["acquisition"]).read_text())
    t = np.asarray(info["VolumeTiming"])
    arrival = info["BolusArrivalTime"]
    assert abs(arrival - truth) <= t[1] - t[0] and info["BolusArrivalTimeUnits"] == "s"
    assert "Cheong" in info["BolusArrivalMethod"] and info["BaselineFramesSource"].startswith("detected")
    assert info["BaselineFrames"] == int(np.sum(t < arrival))
    sidecar = json.loads((Path(conc["manifest"]).parent / "manifest.json").read_text())[0]["sidecar"]
    assert sidecar["BolusArrivalTime"] == arrival
    aif = session_steps.aif_step(
        conc["conc"], conc["mask"], conc["acquisition"], t1["t1"], PARKER, 0.45, session
    )
    assert json.loads(Path(aif["json"]).read_text())["PopulationAIF"]["BolusArrival"] == arrival
    too_many = info["BaselineFrames"] + 2
    conc = session_steps.concentration_step(dce, t1["t1"], t1["mask"], None, 4.5, too_many, "fixed", session)
    info = json.loads(Path(conc["acquisition"]).read_text())
    assert info["BaselineFrames"] == too_many and info["BolusArrivalTime"] == arrival
    assert any("after the estimated bolus arrival" in w for w in info["Warnings"])


def test_aif_table_errors_name_the_column(tmp_path):
    path = tmp_path / "aif.tsv"
    path.write_text("t\tplasma\n0\t0\n")
    with pytest.raises(ValueError, match="'time'"):
        session_steps._read_aif_table(path, np.arange(3.0))
    path.write_text("time\tplasma\n0\t0\n1\t1\n")
    with pytest.raises(ValueError, match="spans"):
        session_steps._read_aif_table(path, np.arange(5.0))


def test_aif_choice_placeholders():
    choice = AIFChoice.parse("/d/sub-{subject}/ses-{session}/aif.tsv")
    assert choice.for_session("01", "A") == AIFChoice("table", "/d/sub-01/ses-A/aif.tsv")


def test_signal_mask_drops_background():
    dce = np.zeros((4, 4, 1, 3))
    dce[1:3, 1:3] = 100.0
    dce[0, 0] = 5.0
    assert session_steps.signal_mask(dce).sum() == 4


class _Node:
    def __init__(self, fullname):
        self.fullname = fullname


def test_progress_lines(caplog):
    stream = io.StringIO()
    progress = Progress({"sub-01": 2}, stream=stream, interactive_mode=True)
    progress(_Node("dcequant_wf.sub_01_wf.ses_A_wf.t1map_wf.vfa_t1"), "start")
    progress(_Node("dcequant_wf.sub_01_wf.ses_A_wf.t1map_wf.vfa_t1"), "end")
    assert stream.getvalue().splitlines()[-1] == "[sub-01] 1/2 steps  (ses-A: t1map.vfa_t1 done)"
    progress(_Node("dcequant_wf.sub_01_wf.report"), "end")
    assert stream.getvalue().splitlines()[-1] == "[sub-01] 2/2 steps  (report skipped)"
    plain = Progress({"sub-01": 2}, stream=stream, interactive_mode=False)
    with caplog.at_level(logging.INFO, logger="dcequant"):
        plain(_Node("dcequant_wf.sub_01_wf.report"), "exception")
    assert "[sub-01] 1/2 steps  (report FAILED)" in caplog.text


def test_progress_is_plain_under_ci(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("CI", "true")
    assert not Progress({}, stream=Tty()).interactive
    monkeypatch.delenv("CI")
    assert Progress({}, stream=Tty()).interactive and not Progress({}, stream=io.StringIO()).interactive


def test_demo_grid_gives_an_image_derived_aif(tmp_path, monkeypatch):
    """At the demo's default grid every demo subject's AIF is detected in the image (no
    population fallback), through the same steps the participant workflow runs."""
    from bidsapp.cli.demo import demo_grid

    bids = tmp_path / "bids"
    simulate_study(bids, n_subjects=2, grid=demo_grid(), seed=0)
    for subject in ("01", "02"):
        folder = tmp_path / subject
        folder.mkdir()
        monkeypatch.chdir(folder)
        vfa = [str(p) for p in sorted((bids / f"sub-{subject}" / "anat").glob("*_VFA.nii.gz"))]
        t1 = session_steps.t1_step(vfa, None, "vfa-linear", str(bids))
        dce = str(dce_path(bids, subject, None))
        conc = session_steps.concentration_step(dce, t1["t1"], t1["mask"], None, None, None, "vfa", str(bids))
        aif = session_steps.aif_step(
            conc["conc"],
            conc["mask"],
            conc["acquisition"],
            t1["t1"],
            AIFChoice("auto"),
            0.45,
            str(bids),
            vfa_files=vfa,
        )
        meta = json.loads(Path(aif["json"]).read_text())
        assert meta["Source"] == "image" and meta["NumberOfVoxels"] > 0, meta["Warnings"]
        blood_t1 = meta["BloodT1"]  # the pooled VFA fit the image AIF was converted with, and its uncertainty
        assert blood_t1["Units"] == "s" and blood_t1["Method"].startswith("VFA fit of the mean VFA signal")
        assert 1.4 < blood_t1["Value"] < 2.2 and 0.0 < blood_t1["StandardError"] < 0.1 * blood_t1["Value"]
        assert blood_t1["Voxels"] >= meta["NumberOfVoxels"]
