"""End-to-end runs of ``dcequant`` on a tiny noise-free study (2 subjects x 2 sessions)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.derivatives import model_label, stderr_label

from app_dataset import make_dataset

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SUBJECTS, SESSIONS = ("01", "02"), ("1", "2")
MODEL_PARAMS = {"extended_tofts": ("Ktrans", "ve", "vp", "kep"), "patlak": ("Ktrans", "vp")}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    truth = make_dataset(root / "bids", SUBJECTS, SESSIONS)
    code = main([str(root / "bids"), str(root / "out"), "participant", "-w", str(root / "work")])
    assert code == 0
    return root, truth


def expected_files(subject, session):
    stem = f"sub-{subject}/ses-{session}"
    prefix = f"sub-{subject}_ses-{session}"
    files = [f"{stem}/anat/{prefix}_desc-vfa_T1map", f"{stem}/anat/{prefix}_desc-vfa_M0map",
             f"{stem}/perf/{prefix}_desc-conc_dce", f"{stem}/perf/{prefix}_desc-aif_mask"]
    for model, params in MODEL_PARAMS.items():
        label = model_label(model)
        files += [f"{stem}/perf/{prefix}_desc-{label}_{p}" for p in params]
        files += [f"{stem}/perf/{prefix}_desc-{stderr_label(model)}_{p}" for p in params]
        files += [f"{stem}/perf/{prefix}_desc-{label}_R2map", f"{stem}/perf/{prefix}_desc-{label}_mask"]
    return [f + ext for f in files for ext in (".nii.gz", ".json")] + [
        f"{stem}/perf/{prefix}_desc-aif_timeseries.tsv", f"{stem}/perf/{prefix}_desc-aif_timeseries.json"]


def test_every_derivative_is_written(study):
    out = study[0] / "out"
    for subject in SUBJECTS:
        for session in SESSIONS:
            missing = [f for f in expected_files(subject, session) if not (out / f).is_file()]
            assert not missing
        assert (out / f"sub-{subject}.html").is_file()
    assert (out / "logs" / "CITATION.md").is_file()
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "dcequant"
    assert not list(out.rglob(".*.nii.gz")) and not (out / ".dcequant-staging").exists()


def test_output_is_a_valid_bids_derivative_dataset(study):
    out = study[0] / "out"
    exe = Path(sys.executable).parent / "bids-validator-deno"
    proc = subprocess.run([str(exe), "--format", "json", str(out)], capture_output=True, text=True)
    issues = json.loads(proc.stdout)["issues"]["issues"]
    errors = [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]
    assert errors == []


def test_noise_free_truth_is_recovered(study):
    out, truth = study[0] / "out", study[1]
    tissue = ~truth["artery"]
    for subject in SUBJECTS:
        for session in SESSIONS:
            prefix = out / f"sub-{subject}/ses-{session}/perf/sub-{subject}_ses-{session}_desc-extendedtofts_"
            for name, rtol in (("Ktrans", 0.02), ("ve", 0.02), ("vp", 0.1)):
                fitted = nib.load(f"{prefix}{name}.nii.gz").get_fdata()
                np.testing.assert_allclose(fitted[tissue], truth[name][tissue], rtol=rtol, err_msg=name)
            t1 = nib.load(out / f"sub-{subject}/ses-{session}/anat/sub-{subject}_ses-{session}_desc-vfa_T1map.nii.gz")
            np.testing.assert_allclose(t1.get_fdata()[tissue], 1.2, rtol=1e-3)


def test_sidecars_carry_units_and_provenance(study):
    perf = study[0] / "out/sub-01/ses-1/perf"
    meta = json.loads((perf / "sub-01_ses-1_desc-extendedtofts_Ktrans.json").read_text())
    assert meta["Units"] == "1/min" and meta["Model"] == "extended_tofts"
    assert meta["AIF"]["Source"] == "image" and meta["Relaxivity"] > 0 and meta["Hematocrit"] == 0.45
    assert meta["RelaxivitySource"].startswith("gadobutrol") and meta["Software"]["Version"]
    assert any(s.endswith("desc-conc_dce.nii.gz") for s in meta["Sources"])
    conc = json.loads((perf / "sub-01_ses-1_desc-conc_dce.json").read_text())
    assert conc["Units"] == "mM" and "bids:raw:sub-01/ses-1/perf/sub-01_ses-1_dce.nii.gz" in conc["Sources"]
    assert conc["BaselineFrames"] in (4, 5)
    aif = (perf / "sub-01_ses-1_desc-aif_timeseries.tsv").read_text().splitlines()
    assert aif[0] == "time\tplasma\tblood" and len(aif) == 41


def test_report_is_self_contained(study):
    text = (study[0] / "out" / "sub-01.html").read_text()
    for section in ("Pre-contrast T1", "Arterial input function", "Model: extended_tofts", "Model: patlak",
                    "Uncertainty", "Warnings", "Methods", "References"):
        assert section in text
    assert text.count("data:image/png;base64,") >= 20
    assert "src=\"http" not in text and "<script" not in text


def test_group_level_table(study):
    root = study[0]
    assert main([str(root / "bids"), str(root / "out"), "group"]) == 0
    lines = (root / "out" / "group" / "roi_stats.tsv").read_text().splitlines()
    assert lines[0].startswith("participant_id\tsession_id\tmodel\tparameter")
    assert len(lines) == 1 + len(SUBJECTS) * len(SESSIONS) * sum(map(len, MODEL_PARAMS.values()))


def test_reports_only_rebuilds_the_report(study):
    root = study[0]
    report = root / "out" / "sub-02.html"
    report.unlink()
    assert main([str(root / "bids"), str(root / "out"), "participant", "--reports-only", "--skip-bids-validation",
                 "--participant-label", "02", "-w", str(root / "work")]) == 0
    assert report.is_file()


def _run_cli(args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "bidsapp.cli.run", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _derivative_files(out):
    return sorted(p.relative_to(out) for p in out.rglob("sub-*/**/*") if p.is_file())


def test_killed_run_resumes_with_identical_outputs(study):
    root = study[0]
    out, work = root / "out_resumed", root / "work_resumed"
    args = [str(root / "bids"), str(out), "participant", "-w", str(work), "--skip-bids-validation", "--nprocs", "2"]
    marker = work / "dcequant_wf/sub_01_wf/ses_1_wf/fit_extended_tofts_wf/fit/result_fit.pklz"
    proc = _run_cli(args)
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    reference = root / "out"
    for folder in out.glob("sub-*/ses-*"):  # a session is either complete or absent
        assert _derivative_files(folder) == _derivative_files(reference / folder.relative_to(out))
    cached = work / "dcequant_wf/sub_01_wf/ses_1_wf/t1map_wf/vfa_t1/result_vfa_t1.pklz"
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
            assert np.array_equal(np.asarray(img_a.dataobj), np.asarray(img_b.dataobj)), rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel
