"""Geometry of the brain-like digital reference object and partial-volume fractions.

The head is described in patient RAS millimetres (x to the right, y anterior, z
superior, origin at the brain centre) by simple analytic shapes drawn per subject:
an ellipsoidal inner skull with a CSF layer, a cortex whose inner boundary undulates
(gyri), deep grey nuclei, white matter, lateral ventricles and the interhemispheric
fissure, a large vertical feeding artery (internal-carotid-like) with a smaller
contralateral one and two horizontal middle-cerebral branches, the superior sagittal
sinus following the midline under the skull, an irregular tumour with a necrotic
core and an enhancing rim, and an optional non-enhancing lesion.

Partial volume is computed by supersampling every voxel (``supersample``³ points) and
counting the class of each point, so edge voxels carry the true fractions.
"""

from dataclasses import dataclass

import numpy as np

from .tissues import CLASS_INDEX, TISSUE_CLASSES


@dataclass(frozen=True)
class Grid:
    """Acquisition grid: ``matrix`` (nx, ny, nz) and ``voxel_size`` (mm).

    Arrays are indexed ``[i, j, k]``; ``i`` runs from the patient's right to left,
    ``j`` from posterior to anterior and ``k`` from inferior to superior (LAS, the
    orientation dcm2niix gives the axial dynamic series, so converted and simulated NIfTI match
    voxel for voxel). ``slab_centre`` is the z (mm) of the slab centre.
    """

    matrix: tuple = (64, 64, 8)
    voxel_size: tuple = (3.4375, 3.4375, 5.0)
    slab_centre: float = 0.0

    def __post_init__(self):
        """Check and normalise ``matrix`` (voxels) and ``voxel_size`` (mm)."""
        if len(self.matrix) != 3 or any(int(n) < 1 for n in self.matrix):
            raise ValueError(f"matrix {self.matrix} must be three positive integers")
        if len(self.voxel_size) != 3 or any(float(v) <= 0 for v in self.voxel_size):
            raise ValueError(f"voxel_size {self.voxel_size} must be three positive mm values")
        object.__setattr__(self, "matrix", tuple(int(n) for n in self.matrix))
        object.__setattr__(self, "voxel_size", tuple(float(v) for v in self.voxel_size))

    @property
    def affine(self):
        """4×4 voxel-to-RAS (mm) affine."""
        dx, dy, dz = self.voxel_size
        nx, ny, nz = self.matrix
        aff = np.diag([-dx, dy, dz, 1.0])
        aff[:3, 3] = [(nx - 1) / 2 * dx, -(ny - 1) / 2 * dy, self.slab_centre - (nz - 1) / 2 * dz]
        return aff

    def coordinates(self, i, j, k):
        """RAS mm coordinates of (possibly fractional) voxel indices."""
        aff = self.affine
        return (
            aff[0, 0] * np.asarray(i) + aff[0, 3],
            aff[1, 1] * np.asarray(j) + aff[1, 3],
            aff[2, 2] * np.asarray(k) + aff[2, 3],
        )


@dataclass(frozen=True)
class HeadGeometry:
    """Per-subject shape parameters (mm)."""

    skull_axes: tuple  # inner-skull ellipsoid semi-axes (x, y, z)
    csf_thickness: float  # subarachnoid CSF layer
    cortex_thickness: float  # mean cortical grey matter thickness
    gyral_phase: tuple  # phases of the gyral undulation (rad)
    tumour_centre: tuple
    tumour_radius: float
    rim_thickness: float
    tumour_shape: tuple  # (amplitude, phase1, phase2) of the surface irregularity
    lesion_centre: tuple
    lesion_radius: float  # 0 = no lesion
    feeding_artery_radius: float
    sinus_radius: float

    @classmethod
    def draw(cls, rng, slab_centre=0.0, lesion=True):
        """Random subject geometry; tumour and lesion centred near the slab."""
        scale = rng.uniform(0.93, 1.07)
        axes = tuple(scale * np.array([68.0, 85.0, 62.0]))
        tumour_radius = rng.uniform(12.0, 17.0)
        return cls(
            skull_axes=axes,
            csf_thickness=rng.uniform(2.0, 3.0),
            cortex_thickness=rng.uniform(6.0, 8.0),
            gyral_phase=tuple(rng.uniform(0, 2 * np.pi, 2)),
            tumour_centre=(rng.uniform(26, 34), rng.uniform(-5, 15), slab_centre + rng.uniform(-4, 4)),
            tumour_radius=tumour_radius,
            rim_thickness=rng.uniform(3.5, 5.0),
            tumour_shape=(rng.uniform(0.05, 0.12), *rng.uniform(0, 2 * np.pi, 2)),
            lesion_centre=(rng.uniform(-32, -24), rng.uniform(-30, -15), slab_centre + rng.uniform(-3, 3)),
            lesion_radius=rng.uniform(7.0, 10.0) if lesion else 0.0,
            feeding_artery_radius=rng.uniform(3.2, 4.0),
            sinus_radius=rng.uniform(3.5, 4.5),
        )


def label_points(geo, x, y, z):
    """Tissue class index of every point (arrays of RAS mm); later shapes overwrite."""
    a, b, c = geo.skull_axes
    labels = np.zeros(np.shape(x), dtype=np.int8)
    rho = np.sqrt((x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2)
    depth = (1.0 - rho) * (a + b + c) / 3.0  # ≈ distance below the inner skull (mm)
    theta = np.arctan2(y, x)
    phi = np.arctan2(z, np.hypot(x, y))
    p1, p2 = geo.gyral_phase
    gyri = np.sin(9 * theta + p1) * np.cos(7 * phi + p2)
    inside = depth > 0
    labels[inside] = CLASS_INDEX["csf"]
    brain = depth > geo.csf_thickness * (1.0 + 0.6 * np.clip(gyri, 0, None))
    labels[brain] = CLASS_INDEX["grey_matter"]
    wm = depth > geo.csf_thickness + geo.cortex_thickness * (1.0 + 0.5 * gyri)
    labels[wm] = CLASS_INDEX["white_matter"]
    for sx in (-1.0, 1.0):  # deep grey nuclei (thalamus / basal ganglia)
        nuclei = ((x - sx * 15) / 9) ** 2 + ((y + 2) / 13) ** 2 + ((z + 2) / 9) ** 2 < 1
        labels[nuclei] = CLASS_INDEX["grey_matter"]
        ventricle = ((x - sx * 7) / 5) ** 2 + ((y - 2) / 22) ** 2 + ((z - 12) / 7) ** 2 < 1
        labels[ventricle] = CLASS_INDEX["csf"]
    fissure = (np.abs(x) < 1.2) & (z > -5) & (depth > 0) & (depth < 30)
    labels[fissure] = CLASS_INDEX["csf"]
    if geo.lesion_radius > 0:
        r = _distance(x, y, z, geo.lesion_centre)
        labels[r < geo.lesion_radius] = CLASS_INDEX["non_enhancing_lesion"]
    r = _distance(x, y, z, geo.tumour_centre)
    amp, q1, q2 = geo.tumour_shape
    tx, ty, tz = (x - geo.tumour_centre[0], y - geo.tumour_centre[1], z - geo.tumour_centre[2])
    surface = geo.tumour_radius * (
        1 + amp * np.sin(3 * np.arctan2(ty, tx) + q1) * np.cos(2 * np.arctan2(tz, np.hypot(tx, ty)) + q2)
    )
    labels[r < surface] = CLASS_INDEX["tumour_rim"]
    labels[r < surface - geo.rim_thickness] = CLASS_INDEX["tumour_necrosis"]
    # superior sagittal sinus: tube along the midsagittal curve just under the skull
    inset = 1.5 + geo.sinus_radius
    rho_yz = np.sqrt((y / (b - inset)) ** 2 + (z / (c - inset)) ** 2)
    dist_yz = (rho_yz - 1.0) * (b + c - 2 * inset) / 2.0
    sinus = (x**2 + dist_yz**2 < geo.sinus_radius**2) & (z > -25)
    labels[sinus] = CLASS_INDEX["sagittal_sinus"]
    # arteries: a large vertical feeding artery (right), a smaller one (left), and
    # two horizontal middle-cerebral branches at z = -8 mm
    artery = (x - 14) ** 2 + (y - 12) ** 2 < geo.feeding_artery_radius**2
    artery |= (x + 14) ** 2 + (y - 12) ** 2 < (0.7 * geo.feeding_artery_radius) ** 2
    artery &= depth > 0
    mca = ((y - 12) ** 2 + (z + 8) ** 2 < 1.6**2) & (np.abs(x) > 14) & (np.abs(x) < 50)
    labels[artery | mca] = CLASS_INDEX["artery"]
    return labels


def _distance(x, y, z, centre):
    return np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)


def class_fractions(geo, grid, supersample=3, to_object=None):
    """Partial-volume fractions ``[nx, ny, nz, n_classes]`` (float32, sum 1 per voxel).

    Each voxel is sampled at ``supersample``³ evenly spaced points; the fraction of a
    class is the share of points labelled with it. ``to_object`` (4×4, RAS mm) maps
    scanner points to the head's own coordinates: the head moved rigidly by ``W`` is
    sampled with ``to_object = W⁻¹``, so a moved frame is a fresh sampling of the
    moved head, not an interpolation of a sampled image.
    """
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample {supersample} must be a positive integer")
    nx, ny, nz = grid.matrix
    n_classes = len(TISSUE_CLASSES)
    offsets = (np.arange(s) + 0.5) / s - 0.5
    fi = (np.arange(nx)[:, None] + offsets[None, :]).ravel()
    fj = (np.arange(ny)[:, None] + offsets[None, :]).ravel()
    fractions = np.zeros((nx, ny, nz, n_classes), dtype=np.float32)
    for k in range(nz):
        x, y, z = grid.coordinates(fi[:, None, None], fj[None, :, None], (k + offsets)[None, None, :])
        x, y, z = np.broadcast_arrays(x, y, z)
        if to_object is not None:
            m = np.asarray(to_object, float)
            x, y, z = (m[r, 0] * x + m[r, 1] * y + m[r, 2] * z + m[r, 3] for r in range(3))
        labels = label_points(geo, x, y, z).reshape(nx, s, ny, s, s)
        counts = np.stack([(labels == c).sum(axis=(1, 3, 4)) for c in range(n_classes)], axis=-1)
        fractions[:, :, k, :] = counts / float(s**3)
    return fractions
