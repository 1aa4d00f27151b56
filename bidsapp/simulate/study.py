"""Simulate a whole study and write it as BIDS and/or DICOM plus the truth derivatives.

Layout under ``out_dir``:

* BIDS raw (``fmt`` ``bids`` or ``both``): ``sub-*/[ses-*/]{anat,perf,fmap}``,
  ``dataset_description.json``, ``participants.tsv``/``.json``, ``.bidsignore``, ``README``;
* DICOM (``fmt`` ``dicom`` or ``both``): ``sourcedata/dicom/sub-L[/ses-S]/`` with
  ``simulation.json`` describing the series;
* truth (always): ``derivatives/truth/`` (see :mod:`.bids_writer`).
"""

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import bids_raw
from .bids_writer import (
    TIMING_FIELDS,
    subject_truth_row,
    write_raw_dataset_files,
    write_raw_session,
    write_truth_dataset_files,
    write_truth_session,
)
from .cohort import Cohort
from .dicom_vendors import vendor_style
from .dicom_writer import write_dicom_session
from .geometry import Grid
from .phantom import make_phantom
from .protocol import Protocol
from .subject import check_physics, simulate_dose_pair, simulate_subject

FORMATS = ("bids", "dicom", "both")
TRUTH_DIR = Path("derivatives") / "truth"
DICOM_DIR = Path("sourcedata") / "dicom"


@dataclass
class StudySummary:
    """What :func:`simulate_study` wrote: per session timing draws and output folders."""

    out_dir: str
    format: str
    vendor: str
    seed: int
    group_column: str
    groups: dict
    expected_auroc: float
    sessions: list = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self):
        """Return the summary as a JSON-serialisable dict."""
        return asdict(self)


def _check_out_dir(out_dir, overwrite):
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output path {out_dir} exists and is not a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"output folder {out_dir} is not empty (use overwrite=True / --overwrite)")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def simulate_study(
    out_dir: str | Path,
    n_subjects: int = 2,
    n_sessions: int = 1,
    fmt: str = "bids",
    seed: int = 0,
    protocol: Protocol | None = None,
    grid: Grid | None = None,
    vendor: str = "siemens",
    effect_size: float = 1.0,
    lesion: bool = True,
    dose_pairs: bool = False,
    low_dose_fraction: float = 0.25,
    vfa_separate_study: bool = False,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    timing_field: str = "VolumeTiming",
    vfa_grid: Grid | None = None,
) -> StudySummary:
    """Simulate ``n_subjects`` × ``n_sessions`` sessions and write them to ``out_dir``.

    Parameters
    ----------
    fmt : {"bids", "dicom", "both"}
        Raw output format(s); the truth derivatives are always written.
    protocol : Protocol, optional
        Acquisition protocol (default :class:`Protocol`).
    grid : Grid, optional
        Acquisition grid (default 64×64×8 voxels of 3.44×3.44×5 mm).
    vendor : {"siemens", "ge", "philips"}
        DICOM conventions (:mod:`.dicom_vendors`).
    effect_size : float
        Cohen's d of the group effect on tumour-rim log Ktrans and log vp.
    dose_pairs : bool
        Also write pre-contrast, low-dose and standard-dose T1-weighted volumes.
    low_dose_fraction : float
        Low dose as a fraction of the standard dose (typically 0.1–0.33).
    vfa_separate_study : bool
        DICOM: put the VFA series in their own StudyInstanceUID.
    vfa_grid : Grid, optional
        Acquire the VFA volumes on this grid (other voxel size / field of view) instead
        of the DCE grid (``fmt="bids"`` only); truth maps stay on the DCE grid.
    overwrite : bool
        Allow a non-empty ``out_dir`` (files are replaced; each session's DICOM folder
        is emptied first).
    progress : callable, optional
        Called with one line of text per step.
    timing_field : {"VolumeTiming", "RepetitionTime"}
        BIDS form of the DCE frame timing in the raw sidecars (both are valid BIDS).

    Returns
    -------
    StudySummary
    """
    started = time.perf_counter()
    if fmt not in FORMATS:
        raise ValueError(f"fmt {fmt!r} is not one of {', '.join(FORMATS)}")
    vendor_style(vendor)
    if timing_field not in TIMING_FIELDS:
        raise ValueError(f"timing_field {timing_field!r} is not one of {', '.join(TIMING_FIELDS)}")
    if dose_pairs and not 0.0 < low_dose_fraction < 1.0:
        raise ValueError(f"low_dose_fraction {low_dose_fraction} must lie in (0, 1)")
    protocol = protocol or Protocol()
    check_physics(protocol)
    if vfa_grid is not None and fmt != "bids":
        raise ValueError(f"vfa_grid (VFA on another grid) is supported for fmt='bids' only, not {fmt!r}")
    grid = grid or Grid()
    cohort = Cohort(n_subjects=n_subjects, n_sessions=n_sessions, seed=seed, effect_size=effect_size)
    out_dir = _check_out_dir(out_dir, overwrite)
    say = progress or (lambda line: None)
    truth_root = out_dir / TRUTH_DIR
    groups = cohort.groups()
    summary = StudySummary(
        out_dir=str(out_dir),
        format=fmt,
        vendor=vendor,
        seed=int(seed),
        group_column=cohort.group_column,
        groups=groups,
        expected_auroc=cohort.expected_auroc(),
    )
    truth_rows = []
    for s_index, subject in enumerate(cohort.subjects):
        group = groups[subject]
        phantom = make_phantom(
            cohort.subject_rng(s_index),
            grid,
            field_strength=protocol.field_strength,
            hematocrit=protocol.hematocrit,
            lesion=lesion,
            group=group,
            shifts=cohort.shifts(group),
        )
        vfa_phantom = None
        if vfa_grid is not None:
            vfa_phantom = make_phantom(
                cohort.subject_rng(s_index),
                vfa_grid,
                field_strength=protocol.field_strength,
                hematocrit=protocol.hematocrit,
                lesion=lesion,
                group=group,
                shifts=cohort.shifts(group),
                field_grid=grid,
            )
        truth_rows.append(subject_truth_row(subject, phantom, cohort.group_column))
        for v_index, session in enumerate(cohort.sessions):
            rng = cohort.session_rng(s_index, v_index)
            sim = simulate_subject(phantom, protocol, rng, vfa_phantom)
            pair = (
                simulate_dose_pair(phantom, protocol, rng, low_dose_fraction, sim.session_input, sim.b1)
                if dose_pairs
                else None
            )
            name = f"sub-{subject}" + (f" ses-{session}" if session else "")
            if fmt in ("bids", "both"):
                write_raw_session(out_dir, subject, session, sim, pair, timing_field)
            if fmt in ("dicom", "both"):
                folder = bids_raw.subject_dir(out_dir / DICOM_DIR, subject, session)
                if folder.exists():
                    shutil.rmtree(folder)
                study_start = dt.datetime(2024, 3, 4, 9, 0) + dt.timedelta(
                    days=7 * v_index, minutes=45 * s_index
                )
                write_dicom_session(
                    folder, subject, session, sim, vendor, pair, vfa_separate_study, seed, study_start
                )
            write_truth_session(truth_root, subject, session, sim, pair)
            summary.sessions.append(
                {
                    "subject": subject,
                    "session": session,
                    "group": group,
                    "bolus_arrival": sim.session_input.bolus_arrival,
                    "aif_amplitude": sim.session_input.amplitude,
                    "noise_sigma": sim.noise_sigma,
                }
            )
            say(f"{name}: group {group}, bolus arrival {sim.session_input.bolus_arrival:.1f} s, written")
    write_truth_dataset_files(truth_root, truth_rows, cohort.group_column)
    if fmt in ("bids", "both"):
        participants = [{"participant_id": s, cohort.group_column: g} for s, g in groups.items()]
        write_raw_dataset_files(
            out_dir,
            participants,
            cohort.group_column,
            cohort.group_labels,
            _readme(cohort, protocol, grid, fmt),
        )
    summary.seconds = time.perf_counter() - started
    say(f"done: {n_subjects} subject(s) × {n_sessions} session(s) in {summary.seconds:.1f} s → {out_dir}")
    return summary


def _readme(cohort, protocol, grid, fmt):
    return (
        "Simulated DCE-MRI study written by dcequant-simulate.\n\n"
        f"{cohort.n_subjects} subject(s), {cohort.n_sessions} session(s) each, seed {cohort.seed}.\n"
        f"Group column '{cohort.group_column}': {cohort.group_labels[1]} shifts tumour-rim Ktrans and vp "
        f"by Cohen's d = {cohort.effect_size:g} (log scale).\n"
        f"Matrix {grid.matrix}, voxel {grid.voxel_size} mm; {protocol.n_frames} frames every "
        f"{protocol.temporal_resolution:g} s; {protocol.field_strength:g} T; agent {protocol.agent}.\n"
        f"Raw format: {fmt}. Ground truth in derivatives/truth; DCE files (*_dce.*) are listed in "
        ".bidsignore.\n"
    )
