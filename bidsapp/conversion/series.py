"""Group frames into acquisitions and arrange each as a (slice × time) stack.

An *acquisition* is the set of frames of one SeriesInstanceUID that share sequence
parameters and geometry: flip angle, TR, TE, echo number, ImageType, matrix,
orientation and pixel spacing. A series that holds several flip angles (a VFA set in
one series) or several image types (e.g. a B1 map stored with its anatomical
reference) therefore yields several acquisitions. Series are keyed by UID only —
SeriesNumber and StudyInstanceUID may be shared or differ between related series.

:func:`build_stack` sorts an acquisition's frames by slice position along the normal
(never by file order) and by time within each position, and checks that every position
has the same number of frames, so missing or duplicated frames are reported instead of
silently mis-stacked.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from . import geometry, timing
from .headers import series_label


@dataclass
class Stack:
    """Frames of an acquisition arranged as ``frames[k][t]`` plus the voxel grid."""

    frames: list  # list over slices (ascending along the normal) of lists over time
    grid: geometry.Grid
    order_source: str | None  # field that ordered the volumes (None for one volume)
    warnings: list = field(default_factory=list)

    @property
    def n_slices(self):
        """Number of slice positions."""
        return len(self.frames)

    @property
    def n_volumes(self):
        """Number of volumes (frames per slice position)."""
        return len(self.frames[0])

    def flat(self):
        """Frames in (slice, time) order with matching slice and volume indices."""
        frames, k_idx, t_idx = [], [], []
        for k, column in enumerate(self.frames):
            for t, frame in enumerate(column):
                frames.append(frame)
                k_idx.append(k)
                t_idx.append(t)
        return frames, np.array(k_idx), np.array(t_idx)


@dataclass
class Acquisition:
    """Frames of one series sharing sequence parameters and geometry."""

    frames: list
    sub_label: str = ""  # e.g. "flip 10°" when a series holds several acquisitions
    stack: Stack | None = None
    error: str | None = None  # why the frames could not be stacked

    @property
    def first(self):
        """First frame of the acquisition."""
        return self.frames[0]

    @property
    def series_uid(self):
        """SeriesInstanceUID of the acquisition."""
        return self.first.series_uid

    @property
    def label(self):
        """Human-readable label: series number and description, and the sub-label of a split series."""
        base = series_label(self.first.series_number, self.first.series_description, self.first.series_uid)
        return f"{base} [{self.sub_label}]" if self.sub_label else base

    @property
    def files(self):
        """Sorted paths of the DICOM files of the acquisition."""
        return sorted({f.path for f in self.frames})

    def earliest_clock(self):
        """Earliest AcquisitionTime/ContentTime/SeriesTime of the frames (s), or None."""
        for attr in ("acquisition_time", "content_time", "series_time"):
            values = [getattr(f, attr) for f in self.frames if getattr(f, attr) is not None]
            if values:
                return min(values)
        return None


def _round(value, digits):
    return None if value is None else round(float(value), digits)


def acquisition_key(frame):
    """Parameters that must agree for frames to belong to one acquisition."""
    return (
        _round(frame.flip_angle, 2),
        _round(frame.repetition_time, 6),
        _round(frame.echo_time, 6),
        frame.echo_number,
        frame.image_type,
        frame.rows,
        frame.columns,
        None if frame.orientation is None else tuple(round(v, 3) for v in frame.orientation),
        None if frame.pixel_spacing is None else tuple(round(v, 4) for v in frame.pixel_spacing),
    )


def _describe_difference(key, keys):
    names = ("flip", "TR", "TE", "echo", "ImageType", "rows", "columns", "orientation", "spacing")
    varying = [i for i in range(len(key)) if len({k[i] for k in keys}) > 1]
    parts = []
    for i in varying:
        value = key[i]
        if names[i] == "flip" and value is not None:
            parts.append(f"flip {value:g}°")
        elif names[i] in ("TR", "TE") and value is not None:
            parts.append(f"{names[i]} {value * 1e3:g} ms")
        elif names[i] == "ImageType":
            parts.append("\\".join(value))
        else:
            parts.append(f"{names[i]} {value}")
    return ", ".join(parts)


def remove_duplicates(frames):
    """Drop repeated (SOPInstanceUID, frame) pairs; return ``(frames, notes)``.

    A duplicate is the same instance stored twice (a copied file). The copy with the
    first path in sorted order is kept, so the result does not depend on disk order.
    """
    seen, kept, notes = {}, [], []
    for frame in sorted(frames, key=lambda f: (f.path, f.frame_index or 0)):
        key = (frame.sop_uid, frame.frame_index)
        if frame.sop_uid and key in seen:
            notes.append(
                f"{frame.label}: duplicate instance {frame.sop_uid} in {frame.path}; kept {seen[key]}"
            )
            continue
        seen[key] = frame.path
        kept.append(frame)
    return kept, notes


def group_acquisitions(frames):
    """Split frames by SeriesInstanceUID, then by :func:`acquisition_key`."""
    by_series = defaultdict(list)
    for frame in frames:
        by_series[frame.series_uid].append(frame)
    acquisitions = []
    for uid in sorted(by_series, key=lambda u: (by_series[u][0].series_number or 0, u)):
        sub = defaultdict(list)
        for frame in by_series[uid]:
            sub[acquisition_key(frame)].append(frame)
        keys = list(sub)
        for key in sorted(keys, key=lambda k: tuple(str(v) for v in k)):
            label = _describe_difference(key, keys) if len(keys) > 1 else ""
            acquisitions.append(Acquisition(frames=sub[key], sub_label=label))
    return acquisitions


def _missing_temporal_positions(column_tpis, n_declared):
    """Message about gaps in TemporalPositionIdentifier or the declared count, or None."""
    values = sorted({int(v) for v in column_tpis if v is not None})
    if values:
        expected = set(range(values[0], values[-1] + 1))
        missing = sorted(expected - set(values))
        if missing:
            return f"missing temporal positions {missing[:10]}{'…' if len(missing) > 10 else ''}"
    if n_declared and values and len(values) != n_declared:
        return f"{len(values)} temporal positions found, NumberOfTemporalPositions says {n_declared}"
    return None


def build_stack(acq):
    """Arrange ``acq.frames`` as a slice × time :class:`Stack` (raises GeometryError/TimingError)."""
    frames = acq.frames
    first = acq.first
    if first.orientation is None or first.pixel_spacing is None or any(f.position is None for f in frames):
        raise geometry.GeometryError("ImagePositionPatient, ImageOrientationPatient or PixelSpacing missing")
    for f in frames:
        if not geometry.same_orientation(f.orientation, first.orientation):
            raise geometry.GeometryError(f"mixed orientations ({f.path})")
    positions = np.array([f.position for f in frames])
    locations = geometry.slice_locations(positions, first.orientation)
    distinct = geometry.unique_locations(locations)
    k_index = geometry.location_index(locations, distinct)
    counts = np.bincount(k_index, minlength=len(distinct))
    if counts.min() != counts.max():
        worst = int(np.argmin(counts))
        raise geometry.GeometryError(
            f"inconsistent slice counts: {counts.min()} frame(s) at slice location {distinct[worst]:.3f} mm "
            f"but {counts.max()} at others (missing or extra frames)"
        )
    n_vol = int(counts[0])
    warnings, order_source = [], None
    if n_vol > 1:
        key, order_source = timing.temporal_order_key(frames, k_index)
        if key is None:
            raise geometry.GeometryError(
                f"{n_vol} frames per slice position with identical timing, temporal position and instance "
                "number (duplicates?)"
            )
    else:
        key = np.zeros(len(frames))
    gap = _missing_temporal_positions([f.temporal_position for f in frames], first.n_temporal_positions)
    if gap and (n_vol > 1 or (first.n_temporal_positions or 1) > 1):
        raise geometry.GeometryError(gap)
    columns = []
    for k in range(len(distinct)):
        idx = np.flatnonzero(k_index == k)
        idx = idx[np.argsort(key[idx], kind="stable")]
        columns.append([frames[i] for i in idx])
    sorted_positions = np.array([column[0].position for column in columns])
    geometry.check_collinear(sorted_positions, first.orientation, distinct)
    step = geometry.slice_step(distinct, first.spacing_between_slices or first.slice_thickness)
    affine = geometry.affine_from_dicom(
        first.orientation, columns[0][0].position, first.pixel_spacing, step, first.rows
    )
    grid = geometry.Grid(shape=(first.columns, first.rows, len(distinct)), affine=affine)
    if len(distinct) > 1 and first.slice_thickness and abs(first.slice_thickness - step) > 1e-3:
        warnings.append(
            f"slice spacing {step:.4f} mm from positions differs from SliceThickness "
            f"{first.slice_thickness:g} mm; the spacing is used"
        )
    inst = [f.instance_number for f in frames]
    if (
        n_vol > 1
        and all(v is not None for v in inst)
        and max(inst) - min(inst) + 1 > len(set(inst)) == len(inst)
    ):
        warnings.append("InstanceNumber has gaps (frames missing from the export?)")
    return Stack(frames=columns, grid=grid, order_source=order_source, warnings=warnings)


def stack_all(acquisitions):
    """Build every acquisition's stack, recording errors on the acquisition."""
    for acq in acquisitions:
        try:
            acq.stack = build_stack(acq)
        except (geometry.GeometryError, timing.TimingError) as exc:
            acq.error = str(exc)
    return acquisitions
