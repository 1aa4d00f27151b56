"""Raw BIDS layout shared by the simulator, the DICOM converter and the BIDS App.

One module decides how dcequant names raw DCE files, so the writer of simulated data,
the converter and the participant workflow cannot drift apart:

* ``sub-<L>[/ses-<S>]/anat/sub-<L>[_ses-<S>]_flip-<i>_VFA.nii.gz`` — one volume per
  flip angle, ``i`` = 1, 2, … in ascending flip-angle order (BIDS qMRI file collection).
  Sidecar: ``FlipAngle`` (deg), ``RepetitionTimeExcitation`` (s), ``PulseSequenceType``
  ("SPGR"), ``EchoTime`` (s), ``MagneticFieldStrength`` (T).
* ``sub-<L>[/ses-<S>]/perf/sub-<L>[_ses-<S>]_dce.nii.gz`` — the dynamic series (4-D).
  Sidecar: ``RepetitionTimeExcitation``, ``FlipAngle``, ``EchoTime``,
  ``MagneticFieldStrength``, ``VolumeTiming`` (s from the first frame) and the contrast
  fields ``ContrastBolusAgent``, ``ContrastBolusIngredient``, … where known.
  ``_dce`` is not yet in the BIDS specification, so ``.bidsignore`` lists ``*_dce.*``.
* ``sub-<L>[/ses-<S>]/fmap/sub-<L>[_ses-<S>]_TB1map.nii.gz`` — relative transmit field in
  percent of nominal (100 = nominal), sidecar ``"Units": "percent"``.
* ``sub-<L>[/ses-<S>]/anat/sub-<L>[_ses-<S>]_T1w.nii.gz`` — optional anatomy.
"""

import csv
import json
from pathlib import Path

from .io_utils import write_json_atomic, write_text_atomic

BIDS_VERSION = "1.10.0"
DCE_IGNORE_PATTERNS = ("*_dce.*",)


def strip_prefix(label, prefix):
    """Return ``label`` without a leading ``sub-``/``ses-`` style prefix."""
    label = str(label)
    return label[len(prefix) + 1 :] if label.startswith(prefix + "-") else label


def bids_basename(subject, session=None, suffix="", extension="", **entities):
    """Build ``sub-<L>[_ses-<S>][_<key>-<value>…]_<suffix><extension>``.

    ``entities`` are written in the order given; values of ``None`` are skipped.
    """
    parts = [f"sub-{strip_prefix(subject, 'sub')}"]
    if session:
        parts.append(f"ses-{strip_prefix(session, 'ses')}")
    parts += [f"{k}-{v}" for k, v in entities.items() if v is not None]
    return "_".join(parts) + f"_{suffix}{extension}"


def subject_dir(root, subject, session=None, datatype=None):
    """Folder ``root/sub-<L>[/ses-<S>][/<datatype>]``."""
    path = Path(root) / f"sub-{strip_prefix(subject, 'sub')}"
    if session:
        path = path / f"ses-{strip_prefix(session, 'ses')}"
    return path / datatype if datatype else path


def raw_path(root, subject, session, datatype, suffix, extension=".nii.gz", **entities):
    """Full path of a raw file, e.g. ``raw_path(root, '01', None, 'perf', 'dce')``."""
    name = bids_basename(subject, session, suffix, extension, **entities)
    return subject_dir(root, subject, session, datatype) / name


def vfa_path(root, subject, session, index, extension=".nii.gz"):
    """Path of the ``index``-th (1-based, ascending angle) VFA volume."""
    return raw_path(root, subject, session, "anat", "VFA", extension, flip=int(index))


def dce_path(root, subject, session, extension=".nii.gz"):
    """Path of the dynamic series."""
    return raw_path(root, subject, session, "perf", "dce", extension)


def b1_path(root, subject, session, extension=".nii.gz"):
    """Path of the relative transmit-field map (percent)."""
    return raw_path(root, subject, session, "fmap", "TB1map", extension)


def ensure_dataset_description(root, name, dataset_type="raw", **extra):
    """Write ``dataset_description.json`` if it does not exist; return its content."""
    path = Path(root) / "dataset_description.json"
    if path.exists():
        return json.loads(path.read_text())
    desc = {"Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": dataset_type, **extra}
    write_json_atomic(path, desc)
    return desc


def ensure_bidsignore(root, patterns=DCE_IGNORE_PATTERNS):
    """Make sure ``.bidsignore`` lists ``patterns`` (existing lines are kept)."""
    path = Path(root) / ".bidsignore"
    lines = path.read_text().splitlines() if path.exists() else []
    missing = [p for p in patterns if p not in lines]
    if missing or not path.exists():
        write_text_atomic(path, "\n".join(lines + missing) + "\n")


def update_participants(root, rows, columns_doc=None):
    """Add or update rows of ``participants.tsv`` without dropping existing ones.

    ``rows`` is a list of dicts with at least ``participant_id`` (``sub-`` added if
    missing). Existing participants keep their values except for the columns given.
    ``columns_doc`` (dict column -> description dict) is merged into
    ``participants.json``.
    """
    root = Path(root)
    path = root / "participants.tsv"
    table, columns = {}, ["participant_id"]
    if path.exists():
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            columns = list(reader.fieldnames or columns)
            for row in reader:
                table[row["participant_id"]] = row
    for row in rows:
        row = {k: ("n/a" if v is None else v) for k, v in row.items()}
        pid = f"sub-{strip_prefix(row['participant_id'], 'sub')}"
        row["participant_id"] = pid
        for key in row:
            if key not in columns:
                columns.append(key)
        table.setdefault(pid, {}).update(row)
    lines = ["\t".join(columns)]
    for pid in sorted(table):
        lines.append("\t".join(str(table[pid].get(c, "n/a")) for c in columns))
    write_text_atomic(path, "\n".join(lines) + "\n")
    if columns_doc:
        doc_path = root / "participants.json"
        doc = json.loads(doc_path.read_text()) if doc_path.exists() else {}
        doc.update(columns_doc)
        write_json_atomic(doc_path, doc)
