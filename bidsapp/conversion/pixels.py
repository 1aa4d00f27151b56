"""Read the pixel data of a stacked acquisition into a NIfTI-ordered array.

Each frame's ``pixel_array`` (rows × columns) is transposed to (column, row) and the
rows reversed, so the array index matches :mod:`.geometry`'s affine; slices and volumes follow the
:class:`~.series.Stack` order. Stored values are mapped to real values with
RescaleSlope/RescaleIntercept (per frame; for enhanced MR from the Pixel Value
Transformation functional group). For Philips data with a private scale slope
(2005,100E), the floating-point value ``(stored·RS + RI) / (RS·SS)`` is used, which is
consistent between series acquired with different receiver scaling — essential when
flip-angle images from separate series are compared voxel by voxel.

The array keeps the stored integer type when no frame needs rescaling; otherwise it is
float32.

Reference: Chenevert TL et al. Transl Oncol 2014;7:65-71 (Philips scaling).
"""

import numpy as np
import pydicom


class PixelError(ValueError):
    """Pixel data that cannot be read or does not match the header."""


def _scale(frame):
    slope, intercept = frame.rescale_slope or 1.0, frame.rescale_intercept or 0.0
    if frame.philips_scale_slope:
        return 1.0 / frame.philips_scale_slope, intercept / (slope * frame.philips_scale_slope)
    return slope, intercept


def needs_rescale(frames):
    """True when any frame's stored values differ from its real values."""
    return any(_scale(f) != (1.0, 0.0) for f in frames)


def load_stack(stack):
    """Array ``(columns, rows, slices[, volumes])`` of real values for ``stack``.

    A 3-D array is returned for single-volume stacks, 4-D otherwise.
    """
    frames, k_idx, t_idx = stack.flat()
    ncol, nrow, nslice = stack.grid.shape
    nvol = stack.n_volumes
    rescale = needs_rescale(frames)
    data = None
    cache_path, cache_pixels = None, None
    for frame, k, t in zip(frames, k_idx, t_idx):
        try:
            if frame.path != cache_path:
                ds = pydicom.dcmread(frame.path, force=False)
                cache_path, cache_pixels = frame.path, ds.pixel_array
            pixels = cache_pixels if frame.frame_index is None else cache_pixels[frame.frame_index]
        except Exception as exc:
            raise PixelError(f"{frame.path}: cannot read pixel data ({type(exc).__name__}: {exc})") from None
        if pixels.shape != (nrow, ncol):
            raise PixelError(f"{frame.path}: pixel data {pixels.shape} does not match Rows×Columns {(nrow, ncol)}")
        if data is None:
            data = np.empty((ncol, nrow, nslice, nvol), dtype=np.float32 if rescale else pixels.dtype)
        if rescale:
            slope, intercept = _scale(frame)
            data[:, :, k, t] = pixels.T[:, ::-1].astype(np.float64) * slope + intercept
        else:
            data[:, :, k, t] = pixels.T[:, ::-1]
    return data[..., 0] if nvol == 1 else data
