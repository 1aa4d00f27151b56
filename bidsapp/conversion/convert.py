"""Execute a conversion plan: pixels to NIfTI, sidecars, dataset files, provenance.

Which tool writes what (decided for exact, verifiable geometry):

* DCE, VFA and B1 images are written with nibabel from pydicom pixel arrays, in the
  voxel order and with the affine of :mod:`.geometry` (IPP/IOP of sorted slices, real
  slice spacing). This gives full control over frame order, per-frame rescaling
  (including the Philips private scale slope) and timing, and it is the convention of
  dcequant's simulator, so converted and simulated images compare voxel for voxel.
* Anatomical images (T1w, T2w, FLAIR) go through the dcm2niix binary of the
  ``dcm2niix`` wheel; its output is accepted only if its grid equals the IPP/IOP grid
  up to axis order/flips, otherwise the nibabel path is used (and the reason logged).

Safety: every output is first written to a temporary file next to its target
(:func:`bidsapp.io_utils.atomic_path`). An image and its sidecar are staged together;
if a target exists with different bytes and ``overwrite`` is false, both temporaries
are discarded and the acquisition is reported as failed, so no file is half-written or
silently replaced. Identical re-runs rewrite identical bytes (idempotent).
"""

import filecmp
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from .. import bids_raw
from .._version import __version__
from ..acquisition import frame_times
from ..io_utils import atomic_path, dataset_lock, write_json_atomic
from . import pixels, sidecars, timing
from .dcm2niix_runner import Dcm2niixError, dcm2niix_version, run_dcm2niix
from .plan import ANAT_ROLES, ConversionPlan, PlanEntry, plan_conversion
from .provenance import write_provenance

DATASET_NAME = "DCE-MRI study converted by dcequant-convert"


class OutputConflict(FileExistsError):
    """A target exists with different content and overwriting was not allowed."""


@dataclass
class EntryResult:
    """Outcome for one plan entry."""

    entry: PlanEntry
    status: str  # "written", "unchanged", "replaced", "failed", "not converted"
    message: str = ""
    files: list[Path] = field(default_factory=list)
    details: dict = field(default_factory=dict)


@dataclass
class ConversionResult:
    """What :func:`convert_dicom_study` did; ``ok`` is False if anything failed."""

    plan: ConversionPlan
    entries: list[EntryResult] = field(default_factory=list)
    provenance: Path | None = None

    @property
    def errors(self) -> list[str]:
        """One-line messages of the failed entries and the plan's problems."""
        msgs = [f"{r.entry.label}: {r.message}" for r in self.entries if r.status == "failed"]
        return msgs + [p for p in self.plan.problems]

    @property
    def ok(self) -> bool:
        """Whether the conversion finished without any error."""
        return not self.errors


def stage_and_commit(items, overwrite):
    """Write ``items`` [(path, writer(tmp_path))] atomically as one unit.

    Returns one status per item: ``written``, ``unchanged`` or ``replaced``. Raises
    :class:`OutputConflict` (writing nothing) if a target differs and ``overwrite`` is
    false.
    """
    statuses = []
    with ExitStack() as stack:
        staged = []
        for path, writer in items:
            tmp = stack.enter_context(atomic_path(path))
            writer(tmp)
            staged.append((path, tmp))
        for path, tmp in staged:
            if not path.exists():
                statuses.append("written")
            elif filecmp.cmp(path, tmp, shallow=False):
                statuses.append("unchanged")
            elif overwrite:
                statuses.append("replaced")
            else:
                raise OutputConflict(f"{path} exists with different content; use --overwrite to replace it")
    return statuses


def _nifti(data, affine, volume_timing=None):
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if data.ndim == 4:
        step = (
            float(np.median(np.diff(volume_timing)))
            if volume_timing is not None and len(volume_timing) > 1
            else 0.0
        )
        img.header.set_zooms(img.header.get_zooms()[:3] + (step,))
    return img


def _write_pair(target, img, sidecar, overwrite):
    json_path = target.with_name(target.name.replace(".nii.gz", ".json"))
    statuses = stage_and_commit(
        [
            (target, lambda tmp: nib.save(img, str(tmp))),
            (json_path, lambda tmp: write_json_atomic(tmp, sidecar)),
        ],
        overwrite,
    )
    status = "replaced" if "replaced" in statuses else "written" if "written" in statuses else "unchanged"
    return status, [target, json_path]


def _convert_dce(a):
    stack = a.acq.stack
    frames, k_idx, t_idx = stack.flat()
    source, vt = timing.volume_timing(frames, k_idx, t_idx)
    clock = timing.first_volume_clock(frames, source, t_idx)
    data = pixels.load_stack(stack)
    if data.ndim == 3:
        data = data[..., None]
    sidecar = sidecars.dce_sidecar(a.acq.first, vt, clock, a.sidecar)
    missing = [k for k in ("FlipAngle", "RepetitionTimeExcitation") if k not in sidecar]
    if missing:
        raise ValueError(
            f"{', '.join(missing)} missing from the DICOM header; supply it with a "
            'user rule\'s "sidecar" (see docs/conversion.md)'
        )
    frame_times(sidecar, "the DCE sidecar", len(vt))  # the timing rules the app reads it with
    details = {"timing_source": source, "volume_order": stack.order_source, "volumes": len(vt)}
    return _nifti(data, stack.grid.affine, vt), sidecar, details


def _convert_vfa(a, dce_grid):
    stack = a.acq.stack
    data = pixels.load_stack(stack)
    details = {"flip_angle": a.acq.first.flip_angle}
    if dce_grid is not None:
        details["grid_matches_dce"] = bool(stack.grid.matches(dce_grid))
        if not details["grid_matches_dce"]:
            details["grid_difference_mm"] = stack.grid.max_difference(dce_grid)
    return _nifti(data, stack.grid.affine), sidecars.vfa_sidecar(a.acq.first, a.sidecar), details


def b1_to_percent(data, frame):
    """Relative B1 in percent of nominal, and how it was scaled.

    Siemens ``tfl_b1map`` (``tfl`` in description/protocol/sequence name) stores 10 × the
    actual flip angle for the nominal FlipAngle, so percent = value · 10 / FlipAngle. Otherwise
    the values are taken as percent when their median over non-zero voxels is 30–300, or as a
    fraction (×100) when 0.3–3.
    """
    data = np.asarray(data, dtype=np.float32)
    text = " ".join([frame.series_description, frame.protocol_name, frame.sequence_name]).lower()
    if "tfl" in text and frame.flip_angle and "siemens" in frame.manufacturer.lower():
        return data * (
            10.0 / frame.flip_angle
        ), f"Siemens tfl_b1map: value x 10 / FlipAngle {frame.flip_angle:g}"
    nz = data[data > 0]
    median = float(np.median(nz)) if nz.size else 0.0
    if 30 <= median <= 300:
        return data, "values already in percent"
    if 0.3 <= median <= 3:
        return data * 100.0, "fraction of nominal x 100"
    raise ValueError(
        f"cannot tell the B1 map's units (median {median:g}); convert it by hand or mark it 'ignore'"
    )


def _convert_b1(a):
    data, how = b1_to_percent(pixels.load_stack(a.acq.stack), a.acq.first)
    return (
        _nifti(data, a.acq.stack.grid.affine),
        sidecars.b1_sidecar(a.acq.first, a.sidecar),
        {"scaling": how},
    )


def _convert_anat(a):
    stack = a.acq.stack
    try:
        img, sidecar = run_dcm2niix(a.acq.files, stack.grid)
        details = {"tool": "dcm2niix"}
    except Dcm2niixError as exc:
        img, sidecar = (
            _nifti(pixels.load_stack(stack), stack.grid.affine),
            sidecars.common_fields(a.acq.first),
        )
        details = {"tool": "nibabel", "dcm2niix_fallback_reason": str(exc)}
    sidecar.update(a.sidecar)
    return img, sidecar, details


def _convert_entry(entry, overwrite, dce_grid):
    a = entry.assignment
    if a.role in ("dce", "dce-lowdose"):
        img, sidecar, details = _convert_dce(a)
    elif a.role == "vfa":
        img, sidecar, details = _convert_vfa(a, dce_grid)
    elif a.role == "TB1map":
        img, sidecar, details = _convert_b1(a)
    elif a.role in ANAT_ROLES:
        img, sidecar, details = _convert_anat(a)
    else:
        raise ValueError(f"role {a.role!r} is not converted")
    status, files = _write_pair(entry.target, img, sidecar, overwrite)
    return EntryResult(entry=entry, status=status, files=files, details=details)


def _dataset_files(plan):
    """Write the dataset-level files of the raw dataset.

    Dataset-level files of the raw dataset, updated under its lock (concurrent conversions of other subjects
    may update ``participants.tsv`` at the same time).
    """
    root = plan.bids_dir
    with dataset_lock(root):
        bids_raw.ensure_dataset_description(
            root, DATASET_NAME, GeneratedBy=[{"Name": "dcequant-convert", "Version": __version__}]
        )
        bids_raw.ensure_bidsignore(root)
        bids_raw.update_participants(root, [{"participant_id": plan.participant_label}])


def execute_plan(plan, overwrite=False):
    """Convert every convertible entry of ``plan``; failures are recorded, not raised."""
    result = ConversionResult(plan=plan)
    dce = next((e for e in plan.entries if e.role == "dce" and e.target is not None), None)
    dce_grid = dce.assignment.acq.stack.grid if dce is not None else None
    order = sorted(plan.entries, key=lambda e: e.role != "dce")  # DCE first: VFA grids are compared to it
    converted = 0
    for entry in order:
        if entry.target is None:
            result.entries.append(
                EntryResult(entry=entry, status="not converted", message=entry.assignment.problem or "")
            )
            continue
        try:
            res = _convert_entry(entry, overwrite, dce_grid)
            converted += 1
        except Exception as exc:  # one bad series must not stop the study
            res = EntryResult(entry=entry, status="failed", message=str(exc) or type(exc).__name__)
        result.entries.append(res)
    vfa_results = [r for r in result.entries if r.entry.role == "vfa" and "grid_matches_dce" in r.details]
    if any(not r.details["grid_matches_dce"] for r in vfa_results):
        plan.notes.append(
            "flip-angle images are not on the dynamic series' grid (see grid_matches_dce in the "
            "provenance log); T1 maps will need resampling"
        )
    if converted:
        _dataset_files(plan)
    result.entries.sort(key=lambda r: plan.entries.index(r.entry))
    result.provenance = write_provenance(result, dcm2niix_version())
    return result


def convert_dicom_study(
    dicom_dir: str | Path,
    bids_dir: str | Path,
    participant_label: str,
    session_label: str | None = None,
    config: str | Path | dict | None = None,
    dry_run: bool = False,
    overwrite: bool = False,
) -> ConversionPlan | ConversionResult:
    """Convert one participant's DICOM folder into raw BIDS under ``bids_dir``.

    Returns the :class:`~.plan.ConversionPlan` when ``dry_run`` (nothing is written),
    else a :class:`ConversionResult`. Problems with single series are collected in
    ``result.errors`` (the rest of the study still converts); misuse raises ValueError.
    """
    plan = plan_conversion(dicom_dir, participant_label, session_label, config, bids_dir=bids_dir)
    if dry_run:
        return plan
    return execute_plan(plan, overwrite=overwrite)
