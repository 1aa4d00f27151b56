"""Rigid motion correction of a DCE series and alignment of VFA data to it.

Arrays and NIfTI-style affines in (voxel index -> RAS mm), arrays and 4×4 transforms
out; registration with SimpleITK (Lowekamp et al., Front Neuroinform 2013;7:45), which
works in LPS, so affines and transforms are converted at the boundary.

Conventions
-----------
* A transform ``M`` (4×4, RAS mm) maps a point of the *reference* space to the
  same anatomical point in the *moving* image (frame or VFA volume); the corrected
  image is ``moving(M · x)`` sampled at every reference voxel ``x``. This is the ITK
  convention, so the files written from :func:`itk_transform_text` can be given to
  ``antsApplyTransforms``, SimpleITK or nitransforms directly (after LPS conversion,
  which the writer does).
* Motion parameters: ``M = [R, b]`` is written as a rotation ``R = Rz(γ)·Ry(β)·Rx(α)``
  about the centre ``c`` of the DCE field of view plus a translation ``t``:
  ``M·x = R (x − c) + c + t``; ``trans_x/y/z`` = ``t`` (mm, RAS), ``rot_x/y/z`` =
  ``α, β, γ`` (rad). For a single-slice (2-D) series or a thin slab (fewer than
  :data:`MIN_SLICES_3D` slices) the model is in-plane rigid (3 degrees of freedom, in
  the voxel axes: x = first voxel axis, y = second, z = third, rotation about the
  field-of-view centre); ``trans_z``, ``rot_x``, ``rot_y`` are not estimated (NaN).
* Framewise displacement (Power et al., NeuroImage 2012;59:2142):
  ``FD_n = Σ|Δtrans| + r Σ|Δrot|`` with ``r = 50 mm``; NaN for the first frame.

Method
------
Each frame is registered (rigid, Euler angles) to a reference that does not change
with contrast, the mean of the pre-contrast (baseline) frames, with Mattes mutual
information (Mattes et al., IEEE TMI 2003;22:120) — which tolerates the
contrast-driven intensity change — random sampling with a fixed seed (deterministic),
a foreground mask of the reference, and a multi-resolution pyramid (block averages of
4, 2, 1 voxels in-plane; thin slabs keep all their slices). Frames are registered in
parallel threads. Every frame is resampled once (cubic B-spline interpolation; voxels that move
in from outside the field of view take the nearest edge value). docs/motion.md has the
details and the measured accuracy.

VFA volumes are registered rigidly to the VFA volume whose flip angle is nearest the
DCE flip angle (the most DCE-like contrast), and that volume to the DCE reference;
each VFA volume is then resampled *once* onto the DCE grid with the two transforms
composed (cubic B-spline interpolation, after a Gaussian anti-aliasing filter where the VFA
voxels are finer than the DCE voxels, so a DCE voxel sees the VFA signal averaged over
its extent). T1 and M0 are then fitted on the DCE grid, so the non-linear T1 estimate
is never interpolated. A B1 map follows the VFA reference's transform. DCE voxels
outside the VFA field of view (in scanner coordinates) get zero signal, so T1 is not
estimated there; inside it, points that the estimated motion moves past the edge take
the nearest edge value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from numpy.typing import ArrayLike
from scipy.ndimage import binary_dilation, gaussian_filter

#: radius (mm) of the sphere on which rotations become displacements in the FD
FD_RADIUS = 50.0
PARAM_NAMES = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS
SHRINK = (4, 2, 1)
#: interpolation of the single resampling of frames and VFA volumes: cubic B-spline, which blurs
#: the thin enhancing rims less than linear, and rings less than windowed sinc next to vessels
#: thinner than a voxel (tests/benchmarks/bench_motion.py, true transforms, enhancing-tissue Ktrans
#: RMSE 0.014 /min against 0.178 for Lanczos windowed sinc, whose ringing next to arteries gives a
#: few voxels errors over 1 /min; docs/motion.md); it may under- or overshoot by a few per cent at
#: sharp edges
INTERPOLATOR = sitk.sitkBSpline
#: joint-histogram bins of the Mattes metric (fewer bins give a smoother cost on noisy frames)
HISTOGRAM_BINS = 16
#: voxels sampled by the metric per pyramid level (all voxels of smaller images); bounds the
#: time on large frames (1 s per 176×176×30 frame on one core)
SAMPLES = 20000
#: optimizer step (mm, or rad x the scale) below which a pyramid level stops
COARSE_MIN_STEP = 1e-2
FINE_MIN_STEP = 1e-3
#: fewer slices than this use the in-plane model: through-plane rotations of a thin slab
#: are poorly determined (measured: errors of degrees with 6 slices of 6 mm)
MIN_SLICES_3D = 8
#: fewest in-plane voxels along each axis for a registration (smaller images carry too
#: little structure; ITK's metric fails on 12×12×2)
MIN_INPLANE = 16


@dataclass
class MotionResult:
    """Output of :func:`correct_motion`.

    ``corrected`` ``[nx, ny, nz, n]`` frames on the input grid; ``reference`` the mean of
    the corrected baseline frames; ``matrices`` ``[n, 4, 4]`` (RAS mm, reference ->
    frame); ``params`` ``[n, 6]`` (mm, rad; NaN where not estimated); ``fd`` ``[n]`` (mm);
    ``in_plane`` True for the 3-degree-of-freedom model of a single-slice series.
    """

    corrected: np.ndarray
    reference: np.ndarray
    matrices: np.ndarray
    params: np.ndarray
    fd: np.ndarray
    in_plane: bool
    centre: np.ndarray


@dataclass
class VFAAlignment:
    """Output of :func:`align_vfa`.

    Fields: ``vfa`` (list of volumes on the DCE grid), ``b1`` (on the DCE grid or None),
    ``matrices`` (per VFA volume, DCE world -> that volume's world, RAS), ``to_reference`` (DCE world -> VFA
    reference world), ``coverage`` (DCE voxels inside every VFA field of view, scanner coordinates) and
    ``reference_index``.
    """

    vfa: list
    b1: np.ndarray | None
    matrices: list
    to_reference: np.ndarray
    coverage: np.ndarray
    reference_index: int


# -- conversions between arrays/affines and SimpleITK ------------------------------------


def to_sitk(volume: ArrayLike, affine: ArrayLike) -> sitk.Image:
    """3-D array ``[i, j, k]`` with a RAS voxel-to-mm ``affine`` as a SimpleITK image."""
    lps = _FLIP @ np.asarray(affine, float)
    zooms = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(volume, np.float32).transpose(2, 1, 0)))
    image.SetSpacing(zooms.tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    image.SetDirection((lps[:3, :3] / zooms).ravel().tolist())
    return image


def from_sitk(image: sitk.Image) -> np.ndarray:
    """Array ``[i, j, k]`` of a SimpleITK image."""
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def _sitk_affine(matrix):
    """SimpleITK transform of a RAS 4×4 ``matrix``."""
    lps = _FLIP @ np.asarray(matrix, float) @ _FLIP
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(lps[:3, :3].ravel().tolist())
    transform.SetTranslation(lps[:3, 3].tolist())
    return transform


def _ras_matrix(transform):
    """RAS 4×4 matrix of a SimpleITK 3-D matrix-offset transform (Euler/affine)."""
    lps = np.eye(4)
    lps[:3, :3] = np.reshape(transform.GetMatrix(), (3, 3))
    centre = np.asarray(transform.GetCenter())
    lps[:3, 3] = centre + np.asarray(transform.GetTranslation()) - lps[:3, :3] @ centre
    return _FLIP @ lps @ _FLIP


def fov_centre(shape: Sequence[int], affine: ArrayLike) -> np.ndarray:
    """RAS mm of the centre of the field of view of a grid."""
    return (np.asarray(affine, float) @ np.r_[(np.asarray(shape[:3], float) - 1) / 2, 1.0])[:3]


# -- parameters ---------------------------------------------------------------------------


def rigid_matrix(params: ArrayLike, centre: ArrayLike = (0.0, 0.0, 0.0)) -> np.ndarray:
    """RAS 4×4 matrix of ``(tx, ty, tz mm, rx, ry, rz rad)`` rotating about ``centre``."""
    tx, ty, tz, a, b, g = (float(p) for p in params)
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cg, -sg, 0], [sg, cg, 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rz @ ry @ rx
    c = np.asarray(centre, float)
    matrix[:3, 3] = c + np.array([tx, ty, tz]) - matrix[:3, :3] @ c
    return matrix


def rigid_params(matrix: ArrayLike, centre: ArrayLike = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Inverse of :func:`rigid_matrix`: ``(tx, ty, tz mm, rx, ry, rz rad)``."""
    m = np.asarray(matrix, float)
    r, c = m[:3, :3], np.asarray(centre, float)
    beta = -np.arcsin(np.clip(r[2, 0], -1.0, 1.0))
    alpha = np.arctan2(r[2, 1], r[2, 2])
    gamma = np.arctan2(r[1, 0], r[0, 0])
    return np.r_[m[:3, 3] - c + r @ c, alpha, beta, gamma]


def framewise_displacement(params: ArrayLike, radius: float = FD_RADIUS) -> np.ndarray:
    """Return the framewise displacement (mm) of Power et al. (2012).

    Power et al. (2012) FD (mm) of ``[n, 6]`` parameters (mm, rad); NaN columns (not estimated) count as zero,
    the first frame is NaN.
    """
    p = np.nan_to_num(np.asarray(params, float))
    step = np.abs(np.diff(p, axis=0))
    fd = step[:, :3].sum(axis=1) + radius * step[:, 3:].sum(axis=1)
    return np.r_[np.nan, fd]


# -- registration ---------------------------------------------------------------------------


def foreground(volume: ArrayLike, fraction: float = 0.1, dilate: int = 2) -> np.ndarray:
    """Return the dilated foreground mask of ``volume``.

    Voxels above ``fraction`` of the 99th percentile, dilated by ``dilate`` voxels (keeps the object's edge,
    where most of the registration information lies), without the first and last slice of a slab (where
    through-plane motion moves anatomy in and out of the field of view).
    """
    volume = np.asarray(volume, float)
    mask = volume > fraction * np.percentile(volume, 99)
    structure = np.ones((3,) * volume.ndim, bool)
    mask = binary_dilation(mask, structure, iterations=dilate) if dilate else mask
    if volume.ndim == 3 and volume.shape[2] > 4:
        mask[:, :, [0, -1]] = False
    return mask


def _pyramid(size, spacing):
    """Return the shrink factors per pyramid level (coarse to fine).

    Shrink factors per level (coarse to fine): in-plane axes shrunk by 4, 2, 1 while at least 16 voxels
    remain; the through-plane axis only where it is as finely sampled (thin slabs keep all their slices).
    """
    levels = []
    for factor in SHRINK:
        if factor > 1 and min(size[:2]) // factor < 16:
            continue  # too coarse in-plane: skip the level
        factors = [factor, factor]
        if len(size) == 3:
            fz = factor if size[2] // factor >= 16 and spacing[2] <= 1.5 * min(spacing[:2]) else 1
            factors.append(fz)
        levels.append(factors)
    return levels


def register_rigid(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image | None = None,
    iterations: int = 200,
    seed: int = 0,
    in_plane: bool = False,
) -> sitk.Transform:
    """Register ``moving`` to ``fixed`` with a rigid transform.

    Rigid transform (SimpleITK Euler 2-D or 3-D, centred on ``fixed``) mapping points of ``fixed`` to
    ``moving``, by Mattes mutual information (:data:`HISTOGRAM_BINS` bins).

    Multi-resolution: both images are block-averaged (``BinShrink``) by the factors of
    :func:`_pyramid` and each level starts from the previous level's result.
    ``fixed``/``moving``: SimpleITK images (same dimension); ``fixed_mask``: SimpleITK
    uint8 image restricting the metric samples. :data:`SAMPLES` random samples per
    level, with a fixed ``seed`` and one thread per registration; results are bitwise
    deterministic only inside :func:`itk_single_threaded` (ITK's global default thread
    count also reaches the registration's internal filters). ``in_plane`` (3-D only) freezes
    the rotations about x and y and the translation along z (image axes).
    """
    dim = fixed.GetDimension()
    transform = sitk.Euler3DTransform() if dim == 3 else sitk.Euler2DTransform()
    transform.SetCenter(
        fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in fixed.GetSize()])
    )
    levels = _pyramid(fixed.GetSize(), fixed.GetSpacing())
    for level, factors in enumerate(levels):
        shrink = (
            (lambda img, factors=factors: sitk.BinShrink(img, factors))
            if max(factors) > 1
            else (lambda img: img)
        )
        level_fixed = shrink(fixed)
        n_voxels = float(np.prod(level_fixed.GetSize()))
        fraction = min(1.0, SAMPLES / n_voxels)
        reg = sitk.ImageRegistrationMethod()
        reg.SetNumberOfThreads(1)  # deterministic; frames run in parallel instead
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(fraction, int(seed) + 1)  # seed 0 would be the wall clock
        if fixed_mask is not None:
            level_mask = sitk.BinShrink(sitk.Cast(fixed_mask, sitk.sitkFloat32), factors) > 0.5
            reg.SetMetricFixedMask(sitk.Cast(level_mask, sitk.sitkUInt8))
        reg.SetInterpolator(sitk.sitkLinear)
        min_step = FINE_MIN_STEP if level == len(levels) - 1 else COARSE_MIN_STEP
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=2.0 / 2**level,
            minStep=min_step,
            numberOfIterations=int(iterations),
            relaxationFactor=0.8,
            gradientMagnitudeTolerance=1e-8,
        )
        reg.SetOptimizerScalesFromPhysicalShift()
        # image gradients by central differences at the samples, not from smoothed gradient images:
        # faster with sparse sampling, more accurate on the benchmark (rot RMS 0.23 vs 0.39 deg) and
        # possible on thin slabs (the recursive Gaussian needs 4 voxels per axis)
        reg.SetMetricUseFixedImageGradientFilter(False)
        reg.SetMetricUseMovingImageGradientFilter(False)
        if in_plane:
            reg.SetOptimizerWeights([0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
        reg.SetInitialTransform(transform, inPlace=True)
        reg.Execute(level_fixed, shrink(moving))
    return transform


@contextmanager
def itk_single_threaded() -> Iterator[None]:
    """Run every ITK filter in one thread while the context is active.

    Every ITK filter in one thread while we run (our frames run in parallel threads instead): no
    oversubscription, and sums in a fixed order, so results are bitwise reproducible whatever the number of
    threads.
    """
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def _threads(threads):
    return max(1, int(threads or os.cpu_count() or 1))


# -- motion correction of the dynamic series -------------------------------------------------


def registrable(shape: Sequence[int]) -> bool:
    """Return whether a grid can be registered.

    Whether a grid can be registered: at least :data:`MIN_INPLANE` voxels in-plane and 1 or at least 4 slices
    (ITK's registration failed on every 2-slice series tried).
    """
    return min(int(shape[0]), int(shape[1])) >= MIN_INPLANE and int(shape[2]) not in (2, 3)


def correct_motion(
    dce: ArrayLike,
    affine: ArrayLike,
    baseline_frames: int,
    threads: int | None = None,
    fd_radius: float = FD_RADIUS,
    seed: int = 0,
) -> MotionResult:
    """Rigid motion correction of a dynamic series (:class:`MotionResult`).

    ``dce`` ``[nx, ny, nz, n]`` signal, ``affine`` its RAS voxel-to-mm matrix,
    ``baseline_frames`` the number of pre-contrast frames averaged into the reference.
    Fewer than :data:`MIN_SLICES_3D` slices select the in-plane (3 degree-of-freedom)
    model. ``threads``: frames registered in parallel (default: all cores).
    """
    dce = np.asarray(dce, np.float32)
    if dce.ndim != 4 or dce.shape[3] < 2:
        raise ValueError(
            f"motion correction needs a 4-D series with at least 2 frames, got shape {dce.shape}"
        )
    if not registrable(dce.shape):
        raise ValueError(
            f"motion correction needs at least {MIN_INPLANE} voxels along each in-plane axis and "
            f"1 or at least 4 slices, got {dce.shape[:3]}"
        )
    n_base = int(baseline_frames)
    if not 1 <= n_base <= dce.shape[3]:
        raise ValueError(f"baseline_frames {baseline_frames} outside 1..{dce.shape[3]}")
    in_plane = dce.shape[2] < MIN_SLICES_3D
    register = _register_series_in_plane if in_plane else _register_series_3d
    with itk_single_threaded():
        matrices, params = register(
            dce, np.asarray(affine, float), dce[..., :n_base].mean(axis=-1), seed, threads
        )
        corrected = resample_series(dce, affine, matrices, threads)
    centre = fov_centre(dce.shape, affine)
    return MotionResult(
        corrected=corrected,
        reference=corrected[..., :n_base].mean(axis=-1),
        matrices=matrices,
        params=params,
        fd=framewise_displacement(params, fd_radius),
        in_plane=in_plane,
        centre=centre,
    )


def _register_series_3d(dce, affine, reference, seed, threads):
    fixed = to_sitk(reference, affine)
    mask = to_sitk(foreground(reference), affine)
    mask = sitk.Cast(mask, sitk.sitkUInt8)

    def one(n):
        moving = to_sitk(dce[..., n], affine)
        return _ras_matrix(register_rigid(fixed, moving, mask, seed=seed))

    matrices = np.stack(_map(one, range(dce.shape[3]), threads))
    centre = fov_centre(dce.shape, affine)
    return matrices, np.stack([rigid_params(m, centre) for m in matrices])


def _plane_frame(affine):
    """Return the orthonormal RAS frame of the voxel axes and the voxel sizes.

    Orthonormal RAS frame (4×4) of the voxel axes (columns: directions of i, j, k; origin at voxel 0) and the
    voxel sizes (mm): plane coordinates ``zooms · ijk``.
    """
    a = np.asarray(affine, float)
    zooms = np.linalg.norm(a[:3, :3], axis=0)
    frame = np.eye(4)
    frame[:3, :3] = a[:3, :3] / zooms
    frame[:3, 3] = a[:3, 3]
    return frame, zooms


def _register_series_in_plane(dce, affine, reference, seed, threads):
    """Register a series of single slices or thin slabs with an in-plane rigid model.

    In-plane rigid model (rotation about the slice normal, in-plane translation) for single slices (2-D
    registration) and thin slabs of 4-7 slices (3-D with the through-plane parameters frozen), in the
    voxel-axes frame; lifted to RAS transforms.
    """
    frame, zooms = _plane_frame(affine)
    two_d = dce.shape[2] == 1

    def image(volume):
        volume = np.asarray(volume, np.float32)
        array = volume[:, :, 0].T if two_d else volume.transpose(2, 1, 0)
        img = sitk.GetImageFromArray(np.ascontiguousarray(array))
        img.SetSpacing((zooms[:2] if two_d else zooms).tolist())
        return img

    fixed = image(reference)
    mask = sitk.Cast(image(foreground(reference).astype(np.float32)) > 0, sitk.sitkUInt8)

    def one(n):
        t = register_rigid(fixed, image(dce[..., n]), mask, seed=seed, in_plane=not two_d)
        angle = t.GetAngle() if two_d else t.GetAngleZ()
        return np.r_[t.GetTranslation()[:2], angle], np.r_[t.GetCenter()[:2], 0.0]

    results = _map(one, range(dce.shape[3]), threads)
    params = np.full((dce.shape[3], 6), np.nan)
    matrices = []
    for n, ((tx, ty, angle), centre) in enumerate(results):
        params[n, [0, 1, 5]] = tx, ty, angle
        plane = rigid_matrix([tx, ty, 0.0, 0.0, 0.0, angle], centre)
        matrices.append(frame @ plane @ np.linalg.inv(frame))
    return np.stack(matrices), params


def _map(function, items, threads):
    items = list(items)
    workers = min(_threads(threads), len(items))
    if workers == 1:
        return [function(i) for i in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


def resample(
    volume: ArrayLike,
    affine: ArrayLike,
    matrix: ArrayLike,
    target_shape: Sequence[int],
    target_affine: ArrayLike,
    extrapolate: bool = True,
    default: float = 0.0,
) -> np.ndarray:
    """Resample ``volume`` onto a target grid through ``matrix``.

    ``volume`` (grid ``affine``) sampled at ``matrix · x`` for every voxel ``x`` of the target grid, with
    :data:`INTERPOLATOR` (cubic B-spline); outside the source field of view the nearest edge value
    (``extrapolate``) or ``default``.
    """
    target = to_sitk(np.zeros(target_shape[:3], np.float32), target_affine)
    out = sitk.Resample(
        to_sitk(volume, affine),
        target,
        _sitk_affine(matrix),
        INTERPOLATOR,
        float(default),
        sitk.sitkFloat32,
        bool(extrapolate),
    )
    return from_sitk(out)


def resample_series(
    series: ArrayLike,
    affine: ArrayLike,
    matrices: Sequence[ArrayLike],
    threads: int | None = None,
) -> np.ndarray:
    """Every frame of ``series`` resampled once with its ``matrices[n]`` onto its own grid."""
    series = np.asarray(series, np.float32)
    frames = _map(
        lambda n: resample(series[..., n], affine, matrices[n], series.shape, affine),
        range(series.shape[3]),
        threads,
    )
    return np.stack(frames, axis=-1)


# -- VFA alignment -------------------------------------------------------------------------


def coverage(
    target_shape: Sequence[int],
    target_affine: ArrayLike,
    source_shape: Sequence[int],
    source_affine: ArrayLike,
    matrix: ArrayLike | None = None,
) -> np.ndarray:
    """Return the target voxels covered by the source field of view.

    Voxels of the target grid whose centre (moved by ``matrix``) lies inside the source field of view (half a
    voxel beyond the outer voxel centres).
    """
    idx = np.indices(target_shape[:3]).reshape(3, -1)
    world = np.asarray(target_affine, float) @ np.vstack([idx, np.ones(idx.shape[1])])
    if matrix is not None:
        world = np.asarray(matrix, float) @ world
    src = np.linalg.solve(np.asarray(source_affine, float), world)[:3]
    upper = np.asarray(source_shape[:3], float)[:, None] - 0.5
    inside = np.all((src >= -0.5) & (src <= upper), axis=0)
    return inside.reshape(target_shape[:3])


def _antialias(volume, affine, target_affine):
    """Smooth ``volume`` to the target resolution before resampling.

    Gaussian filter so that voxels finer than the target's are averaged to the target resolution (FWHM² =
    target² − source² along each source axis).
    """
    src = np.asarray(affine, float)[:3, :3]
    tgt = np.asarray(target_affine, float)[:3, :3]
    src_zooms, tgt_zooms = np.linalg.norm(src, axis=0), np.linalg.norm(tgt, axis=0)
    cosines = np.abs((src / src_zooms).T @ (tgt / tgt_zooms))  # [source axis, target axis]
    target_along = tgt_zooms[np.argmax(cosines, axis=1)]
    fwhm = np.sqrt(np.clip(target_along**2 - src_zooms**2, 0.0, None))
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / src_zooms
    return gaussian_filter(np.asarray(volume, np.float32), sigma) if np.any(sigma > 0.05) else volume


def align_vfa(
    vfa: Sequence[ArrayLike],
    vfa_affines: Sequence[ArrayLike],
    dce_reference: ArrayLike,
    dce_affine: ArrayLike,
    reference_index: int,
    b1: ArrayLike | None = None,
    b1_affine: ArrayLike | None = None,
    register: bool = True,
    seed: int = 0,
    threads: int | None = None,
) -> VFAAlignment:
    """VFA volumes (and a B1 map) on the DCE grid (:class:`VFAAlignment`).

    ``vfa``: list of 3-D volumes with their RAS ``vfa_affines``; ``dce_reference``: the
    DCE reference volume (mean of the corrected baseline frames) on ``dce_affine``;
    ``reference_index``: the VFA volume registered to the DCE reference (the others are
    registered to it). ``register=False`` trusts the scanner coordinates (identity
    transforms) and only resamples. With fewer than :data:`MIN_SLICES_3D` slices (either
    grid) the registrations are in-plane (scanner x-y plane). Raises ``ValueError`` when
    the VFA field of view does not overlap the DCE field of view.
    """
    with itk_single_threaded():
        return _align_vfa(
            vfa,
            vfa_affines,
            dce_reference,
            dce_affine,
            reference_index,
            b1,
            b1_affine,
            register,
            seed,
            threads,
        )


def _align_vfa(
    vfa, vfa_affines, dce_reference, dce_affine, reference_index, b1, b1_affine, register, seed, threads
):
    shape = np.shape(dce_reference)
    overlap = coverage(shape, dce_affine, np.shape(vfa[reference_index]), vfa_affines[reference_index])
    if not overlap.any():
        raise ValueError("the VFA field of view does not overlap the DCE field of view (no voxel in common)")
    eye = np.eye(4)
    to_ref, between = eye, [eye] * len(vfa)
    if register:
        # thin data: rotations about x, y and translation along z (scanner axes) are not estimated
        thin = min(shape[2], min(np.shape(v)[2] for v in vfa)) < MIN_SLICES_3D
        ref_img = to_sitk(vfa[reference_index], vfa_affines[reference_index])
        ref_mask = sitk.Cast(
            to_sitk(foreground(vfa[reference_index]), vfa_affines[reference_index]), sitk.sitkUInt8
        )

        def within(k):
            if k == reference_index:
                return eye
            return _ras_matrix(
                register_rigid(ref_img, to_sitk(vfa[k], vfa_affines[k]), ref_mask, seed=seed, in_plane=thin)
            )

        between = _map(within, range(len(vfa)), threads)
        fixed = to_sitk(dce_reference, dce_affine)
        mask = sitk.Cast(to_sitk(foreground(dce_reference) & overlap, dce_affine), sitk.sitkUInt8)
        to_ref = _ras_matrix(register_rigid(fixed, ref_img, mask, seed=seed, in_plane=thin))
    matrices = [m @ to_ref for m in between]
    volumes = [
        resample(_antialias(v, a, dce_affine), a, m, shape, dce_affine, extrapolate=True)
        for v, a, m in zip(vfa, vfa_affines, matrices, strict=True)
    ]
    inside = np.logical_and.reduce(
        [coverage(shape, dce_affine, np.shape(v), a) for v, a in zip(vfa, vfa_affines, strict=True)]
    )
    b1_on_dce = None
    if b1 is not None:
        b1_on_dce = resample(b1, b1_affine, to_ref, shape, dce_affine, extrapolate=True)
    return VFAAlignment(
        vfa=[np.where(inside, v, 0.0) for v in volumes],
        b1=b1_on_dce,
        matrices=matrices,
        to_reference=to_ref,
        coverage=inside,
        reference_index=int(reference_index),
    )


# -- transform files -----------------------------------------------------------------------


def itk_transform_text(matrices: Sequence[ArrayLike]) -> str:
    """Format RAS 4×4 ``matrices`` as an ITK text transform file.

    RAS 4×4 ``matrices`` as an ITK text transform file (``#Insight Transform File V1.0``, one
    ``AffineTransform_double_3_3`` per matrix, in LPS, centre 0): the format ANTs, SimpleITK
    (``sitk.ReadTransform`` for one transform) and nitransforms (``ITKLinearTransformArray``) read. Each maps
    reference-space points to the moving image (the resampling direction).
    """
    lines = ["#Insight Transform File V1.0"]
    for index, matrix in enumerate(matrices):
        lps = _FLIP @ np.asarray(matrix, float) @ _FLIP
        values = list(lps[:3, :3].ravel()) + list(lps[:3, 3])
        lines += [
            f"#Transform {index}",
            "Transform: AffineTransform_double_3_3",
            "Parameters: " + " ".join(f"{v:.10g}" for v in values),
            "FixedParameters: 0 0 0",
        ]
    return "\n".join(lines) + "\n"


def read_itk_transforms(path: str | os.PathLike) -> list[np.ndarray]:
    """RAS 4×4 matrices of an ITK text file of affine/Euler matrix-offset transforms."""
    matrices, params = [], None
    for line in open(path).read().splitlines():
        if line.startswith("Parameters:"):
            params = np.array(line.split(":", 1)[1].split(), float)
        elif line.startswith("FixedParameters:"):
            centre = np.array(line.split(":", 1)[1].split(), float)[:3]
            lps = np.eye(4)
            lps[:3, :3] = params[:9].reshape(3, 3)
            lps[:3, 3] = centre + params[9:12] - lps[:3, :3] @ centre
            matrices.append(_FLIP @ lps @ _FLIP)
    return matrices
