"""Loaders of the real scanner data in ``tests/data/realdata`` (see its README.md).

* :func:`load_phantom` — the dcemriS4 T1 gel phantom (Siemens 3D VIBE, 5 flip angles,
  double-angle B1 map resampled onto the VIBE grid, ROI labels).
* :func:`load_breast_slice` — one slice of the DCEMRI.jl breast DCE study (10-angle VFA,
  25 dynamic frames, measured plasma AIF).
* :func:`write_breast_bids` — that slice as a raw BIDS dataset named with
  :mod:`bidsapp.bids_raw`, plus the measured AIF as a TSV, for end-to-end runs.
"""

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy.io

from bidsapp import bids_raw
from bidsapp.io_utils import save_nifti_atomic, write_json_atomic, write_text_atomic

REALDATA = Path(__file__).resolve().parent / "data" / "realdata"
PHANTOM_DIR = REALDATA / "dcemriS4_t1phantom"
BREAST_FILE = REALDATA / "dcemrijl_invivo" / "invivo.mat"

#: VIBE flip angles (deg) and TR (s) of the phantom (dcemriS4 vignette; not in the NIfTI header)
PHANTOM_FLIP_ANGLES = (5.0, 10.0, 15.0, 20.0, 25.0)
PHANTOM_TR = 4.22e-3
#: nominal T1 (s) of the phantom ROIs 1–10 (dcemriS4 vignette)
PHANTOM_NOMINAL_T1 = {
    1: 0.484,
    2: 0.350,
    3: 1.07,
    4: 0.648,
    5: 0.456,
    6: 1.07,
    7: 0.660,
    8: 1.543,
    9: 1.543,
    10: 0.353,
}
#: the ROI labels are drawn on slice 24 of the label volume; the vignette applies them to VIBE slice 12
PHANTOM_LABEL_SLICE, PHANTOM_VIBE_SLICE = 24, 12

#: invented voxel geometry of the breast slice (the .mat file has none): 1 x 1 x 5 mm, axial
BREAST_AFFINE = np.diag([1.0, 1.0, 5.0, 1.0])


@dataclass
class Phantom:
    """One VIBE slice of the T1 phantom: ``signals`` (64, 64, 5) at ``flip_angles`` (deg),
    ``tr`` (s), relative ``b1`` (64, 64) on the same grid, ROI ``labels`` (64, 64)."""

    signals: np.ndarray
    flip_angles: np.ndarray
    tr: float
    b1: np.ndarray
    labels: np.ndarray


@dataclass
class BreastSlice:
    """The DCEMRI.jl breast slice: ``dce`` (192, 192, 1, 25), ``vfa`` (192, 192, 1, 10) at
    ascending ``flip_angles`` (deg), ``tr`` (s, VFA and DCE), ``dce_flip`` (deg),
    ``relaxivity`` (/mM/s), frame times ``t`` (s) and measured plasma AIF ``cp`` (mM)."""

    dce: np.ndarray
    vfa: np.ndarray
    flip_angles: np.ndarray
    tr: float
    dce_flip: float
    relaxivity: float
    t: np.ndarray
    cp: np.ndarray


def _load(name):
    img = nib.load(str(PHANTOM_DIR / name))
    return img, np.asarray(img.dataobj, dtype=float)


def resample_onto(source_img, target_img):
    """``source_img`` resampled (trilinear) onto the grid of ``target_img`` using both NIfTI
    affines; voxels outside the source are NaN."""
    from scipy.ndimage import map_coordinates

    ijk = np.indices(target_img.shape[:3]).reshape(3, -1)
    to_source = np.linalg.inv(source_img.affine) @ target_img.affine
    coords = to_source[:3, :3] @ ijk + to_source[:3, 3:]
    values = map_coordinates(np.asarray(source_img.dataobj, dtype=float), coords, order=1, cval=np.nan)
    return values.reshape(target_img.shape[:3])


def load_phantom():
    """The phantom's VIBE slice 12 with its B1 map and ROI labels (see :class:`Phantom`).

    ``SDAM_smooth`` lies on a 36-slice grid and the VIBE on a 26-slice one; both NIfTI
    headers carry only voxel sizes (qform/sform codes 0), so nibabel gives each volume
    its centred default affine and the affines map VIBE slice k onto B1 slice k + 5.
    """
    vibe = [_load(f"fl3d_vibe-{int(angle)}deg.nii.gz") for angle in PHANTOM_FLIP_ANGLES]
    signals = np.stack([data[:, :, PHANTOM_VIBE_SLICE] for _, data in vibe], axis=-1)
    b1_img, _ = _load("SDAM_smooth.nii.gz")
    b1 = resample_onto(b1_img, vibe[0][0])[:, :, PHANTOM_VIBE_SLICE]
    _, labels = _load("t1_phantom_mask.nii.gz")
    return Phantom(
        signals,
        np.asarray(PHANTOM_FLIP_ANGLES),
        PHANTOM_TR,
        b1,
        labels[:, :, PHANTOM_LABEL_SLICE].astype(int),
    )


def load_breast_slice():
    """The DCEMRI.jl breast slice (see :class:`BreastSlice`), frames and angles last."""
    mat = scipy.io.loadmat(str(BREAST_FILE))
    flips = mat["T1flip"].ravel().astype(float)
    order = np.argsort(flips)  # the file stores 20, 18, …, 2 degrees
    vfa = np.moveaxis(mat["T1data"].astype(float), 0, -1)[:, :, None, order]
    dce = np.moveaxis(mat["DCEdata"].astype(float), 0, -1)[:, :, None, :]
    return BreastSlice(
        dce=dce,
        vfa=vfa,
        flip_angles=flips[order],
        tr=float(mat["TR"].item()),
        dce_flip=float(mat["DCEflip"].item()),
        relaxivity=float(mat["relaxivity"].item()),
        t=mat["t"].ravel().astype(float),
        cp=mat["Cp"].ravel().astype(float),
    )


def _save(path, data, dt=None):
    img = nib.Nifti1Image(np.asarray(data, np.float32), BREAST_AFFINE)
    img.set_sform(BREAST_AFFINE, code=1)
    img.set_qform(BREAST_AFFINE, code=1)
    img.header.set_zooms((1.0, 1.0, 5.0) + ((float(dt),) if dt is not None else ()))
    img.header.set_xyzt_units("mm", "sec")
    save_nifti_atomic(img, path)


def write_breast_bids(root, subject="01"):
    """Write the breast slice as raw BIDS under ``root`` and the measured AIF next to it.

    Files (names from :mod:`bidsapp.bids_raw`): ``sub-<L>/anat/sub-<L>_flip-<i>_VFA``
    (ascending angles) and ``sub-<L>/perf/sub-<L>_dce`` with sidecars (FlipAngle deg,
    RepetitionTimeExcitation s, VolumeTiming s). The affine is invented (1 × 1 × 5 mm);
    the contrast agent is not recorded, so runs pass ``--relaxivity 4.5``. The AIF goes to
    ``root/../breast_aif.tsv`` (columns ``time`` s, ``plasma`` mM; outside the dataset).
    Returns ``(bids_root, aif_tsv, BreastSlice)``.
    """
    root = Path(root)
    data = load_breast_slice()
    bids_raw.ensure_dataset_description(
        root,
        "DCEMRI.jl in-vivo breast slice (dcequant test fixture)",
        License="MIT",
        Authors=["David S. Smith (DCEMRI.jl)"],
    )
    bids_raw.ensure_bidsignore(root)
    write_text_atomic(
        root / "README",
        "One slice of the DCEMRI.jl breast DCE demo (demo/invivo.mat, MIT). "
        "The voxel geometry (1 x 1 x 5 mm) is invented: the source has none.\n",
    )
    bids_raw.update_participants(root, [{"participant_id": subject}])
    common = {"RepetitionTimeExcitation": data.tr, "PulseSequenceType": "SPGR", "MRAcquisitionType": "2D"}
    for index, angle in enumerate(data.flip_angles, start=1):
        _save(bids_raw.vfa_path(root, subject, None, index), data.vfa[..., index - 1])
        write_json_atomic(
            bids_raw.vfa_path(root, subject, None, index, ".json"), {"FlipAngle": angle, **common}
        )
    dt = float(np.median(np.diff(data.t)))
    _save(bids_raw.dce_path(root, subject, None), data.dce, dt=dt)
    write_json_atomic(
        bids_raw.dce_path(root, subject, None, ".json"),
        {"FlipAngle": data.dce_flip, **common, "VolumeTiming": data.t.tolist(), "AcquisitionDuration": dt},
    )
    aif = root.parent / "breast_aif.tsv"
    rows = ["time\tplasma"] + [f"{a:.10g}\t{b:.10g}" for a, b in zip(data.t, data.cp, strict=True)]
    write_text_atomic(aif, "\n".join(rows) + "\n")
    return root, aif, data
