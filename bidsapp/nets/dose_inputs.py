"""Inputs and conditioning of the dose-reduction network (arrays only).

Steps, in the order :func:`bidsapp.nets.dose_infer.synthesize_standard_dose` runs them:

1. **Registration** (:func:`align_to_low`): the pre-contrast image is registered
   rigidly to the low-dose image with :func:`bidsapp.motion.register_rigid` (Mattes
   mutual information, which tolerates the enhancement; multi-resolution; fixed seed)
   and resampled once onto the low-dose grid (cubic B-spline), so the subtraction and
   every output lie on the low-dose image's grid. A slab of fewer than 8 slices is
   registered in-plane (3 degrees of freedom); a grid too small to register
   (:func:`bidsapp.motion.registrable`) is resampled in scanner coordinates only.
2. **Reference intensity** ``s`` (:func:`reference_intensity`): the median of the
   registered pre-contrast image over the head (voxels above 10 % of the low-dose
   image's 99th percentile). The network's output and its low-dose channel are divided
   by ``s``; the subtraction and its noise channel by ``s × fraction`` (the naive
   standard-dose estimate, :func:`network_inputs`).
3. **Local noise SD** of a subtraction image ``d`` (:func:`local_noise_sd`): the
   high-pass residual ``r = d − mean₃(d)`` (3×3×3 box mean) has variance
   ``σ²·26/27`` for white noise of SD ``σ``; the local SD is
   ``sqrt(mean₅(r²)·27/26)`` (5×5×5 box), floored at half the global robust value
   ``1.4826·median|r|·sqrt(27/26)`` over the head (which is the ``noise_level``
   condition once divided by ``s``).
4. **Training target** (:func:`training_target`, after Pinetz et al.: no fabricated
   noise in the target): the standard-dose subtraction ``d = standard − pre`` (the
   pre-contrast image registered and resampled onto the low-dose grid exactly as for the
   inputs, step 1) is multiplied by a soft contrast-enhancement mask
   ``m = 1 / (1 + exp(−(z − z0) / w))`` with :data:`MASK_Z0` ``z0 = 3`` and
   :data:`MASK_WIDTH` ``w = 1``. ``z`` is the local z-score of the enhancement:
   the local mean ``G₁ * d`` (Gaussian of SD :data:`MASK_SMOOTHING` = 1 voxel) over its
   noise SD ``σ_d · sqrt(Σ G₁²)``, with ``σ_d`` the local noise SD of ``d`` (step 3)
   and ``sqrt(Σ G₁²) ≈ 0.15`` the noise-SD reduction of the smoothing (white noise). The
   target is ``m · d / s``: noise-only voxels (and decreases) get a target near 0, voxels
   whose local mean enhances clearly keep their subtraction value (with its noise, whose
   mean is 0, so the squared error is unbiased there).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, uniform_filter

from .dose_unet import CONDITION_SCALE

_HIGHPASS_GAIN = np.sqrt(27.0 / 26.0)
#: local z-score at which the enhancement mask of a training target is 1/2, and the sigmoid's width
MASK_Z0, MASK_WIDTH = 3.0, 1.0
#: SD (voxels) of the Gaussian local mean of the subtraction in the mask's z-score
MASK_SMOOTHING = 1.0


def align_to_low(pre, pre_affine, low, low_affine, seed=0):
    """Register ``pre`` rigidly to ``low`` and resample it onto ``low``'s grid.

    Used for the pre-contrast image, and for an acquired standard-dose image that is
    compared with the synthesised one.

    Parameters
    ----------
    pre, low : ndarray ``[nx, ny, nz]``
        Image to move (pre-contrast) and low-dose T1-weighted magnitude images (signal units).
    pre_affine, low_affine : ndarray ``(4, 4)``
        Voxel-to-RAS (mm) affines.
    seed : int
        Seed of the metric's random sampling (deterministic result).

    Returns
    -------
    pre_on_low : ndarray
        ``pre`` on ``low``'s grid (float32).
    matrix : ndarray ``(4, 4)``
        RAS transform mapping low-dose points to pre-contrast points (ITK convention).
    """
    import SimpleITK as sitk

    from bidsapp import motion

    low = np.asarray(low, np.float32)
    fixed = motion.to_sitk(low, low_affine)
    mask = sitk.Cast(motion.to_sitk(motion.foreground(low).astype(np.float32), low_affine), sitk.sitkUInt8)
    moving = motion.to_sitk(np.asarray(pre, np.float32), pre_affine)
    # ITK filters in one thread: docs/dose.md, "Reproducibility"
    with motion.itk_single_threaded():
        if motion.registrable(low.shape) and motion.registrable(np.shape(pre)):
            thin = low.shape[2] < motion.MIN_SLICES_3D  # thin slab: in-plane rigid, as the motion stage does
            matrix = motion._ras_matrix(
                motion.register_rigid(fixed, moving, fixed_mask=mask, seed=seed, in_plane=thin)
            )
        else:  # too few voxels to register: scanner coordinates only
            matrix = np.eye(4)
        pre_on_low = motion.resample(pre, pre_affine, matrix, low.shape, low_affine)
    return np.asarray(pre_on_low, np.float32), matrix


def head_mask(low):
    """Voxels of ``low`` above 10 % of its 99th percentile (the head)."""
    low = np.asarray(low, float)
    return low > 0.1 * np.percentile(low, 99)


def reference_intensity(pre_on_low, head):
    """Median of the registered pre-contrast image over ``head`` (signal units, > 0)."""
    value = float(np.median(np.asarray(pre_on_low, float)[head])) if head.any() else 0.0
    if not np.isfinite(value) or value <= 0:
        raise ValueError("pre-contrast image: no positive signal inside the head; cannot normalise")
    return value


def _highpass(d):
    d = np.asarray(d, np.float32)
    return d - uniform_filter(d, 3, mode="nearest")


def global_noise_sd(d, head):
    """Robust noise SD of the subtraction ``d`` over ``head`` (signal units)."""
    r = _highpass(d)[head]
    return float(1.4826 * np.median(np.abs(r)) * _HIGHPASS_GAIN)


def local_noise_sd(d, head):
    """Local noise SD map of the subtraction ``d`` (signal units; rule in the module docstring)."""
    r = _highpass(d)
    local = np.sqrt(uniform_filter(r * r, 5, mode="nearest")) * _HIGHPASS_GAIN
    return np.maximum(local, 0.5 * global_noise_sd(d, head)).astype(np.float32)


def _smoothing_noise_reduction(sigma):
    """``sqrt(Σ G²)`` of the Gaussian of SD ``sigma`` voxels: its factor on the SD of white noise."""
    half = int(np.ceil(4 * sigma))
    impulse = np.zeros((2 * half + 1,) * 3, np.float32)
    impulse[half, half, half] = 1.0
    return float(np.sqrt((gaussian_filter(impulse, sigma, mode="constant") ** 2).sum()))


def enhancement_mask(d, noise_sd):
    """Soft contrast-enhancement mask in [0, 1] of a subtraction ``d`` (rule 4 of the module docstring).

    ``noise_sd``: local noise SD of ``d`` (:func:`local_noise_sd`), same units.
    """
    local_mean = gaussian_filter(np.asarray(d, np.float32), MASK_SMOOTHING, mode="nearest")
    z = local_mean / (np.asarray(noise_sd, np.float32) * _smoothing_noise_reduction(MASK_SMOOTHING))
    # sigmoid(t) = (1 + tanh(t / 2)) / 2, which does not overflow for large |t|
    return (0.5 * (1.0 + np.tanh(0.5 * (z - MASK_Z0) / MASK_WIDTH))).astype(np.float32)


def training_target(standard, pre_on_low, head, s):
    """Masked standard-dose subtraction ``m · (standard − pre_on_low) / s`` (float32) and the mask ``m``.

    ``standard`` (signal units) on the low-dose grid; ``pre_on_low`` the registered
    pre-contrast image (:func:`align_to_low`); ``head`` and ``s`` as returned by
    :func:`network_inputs`. Rule 4 of the module docstring.
    """
    d = np.asarray(standard, np.float32) - np.asarray(pre_on_low, np.float32)
    mask = enhancement_mask(d, local_noise_sd(d, head))
    return (mask * d / s).astype(np.float32), mask


def condition_vector(field_strength, fraction, relaxivity, noise_level, voxel_size, standard_dose=0.1):
    """Scaled condition vector (float32, order of :data:`bidsapp.nets.dose_unet.CONDITION_NAMES`).

    Parameters
    ----------
    field_strength : float
        B0 (T).
    fraction : float
        Low dose as a fraction of the standard dose (0–1).
    relaxivity : float
        Plasma r1 of the agent at ``field_strength`` (/mM/s).
    noise_level : float
        Noise SD of the low-dose subtraction over the reference intensity ``s``.
    voxel_size : float or sequence
        Voxel size (mm); a sequence is averaged geometrically.
    standard_dose : float
        Standard dose (mmol/kg); the low dose is ``fraction × standard_dose``.
    """
    voxel = float(np.exp(np.mean(np.log(np.atleast_1d(np.asarray(voxel_size, float))))))
    values = (field_strength, fraction * standard_dose, fraction, relaxivity, noise_level, voxel)
    return (np.asarray(values, float) / np.asarray(CONDITION_SCALE)).astype(np.float32)


def network_inputs(pre_on_low, low, fraction):
    """Network channels ``[3, nx, ny, nz]``, the reference intensity and the noise level.

    Returns ``(x, s, noise_level, head)``: ``x`` stacks the dose-normalised subtraction
    ``(low − pre) / (s · fraction)``, ``low / s`` and the local noise SD of the
    subtraction over ``s · fraction`` (the noise of the first channel);
    ``noise_level`` is the global noise SD of the subtraction over ``s`` (a condition);
    ``head`` the mask of :func:`head_mask`.
    """
    pre_on_low, low = np.asarray(pre_on_low, np.float32), np.asarray(low, np.float32)
    head = head_mask(low)
    s = reference_intensity(pre_on_low, head)
    d = low - pre_on_low
    scale = s * float(fraction)
    x = np.stack([d / scale, low / s, local_noise_sd(d, head) / scale]).astype(np.float32)
    return x, s, global_noise_sd(d, head) / s, head
