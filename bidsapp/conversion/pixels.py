"""Read the pixel data of a stacked acquisition into a NIfTI-ordered array.

Each frame's ``pixel_array`` (rows × columns) is transposed to (column, row) and the
rows reversed, so the array index matches :mod:`.geometry`'s affine; slices and volumes follow the
:class:`~.series.Stack` order. Stored values are mapped to real values with
RescaleSlope/RescaleIntercept (per frame; for enhanced MR from the Pixel Value
Transformation functional group). For Philips data with a private scale slope
(2005,100E), the floating-point value ``(stored·RS + RI) / (RS·SS)`` is used, which is
consistent between series acquired with different receiver scaling — essential when
flip-angle images from separate series are compared voxel by voxel.

Uncompressed little-endian pixels are read straight from the file offset found while
reading the header (:func:`.discover.read_header`), with pydicom's masking of bits
above BitsStored; anything else (compressed, big endian, multi-frame) is decoded by
pydicom. The array keeps the stored integer type when no frame needs rescaling;
otherwise it is float32.

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
    """Return True when any frame's stored values differ from its real values."""
    return any(_scale(f) != (1.0, 0.0) for f in frames)


def _raw_pixels(frame):
    """Pixels read straight from the file at ``frame.pixel_offset``, or None if not possible.

    Same result as pydicom's ``pixel_array`` for uncompressed single-sample data: bits
    above BitsStored are masked (unsigned) or sign-extended (signed).
    """
    ds = frame.dataset
    try:
        allocated, stored = int(ds.BitsAllocated), int(ds.BitsStored)
        signed, samples = int(ds.PixelRepresentation) == 1, int(getattr(ds, "SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    if (
        frame.pixel_offset is None
        or samples != 1
        or allocated not in (8, 16, 32)
        or not 0 < stored <= allocated
    ):
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}")
    count = frame.rows * frame.columns
    pixels = np.fromfile(frame.path, dtype=dtype, count=count, offset=frame.pixel_offset)
    if pixels.size != count:
        raise PixelError(f"{frame.path}: pixel data shorter than Rows×Columns")
    if stored < allocated:
        shift = allocated - stored
        pixels = (pixels << shift) >> shift if signed else pixels & dtype.type((1 << stored) - 1)
    return pixels.reshape(frame.rows, frame.columns)


def _decoded_pixels(frame, cache_path, cache_pixels):
    """Pixels via pydicom (compressed, big-endian, multi-frame); caches the last file."""
    try:
        if frame.path != cache_path:
            cache_path, cache_pixels = frame.path, pydicom.dcmread(frame.path, force=False).pixel_array
        pixels = cache_pixels if frame.frame_index is None else cache_pixels[frame.frame_index]
    except Exception as exc:
        raise PixelError(f"{frame.path}: cannot read pixel data ({type(exc).__name__}: {exc})") from None
    return pixels, cache_path, cache_pixels


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
    for frame, k, t in zip(frames, k_idx, t_idx, strict=True):
        try:
            raw = _raw_pixels(frame) if frame.frame_index is None else None
        except OSError as exc:
            raise PixelError(f"{frame.path}: cannot read pixel data ({exc})") from None
        if raw is not None:
            pixels = raw
        else:
            pixels, cache_path, cache_pixels = _decoded_pixels(frame, cache_path, cache_pixels)
        if pixels.shape != (nrow, ncol):
            raise PixelError(
                f"{frame.path}: pixel data {pixels.shape} does not match Rows×Columns {(nrow, ncol)}"
            )
        if data is None:
            data = np.empty((ncol, nrow, nslice, nvol), dtype=np.float32 if rescale else pixels.dtype)
        if rescale:
            slope, intercept = _scale(frame)
            data[:, :, k, t] = pixels.T[:, ::-1].astype(np.float64) * slope + intercept
        else:
            data[:, :, k, t] = pixels.T[:, ::-1]
    return data[..., 0] if nvol == 1 else data
