"""Tiny noise-free BIDS DCE dataset for the BIDS App tests, built from the public API.

Tissue voxels follow the extended Tofts model with Ktrans varying along x and ve along
y; a few voxels hold arterial blood so the AIF can be detected in the image.
"""

import numpy as np
import nibabel as nib

import bidsapp
from bidsapp.bids_raw import (b1_path, dce_path, ensure_bidsignore, ensure_dataset_description, update_participants,
                              vfa_path)
from bidsapp.io_utils import save_nifti_atomic, write_json_atomic

TR, FA, FLIPS, M0, HCT = 0.004, 15.0, (2.0, 5.0, 10.0, 15.0), 1000.0, 0.45
T10_TISSUE, T10_BLOOD, RELAXIVITY = 1.2, 1.6, None
SHAPE, N_FRAMES, DT, ARRIVAL = (8, 8, 2), 40, 4.0, 20.0


def truth(shape=SHAPE):
    nx, ny, nz = shape
    x, y = np.meshgrid(np.linspace(0.05, 0.3, nx), np.linspace(0.15, 0.45, ny), indexing="ij")
    ktrans = np.repeat(x[..., None], nz, axis=2)
    ve = np.repeat(y[..., None], nz, axis=2)
    vp = np.full(shape, 0.04)
    artery = np.zeros(shape, bool)
    artery[0, 0, :] = artery[0, 1, :] = True
    return {"Ktrans": ktrans, "ve": ve, "vp": vp, "artery": artery}


def make_dataset(root, subjects=("01",), sessions=(None,), shape=SHAPE, b1=True):
    """Write the dataset under ``root``; return the ground truth dict."""
    gt = truth(shape)
    t = np.arange(N_FRAMES) * DT
    relax = bidsapp.relaxivity_for("gadobutrol", 3.0)
    plasma = bidsapp.population_aif("parker", t, bolus_arrival=ARRIVAL, hematocrit=HCT)
    tissue = bidsapp.model_curve("extended_tofts", {k: gt[k] for k in ("Ktrans", "ve", "vp")}, t, plasma)
    conc = np.where(gt["artery"][..., None], plasma * (1 - HCT), tissue)
    t10 = np.where(gt["artery"], T10_BLOOD, T10_TISSUE)
    m0 = np.full(shape, M0)
    dce = bidsapp.concentration_to_signal(conc, t10, m0, TR, FA, relax)
    affine = np.diag([2.0, 2.0, 4.0, 1.0])
    ensure_dataset_description(root, "dcequant app test", Authors=["dcequant"])
    ensure_bidsignore(root)
    for sub in subjects:
        for ses in sessions:
            for i, flip in enumerate(FLIPS, start=1):
                path = vfa_path(root, sub, ses, i)
                save_nifti_atomic(nib.Nifti1Image(bidsapp.spgr_signal(m0, 1 / t10, flip, TR).astype(np.float32),
                                                  affine), path)
                write_json_atomic(str(path).replace(".nii.gz", ".json"), {
                    "FlipAngle": flip, "RepetitionTimeExcitation": TR, "PulseSequenceType": "SPGR",
                    "EchoTime": 0.001, "MagneticFieldStrength": 3.0, "RepetitionTime": TR})
            path = dce_path(root, sub, ses)
            save_nifti_atomic(nib.Nifti1Image(dce.astype(np.float32), affine), path)
            write_json_atomic(str(path).replace(".nii.gz", ".json"), {
                "FlipAngle": FA, "RepetitionTimeExcitation": TR, "EchoTime": 0.001, "MagneticFieldStrength": 3.0,
                "VolumeTiming": t.tolist(), "ContrastBolusAgent": "gadobutrol",
                "ContrastBolusIngredient": "GADOLINIUM", "Manufacturer": "dcequant"})
            if b1:
                path = b1_path(root, sub, ses)
                save_nifti_atomic(nib.Nifti1Image(np.full(shape, 100.0, np.float32), affine), path)
                write_json_atomic(str(path).replace(".nii.gz", ".json"), {"Units": "percent"})
    update_participants(root, [{"participant_id": s} for s in subjects])
    return gt
