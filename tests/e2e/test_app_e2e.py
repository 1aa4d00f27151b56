"""End-to-end runs of ``dcequant`` on a tiny noise-free study (2 subjects x 2 sessions)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tools import bids_validator_errors

from bidsapp.cli.run import main
from bidsapp.conversion.cli import main as convert_main
from bidsapp.derivatives import model_label, stderr_label
from bidsapp.simulate import Grid, Protocol, simulate_study

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SUBJECTS, SESSIONS = ("01", "02"), ("01", "02")
MODEL_PARAMS = {"extended_tofts": ("Ktrans", "ve", "vp", "kep"), "patlak": ("Ktrans", "vp")}
GRID = Grid((24, 24, 3), (220 / 24, 220 / 24, 6.0))
NOISE_FREE = Protocol(snr=np.inf)
#: these studies do not move; motion correction would resample every frame (and its MI registration shifts
#: frames by ~0.1 mm at peak enhancement on this 9 mm grid), which the 1 % truth tolerances below do not
#: allow.
#: The motion stage is tested with motion in tests/app/test_motion_app.py.
NO_MOTION = ["--no-motion-correction"]
#: the simulator's true plasma AIF of each session, sampled at the frame times
TRUTH_AIF = (
    "derivatives/truth/sub-{subject}/ses-{session}/perf/sub-{subject}_ses-{session}_desc-truth_timeseries.tsv"
)


def _simulate(root, fmt):
    simulate_study(
        root,
        n_subjects=len(SUBJECTS),
        n_sessions=len(SESSIONS),
        fmt=fmt,
        grid=GRID,
        protocol=NOISE_FREE,
        overwrite=True,
    )
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Noise-free BIDS study processed with the true AIF (for truth recovery)."""
    root = tmp_path_factory.mktemp("e2e")
    bids = _simulate(root / "bids", "bids")
    code = main(
        [
            str(bids),
            str(root / "out"),
            "participant",
            "-w",
            str(root / "work"),
            "--aif",
            str(bids / TRUTH_AIF),
            *NO_MOTION,
        ]
    )
    assert code == 0
    return root


@pytest.fixture(scope="module")
def dicom_study(tmp_path_factory):
    """The same study as DICOM only: sub-01 converted with dcequant-convert, sub-02 left to
    the participant workflow; processed with the true AIF (for truth recovery)."""
    root = tmp_path_factory.mktemp("e2e_dicom")
    bids = _simulate(root / "bids", "dicom")
    for session in SESSIONS:
        dicom = bids / f"sourcedata/dicom/sub-01/ses-{session}"
        assert (
            convert_main([str(dicom), str(bids), "--participant-label", "01", "--session-label", session])
            == 0
        )
    assert not (bids / "sub-02").exists()
    code = main(
        [
            str(bids),
            str(root / "out"),
            "participant",
            "-w",
            str(root / "work"),
            "--aif",
            str(bids / TRUTH_AIF),
            *NO_MOTION,
        ]
    )
    assert code == 0
    return root


def expected_files(subject, session, image_aif):
    """Every derivative of one session (and its sidecar) under the default models."""
    stem, prefix = f"sub-{subject}/ses-{session}", f"sub-{subject}_ses-{session}"
    files = [
        f"{stem}/anat/{prefix}_desc-vfa_T1map",
        f"{stem}/anat/{prefix}_desc-vfa_M0map",
        f"{stem}/anat/{prefix}_desc-vfa_T1residual",
        f"{stem}/perf/{prefix}_desc-conc_dce",
    ] + ([f"{stem}/perf/{prefix}_desc-aif_mask"] if image_aif else [])
    for model, params in MODEL_PARAMS.items():
        label = model_label(model)
        files += [f"{stem}/perf/{prefix}_desc-{label}_{p}" for p in params]
        files += [f"{stem}/perf/{prefix}_desc-{stderr_label(model)}_{p}" for p in params]
        files += [f"{stem}/perf/{prefix}_desc-{label}_R2map", f"{stem}/perf/{prefix}_desc-{label}_mask"]
    return [f + ext for f in files for ext in (".nii.gz", ".json")] + [
        f"{stem}/perf/{prefix}_desc-aif_timeseries.tsv",
        f"{stem}/perf/{prefix}_desc-aif_timeseries.json",
    ]


@pytest.mark.parametrize("which", ["study", "dicom_study"])
def test_every_derivative_is_written(which, request):
    out = request.getfixturevalue(which) / "out"
    for subject in SUBJECTS:
        for session in SESSIONS:
            aif = json.loads(
                (
                    out / f"sub-{subject}/ses-{session}/perf/"
                    f"sub-{subject}_ses-{session}_desc-aif_timeseries.json"
                ).read_text()
            )
            image_aif = aif["Source"] == "image"
            missing = [f for f in expected_files(subject, session, image_aif) if not (out / f).is_file()]
            assert not missing
        assert (out / f"sub-{subject}.html").is_file()
    assert (out / "logs" / "CITATION.md").is_file()
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "dcequant"
    assert not list(out.rglob(".*.nii.gz")) and not (out / ".dcequant-staging").exists()


@pytest.mark.parametrize("which", ["study", "dicom_study"])
def test_output_is_a_valid_bids_derivative_dataset(which, request):
    assert bids_validator_errors(request.getfixturevalue(which) / "out") == []


def test_dicom_only_subject_was_converted_into_bids_dir(dicom_study):
    bids = dicom_study / "bids"
    for session in SESSIONS:
        assert (bids / f"sub-02/ses-{session}/perf/sub-02_ses-{session}_dce.nii.gz").is_file()
        assert len(list((bids / f"sub-02/ses-{session}/anat").glob("*_VFA.nii.gz"))) == 4
    assert bids_validator_errors(bids) == []


#: (fixture, min. quality-mask coverage of the brain, Ktrans atol 1/min, vp rtol, T1 rtol). The DICOM study
#: stores 16-bit integers: the rounding acts like noise of ~0.05 % of the signal, which leaves
#: voxels with Ktrans ~1e-4/min unidentifiable (outside the quality mask) and adds up to ~3e-4/min.
RECOVERY = [("study", 0.9, 1e-5, 0.01, 1e-3), ("dicom_study", 0.5, 5e-4, 0.02, 5e-3)]


@pytest.mark.parametrize("which, coverage, ktrans_atol, vp_rtol, t1_rtol", RECOVERY)
def test_noise_free_truth_is_recovered(which, coverage, ktrans_atol, vp_rtol, t1_rtol, request):
    """Extended Tofts maps against the simulator's truth inside each quality mask.

    Tolerances: Ktrans 1 % (+ atol), vp ``vp_rtol`` (+1e-4), ve 5 % where ve is identifiable
    (kep > 0.1/min over the 200 s acquisition); T1 ``t1_rtol``.
    """
    root = request.getfixturevalue(which)
    out, truth = root / "out", root / "bids" / "derivatives" / "truth"
    for subject in SUBJECTS:
        for session in SESSIONS:
            rel = f"sub-{subject}/ses-{session}"
            name = f"sub-{subject}_ses-{session}"

            def load(folder, suffix, rel=rel, name=name):
                return nib.load(
                    folder / rel / f"{suffix.split('_')[0]}/{name}_{suffix.split('_', 1)[1]}.nii.gz"
                ).get_fdata()

            quality = load(out, "perf_desc-extendedtofts_mask") > 0
            brain = load(truth, "anat_desc-truth_dseg") > 0
            assert quality.sum() > coverage * brain.sum()
            fitted = {p: load(out, f"perf_desc-extendedtofts_{p}") for p in ("Ktrans", "ve", "vp")}
            true = {p: load(truth, f"perf_desc-truth_{p}") for p in ("Ktrans", "ve", "vp", "kep")}
            np.testing.assert_allclose(
                fitted["Ktrans"][quality], true["Ktrans"][quality], rtol=0.01, atol=ktrans_atol
            )
            np.testing.assert_allclose(fitted["vp"][quality], true["vp"][quality], rtol=vp_rtol, atol=1e-4)
            identifiable = quality & (true["kep"] > 0.1)
            assert identifiable.sum() > 0
            np.testing.assert_allclose(fitted["ve"][identifiable], true["ve"][identifiable], rtol=0.05)
            t1 = load(out, "anat_desc-vfa_T1map")
            np.testing.assert_allclose(t1[brain], load(truth, "anat_desc-truth_T1map")[brain], rtol=t1_rtol)


def test_sidecars_carry_units_and_provenance(study):
    perf = study / "out/sub-01/ses-01/perf"
    meta = json.loads((perf / "sub-01_ses-01_desc-extendedtofts_Ktrans.json").read_text())
    assert meta["Units"] == "1/min" and meta["Model"] == "extended_tofts"
    assert meta["AIF"]["Source"].startswith("file:") and meta["Hematocrit"] == 0.45
    assert meta["Relaxivity"] == pytest.approx(5.0, rel=0.1) and meta["Software"]["Version"]
    assert meta["RelaxivitySource"].lower().startswith("gadobutrol")
    assert any(s.endswith("desc-conc_dce.nii.gz") for s in meta["Sources"])
    conc = json.loads((perf / "sub-01_ses-01_desc-conc_dce.json").read_text())
    assert conc["Units"] == "mM" and "bids:raw:sub-01/ses-01/perf/sub-01_ses-01_dce.nii.gz" in conc["Sources"]
    assert conc["BaselineFrames"] in (4, 5)
    aif = (perf / "sub-01_ses-01_desc-aif_timeseries.tsv").read_text().splitlines()
    assert aif[0] == "time\tplasma\tblood" and len(aif) == 41


def test_report_is_self_contained(dicom_study):
    text = (dicom_study / "out" / "sub-01.html").read_text()
    for section in (
        "Pre-contrast T1",
        "Arterial input function",
        "Model: extended_tofts",
        "Model: patlak",
        "Uncertainty",
        "Warnings",
        "Methods",
        "References",
    ):
        assert section in text
    for figure in (
        "T1 map",
        "T1 histogram",
        "AIF",
        "extended_tofts maps",
        "extended_tofts uncertainty",
        "patlak maps",
        "example curves",
    ):
        assert f'alt="{figure}" src="data:image/png;base64,' in text
    assert 'src="http' not in text and "<script" not in text
    assert "Bolus arrival: " in text and "bolus arrival" in text.lower()


def _tsv(path):
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    return [dict(zip(lines[0], r, strict=True)) for r in lines[1:]]


def test_group_level_agrees_with_the_truth(study, tmp_path):
    """Group level after the participant level, with the simulator's tissue segmentation
    as ROIs. Truth-based expectations: the sessions of a subject share its truth
    (test-retest), so the truth maps have ICC = 1 between sessions and the noise-free fits
    must come close (ICC(3,1) > 0.95, Bland-Altman bias near 0); the AUROC of the fitted
    tumour-rim Ktrans for the cohort's group label equals the AUROC of the truth Ktrans
    (the fit keeps the order of the subjects)."""
    root = study
    truth = root / "bids/derivatives/truth"
    config = tmp_path / "group.json"
    config.write_text(json.dumps({"label": {"column": "grade", "positive": "high"}}))
    assert (
        main(
            [
                str(root / "bids"),
                str(root / "out"),
                "group",
                "--roi",
                str(truth),
                "--group-config",
                str(config),
            ]
        )
        == 0
    )
    out = root / "out"
    for name in ("roistats", "icc", "auroc"):
        assert (out / f"group_desc-{name}_stats.tsv").is_file() and (
            out / f"group_desc-{name}_stats.json"
        ).is_file()
    assert (out / "group_report.html").is_file()
    rows = {
        (r["participant_id"], r["session_id"], r["map"], r["roi"]): r
        for r in _tsv(out / "group_desc-roistats_stats.tsv")
    }
    rim = rows[("sub-01", "ses-01", "extendedtofts_Ktrans", "tumour_rim")]
    white_matter = rows[("sub-01", "ses-01", "extendedtofts_Ktrans", "white_matter")]
    assert float(rim["mean"]) > 10 * float(white_matter["mean"])
    assert 0 < int(white_matter["n_valid"]) <= int(white_matter["n_voxels"])  # NaN voxels are not counted
    assert ("sub-01", "ses-01", "vfa_T1map", "grey_matter") in rows
    # truth expectations, computed by the same group level on the truth derivatives
    shutil.copytree(truth, tmp_path / "truth")
    assert (
        main(
            [
                str(root / "bids"),
                str(tmp_path / "truth"),
                "group",
                "--roi",
                str(truth),
                "--group-config",
                str(config),
            ]
        )
        == 0
    )
    truth_icc = {
        (r["map"], r["roi"], r["icc_type"]): r for r in _tsv(tmp_path / "truth/group_desc-icc_stats.tsv")
    }
    assert float(truth_icc[("truth_Ktrans", "tumour_rim", "ICC3")]["icc"]) == pytest.approx(1.0)
    icc = {(r["map"], r["roi"], r["icc_type"]): r for r in _tsv(out / "group_desc-icc_stats.tsv")}
    fitted = icc[("extendedtofts_Ktrans", "tumour_rim", "ICC3")]
    assert float(fitted["icc"]) > 0.95 and fitted["n_subjects"] == "2" and fitted["n_measurements"] == "2"
    assert abs(float(fitted["bias"])) < 0.05 * float(rim["mean"])
    auroc = {(r["map"], r["roi"]): r for r in _tsv(out / "group_desc-auroc_stats.tsv")}
    truth_auroc = {(r["map"], r["roi"]): r for r in _tsv(tmp_path / "truth/group_desc-auroc_stats.tsv")}
    assert (
        auroc[("extendedtofts_Ktrans", "tumour_rim")]["auroc"]
        == truth_auroc[("truth_Ktrans", "tumour_rim")]["auroc"]
    )


def test_reports_only_rebuilds_the_report(study):
    root = study
    report = root / "out" / "sub-02.html"
    report.unlink()
    assert (
        main(
            [
                str(root / "bids"),
                str(root / "out"),
                "participant",
                "--reports-only",
                "--skip-bids-validation",
                "--participant-label",
                "02",
                "-w",
                str(root / "work"),
            ]
        )
        == 0
    )
    assert report.is_file()


def _run_cli(args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "bidsapp.cli.run", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _files_under(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def _derivative_files(out):
    return sorted(p.relative_to(out) for sub in out.glob("sub-*/") for p in sub.rglob("*") if p.is_file())


def test_killed_run_resumes_with_identical_outputs(study):
    root = study
    out, work = root / "out_resumed", root / "work_resumed"
    args = [
        str(root / "bids"),
        str(out),
        "participant",
        "-w",
        str(work),
        "--skip-bids-validation",
        "--nprocs",
        "2",
        "--aif",
        str(root / "bids" / TRUTH_AIF),
        *NO_MOTION,
    ]  # as the reference run
    marker = work / "dcequant_wf/sub_01_wf/ses_01_wf/fit_extended_tofts_wf/fit/result_fit.pklz"
    proc = _run_cli(args)
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    log = proc.communicate()[0].decode()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {log[-2000:]}"
    reference = root / "out"
    for folder in out.glob("sub-*/"):  # a subject is either complete or absent
        assert _files_under(folder) == _files_under(reference / folder.name)
    cached = work / "dcequant_wf/sub_01_wf/ses_01_wf/t1map_wf/vfa_t1/result_vfa_t1.pklz"
    cached_mtime = cached.stat().st_mtime_ns

    proc = _run_cli(args)
    log = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, log[-3000:]
    assert cached.stat().st_mtime_ns == cached_mtime  # finished nodes were not re-run
    files = _derivative_files(out)
    assert files == _derivative_files(reference)
    for rel in files:
        a, b = out / rel, reference / rel
        if rel.name.endswith(".nii.gz"):
            img_a, img_b = nib.load(a), nib.load(b)
            assert img_a.header.binaryblock == img_b.header.binaryblock, rel
            assert np.array_equal(np.asarray(img_a.dataobj), np.asarray(img_b.dataobj), equal_nan=True), rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel


def test_every_model_with_delay_writes_its_parameter_maps(tmp_path):
    """The other models and --fit-delay, on one small noise-free session with a population AIF."""
    bids = tmp_path / "bids"
    simulate_study(
        bids,
        n_subjects=1,
        n_sessions=1,
        grid=Grid((12, 12, 2), (18.0, 18.0, 5.0)),
        protocol=NOISE_FREE,
        overwrite=True,
    )
    out = tmp_path / "out"
    code = main(
        [
            str(bids),
            str(out),
            "participant",
            "-w",
            str(tmp_path / "work"),
            "--skip-bids-validation",
            "--models",
            "tofts",
            "2cxm",
            "2cum",
            "--fit-delay",
            "--aif",
            "parker",
        ]
    )
    assert code == 0
    perf = out / "sub-01" / "perf"
    for model, params in {
        "tofts": ("Ktrans", "ve", "kep"),
        "2cxm": ("Fp", "PS", "ve", "vp"),
        "2cum": ("Fp", "PS", "vp"),
    }.items():
        for param in (*params, "delay"):
            meta = json.loads((perf / f"sub-01_desc-{model}_{param}.json").read_text())
            assert (
                meta["Units"]
                == {
                    "Ktrans": "1/min",
                    "kep": "1/min",
                    "PS": "1/min",
                    "Fp": "ml/100ml/min",
                    "ve": "fraction",
                    "vp": "fraction",
                    "delay": "s",
                }[param]
            )
            assert (perf / f"sub-01_desc-{model}Stderr_{param}.nii.gz").is_file()
            assert meta["FitDelay"] is True and meta["AIF"]["Source"] == "population:parker"
    assert "two-compartment exchange model" in (out / "logs" / "CITATION.md").read_text()
    assert "Model: 2cum" in (out / "sub-01.html").read_text()
    assert bids_validator_errors(out) == []


def test_a_failing_subject_gets_no_files_and_the_others_finish(tmp_path, capsys):
    bids = tmp_path / "bids"
    simulate_study(
        bids,
        n_subjects=2,
        n_sessions=1,
        grid=Grid((12, 12, 2), (18.0, 18.0, 5.0)),
        protocol=NOISE_FREE,
        overwrite=True,
    )
    sidecar = bids / "sub-02" / "perf" / "sub-02_dce.json"
    meta = json.loads(sidecar.read_text())
    del meta["VolumeTiming"]
    sidecar.write_text(json.dumps(meta))
    out = tmp_path / "out"
    code = main(
        [
            str(bids),
            str(out),
            "participant",
            "-w",
            str(tmp_path / "work"),
            "--skip-bids-validation",
            "--models",
            "patlak",
        ]
    )
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("dcequant: error:")]
    assert (
        len(errors) == 1
        and "sub-02_dce.nii.gz: sidecar field 'VolumeTiming' or 'RepetitionTime' is missing" in errors[0]
    )
    assert (out / "sub-01.html").is_file() and (
        out / "sub-01/perf/sub-01_desc-patlak_Ktrans.nii.gz"
    ).is_file()
    assert not (out / "sub-02").exists() and not (out / ".dcequant-staging").exists()
    aif = json.loads((out / "sub-01/perf/sub-01_desc-aif_timeseries.json").read_text())  # default: --aif auto
    # 18 mm voxels hold no pure arterial voxel: the detection reports partial volume and
    # falls back to the population AIF (bidsapp.aif.detect, "area plausibility")
    assert aif["Source"] == "population:parker" and aif["NumberOfVoxels"] == 0
    assert any("partial volume likely" in w for w in aif["Warnings"])
    assert not (out / "sub-01/perf/sub-01_desc-aif_mask.nii.gz").exists()


def test_demo_runs_the_whole_product(tmp_path, capsys):
    from bidsapp.cli.demo import main as demo

    assert demo([str(tmp_path / "demo"), "--matrix", "16", "16", "2", "--nprocs", "1"]) == 0
    out = tmp_path / "demo" / "derivatives" / "dcequant"
    printed = capsys.readouterr().out
    for subject in SUBJECTS:
        assert str((out / f"sub-{subject}.html").resolve()) in printed
    rows = (out / "group_desc-roistats_stats.tsv").read_text().splitlines()
    assert any("\ttumour_rim\t" in row for row in rows[1:])
    assert str((out / "group_report.html").resolve()) in printed
