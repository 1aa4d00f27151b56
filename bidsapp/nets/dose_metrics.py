"""Image-quality figures of the dose-reduction network (PSNR, SSIM, lesion enhancement error).

* PSNR (dB) over a mask: ``10·log10(R² / mean((a − b)²))`` with ``R`` the maximum of the
  reference inside the mask.
* SSIM (Wang et al., IEEE TIP 2004;13:600) in 3D with a Gaussian window of SD 1.5
  voxels, ``K1 = 0.01``, ``K2 = 0.03``, the same ``R``; the mean of the SSIM map over
  the mask.
* Lesion enhancement error: for every lesion label, ``|mean(pred) − mean(true)| /
  mean(true)`` of the contrast-enhancement signal inside the lesion.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def data_range(reference, mask):
    """Maximum of ``reference`` inside ``mask`` (the PSNR/SSIM dynamic range)."""
    return float(np.asarray(reference, float)[mask].max())


def psnr(estimate, reference, mask):
    """Peak signal-to-noise ratio (dB) of ``estimate`` against ``reference`` inside ``mask``."""
    diff = np.asarray(estimate, float)[mask] - np.asarray(reference, float)[mask]
    return float(10.0 * np.log10(data_range(reference, mask) ** 2 / np.mean(diff**2)))


def ssim(estimate, reference, mask, sigma=1.5):
    """Mean 3D SSIM of ``estimate`` against ``reference`` inside ``mask``."""
    a, b = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    c1, c2 = (0.01 * data_range(b, mask)) ** 2, (0.03 * data_range(b, mask)) ** 2

    def blur(v):
        return gaussian_filter(v, sigma, mode="nearest", truncate=3.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(index[mask].mean())


def lesion_relative_errors(predicted, true, labels):
    """``{label: relative error}`` of the mean enhancement in each lesion (labels > 0)."""
    predicted, true = np.asarray(predicted, float), np.asarray(true, float)
    errors = {}
    for label in np.unique(labels[labels > 0]):
        inside = labels == label
        reference = true[inside].mean()
        errors[int(label)] = float(abs(predicted[inside].mean() - reference) / reference)
    return errors
