"""T1 mapping, concentration and fits on real scanner data (``tests/data/realdata``).

Real VFA signals do not follow the SPGR equation exactly; these tests check that the
physical validity rule keeps tissue voxels (issue #10) and that the estimates stay close
to the phantom's nominal T1. Figures are printed (``pytest -s``) for the docs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from realdata import PHANTOM_NOMINAL_T1, load_breast_slice, load_phantom, write_breast_bids

from bidsapp import compute_t1_map, fit_model, signal_to_concentration
from bidsapp.bolus_arrival import estimate_bolus_arrival
from bidsapp.session_steps import signal_mask

REPO = Path(__file__).resolve().parents[2]
#: tissue voxels (DCE signal mask) of the breast slice that must keep a T1 (physical rule)
MIN_T1_FRACTION = 0.85


@pytest.fixture(scope="module")
def breast():
    return load_breast_slice()


def test_phantom_t1_with_b1_correction_is_within_10_percent_of_nominal():
    """dcemriS4 gel phantom, ROIs 1, 2, 3 and 10 (the vials where the B1 map is reliable;
    the vignette reports ROIs 4–7 12–16 % low and the bulk gel 8–9 far off)."""
    phantom = load_phantom()
    assert np.isfinite(phantom.b1[phantom.labels > 0]).all()
    result = compute_t1_map(phantom.signals, phantom.flip_angles, phantom.tr, b1=phantom.b1)
    for roi in (1, 2, 3, 10):
        inside = phantom.labels == roi
        assert result.valid[inside].all(), roi
        median = float(np.median(result.t1[inside]))
        print(f"phantom ROI {roi}: median T1 {median:.4f} s, nominal {PHANTOM_NOMINAL_T1[roi]} s")
        assert median == pytest.approx(PHANTOM_NOMINAL_T1[roi], rel=0.10), roi
    # without B1 correction ROI 10 (at the phantom's edge, b1 ≈ 1.17) is 35 % off
    uncorrected = compute_t1_map(phantom.signals, phantom.flip_angles, phantom.tr)
    assert np.median(uncorrected.t1[phantom.labels == 10]) > 1.2 * PHANTOM_NOMINAL_T1[10]


def test_breast_slice_keeps_a_t1_in_tissue_voxels(breast):
    """Of the 18,809 voxels of the DCE signal mask, the old residual rule (now ``strict``)
    left a T1 in 54 %; the physical rule must keep at least 85 %."""
    tissue = signal_mask(breast.dce)
    assert tissue.sum() == 18809
    physical = compute_t1_map(breast.vfa, breast.flip_angles, breast.tr)
    strict = compute_t1_map(breast.vfa, breast.flip_angles, breast.tr, validity="strict")
    kept, kept_strict = physical.valid[tissue].mean(), strict.valid[tissue].mean()
    print(
        f"breast: T1 in {kept:.3f} of the tissue voxels (physical), {kept_strict:.3f} (strict); "
        f"{int(physical.poor_fit[tissue].sum())} flagged as poor fits"
    )
    assert kept >= MIN_T1_FRACTION
    np.testing.assert_array_equal(strict.valid, physical.valid & ~physical.poor_fit)
    np.testing.assert_array_equal(physical.poor_fit, strict.poor_fit)
    assert np.isfinite(physical.t1[physical.valid]).all() and np.isnan(physical.t1[~physical.valid]).all()
    assert np.isnan(physical.residual[~physical.valid]).all()
    # plausible pre-contrast T1 of breast tissue (fat ~0.3-0.4 s, fibroglandular ~1-1.5 s at 1.5-3 T)
    assert 0.3 < np.median(physical.t1[tissue & physical.valid]) < 2.0


def test_breast_slice_extended_tofts_with_the_measured_aif(breast):
    """Concentration and extended Tofts fits of every tissue voxel with a T1, driven by the
    measured plasma AIF: the fits converge and most give valid parameters."""
    tissue = signal_mask(breast.dce)
    t1 = compute_t1_map(breast.vfa, breast.flip_angles, breast.tr)
    mask = tissue & t1.valid
    n_base = estimate_bolus_arrival(breast.dce, breast.t, mask).baseline_frames
    conc = signal_to_concentration(
        breast.dce, np.where(mask, t1.t1, 1.0), breast.tr, breast.dce_flip, breast.relaxivity, n_base
    )
    mask &= np.asarray(conc.voxel_valid, bool)
    fit = fit_model("extended_tofts", conc.concentration, breast.t, breast.cp, mask=mask, device="cpu")
    converged, valid = int((fit.converged & mask).sum()), int((fit.valid & mask).sum())
    print(
        f"breast: {n_base} baseline frames; {int(mask.sum())} voxels fitted, {converged} converged, "
        f"{valid} valid, of {int(tissue.sum())} tissue voxels"
    )
    assert converged == mask.sum()
    assert valid >= 0.55 * tissue.sum()
    ktrans = fit.params["Ktrans"][fit.valid & mask]
    assert 0.005 < np.median(ktrans) < 0.2  # 1/min: breast tissue and lesion


@pytest.mark.slow
def test_participant_level_on_the_breast_slice(tmp_path):
    """``dcequant`` on the breast slice as BIDS, with the measured AIF: the T1 map keeps
    at least 85 % of the tissue voxels and the fit maps and QC outputs are written."""
    bids, aif, data = write_breast_bids(tmp_path / "bids")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bidsapp.cli.run",
            str(bids),
            str(out),
            "participant",
            "-w",
            str(tmp_path / "work"),
            "--aif",
            str(aif),
            "--relaxivity",
            "4.5",
            "--models",
            "extended_tofts",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    anat, perf = out / "sub-01" / "anat", out / "sub-01" / "perf"
    tissue = signal_mask(data.dce)
    t1 = np.asarray(nib.load(anat / "sub-01_desc-vfa_T1map.nii.gz").dataobj, float)
    kept = (np.isfinite(t1) & (t1 > 0))[tissue].mean()
    meta = json.loads((anat / "sub-01_desc-vfa_T1map.json").read_text())
    quality = np.asarray(nib.load(perf / "sub-01_desc-extendedtofts_mask.nii.gz").dataobj) > 0
    print(
        f"e2e breast: T1 in {kept:.3f} of the tissue voxels; {meta['NumberOfPoorFitVoxels']} poor fits kept; "
        f"quality mask {int(quality.sum())} of {int(tissue.sum())} tissue voxels"
    )
    assert kept >= MIN_T1_FRACTION
    assert meta["T1Validity"] == "physical" and meta["NumberOfPoorFitVoxels"] > 0
    residual = nib.load(anat / "sub-01_desc-vfa_T1residual.nii.gz")
    assert residual.shape == t1.shape and (anat / "sub-01_desc-vfa_T1residual.json").is_file()
    for param in ("Ktrans", "ve", "vp", "kep"):
        assert (perf / f"sub-01_desc-extendedtofts_{param}.nii.gz").is_file(), param
    assert quality.sum() >= 0.5 * tissue.sum()
    report = (out / "sub-01.html").read_text()
    assert f"{meta['NumberOfPoorFitVoxels']} (" in report and "flagged as poor fits" in report
    # one slice: motion is corrected in-plane (3 parameters); through-plane columns are not estimated
    rows = [
        line.split("\t") for line in (perf / "sub-01_desc-confounds_timeseries.tsv").read_text().splitlines()
    ]
    columns = {name: [r[i] for r in rows[1:]] for i, name in enumerate(rows[0])}
    assert len(rows) == 1 + data.dce.shape[-1] and set(columns["trans_z"]) == {"n/a"}
    assert all(v != "n/a" for v in columns["trans_x"] + columns["rot_z"])
    assert "Head motion" in report
