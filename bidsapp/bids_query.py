"""Find the inputs of each subject/session in a BIDS dataset (pybids) or its DICOM.

``_dce`` is not (yet) a BIDS suffix, so the layout is built with ``validate=False``.
Raw naming follows :mod:`bidsapp.bids_raw`. A subject/session that has DICOM under
``sourcedata/dicom/sub-<L>[/ses-<S>]/`` and no raw DCE series yet is returned with
``dicom_dir`` set; the participant workflow converts it first. A subject/session with a
low-dose T1-weighted image (``anat/*_acq-lowdose_ce-<agent>_T1w``) also gets its
pre-contrast ``anat/*_T1w`` (no ``ce-``) and, when present, its standard-dose image
(``acq-standarddose`` or ``acq-fulldose``), with or without DCE data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bids import BIDSLayout
from bids.layout import Query

from .bids_raw import strip_prefix
from .io_utils import read_option_file

#: keys of a ``--bids-filter-file`` and the default pybids query of each
QUERIES = {
    "vfa": {"datatype": "anat", "suffix": "VFA", "extension": [".nii.gz", ".nii"]},
    "dce": {"datatype": "perf", "suffix": "dce", "extension": [".nii.gz", ".nii"]},
    "b1": {"datatype": "fmap", "suffix": "TB1map", "extension": [".nii.gz", ".nii"]},
    "dose_pre": {
        "datatype": "anat",
        "suffix": "T1w",
        "ceagent": Query.NONE,
        "extension": [".nii.gz", ".nii"],
    },
    "dose_low": {
        "datatype": "anat",
        "suffix": "T1w",
        "acquisition": "lowdose",
        "ceagent": Query.ANY,
        "extension": [".nii.gz", ".nii"],
    },
    "dose_standard": {
        "datatype": "anat",
        "suffix": "T1w",
        "acquisition": ["standarddose", "fulldose"],
        "ceagent": Query.ANY,
        "extension": [".nii.gz", ".nii"],
    },
}


class NothingSelectedError(LookupError):
    """No subject/session matched the selection (exit code 18)."""


@dataclass
class SessionInputs:
    """The raw files of one subject/session (absolute paths)."""

    subject: str
    session: str | None
    dce: Path | None = None
    vfa: list[Path] = field(default_factory=list)
    b1: Path | None = None
    dicom_dir: Path | None = None
    dose_pre: Path | None = None
    dose_low: Path | None = None
    dose_standard: Path | None = None

    @property
    def name(self):
        """``sub-<L>[_ses-<S>]``, for logs and node names."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    @property
    def from_dicom(self):
        """Whether the session is converted from DICOM (``dicom_dir`` is set)."""
        return self.dicom_dir is not None


def load_filter_file(path):
    """Read a ``--bids-filter-file`` (JSON: ``{"dce": {"acquisition": "fast"}, ...}``)."""
    path = Path(path)
    filters = read_option_file(path, "--bids-filter-file")
    unknown = set(filters) - set(QUERIES)
    if unknown:
        raise ValueError(
            f"--bids-filter-file {path}: unknown key(s) {sorted(unknown)}; use {sorted(QUERIES)}"
        )
    return filters


def dicom_sessions(bids_dir):
    """``{(subject, session|None): folder}`` of DICOM under ``sourcedata/dicom``."""
    root = Path(bids_dir) / "sourcedata" / "dicom"
    found = {}
    for sub_dir in sorted(root.glob("sub-*")):
        if not sub_dir.is_dir():
            continue
        subject = strip_prefix(sub_dir.name, "sub")
        ses_dirs = [d for d in sorted(sub_dir.glob("ses-*")) if d.is_dir()]
        if ses_dirs:
            for ses_dir in ses_dirs:
                found[(subject, strip_prefix(ses_dir.name, "ses"))] = ses_dir
        else:
            found[(subject, None)] = sub_dir
    return found


def _layout(bids_dir):
    return BIDSLayout(str(bids_dir), validate=False, derivatives=False)


def _files(layout, kind, subject, session, filters):
    query = {**QUERIES[kind], **filters.get(kind, {}), "subject": subject, "return_type": "object"}
    query["session"] = session if session else Query.NONE
    return sorted(layout.get(**query), key=lambda f: f.path)


def _flip_index(bids_file):
    return int(bids_file.get_entities().get("flip", 0))


def _one(layout, kind, inputs, filters):
    """Return the single file of ``kind`` (or None); several raise ``ValueError`` naming them."""
    found = _files(layout, kind, inputs.subject, inputs.session, filters)
    if len(found) > 1:
        names = ", ".join(Path(f.path).name for f in found)
        raise ValueError(
            f"{inputs.name}: {len(found)} {kind} images match ({names}); select one with --bids-filter-file"
        )
    return Path(found[0].path) if found else None


def _add_dose_inputs(layout, inputs, filters):
    """Set the dose inputs of ``inputs``: low dose, its pre-contrast image, optional standard dose."""
    inputs.dose_low = _one(layout, "dose_low", inputs, filters)
    if inputs.dose_low is None:
        return
    inputs.dose_pre = _one(layout, "dose_pre", inputs, filters)
    if inputs.dose_pre is None:
        raise ValueError(
            f"{inputs.dose_low}: no pre-contrast anat/*_T1w image (without ce-) in {inputs.name}"
        )
    inputs.dose_standard = _one(layout, "dose_standard", inputs, filters)


def collect_sessions(bids_dir, participant_label=(), session_label=(), filters=None):
    """Return the :class:`SessionInputs` to process, sorted by subject and session.

    Raises :class:`NothingSelectedError` when a requested label does not exist or
    nothing is left, and ``ValueError`` when a filter selects several DCE series.
    """
    bids_dir = Path(bids_dir).resolve()
    filters = filters or {}
    participants = [strip_prefix(p, "sub") for p in participant_label]
    sessions_wanted = [strip_prefix(s, "ses") for s in session_label]
    has_raw = any(bids_dir.glob("sub-*"))
    layout = _layout(bids_dir) if has_raw else None
    dicoms = dicom_sessions(bids_dir)

    pairs = set()
    if layout is not None:
        for subject in layout.get_subjects():
            sessions = layout.get_sessions(subject=subject) or [None]
            pairs.update((subject, s) for s in sessions)
    pairs.update(dicoms)
    subjects_available = {s for s, _ in pairs}
    missing = [p for p in participants if p not in subjects_available]
    if missing:
        raise NothingSelectedError(
            f"--participant-label: subject(s) {', '.join(missing)} not found in {bids_dir} "
            f"(available: {', '.join(sorted(subjects_available)) or 'none'})"
        )
    selected = sorted(
        (
            p
            for p in pairs
            if (not participants or p[0] in participants) and (not sessions_wanted or p[1] in sessions_wanted)
        ),
        key=lambda p: (p[0], p[1] or ""),
    )
    result = []
    for subject, session in selected:
        inputs = SessionInputs(subject, session)
        if layout is not None:
            _add_dose_inputs(layout, inputs, filters)
        dce = _files(layout, "dce", subject, session, filters) if layout is not None else []
        if len(dce) > 1:
            raise ValueError(
                f"{inputs.name}: {len(dce)} DCE series match ({', '.join(Path(f.path).name for f in dce)}); "
                "select one with --bids-filter-file"
            )
        if dce:
            inputs.dce = Path(dce[0].path)
            vfa = _files(layout, "vfa", subject, session, filters)
            inputs.vfa = [Path(f.path) for f in sorted(vfa, key=_flip_index)]
            b1 = _files(layout, "b1", subject, session, filters)
            inputs.b1 = Path(b1[0].path) if b1 else None
        elif (subject, session) in dicoms:
            inputs.dicom_dir = dicoms[(subject, session)]
        elif inputs.dose_low is None:
            continue
        result.append(inputs)
    if not result:
        raise NothingSelectedError(f"no DCE series, DICOM or low-dose T1w selected in {bids_dir}")
    return result
