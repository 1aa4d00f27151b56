"""Argument checks shared by the signal-physics functions (T1 mapping, concentration).

Every check raises a one-line :class:`ValueError` that names the offending argument,
so API misuse is reported to the caller instead of being turned into NaN voxels.
"""

import math
import warnings

import numpy as np


def positive_scalar(value, name):
    """Return ``value`` as a finite float > 0, else raise ``ValueError`` naming it."""
    try:
        number = float(np.asarray(value, dtype=float).reshape(()))
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a single positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name}: must be a finite number > 0, got {number!r}")
    return number


def flip_angles_deg(flip_angles, name="flip_angles"):
    """Check nominal flip angles in degrees: finite, in (0, 180).

    Warns (``UserWarning``) when every angle is below π, the tell-tale sign of angles
    given in radians by mistake.
    """
    angles = np.asarray(flip_angles, dtype=float)
    if not np.all(np.isfinite(angles)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    if np.any(angles <= 0) or np.any(angles >= 180):
        raise ValueError(f"{name}: flip angles must be in degrees, in (0, 180), got {angles.tolist()}")
    if np.all(angles < math.pi):
        warnings.warn(
            f"{name}: all flip angles are below pi ({angles.tolist()}); they must be in degrees, not radians",
            UserWarning,
            stacklevel=3,
        )
    return angles


def voxel_map(value, shape, name, default=None):
    """Broadcast a per-voxel map (or scalar) to ``shape``; ``None`` gives ``default``.

    Raises ``ValueError`` naming ``name`` when the map cannot be broadcast.
    """
    if value is None:
        return None if default is None else np.full(shape, float(default))
    array = np.asarray(value, dtype=float)
    try:
        return np.broadcast_to(array, shape)
    except ValueError:
        raise ValueError(
            f"{name}: shape {array.shape} does not match the voxel shape {tuple(shape)}"
        ) from None


def boolean_mask(mask, shape, name="mask"):
    """Return a boolean voxel mask of ``shape`` (all True when ``mask`` is None)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    array = np.asarray(mask)
    if array.shape != tuple(shape):
        raise ValueError(f"{name}: shape {array.shape} does not match the voxel shape {tuple(shape)}")
    return array.astype(bool)
