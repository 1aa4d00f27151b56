"""Synthetic dcequant derivatives for group-level tests and the group benchmark.

Every session gets a 3-D float map per name in ``MAPS`` (values drawn per ROI from a
subject value times a session factor), a 4-D ``desc-conc_dce`` (not a map) and a model
mask; a separate ``rois`` derivative folder holds ``desc-tissue_dseg`` + ``dseg.tsv``.
Subject values of ``extendedtofts_Ktrans`` and ``cnn_Ktrans`` in ``tumour`` are raised
by ``effect`` for ``grade`` = ``high``. NaN voxels are planted in every map.
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np

ROIS = {1: "white_matter", 2: "grey_matter", 3: "tumour"}
#: map name -> (datatype, units, subject-level median per ROI)
MAPS = {
    "vfa_T1map": ("anat", "s", {1: 0.9, 2: 1.5, 3: 1.6}),
    "extendedtofts_Ktrans": ("perf", "1/min", {1: 0.001, 2: 0.002, 3: 0.05}),
    "extendedtoftsStderr_Ktrans": ("perf", "1/min", {1: 0.0002, 2: 0.0003, 3: 0.004}),
    "extendedtofts_ve": ("perf", "", {1: 0.15, 2: 0.2, 3: 0.3}),
    "cnn_Ktrans": ("perf", "1/min", {1: 0.001, 2: 0.002, 3: 0.05}),
}
AFFINE = np.diag([3.0, 3.0, 5.0, 1.0])


def dseg(shape):
    """White matter everywhere, a grey-matter slab and a tumour block."""
    labels = np.ones(shape, np.int16)
    labels[: shape[0] // 4] = 2
    labels[shape[0] // 2 : shape[0] // 2 + shape[0] // 4, shape[1] // 3 : 2 * shape[1] // 3] = 3
    labels[0, 0, :] = 0
    return labels


def _save(path, data, units=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, AFFINE), str(path))
    if units is not None:
        Path(str(path).replace(".nii.gz", ".json")).write_text(json.dumps({"Units": units}))


#: the maps of a default participant run (extended Tofts and Patlak) plus a network map
FULL_MAPS = {
    **MAPS,
    "vfa_M0map": ("anat", "", {1: 0.7, 2: 0.8, 3: 0.85}),
    "vfa_T1residual": ("anat", "", {1: 0.01, 2: 0.01, 3: 0.02}),
    **{
        f"extendedtofts{e}_{p}": ("perf", u, m)
        for e in ("", "Stderr")
        for p, u, m in (("vp", "", {1: 0.01, 2: 0.03, 3: 0.04}), ("kep", "1/min", {1: 0.01, 2: 0.01, 3: 0.2}))
    },
    "extendedtoftsStderr_ve": ("perf", "", {1: 0.02, 2: 0.02, 3: 0.03}),
    "extendedtofts_R2map": ("perf", "", {1: 0.9, 2: 0.9, 3: 0.95}),
    **{
        f"patlak{e}_{p}": ("perf", u, m)
        for e in ("", "Stderr")
        for p, u, m in (
            ("Ktrans", "1/min", {1: 0.001, 2: 0.002, 3: 0.04}),
            ("vp", "", {1: 0.01, 2: 0.03, 3: 0.04}),
        )
    },
    "patlak_R2map": ("perf", "", {1: 0.9, 2: 0.9, 3: 0.95}),
}


def write_derivatives(
    root,
    n_subjects=8,
    n_sessions=2,
    shape=(24, 24, 4),
    effect=1.0,
    seed=0,
    sites=None,
    retest_sd=0.05,
    maps=None,
):
    """Write the study (``maps`` default :data:`MAPS`); return ``{participant_id: grade}``
    (half ``high``)."""
    maps = MAPS if maps is None else maps
    root = Path(root)
    rng = np.random.default_rng(seed)
    labels = dseg(shape)
    rois = root / "rois"
    (rois / "dseg.tsv").parent.mkdir(parents=True, exist_ok=True)
    (rois / "dataset_description.json").write_text(
        json.dumps({"Name": "rois", "BIDSVersion": "1.9.0", "DatasetType": "derivative"})
    )
    (rois / "dseg.tsv").write_text("index\tname\n" + "".join(f"{i}\t{n}\n" for i, n in ROIS.items()))
    out = root / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(
        json.dumps({"Name": "dcequant", "BIDSVersion": "1.9.0", "DatasetType": "derivative"})
    )
    grades, rows = {}, ["participant_id\tgrade" + ("\tsite" if sites else "")]
    for s in range(n_subjects):
        subject = f"{s + 1:02d}"
        grade = "high" if s % 2 else "low"
        grades[f"sub-{subject}"] = grade
        rows.append(f"sub-{subject}\t{grade}" + (f"\t{sites[s % len(sites)]}" if sites else ""))
        subject_factor = {name: np.exp(rng.normal(0, 0.3)) for name in maps}
        for v in range(n_sessions):
            ses = f"{v + 1:02d}" if n_sessions > 1 else None
            stem = f"sub-{subject}" + (f"_ses-{ses}" if ses else "")
            folder = out / f"sub-{subject}" / (f"ses-{ses}" if ses else "")
            _save(rois / folder.relative_to(out) / "anat" / f"{stem}_desc-tissue_dseg.nii.gz", labels)
            for name, (datatype, units, medians) in maps.items():
                desc, suffix = name.split("_")
                volume = np.zeros(shape, np.float32)
                for label, median in medians.items():
                    level = median * subject_factor[name] * np.exp(rng.normal(0, retest_sd))
                    if grade == "high" and label == 3 and suffix == "Ktrans" and not desc.endswith("Stderr"):
                        level *= np.exp(effect * 0.3)
                    inside = labels == label
                    volume[inside] = level * np.exp(rng.normal(0, 0.1, inside.sum()))
                volume[rng.random(shape) < 0.05] = np.nan
                _save(folder / datatype / f"{stem}_desc-{desc}_{suffix}.nii.gz", volume, units)
            _save(folder / "perf" / f"{stem}_desc-conc_dce.nii.gz", np.zeros(shape + (3,), np.float32), "mM")
            _save(folder / "perf" / f"{stem}_desc-extendedtofts_mask.nii.gz", (labels > 0).astype(np.uint8))
    (root / "bids").mkdir(exist_ok=True)
    (root / "bids" / "participants.tsv").write_text("\n".join(rows) + "\n")
    return grades
