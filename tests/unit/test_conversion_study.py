"""End-to-end conversion of synthetic DICOM studies (pydicom-made, see dicom_factory)."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from dicom_factory import oblique_affine, phantom, tm, write_enhanced, write_series
from tools import bids_validator_errors

from bidsapp.conversion import convert_dicom_study, plan_conversion
from bidsapp.conversion.cli import main as convert_main

pytestmark = pytest.mark.slow

SHAPE = (8, 6, 4)
N_VOL = 10
TIMES = np.arange(N_VOL) * 3.5
ANGLES = (15.0, 2.0, 5.0)  # written out of order on purpose
CONTRAST = {
    "ContrastBolusAgent": "Gadovist",
    "ContrastBolusVolume": 7.5,
    "ContrastBolusTotalDose": 7.5,
    "ContrastBolusIngredient": "GADOLINIUM",
    "ContrastBolusIngredientConcentration": 604.72,
    "ContrastBolusStartTime": tm(36000.0 + 12.0),
}


def make_study(folder, vendor="siemens", with_t2=True):
    """Dynamic (4 slices × 10 volumes), three flip-angle series, a T2 series with the same matrix."""
    aff = oblique_affine()
    truth = {"affine": aff, "dce": phantom(SHAPE + (N_VOL,), 1), "vfa": {}}
    write_series(
        folder,
        truth["dce"],
        aff,
        vendor=vendor,
        series_number=9,
        description="dyn",
        flip=12.0,
        times=TIMES,
        slice_dt=0.25,
        contrast=CONTRAST,
    )
    for i, angle in enumerate(ANGLES):
        truth["vfa"][angle] = phantom(SHAPE, 10 + i)
        # all flip-angle series share one SeriesNumber
        write_series(
            folder,
            truth["vfa"][angle],
            aff,
            vendor=vendor,
            series_number=4,
            description="vfa",
            flip=angle,
            start=35000.0 + 60 * i,
        )
    if with_t2:
        write_series(
            folder,
            phantom(SHAPE, 30),
            aff,
            vendor=vendor,
            series_number=5,
            description="ax_tse",
            flip=90.0,
            tr=3.5,
            te=0.095,
            seq="SE",
            start=34000.0,
        )
    (folder / "notes.txt").write_text("not DICOM")
    return truth


@pytest.mark.parametrize("vendor", ["siemens", "ge", "philips"])
def test_vendor_study_converts_exactly(tmp_path, vendor):
    truth = make_study(tmp_path / "dicom", vendor)
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01", session_label="1")
    assert result.ok, result.errors
    sub = tmp_path / "bids" / "sub-01" / "ses-1"
    dce = nib.load(sub / "perf" / "sub-01_ses-1_dce.nii.gz")
    assert np.array_equal(dce.get_fdata(), truth["dce"])
    assert np.allclose(dce.affine, truth["affine"], atol=1e-4)
    side = json.loads((sub / "perf" / "sub-01_ses-1_dce.json").read_text())
    assert np.allclose(side["VolumeTiming"], TIMES, atol=1e-3)
    assert side["FlipAngle"] == 12.0 and side["RepetitionTimeExcitation"] == pytest.approx(0.005)
    assert side["EchoTime"] == pytest.approx(0.002) and side["MagneticFieldStrength"] == 3.0
    assert side["ContrastBolusAgent"] == "Gadovist" and side["ContrastBolusIngredient"] == "GADOLINIUM"
    assert side["ContrastBolusTotalDose"] == 7.5 and side["ContrastBolusIngredientConcentration"] == 604.72
    assert side["ContrastBolusStartTime"] == pytest.approx(12.0, abs=1e-3)
    assert side["Manufacturer"]
    for index, angle in enumerate(sorted(ANGLES), start=1):
        img = nib.load(sub / "anat" / f"sub-01_ses-1_flip-{index}_VFA.nii.gz")
        assert np.array_equal(img.get_fdata(), truth["vfa"][angle])
        assert np.allclose(img.affine, truth["affine"], atol=1e-4)
        vfa_side = json.loads((sub / "anat" / f"sub-01_ses-1_flip-{index}_VFA.json").read_text())
        assert vfa_side["FlipAngle"] == angle and vfa_side["PulseSequenceType"] == "SPGR"
        assert vfa_side["RepetitionTimeExcitation"] == pytest.approx(0.005)
    # the T2 series with the VFA matrix is anatomy, not a flip angle
    assert (sub / "anat" / "sub-01_ses-1_T2w.nii.gz").exists()
    assert not (sub / "anat" / "sub-01_ses-1_flip-4_VFA.nii.gz").exists()
    log = json.loads((tmp_path / "bids/sourcedata/dcequant-convert/sub-01_ses-1_provenance.json").read_text())
    assert sorted(s["role"] for s in log["series"]) == ["T2w", "dce", "vfa", "vfa", "vfa"]
    assert any("notes.txt" in n and "not a DICOM" in n for n in log["notes"])
    vfa_entries = [s for s in log["series"] if s["role"] == "vfa"]
    assert all(s["details"]["grid_matches_dce"] for s in vfa_entries)
    assert bids_validator_errors(tmp_path / "bids") == []


def test_rerun_is_idempotent_and_never_overwrites_silently(tmp_path):
    make_study(tmp_path / "dicom", with_t2=False)
    first = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    files = sorted(p for p in (tmp_path / "bids").rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    second = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    assert first.ok and second.ok
    assert {r.status for r in second.entries} == {"unchanged"}
    assert {p: p.read_bytes() for p in files} == before
    assert sorted(p for p in (tmp_path / "bids").rglob("*") if p.is_file()) == files
    # a different existing file is kept unless --overwrite
    dce_json = tmp_path / "bids/sub-01/perf/sub-01_dce.json"
    dce_json.write_text("{}\n")
    third = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    assert not third.ok and any("--overwrite" in e for e in third.errors)
    assert dce_json.read_text() == "{}\n"
    fourth = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01", overwrite=True)
    assert fourth.ok and dce_json.read_bytes() == before[dce_json]


def test_participants_rows_are_added_not_clobbered(tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "participants.tsv").write_text("participant_id\tage\nsub-00\t50\n")
    make_study(tmp_path / "dicom", with_t2=False)
    assert convert_dicom_study(tmp_path / "dicom", bids, "sub-01").ok
    lines = (bids / "participants.tsv").read_text().splitlines()
    assert lines == ["participant_id\tage", "sub-00\t50", "sub-01\tn/a"]
    assert (bids / ".bidsignore").read_text().splitlines() == ["*_dce.*"]
    assert json.loads((bids / "dataset_description.json").read_text())["BIDSVersion"]


def test_dry_run_prints_plan_and_writes_nothing(tmp_path, capsys):
    make_study(tmp_path / "dicom")
    code = convert_main(
        [str(tmp_path / "dicom"), str(tmp_path / "bids"), "--participant-label", "01", "--dry-run"]
    )
    out = capsys.readouterr().out
    assert code == 0 and not (tmp_path / "bids").exists()
    assert "perf/sub-01_dce.nii.gz" in out and "anat/sub-01_flip-3_VFA.nii.gz" in out and "T2w" in out


def test_single_slice_vfa_in_other_study_with_acquisition_time_only_across_midnight(tmp_path):
    """Flip-angle images are separate series of a different study; timing only in AcquisitionTime."""
    aff = np.diag([-1.2, 1.2, 4.0, 1.0])
    aff[:3, 3] = [30.0, 40.0, -2.0]
    dyn = phantom((6, 5, 1, 30), 3)
    times = np.cumsum(np.r_[0.0, np.full(29, 2.4)])
    write_series(
        tmp_path / "dicom",
        dyn,
        aff,
        vendor="acqtime",
        series_number=3,
        description="dyn",
        times=times,
        start=86400.0 - 30.0,
        study_uid="1.2.3.4.100",
    )
    vfa = {}
    for i, angle in enumerate((20.0, 3.0, 8.0, 14.0, 5.0, 11.0)):
        vfa[angle] = phantom((6, 5, 1), 40 + i)
        write_series(
            tmp_path / "dicom",
            vfa[angle],
            aff,
            vendor="acqtime",
            series_number=20 + i,
            description=f"fa{angle:g}",
            flip=angle,
            start=80000.0 + i,
            study_uid="1.2.3.4.200",
        )
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "02")
    assert result.ok, result.errors
    img = nib.load(tmp_path / "bids/sub-02/perf/sub-02_dce.nii.gz")
    assert img.shape == (6, 5, 1, 30) and np.array_equal(img.get_fdata(), dyn)
    assert np.allclose(img.affine, aff, atol=1e-4)
    side = json.loads((tmp_path / "bids/sub-02/perf/sub-02_dce.json").read_text())
    assert np.allclose(side["VolumeTiming"], times, atol=1e-3)
    for index, angle in enumerate(sorted(vfa), start=1):
        v = nib.load(tmp_path / f"bids/sub-02/anat/sub-02_flip-{index}_VFA.nii.gz")
        assert np.array_equal(v.get_fdata(), vfa[angle]) and np.allclose(v.affine, aff, atol=1e-4)


def test_vfa_set_stored_in_one_series(tmp_path):
    aff = oblique_affine()
    data = {a: phantom(SHAPE, int(a)) for a in (3.0, 9.0, 18.0)}
    uid = "1.2.3.4.55"
    for angle, vol in data.items():
        write_series(
            tmp_path / "dicom", vol, aff, series_number=6, description="vfa_all", flip=angle, series_uid=uid
        )
    plan = plan_conversion(tmp_path / "dicom", "01")
    assert sorted(e.assignment.flip_index for e in plan.entries_with_role("vfa")) == [1, 2, 3]
    convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    img = nib.load(tmp_path / "bids/sub-01/anat/sub-01_flip-2_VFA.nii.gz")
    assert np.array_equal(img.get_fdata(), data[9.0])


def test_slice_spacing_comes_from_positions_not_thickness(tmp_path):
    aff = np.diag([-1.0, 1.0, 5.0, 1.0])
    vol = phantom((4, 4, 3, 4), 2)
    write_series(
        tmp_path / "dicom",
        vol,
        aff,
        series_number=1,
        description="dyn",
        times=np.arange(4) * 2.0,
        extra={"SliceThickness": 3.0},
    )
    convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    img = nib.load(tmp_path / "bids/sub-01/perf/sub-01_dce.nii.gz")
    assert np.allclose(img.affine, aff, atol=1e-4)


def test_rescale_slope_and_philips_private_scale(tmp_path):
    aff = np.diag([-1.0, 1.0, 2.0, 1.0])
    vol = phantom((4, 4, 2), 5) * 0.5
    write_series(
        tmp_path / "dicom",
        vol,
        aff,
        vendor="philips",
        series_number=1,
        description="a",
        flip=4.0,
        slope=0.5,
        philips_scale=2.0,
    )
    write_series(
        tmp_path / "dicom", vol, aff, vendor="ge", series_number=2, description="b", flip=9.0, slope=0.5
    )
    convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    philips = nib.load(tmp_path / "bids/sub-01/anat/sub-01_flip-1_VFA.nii.gz").get_fdata()
    ge = nib.load(tmp_path / "bids/sub-01/anat/sub-01_flip-2_VFA.nii.gz").get_fdata()
    assert np.allclose(ge, vol)
    assert np.allclose(philips, vol / (0.5 * 2.0))  # (SV·RS + RI) / (RS·SS)


def test_enhanced_multiframe_dynamic(tmp_path):
    aff = oblique_affine()
    dyn = phantom(SHAPE + (5,), 8)
    write_enhanced(tmp_path / "dicom" / "enh.dcm", dyn, aff, times=np.arange(5) * 4.0, start=86390.0)
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    assert result.ok, result.errors
    img = nib.load(tmp_path / "bids/sub-01/perf/sub-01_dce.nii.gz")
    assert np.array_equal(img.get_fdata(), dyn) and np.allclose(img.affine, aff, atol=1e-4)
    side = json.loads((tmp_path / "bids/sub-01/perf/sub-01_dce.json").read_text())
    assert np.allclose(side["VolumeTiming"], np.arange(5) * 4.0, atol=1e-3)


def test_user_rules_override_roles_and_add_sidecar_fields(tmp_path):
    make_study(tmp_path / "dicom")
    config = tmp_path / "rules.json"
    config.write_text(
        json.dumps(
            {
                "rules": [
                    {"name": "tse is ignored", "match": {"SeriesDescription": "*TSE*"}, "role": "ignore"},
                    {"match": {"AutoRole": "dce"}, "sidecar": {"ContrastBolusAgent": "gadobutrol"}},
                ]
            }
        )
    )
    code = convert_main(
        [
            str(tmp_path / "dicom"),
            str(tmp_path / "bids"),
            "--participant-label",
            "01",
            "--config",
            str(config),
        ]
    )
    assert code == 0
    assert not (tmp_path / "bids/sub-01/anat/sub-01_T2w.nii.gz").exists()
    side = json.loads((tmp_path / "bids/sub-01/perf/sub-01_dce.json").read_text())
    assert side["ContrastBolusAgent"] == "gadobutrol"
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": [{"match": {}, "role": "dynamic"}]}')
    assert (
        convert_main(
            [str(tmp_path / "dicom"), str(tmp_path / "b2"), "--participant-label", "01", "--config", str(bad)]
        )
        == 2
    )


def test_post_contrast_dose_pair_gets_ce_and_acq_entities(tmp_path):
    aff = np.diag([-1.0, 1.0, 2.0, 1.0])
    dicom = tmp_path / "dicom"
    write_series(
        dicom,
        phantom((4, 4, 2, 4), 1),
        aff,
        series_number=30,
        description="dyn",
        times=np.arange(4.0),
        start=1000.0,
        contrast={"ContrastBolusAgent": "gadobutrol", "ContrastBolusTotalDose": 10.0},
    )
    write_series(
        dicom, phantom((4, 4, 2), 2), aff, series_number=20, description="t1_pre", tr=0.008, start=900.0
    )
    for n, (dose, start) in enumerate(((2.5, 1200.0), (10.0, 1400.0))):
        write_series(
            dicom,
            phantom((4, 4, 2), 3 + n),
            aff,
            series_number=40 + n,
            description="t1_post",
            tr=0.008,
            start=start,
            contrast={"ContrastBolusAgent": "gadobutrol", "ContrastBolusTotalDose": dose},
        )
    plan = plan_conversion(dicom, "01", bids_dir=tmp_path / "bids")
    names = sorted(e.target.name for e in plan.entries if e.role == "T1w")
    assert names == [
        "sub-01_T1w.nii.gz",
        "sub-01_acq-fulldose_ce-gadobutrol_T1w.nii.gz",
        "sub-01_acq-lowdose_ce-gadobutrol_T1w.nii.gz",
    ]


# --- bad input: each names the series, the rest still converts -------------------------


def _first_dicom(folder, description, instance=None):
    """A file of the series ``description`` (with InstanceNumber ``instance`` if given)."""
    import pydicom

    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix != ".txt":
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            if ds.SeriesDescription == description and instance in (None, ds.InstanceNumber):
                return p
    raise AssertionError(description)


def test_truncated_and_non_dicom_files_are_noted(tmp_path):
    make_study(tmp_path / "dicom")
    victim = _first_dicom(tmp_path / "dicom", "ax_tse", instance=2)  # a middle slice
    victim.write_bytes(victim.read_bytes()[:-10])  # pixel data cut short
    cut_header = _first_dicom(tmp_path / "dicom", "vfa", instance=3)
    cut_header.write_bytes(cut_header.read_bytes()[:-200])  # header cut short
    (tmp_path / "dicom" / "empty.dcm").write_bytes(b"")
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    assert any("truncated file of series 5 'ax_tse'" in n for n in result.plan.notes)
    assert any("no pixel data in file of series 4 'vfa'" in n for n in result.plan.notes)
    assert any("empty.dcm" in n for n in result.plan.notes)
    assert any(e.startswith("series 5 'ax_tse'") and "slices missing?" in e for e in result.errors)
    assert any(e.startswith("series 4 'vfa'") and "vfa not converted" in e for e in result.errors)
    assert (tmp_path / "bids/sub-01/perf/sub-01_dce.nii.gz").exists()
    assert (tmp_path / "bids/sub-01/anat/sub-01_flip-2_VFA.nii.gz").exists()


def test_missing_dynamic_frame_is_reported_and_vfa_still_converts(tmp_path, capsys):
    make_study(tmp_path / "dicom", vendor="philips")
    _first_dicom(tmp_path / "dicom", "dyn", instance=7).unlink()
    code = convert_main([str(tmp_path / "dicom"), str(tmp_path / "bids"), "--participant-label", "01"])
    err = capsys.readouterr().err
    assert code == 1 and "series 9 'dyn'" in err and "dce not converted" in err
    assert not (tmp_path / "bids/sub-01/perf/sub-01_dce.nii.gz").exists()
    assert (tmp_path / "bids/sub-01/anat/sub-01_flip-1_VFA.nii.gz").exists()


def test_single_slice_missing_temporal_position_is_an_error(tmp_path):
    aff = np.diag([-1.0, 1.0, 3.0, 1.0])
    paths = write_series(
        tmp_path / "dicom",
        phantom((4, 4, 1, 6), 1),
        aff,
        vendor="philips",
        series_number=2,
        description="dyn",
        times=np.arange(6) * 2.0,
    )
    paths[3].unlink()
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    assert any("series 2 'dyn'" in e and "missing temporal positions [4]" in e for e in result.errors)


def test_duplicate_instances_are_dropped_with_a_note(tmp_path):
    truth = make_study(tmp_path / "dicom", with_t2=False)
    original = _first_dicom(tmp_path / "dicom", "dyn")
    shutil.copy(original, tmp_path / "dicom" / "copy_of_frame")
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    assert result.ok, result.errors
    assert any("series 9 'dyn'" in n and "duplicate instance" in n for n in result.plan.notes)
    img = nib.load(tmp_path / "bids/sub-01/perf/sub-01_dce.nii.gz")
    assert np.array_equal(img.get_fdata(), truth["dce"])


def test_missing_flip_angle_is_named_and_the_rest_converts(tmp_path):
    aff = oblique_affine()
    for i, angle in enumerate((2.0, 6.0, 12.0, 20.0)):
        write_series(
            tmp_path / "dicom",
            phantom(SHAPE, i),
            aff,
            series_number=10 + i,
            description=f"vfa{i}",
            flip=None if i == 1 else angle,
            tr=None if i == 3 else 0.005,
        )
    write_series(
        tmp_path / "dicom",
        phantom(SHAPE + (4,), 9),
        aff,
        series_number=3,
        description="dyn",
        flip=None,
        times=np.arange(4.0),
    )
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    assert any("series 11 'vfa1'" in e and "FlipAngle missing" in e for e in result.errors)
    assert any("series 13 'vfa3'" in e and "RepetitionTime missing" in e for e in result.errors)
    assert any("series 3 'dyn'" in e and "FlipAngle" in e for e in result.errors)
    assert (tmp_path / "bids/sub-01/anat/sub-01_flip-2_VFA.nii.gz").exists()
    assert not (tmp_path / "bids/sub-01/anat/sub-01_flip-3_VFA.nii.gz").exists()
    assert not (tmp_path / "bids/sub-01/perf/sub-01_dce.nii.gz").exists()


def test_mixed_geometry_vfa_is_recorded(tmp_path):
    aff = oblique_affine()
    write_series(
        tmp_path / "dicom",
        phantom(SHAPE + (4,), 1),
        aff,
        series_number=1,
        description="dyn",
        times=np.arange(4.0),
    )
    shifted = aff.copy()
    shifted[:3, 3] += [0.0, 0.0, 1.0]
    for i, angle in enumerate((3.0, 12.0)):
        write_series(
            tmp_path / "dicom", phantom(SHAPE, i), shifted, series_number=5 + i, description="vfa", flip=angle
        )
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    assert result.ok
    assert any("not on the dynamic series' grid" in n for n in result.plan.notes)
    vfa = [r for r in result.entries if r.entry.role == "vfa"]
    assert all(r.details["grid_matches_dce"] is False for r in vfa)


def test_failed_write_leaves_no_partial_nifti(tmp_path, monkeypatch):
    make_study(tmp_path / "dicom", with_t2=False)

    def broken_save(img, filename):
        with open(filename, "wb") as fh:
            fh.write(b"\x1f\x8b partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken_save)
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    assert not result.ok and any("disk full" in e for e in result.errors)
    leftovers = [p for p in (tmp_path / "bids").rglob("*.nii*")]
    assert leftovers == []


def test_b1_maps_are_written_in_percent(tmp_path):
    aff = np.diag([-2.0, 2.0, 4.0, 1.0])
    percent = phantom((6, 6, 3), 4, low=70, high=130)
    write_series(
        tmp_path / "a",
        percent,
        aff,
        series_number=8,
        description="B1 map",
        flip=None,
        image_type=("DERIVED", "PRIMARY", "B1", "ND"),
    )
    convert_dicom_study(tmp_path / "a", tmp_path / "bids_a", "01")
    img = nib.load(tmp_path / "bids_a/sub-01/fmap/sub-01_TB1map.nii.gz")
    assert np.allclose(img.get_fdata(), percent)
    assert json.loads((tmp_path / "bids_a/sub-01/fmap/sub-01_TB1map.json").read_text())["Units"] == "percent"
    # Siemens tfl_b1map: 10 × actual flip angle for a nominal 80°
    write_series(
        tmp_path / "b",
        percent * 8.0,
        aff,
        series_number=9,
        description="tfl_b1map",
        flip=80.0,
        tr=5.0,
        image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
    )
    convert_dicom_study(tmp_path / "b", tmp_path / "bids_b", "01")
    img = nib.load(tmp_path / "bids_b/sub-01/fmap/sub-01_TB1map.nii.gz")
    assert np.allclose(img.get_fdata(), percent)
    assert bids_validator_errors(tmp_path / "bids_b") == []


def test_localizer_derived_and_phase_series_are_not_converted(tmp_path):
    make_study(tmp_path / "dicom", with_t2=False)
    axial = np.diag([-2.0, 2.0, 5.0, 1.0])
    sagittal = np.array([[0, 0, -5.0, 0], [-2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 1]])
    for aff in (axial, sagittal):  # one series, two orientations, no localizer in the name
        write_series(
            tmp_path / "dicom",
            phantom((8, 8, 1), 1),
            aff,
            series_number=1,
            description="3plane",
            flip=20.0,
            tr=0.0086,
            series_uid="1.2.3.999",
        )
    write_series(
        tmp_path / "dicom",
        phantom(SHAPE + (N_VOL,), 2),
        oblique_affine(),
        series_number=10,
        description="dyn_SUB",
        flip=12.0,
        times=TIMES,
        image_type=("DERIVED", "SECONDARY", "SUBTRACT"),
    )
    write_series(
        tmp_path / "dicom",
        phantom(SHAPE, 3),
        oblique_affine(),
        series_number=11,
        description="phase",
        flip=15.0,
        image_type=("ORIGINAL", "PRIMARY", "P", "ND"),
    )
    plan = plan_conversion(tmp_path / "dicom", "01")
    roles = [(e.assignment.acq.first.series_number, e.role) for e in plan.entries]
    assert [r for n, r in roles if n in (1, 10, 11)] == ["other"] * 4
    assert [r for _, r in roles].count("vfa") == 3 and [r for _, r in roles].count("dce") == 1


def test_anatomy_goes_through_dcm2niix_and_falls_back_to_nibabel(tmp_path, monkeypatch):
    import bidsapp.conversion.convert as convert_module
    from bidsapp.conversion.dcm2niix_runner import Dcm2niixError

    make_study(tmp_path / "dicom")
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    t2 = next(r for r in result.entries if r.entry.role == "T2w")
    assert t2.details == {"tool": "dcm2niix"}
    via_dcm2niix = nib.load(tmp_path / "bids/sub-01/anat/sub-01_T2w.nii.gz")
    dce = nib.load(tmp_path / "bids/sub-01/perf/sub-01_dce.nii.gz")
    assert np.allclose(via_dcm2niix.affine, dce.affine, atol=1e-4)  # reoriented onto the IPP grid

    def refuse(files, grid):
        raise Dcm2niixError("simulated failure")

    monkeypatch.setattr(convert_module, "run_dcm2niix", refuse)
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids2", "01")
    t2 = next(r for r in result.entries if r.entry.role == "T2w")
    assert t2.details == {"tool": "nibabel", "dcm2niix_fallback_reason": "simulated failure"}
    via_nibabel = nib.load(tmp_path / "bids2/sub-01/anat/sub-01_T2w.nii.gz")
    assert np.array_equal(via_nibabel.get_fdata(), via_dcm2niix.get_fdata())
    assert np.allclose(via_nibabel.affine, via_dcm2niix.affine, atol=1e-4)


def test_rle_compressed_series_convert(tmp_path):
    import pydicom
    from pydicom.uid import RLELossless

    truth = make_study(tmp_path / "dicom", with_t2=False)
    for path in (tmp_path / "dicom").rglob("*"):
        if path.is_file() and path.suffix != ".txt":
            ds = pydicom.dcmread(path)
            ds.compress(RLELossless)
            ds.save_as(path)
    result = convert_dicom_study(tmp_path / "dicom", tmp_path / "bids", "01")
    assert result.ok, result.errors
    assert np.array_equal(nib.load(tmp_path / "bids/sub-01/perf/sub-01_dce.nii.gz").get_fdata(), truth["dce"])


def test_cli_usage_errors_exit_2_with_a_message(tmp_path, capsys):
    assert convert_main([str(tmp_path / "missing"), str(tmp_path / "b"), "--participant-label", "01"]) == 2
    assert "DICOM_DIR" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("x")
    assert convert_main([str(tmp_path / "empty"), str(tmp_path / "b"), "--participant-label", "01"]) == 2
    assert "no DICOM images" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    assert convert_main([str(tmp_path / "empty"), str(tmp_path / "b"), "--participant-label", "a_b"]) == 2
    assert "participant label 'a_b'" in capsys.readouterr().err


def test_low_dose_dynamic_and_multi_echo(tmp_path):
    aff = np.diag([-1.0, 1.0, 2.0, 1.0])
    dicom = tmp_path / "dicom"
    write_series(
        dicom,
        phantom((4, 4, 2, 6), 1),
        aff,
        series_number=8,
        description="dyn_low",
        times=np.arange(6.0),
        start=1000.0,
        contrast={"ContrastBolusAgent": "gadobutrol", "ContrastBolusTotalDose": 2.0},
    )
    uid = "1.2.3.4.77"
    for echo, te in enumerate((0.0015, 0.004), start=1):
        write_series(
            dicom,
            phantom((4, 4, 2, 6), 2 + echo),
            aff,
            series_number=9,
            description="dyn_full",
            te=te,
            times=np.arange(6.0),
            start=2000.0,
            series_uid=uid,
            extra={"EchoNumbers": echo},
            contrast={"ContrastBolusAgent": "gadobutrol", "ContrastBolusTotalDose": 8.0},
        )
    plan = plan_conversion(dicom, "01", bids_dir=tmp_path / "bids")
    got = sorted(
        (
            e.assignment.acq.first.series_number,
            e.assignment.acq.first.echo_number,
            e.role,
            e.target.name if e.target else None,
        )
        for e in plan.entries
    )
    assert got == [
        (8, None, "dce-lowdose", "sub-01_acq-lowdose_dce.nii.gz"),
        (9, 1, "dce", "sub-01_dce.nii.gz"),
        (9, 2, "other", None),
    ]


def test_two_series_forced_to_one_name_are_reported(tmp_path):
    make_study(tmp_path / "dicom")
    rules = {"rules": [{"match": {"SeriesDescription": ["dyn", "ax_tse"]}, "role": "dce"}]}
    plan = plan_conversion(tmp_path / "dicom", "01", config=rules)
    assert any("same BIDS name as series" in p for p in plan.problems)
    assert len([e for e in plan.entries if e.target is not None and e.role == "dce"]) == 1
