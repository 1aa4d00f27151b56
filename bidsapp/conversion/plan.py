"""The conversion plan: which DICOM acquisition becomes which BIDS file, and why.

:func:`plan_conversion` reads headers only (fast, writes nothing); the plan is what
``--dry-run`` prints and what :func:`~.convert.convert_dicom_study` executes.
"""

from dataclasses import dataclass, field
from pathlib import Path

from .. import bids_raw
from .classify import Assignment, classify, n_slices, n_volumes
from .discover import discover_dicom
from .rules import load_rules
from .series import group_acquisitions, remove_duplicates, stack_all

ANAT_ROLES = ("T1w", "T2w", "FLAIR")


@dataclass
class PlanEntry:
    """One acquisition: its role and the BIDS image it will become (None: not converted)."""

    assignment: Assignment
    target: Path | None

    @property
    def role(self) -> str:
        """Role assigned to the acquisition (``dce``, ``vfa``, ``T1w``, …)."""
        return self.assignment.role

    @property
    def label(self) -> str:
        """Human-readable label of the acquisition (series number and description)."""
        return self.assignment.acq.label


@dataclass
class ConversionPlan:
    """Everything decided before any pixel is read."""

    dicom_dir: Path
    bids_dir: Path | None
    participant_label: str
    session_label: str | None
    n_files: int
    notes: list[str] = field(default_factory=list)
    entries: list[PlanEntry] = field(default_factory=list)

    def entries_with_role(self, *roles):
        """Return the planned entries whose role is one of ``roles``."""
        return [e for e in self.entries if e.role in roles]

    @property
    def problems(self):
        """One-line messages for acquisitions that have a role but cannot be converted."""
        return [
            f"{e.label}: {e.role} not converted: {e.assignment.problem}"
            for e in self.entries
            if e.assignment.problem and e.role not in ("other", "ignore")
        ]

    def table(self):
        """Return the plan as a fixed-width text table (what ``--dry-run`` prints)."""
        header = (
            "series",
            "description",
            "files",
            "slices",
            "vols",
            "flip",
            "TR ms",
            "role",
            "target / reason",
        )
        rows = []
        for e in self.entries:
            a, f = e.assignment, e.assignment.acq.first
            if e.target is not None:
                where = self._relative(e.target)
            elif a.problem:
                where = f"NOT CONVERTED: {a.problem}"
            else:
                where = f"- ({a.reason})"
            desc = f.series_description + (f" [{a.acq.sub_label}]" if a.acq.sub_label else "")
            rows.append(
                (
                    "?" if f.series_number is None else str(f.series_number),
                    desc[:40],
                    str(len(a.acq.files)),
                    str(n_slices(a.acq) or "?"),
                    str(n_volumes(a.acq)),
                    "?" if f.flip_angle is None else f"{f.flip_angle:g}",
                    "?" if f.repetition_time is None else f"{f.repetition_time * 1e3:g}",
                    e.role + ("*" if a.decided_by != "auto" else ""),
                    where,
                )
            )
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
        lines = [
            "  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
            for r in [header, *rows]
        ]
        if any(e.assignment.decided_by != "auto" for e in self.entries):
            lines.append("(* role set by a user rule)")
        return "\n".join(lines)

    def _relative(self, path):
        if self.bids_dir is None:
            return str(path)
        try:
            return str(Path(path).relative_to(self.bids_dir))
        except ValueError:
            return str(path)


def target_path(assignment, root, subject, session):
    """BIDS path of the image for a convertible assignment (None otherwise)."""
    if not assignment.convertible:
        return None
    role, entities = assignment.role, dict(assignment.entities)
    if role == "vfa":
        return bids_raw.vfa_path(root, subject, session, assignment.flip_index)
    if role in ("dce", "dce-lowdose"):
        return bids_raw.raw_path(root, subject, session, "perf", "dce", **entities)
    if role == "TB1map":
        return bids_raw.raw_path(root, subject, session, "fmap", "TB1map", **entities)
    if role in ANAT_ROLES:
        return bids_raw.raw_path(root, subject, session, "anat", role, **entities)
    raise ValueError(f"no BIDS target for role {role!r}")


def plan_conversion(
    dicom_dir: str | Path,
    participant_label: str,
    session_label: str | None = None,
    config: str | Path | dict | None = None,
    bids_dir: str | Path | None = None,
) -> ConversionPlan:
    """Discover, group, stack and classify a DICOM folder; return a :class:`ConversionPlan`.

    ``config`` is a rules file path, a parsed rules mapping or None (see
    :mod:`bidsapp.conversion.rules`). ``bids_dir`` only fills in target paths; nothing is
    written. Raises ValueError for a bad label, bad rules, or a folder without DICOM
    images.
    """
    subject = bids_raw.strip_prefix(participant_label, "sub")
    session = bids_raw.strip_prefix(session_label, "ses") if session_label else None
    for name, value in (("participant label", subject), ("session label", session)):
        if value is not None and (not value or not value.isalnum()):
            raise ValueError(f"{name} {value!r} must be alphanumeric (BIDS label)")
    rules = load_rules(config)
    found = discover_dicom(dicom_dir)
    if not found.frames:
        raise ValueError(f"DICOM_DIR {dicom_dir}: no DICOM images found ({found.n_files} files looked at)")
    frames, dup_notes = remove_duplicates(found.frames)
    acquisitions = stack_all(group_acquisitions(frames))
    assignments = classify(acquisitions, rules)
    root = Path(bids_dir) if bids_dir is not None else Path("<BIDS_DIR>")
    plan = ConversionPlan(
        dicom_dir=Path(dicom_dir),
        bids_dir=Path(bids_dir) if bids_dir is not None else None,
        participant_label=subject,
        session_label=session,
        n_files=found.n_files,
        notes=found.notes + dup_notes,
    )
    claimed = {}
    for a in assignments:
        target = target_path(a, root, subject, session)
        if target is not None and target in claimed:
            a.problem = f"same BIDS name as {claimed[target]}; choose one with a user rule (role 'ignore')"
            target = None
        elif target is not None:
            claimed[target] = a.acq.label
        plan.entries.append(PlanEntry(assignment=a, target=target))
        for warning in a.acq.stack.warnings if a.acq.stack is not None else []:
            plan.notes.append(f"{a.acq.label}: {warning}")
    patients = sorted({str(getattr(f.dataset, "PatientID", "") or "") for f in frames} - {""})
    if len(patients) > 1:
        plan.notes.append(
            f"{dicom_dir}: images of {len(patients)} different PatientIDs ({', '.join(patients[:5])}); "
            "all are converted as participant " + subject
        )
    if not plan.entries_with_role("dce"):
        plan.notes.append("no dynamic (DCE) series found")
    return plan
