"""Group level (first version): a table of parameter statistics per subject/session/ROI.

For every parameter map of every model in the derivative dataset, the table
``<output_dir>/group/roi_stats.tsv`` holds the number of voxels, mean, median and
standard deviation inside each ROI. ROIs come from ``--roi`` (mask or dseg NIfTI files,
paths may contain ``{subject}``/``{session}``, or derivative folders searched for
``sub-<L>[/ses-<S>]/**/*_mask.nii.gz`` and ``*_dseg.nii.gz`` on the same grid); without
``--roi`` each model's quality mask is the ROI. Group statistics beyond this table
(reliability, discrimination) are not part of this version.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from .bids_raw import strip_prefix, subject_dir
from .config import MODEL_NAMES
from .derivatives import model_label, software_info
from .io_utils import write_json_atomic, write_text_atomic

LOGGER = logging.getLogger("dcequant")
COLUMNS = ("participant_id", "session_id", "model", "parameter", "roi", "label", "n_voxels", "n_valid", "mean",
           "median", "sd", "units")


def _sessions(output_dir, participants):
    for sub in sorted(Path(output_dir).glob("sub-*")):
        if not sub.is_dir() or (participants and strip_prefix(sub.name, "sub") not in participants):
            continue
        ses_dirs = sorted(p for p in sub.glob("ses-*") if p.is_dir())
        for folder in ses_dirs or [sub]:
            yield strip_prefix(sub.name, "sub"), (strip_prefix(folder.name, "ses") if ses_dirs else None), folder


def find_rois(roi_specs, subject, session):
    """``[(name, path)]`` of the ROI files of one subject/session."""
    found = []
    for spec in roi_specs:
        spec = str(spec)
        if "{" in spec:
            spec = spec.format(subject=subject, session=session or "")
        path = Path(spec)
        if path.is_file():
            found.append((path.name.split(".")[0], path))
        elif path.is_dir():
            folder = subject_dir(path, subject, session)
            for pattern in ("*_mask.nii*", "*_dseg.nii*"):
                found += [(p.name.split(".")[0], p) for p in sorted(folder.rglob(pattern))]
        else:
            raise ValueError(f"--roi {spec}: no such file or folder")
    return found


def _roi_labels(path, shape):
    data = np.asarray(nib.load(str(path)).dataobj)
    if data.shape[:3] != tuple(shape):
        raise ValueError(f"--roi {path}: grid {data.shape[:3]} differs from the parameter maps {tuple(shape)}")
    data = np.rint(data).astype(int)
    return {int(label): data == label for label in np.unique(data) if label > 0}


def session_rows(subject, session, folder, roi_specs):
    """Statistics rows of one subject/session folder."""
    import json

    rows = []
    perf = folder / "perf"
    rois = find_rois(roi_specs, subject, session) if roi_specs else []
    for model in MODEL_NAMES:
        label = model_label(model)
        for path in sorted(perf.glob(f"*_desc-{label}_*.nii.gz")):
            parameter = path.name[: -len(".nii.gz")].rsplit("_", 1)[1]
            if parameter in ("R2map", "mask"):
                continue
            values = np.asarray(nib.load(str(path)).dataobj, dtype=float)
            sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
            units = json.loads(sidecar.read_text()).get("Units", "") if sidecar.exists() else ""
            regions = []
            if rois:
                for roi_name, roi_path in rois:
                    regions += [(roi_name, lab, m) for lab, m in _roi_labels(roi_path, values.shape).items()]
            else:
                quality = next(perf.glob(f"*_desc-{label}_mask.nii.gz"), None)
                if quality is not None:
                    regions.append((f"desc-{label}_mask", 1, np.asarray(nib.load(str(quality)).dataobj) > 0))
            for roi_name, roi_label, mask in regions:
                v = values[mask & np.isfinite(values)]
                stats = (f"{v.mean():.6g}", f"{np.median(v):.6g}", f"{v.std(ddof=1) if v.size > 1 else 0.0:.6g}") \
                    if v.size else ("n/a", "n/a", "n/a")
                rows.append((f"sub-{subject}", f"ses-{session}" if session else "n/a", model, parameter, roi_name,
                             str(roi_label), str(int(mask.sum())), str(int(v.size)), *stats, units))
    return rows


def run_group_level(config):
    """Write ``group/roi_stats.tsv`` (+ JSON) for the selected participants; return its path."""
    output_dir = Path(config.output_dir)
    participants = [strip_prefix(p, "sub") for p in config.participant_label]
    rows = []
    for subject, session, folder in _sessions(output_dir, participants):
        if config.session_label and session not in config.session_label:
            continue
        rows += session_rows(subject, session, folder, config.roi)
    if not rows:
        raise LookupError(f"no parameter maps found in {output_dir}; run the participant level first")
    path = output_dir / "group" / "roi_stats.tsv"
    write_text_atomic(path, "\n".join(["\t".join(COLUMNS)] + ["\t".join(r) for r in rows]) + "\n")
    write_json_atomic(path.with_suffix(".json"), {
        "Description": "Parameter statistics per subject, session, model and ROI",
        "roi": {"Description": "ROI file (or the model's quality mask when no --roi was given)"},
        "label": {"Description": "label value inside the ROI file"},
        "n_voxels": {"Description": "voxels in the ROI"},
        "n_valid": {"Description": "voxels in the ROI with a finite value (NaN = not estimated, not counted)"},
        "mean": {"Description": "mean over the valid voxels of the ROI (units in column 'units')"},
        "median": {"Description": "median over the valid voxels of the ROI"},
        "sd": {"Description": "sample standard deviation over the valid voxels of the ROI"},
        "Software": software_info(),
    })
    LOGGER.info("group ROI table: %s (%d rows)", path, len(rows))
    return path
