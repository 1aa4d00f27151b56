"""Voxel grid of a stack of DICOM slices: sorting, real slice spacing and the affine.

Convention (the same as dcm2niix and dcequant's simulator): the NIfTI array index
``(i, j, k)`` is DICOM column ``i``, row ``R − 1 − j`` (rows reversed, R = Rows) and slice
``k``, with slices sorted by ascending position along the slice normal ``n = r × c``,
where ``r`` and ``c`` are the row and column direction cosines of
ImageOrientationPatient. In DICOM's LPS patient space the voxel-to-world matrix is::

    [ r·Δcol   −c·Δrow   n·Δslice   IPP_0 + (R − 1)·c·Δrow ]

with PixelSpacing = (Δrow, Δcol), Δslice the *measured* distance between sorted slice
positions (never SliceThickness, which can differ from the spacing when there are gaps
or overlaps) and IPP_0 the ImagePositionPatient of the first sorted slice (never of
the first file on disk). NIfTI world space is RAS, so the first two rows are negated.
The determinant is always negative (radiological storage order, e.g. LAS for an
axial stack), as in dcm2niix output.

Reference: DICOM PS3.3 C.7.6.2.1.1; Li X et al. J Neurosci Methods 2016;264:47-56.
"""

from dataclasses import dataclass

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: positions closer than this (mm) along the normal are the same slice
SLICE_TOLERANCE_MM = 1e-3
#: relative tolerance on equal slice gaps and in-plane offsets
SPACING_RTOL = 1e-3


class GeometryError(ValueError):
    """Frames that cannot be put on one regular grid."""


@dataclass(frozen=True)
class Grid:
    """Shape (i, j, k) and 4x4 RAS affine (mm) of a volume."""

    shape: tuple
    affine: np.ndarray

    def matches(self, other, atol_mm=1e-4):
        """Return True when both grids have the same shape and affine within ``atol_mm``."""
        return tuple(self.shape) == tuple(other.shape) and np.allclose(
            self.affine, other.affine, atol=atol_mm, rtol=0
        )

    def max_difference(self, other):
        """Largest absolute affine difference (mm), or inf for different shapes."""
        if tuple(self.shape) != tuple(other.shape):
            return float("inf")
        return float(np.max(np.abs(self.affine - other.affine)))


def slice_normal(orientation):
    """Return the unit normal ``r × c`` of a 6-value ImageOrientationPatient."""
    o = np.asarray(orientation, dtype=float)
    normal = np.cross(o[:3], o[3:])
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        raise GeometryError(f"ImageOrientationPatient {list(o)} has parallel row and column directions")
    return normal / norm


def slice_locations(positions, orientation):
    """Distance (mm) of each ImagePositionPatient along the slice normal."""
    return np.asarray(positions, dtype=float) @ slice_normal(orientation)


def unique_locations(locations, tol=SLICE_TOLERANCE_MM):
    """Sorted distinct slice locations (values within ``tol`` mm merged)."""
    out = []
    for value in np.sort(np.asarray(locations, dtype=float)):
        if not out or value - out[-1] > tol:
            out.append(value)
    return np.asarray(out)


def location_index(locations, distinct, tol=SLICE_TOLERANCE_MM):
    """Index into ``distinct`` of every location (``distinct`` from :func:`unique_locations`)."""
    locations = np.asarray(locations, dtype=float)
    idx = np.clip(np.searchsorted(distinct, locations - tol), 0, len(distinct) - 1)
    if np.any(np.abs(distinct[idx] - locations) > tol):
        raise GeometryError("slice location not on the slice list")
    return idx


def slice_step(distinct, fallback=None):
    """Regular spacing (mm) of sorted slice locations.

    One slice: ``fallback`` (SpacingBetweenSlices, else SliceThickness) — the only
    information there is. Several: the mean gap, after checking every gap agrees
    within :data:`SPACING_RTOL` (otherwise the stack cannot be one affine grid).
    """
    if len(distinct) == 1:
        if not fallback or fallback <= 0:
            raise GeometryError("single slice without SpacingBetweenSlices or SliceThickness")
        return float(fallback)
    gaps = np.diff(distinct)
    step = float(gaps.mean())
    if np.max(np.abs(gaps - step)) > max(SPACING_RTOL * step, SLICE_TOLERANCE_MM):
        ratio = gaps.max() / gaps.min() if gaps.min() > 0 else 0.0
        hint = " (slices missing?)" if abs(ratio - round(ratio)) < 0.01 and ratio >= 2 else ""
        raise GeometryError(
            f"irregular slice spacing: gaps from {gaps.min():.4f} to {gaps.max():.4f} mm{hint}"
        )
    return step


def check_collinear(positions, orientation, locations):
    """Raise if slice origins do not lie on one line along the normal (tilt, mixed stacks)."""
    positions = np.asarray(positions, dtype=float)
    normal = slice_normal(orientation)
    in_plane = positions - np.outer(locations, normal)
    spread = np.max(np.ptp(in_plane, axis=0)) if len(positions) > 1 else 0.0
    if spread > 1e-2:
        raise GeometryError(
            f"slice origins are offset in-plane by up to {spread:.3f} mm (mixed stacks or gantry tilt)"
        )


def affine_from_dicom(orientation, first_position, pixel_spacing, step, n_rows):
    """4x4 RAS affine of a sorted slice stack with ``n_rows`` rows (see module docstring)."""
    o = np.asarray(orientation, dtype=float)
    row_cos, col_cos = o[:3], o[3:]
    d_row, d_col = (float(v) for v in pixel_spacing)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * d_col
    lps[:3, 1] = -col_cos * d_row
    lps[:3, 2] = slice_normal(o) * step
    lps[:3, 3] = np.asarray(first_position, dtype=float) + (int(n_rows) - 1) * col_cos * d_row
    return LPS_TO_RAS @ lps


def same_orientation(a, b, atol=1e-4):
    """Return True when two ImageOrientationPatient values agree within ``atol``."""
    return a is not None and b is not None and np.allclose(a, b, atol=atol, rtol=0)
