"""Scanner imperfections applied to noise-free images: B1, rigid motion, Rician noise.

* Transmit field: a smooth centre-bright pattern (as the dielectric effect at 3 T) plus
  a random linear gradient, scaled so the relative B1 lies within ``1 ± amplitude``.
* Rigid motion: per-frame translations (mm) and rotations (deg) about the slab centre,
  a smoothed random walk scaled to the requested maximum; :func:`pose_matrix` gives the
  displacement that :meth:`Phantom.moved <bidsapp.simulate.phantom.Phantom.moved>`
  applies to the head before each volume is sampled.
* Noise: magnitude of the complex signal with independent Gaussian noise of SD σ in
  both channels, i.e. Rician (Gudbjartsson & Patz, MRM 1995;34:910).
"""

import numpy as np


def b1_map(grid, amplitude, rng):
    """Relative transmit field ``[nx, ny, nz]`` (1 = nominal) within ``1 ± amplitude``."""
    nx, ny, nz = grid.matrix
    if amplitude == 0:
        return np.ones(grid.matrix, dtype=np.float32)
    i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    x, y, z = grid.coordinates(i, j, k)
    r2 = (x / 80.0) ** 2 + (y / 95.0) ** 2 + (z / 120.0) ** 2
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    gradient = (direction[0] * x / 80.0 + direction[1] * y / 95.0 + direction[2] * z / 120.0) * rng.uniform(
        0.2, 0.5
    )
    pattern = (1.0 - 2.0 * r2) + gradient
    pattern = (pattern - pattern.mean()) / max(np.abs(pattern - pattern.mean()).max(), 1e-12)
    return (1.0 + amplitude * pattern).astype(np.float32)


def rician(signal, sigma, rng):
    """Magnitude of ``signal`` plus complex Gaussian noise of SD ``sigma`` (float32)."""
    real = signal + sigma * rng.standard_normal(signal.shape)
    imag = sigma * rng.standard_normal(signal.shape)
    return np.hypot(real, imag).astype(np.float32)


def motion_trace(rng, n, amplitude):
    """``[n, 6]`` rigid parameters (tx, ty, tz mm; rx, ry, rz deg), max |value| = amplitude."""
    steps = rng.standard_normal((n, 6))
    walk = np.cumsum(steps, axis=0)
    walk -= walk[0]
    peak = np.abs(walk).max(axis=0)
    return walk * (amplitude / np.where(peak > 0, peak, 1.0))


def rigid_matrix(params):
    """4×4 RAS transform for (tx, ty, tz mm, rx, ry, rz deg) rotating about the origin."""
    tx, ty, tz, rx, ry, rz = (float(p) for p in params)
    ax, ay, az = np.deg2rad([rx, ry, rz])
    rot_x = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rot_y = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rot_z = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rot_z @ rot_y @ rot_x
    matrix[:3, 3] = [tx, ty, tz]
    return matrix


def pose_matrix(params, slab_centre=0.0):
    """Return the 4×4 RAS displacement of the head for (tx, ty, tz mm, rx, ry, rz deg).

    The head rotates about the slab centre (0, 0, ``slab_centre``): a head point ``p`` moves
    to ``M · p``.
    """
    centre = np.eye(4)
    centre[2, 3] = slab_centre
    return centre @ rigid_matrix(params) @ np.linalg.inv(centre)
