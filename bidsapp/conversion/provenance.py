"""Provenance log: which DICOM series went where, and why.

Written to ``BIDS_DIR/sourcedata/dcequant-convert/sub-<L>[_ses-<S>]_provenance.json``
(``sourcedata/`` is outside the validated BIDS tree). The log describes the latest run
and is replaced on every run; it contains no time stamps, so identical runs write
identical logs. Format (one object)::

    {"converter": "dcequant-convert 0.1.0", "dcm2niix": "v1.0.2024…",
     "dicom_dir": "/abs/path", "participant": "01", "session": null,
     "files_seen": 668, "notes": ["…/readme.txt: skipped, not a DICOM file"],
     "series": [{"SeriesInstanceUID": "…", "StudyInstanceUID": "…", "SeriesNumber": 7,
                 "SeriesDescription": "dyn", "acquisition": "", "n_frames": 661,
                 "role": "dce", "decided_by": "auto", "reason": "…",
                 "status": "converted", "message": "",
                 "outputs": ["sub-01/perf/sub-01_dce.nii.gz", "sub-01/perf/sub-01_dce.json"],
                 "details": {"timing_source": "AcquisitionTime",
                             "volume_order": "AcquisitionTime", "volumes": 661},
                 "files": ["dyn/IM0001", …]}]}
"""

import os
from pathlib import Path

from .. import bids_raw
from .._version import __version__
from ..io_utils import write_json_atomic

#: run-specific statuses logged as "converted", so identical runs write identical logs
CONVERTED = ("written", "unchanged", "replaced")


def provenance_path(bids_dir, subject, session):
    """Path of the log for one participant/session."""
    name = bids_raw.bids_basename(subject, session, "provenance", ".json")
    return Path(bids_dir) / "sourcedata" / "dcequant-convert" / name


def _relative(path, root):
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return str(path)


def provenance_record(result, dcm2niix_version=None):
    """Return the log as a dict (see module docstring)."""
    plan = result.plan
    dicom_dir = Path(plan.dicom_dir).resolve()
    series = []
    for r in result.entries:
        a = r.entry.assignment
        f = a.acq.first
        series.append(
            {
                "SeriesInstanceUID": f.series_uid,
                "StudyInstanceUID": f.study_uid,
                "SeriesNumber": f.series_number,
                "SeriesDescription": f.series_description,
                "acquisition": a.acq.sub_label,
                "n_frames": len(a.acq.frames),
                "role": a.role,
                "decided_by": a.decided_by,
                "reason": a.reason,
                "status": "converted" if r.status in CONVERTED else r.status,
                "message": r.message,
                "outputs": [_relative(p, plan.bids_dir) for p in r.files],
                "details": r.details,
                "files": [_relative(Path(p).resolve(), dicom_dir) for p in a.acq.files],
            }
        )
    return {
        "converter": f"dcequant-convert {__version__}",
        "dcm2niix": dcm2niix_version,
        "dicom_dir": str(dicom_dir),
        "participant": plan.participant_label,
        "session": plan.session_label,
        "files_seen": plan.n_files,
        "notes": list(plan.notes),
        "series": series,
    }


def write_provenance(result, dcm2niix_version=None):
    """Write the log atomically and return its path."""
    plan = result.plan
    path = provenance_path(plan.bids_dir, plan.participant_label, plan.session_label)
    write_json_atomic(path, provenance_record(result, dcm2niix_version))
    return path
