"""Whole studies: BIDS validity, truth layout, DICOM readable by pydicom and dcm2niix, CLI."""

import csv
import io
import json
import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
import pytest
from tools import bids_validator_errors, tool

from bidsapp.simulate import Grid, Protocol, make_phantom, simulate_study, simulate_subject
from bidsapp.simulate.cli import main
from bidsapp.simulate.dicom_writer import SIMULATION_JSON, write_dicom_session

pytestmark = pytest.mark.slow

GRID = Grid(matrix=(32, 32, 4), voxel_size=(6.875, 6.875, 8.0))
PROTOCOL = Protocol(n_frames=10, baseline_frames=3, b1_amplitude=0.1, motion=0.5)
GEOMETRY_WORDS = re.compile(
    r"slice|spacing|orient|position|gantry|tilt|geometr|distance|collinear|varies", re.I
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    summary = simulate_study(
        out,
        n_subjects=2,
        n_sessions=2,
        fmt="both",
        seed=4,
        protocol=PROTOCOL,
        grid=GRID,
        vendor="ge",
        dose_pairs=True,
    )
    return out, summary


def test_raw_bids_passes_the_validator(study):
    out, _ = study
    # warnings (recommended scanner fields a simulation cannot have) are accepted
    assert bids_validator_errors(out) == []
    assert (out / ".bidsignore").read_text().splitlines() == ["*_dce.*"]


def test_truth_derivative_passes_the_validator(study):
    out, _ = study
    assert bids_validator_errors(out / "derivatives" / "truth") == []
    desc = json.loads((out / "derivatives/truth/dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"


def test_raw_layout_and_sidecars(study):
    out, summary = study
    ses = out / "sub-01" / "ses-02"
    for i, angle in enumerate(PROTOCOL.vfa_flip_angles, start=1):
        sidecar = json.loads((ses / f"anat/sub-01_ses-02_flip-{i}_VFA.json").read_text())
        assert sidecar["FlipAngle"] == angle and sidecar["RepetitionTimeExcitation"] == PROTOCOL.vfa_tr
        assert sidecar["PulseSequenceType"] == "SPGR"
    dce = json.loads((ses / "perf/sub-01_ses-02_dce.json").read_text())
    assert dce["VolumeTiming"] == pytest.approx(list(PROTOCOL.frame_times))
    assert "RepetitionTime" not in dce
    assert dce["ContrastBolusIngredient"] == "GADOLINIUM" and dce["MagneticFieldStrength"] == 3.0
    img = nib.load(ses / "perf/sub-01_ses-02_dce.nii.gz")
    assert (
        img.shape == GRID.matrix + (PROTOCOL.n_frames,)
        and img.header.get_zooms()[3] == PROTOCOL.temporal_resolution
    )
    np.testing.assert_allclose(img.affine, GRID.affine)
    assert json.loads((ses / "fmap/sub-01_ses-02_TB1map.json").read_text())["Units"] == "percent"
    for name in ("T1w", "acq-lowdose_ce-gadobutrol_T1w", "acq-fulldose_ce-gadobutrol_T1w"):
        assert (ses / f"anat/sub-01_ses-02_{name}.nii.gz").exists()
    with open(out / "participants.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert {r["participant_id"]: r["grade"] for r in rows} == {
        f"sub-{s}": g for s, g in summary.groups.items()
    }


def test_truth_layout_and_test_retest(study):
    out, _ = study
    truth = out / "derivatives" / "truth"
    load = lambda rel: nib.load(truth / rel).get_fdata()  # noqa: E731
    for param in ("Ktrans", "ve", "vp", "kep"):
        a = load(f"sub-02/ses-01/perf/sub-02_ses-01_desc-truth_{param}.nii.gz")
        b = load(f"sub-02/ses-02/perf/sub-02_ses-02_desc-truth_{param}.nii.gz")
        np.testing.assert_array_equal(a, b)  # same truth in both sessions
    c1 = load("sub-02/ses-01/perf/sub-02_ses-01_desc-truth_dce.nii.gz")
    c2 = load("sub-02/ses-02/perf/sub-02_ses-02_desc-truth_dce.nii.gz")
    assert not np.allclose(c1, c2)  # AIF amplitude/arrival vary per session
    v1 = nib.load(out / "sub-02/ses-01/anat/sub-02_ses-01_flip-1_VFA.nii.gz").get_fdata()
    v2 = nib.load(out / "sub-02/ses-02/anat/sub-02_ses-02_flip-1_VFA.nii.gz").get_fdata()
    assert not np.allclose(v1, v2)  # independent noise
    with open(truth / "sub-02/ses-01/perf/sub-02_ses-01_desc-truth_timeseries.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert list(rows[0]) == ["time", "plasma", "blood"] and len(rows) == PROTOCOL.n_frames
    aif = json.loads((truth / "sub-02/ses-01/perf/sub-02_ses-01_desc-truth_timeseries.json").read_text())
    assert aif["BolusArrivalTime"] >= PROTOCOL.earliest_arrival and aif["ContrastBolusDose"] == PROTOCOL.dose
    dseg = load("sub-02/ses-01/anat/sub-02_ses-01_desc-truth_dseg.nii.gz")
    with open(truth / "dseg.tsv") as fh:
        labels = {int(r["index"]) for r in csv.DictReader(fh, delimiter="\t")}
    assert set(np.unique(dseg).astype(int)) <= labels
    for name in ("desc-truth_T1map", "desc-truth_M0map", "acq-fulldose_desc-truth_enhancement"):
        assert (truth / f"sub-02/ses-01/anat/sub-02_ses-01_{name}.nii.gz").exists()
    with open(truth / "participants.tsv") as fh:
        rows = {r["participant_id"]: r for r in csv.DictReader(fh, delimiter="\t")}
    assert float(rows["sub-01"]["tumour_rim_Ktrans"]) > 0 and rows["sub-01"]["grade"] in ("low", "high")


def test_every_dicom_file_is_read_by_pydicom(study):
    out, _ = study
    for folder in sorted((out / "sourcedata" / "dicom").glob("sub-*/ses-*")):
        info = json.loads((folder / SIMULATION_JSON).read_text())
        files = [f for f in folder.iterdir() if f.name != SIMULATION_JSON]
        assert len(files) == sum(s["n_files"] for s in info["series"])
        by_series = {}
        for f in files:
            ds = pydicom.dcmread(f)
            assert (
                ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
                and ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
            )
            assert ds.pixel_array.shape == (GRID.matrix[1], GRID.matrix[0])
            by_series.setdefault(ds.SeriesInstanceUID, []).append(ds)
        # the cached-element encoder writes exactly what pydicom's own writer writes
        rewritten = io.BytesIO()
        pydicom.dcmread(files[0]).save_as(rewritten, enforce_file_format=True)
        assert rewritten.getvalue() == files[0].read_bytes()
        roles = {s["SeriesInstanceUID"]: s for s in info["series"]}
        assert set(by_series) == set(roles)
        for uid, datasets in by_series.items():
            record = roles[uid]
            assert float(datasets[0].FlipAngle) == record["FlipAngle"]
            if record["role"] == "dce":
                assert datasets[0].ContrastBolusAgent == PROTOCOL.agent
                assert sorted({int(d.TemporalPositionIdentifier) for d in datasets}) == list(
                    range(1, PROTOCOL.n_frames + 1)
                )
                assert sorted({float(d.TriggerTime) for d in datasets}) == pytest.approx(
                    1000 * PROTOCOL.frame_times
                )


def run_dcm2niix(dicom_dir, out_dir):
    out_dir.mkdir()
    result = subprocess.run(
        [tool("dcm2niix"), "-b", "y", "-z", "y", "-f", "%s", "-o", str(out_dir), str(dicom_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "warning" in line.lower()]
    return [w for w in warnings if GEOMETRY_WORDS.search(w)]


@pytest.mark.parametrize("vendor", ["siemens", "ge", "philips"])
def test_dcm2niix_converts_every_series_without_geometry_warnings(tmp_path, vendor):
    phantom = make_phantom(2, GRID)
    sim = simulate_subject(phantom, PROTOCOL.replace(motion=0.0), rng=3)
    info = write_dicom_session(tmp_path / "dicom", "01", None, sim, vendor=vendor, vfa_separate_study=True)
    assert run_dcm2niix(tmp_path / "dicom", tmp_path / "nii") == []
    vfa_studies = {s["StudyInstanceUID"] for s in info["series"] if s["role"] == "vfa"}
    assert len(vfa_studies) == 1 and vfa_studies != {info["StudyInstanceUID"]}
    for record in info["series"]:
        img = nib.load(tmp_path / "nii" / f"{record['SeriesNumber']}.nii.gz")
        # dcm2niix may store 3-D and 4-D series with different axis flips: compare in
        # physical space (same voxel grid as the BIDS writer after reorientation)
        ornt = nib.orientations.ornt_transform(
            nib.io_orientation(img.affine), nib.io_orientation(GRID.affine)
        )
        img = img.as_reoriented(ornt)
        np.testing.assert_allclose(img.affine, GRID.affine, atol=1e-3)
        data = np.asarray(img.dataobj, dtype=float)
        if record["role"] == "dce":
            expected = sim.dce
        else:
            expected = sim.vfa[..., list(PROTOCOL.vfa_flip_angles).index(record["FlipAngle"])]
        assert data.shape == expected.shape
        gain = 1.0 if vendor != "siemens" else record["StoredValueScale"]  # siemens: no rescale tags
        bright = expected > 0.2 * expected.max()
        np.testing.assert_allclose(data[bright], gain * expected[bright], rtol=0.02)


def test_cli_writes_a_study_and_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "cli"
    args = [
        str(out),
        "--subjects",
        "1",
        "--format",
        "dicom",
        "--matrix",
        "24,24,2",
        "--frames",
        "6",
        "--baseline-frames",
        "2",
        "--vendor",
        "philips",
        "--quiet",
    ]
    assert main(args) == 0
    assert (out / "sourcedata/dicom/sub-01" / SIMULATION_JSON).exists()
    assert (out / "derivatives/truth/sub-01/perf/sub-01_desc-truth_Ktrans.nii.gz").exists()
    assert not (out / "dataset_description.json").exists()  # dicom only: no raw BIDS
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert main([str(tmp_path / "x"), "--agent", "no-such-agent", "--quiet"]) == 2
    assert "agent" in capsys.readouterr().err.lower()
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    with pytest.raises(SystemExit) as err:
        main([str(tmp_path / "y"), "--matrix", "64,64"])
    assert err.value.code == 2


def test_cli_module_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bidsapp.simulate.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--vendor" in result.stdout


def test_same_seed_gives_the_same_study(tmp_path):
    tiny = dict(
        n_subjects=1,
        fmt="both",
        grid=Grid(matrix=(16, 16, 2), voxel_size=(12.0, 12.0, 10.0)),
        protocol=Protocol(n_frames=4, baseline_frames=2),
    )
    runs = [
        simulate_study(tmp_path / name, seed=seed, **tiny) for name, seed in (("a", 8), ("b", 8), ("c", 9))
    ]
    assert runs[0].sessions == runs[1].sessions != runs[2].sessions
    dicom = [
        {f.name: f.read_bytes() for f in (tmp_path / n / "sourcedata/dicom/sub-01").iterdir()}
        for n in ("a", "b")
    ]
    assert dicom[0] == dicom[1]
    dce = [nib.load(tmp_path / n / "sub-01/perf/sub-01_dce.nii.gz").get_fdata() for n in ("a", "b", "c")]
    np.testing.assert_array_equal(dce[0], dce[1])
    assert not np.array_equal(dce[0], dce[2])
