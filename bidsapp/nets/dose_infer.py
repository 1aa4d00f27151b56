"""Synthesised standard-dose T1-weighted image from pre-contrast and low-dose images.

Arrays in, arrays out: :func:`synthesize_standard_dose` registers the pre-contrast image
to the low-dose image, builds the network inputs and conditions
(:mod:`bidsapp.nets.dose_inputs`), runs the shipped conditional U-Net
(:mod:`bidsapp.nets.dose_unet`, weights ``bidsapp/data/nets/dose.pt`` verified against
their model card) on the whole volume and returns the standard-dose
contrast-enhancement signal and the synthesised standard-dose image (registered
pre-contrast + enhancement), both on the low-dose image's grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ..relaxivity import relaxivity_for
from .dose_inputs import align_to_low, condition_vector, network_inputs
from .dose_unet import CONDITION_NAMES, CONDITION_SCALE

NETWORK = "dose"


@dataclass(frozen=True)
class DoseSynthesis:
    """Result of :func:`synthesize_standard_dose` (arrays on the low-dose grid).

    ``synthetic_standard_dose`` and ``enhancement`` in the images' signal units;
    ``pre_on_low`` the registered pre-contrast image; ``registration`` the 4×4 RAS
    transform (low-dose point → pre-contrast point); ``conditions`` the physical
    condition values keyed by :data:`CONDITION_NAMES`; ``reference_intensity`` ``s``;
    ``dose_scale`` the enhancement multiplier applied; ``weights_sha256`` of the network.
    """

    synthetic_standard_dose: np.ndarray
    enhancement: np.ndarray
    pre_on_low: np.ndarray
    registration: np.ndarray
    conditions: dict
    reference_intensity: float
    dose_scale: float
    weights_sha256: str
    card: dict = field(repr=False, default_factory=dict)


@lru_cache(maxsize=4)
def load_dose_network(directory: str | None = None):
    """Return the shipped dose network in eval mode and its verified weights (cached per directory)."""
    from .dose_unet import DoseUNet
    from .weights import load_weights

    shipped = load_weights(NETWORK, Path(directory) if directory else None)
    model = DoseUNet(**shipped.card["architecture"])
    model.load_state_dict(shipped.state_dict)
    return model.eval(), shipped


def _check(name, value, low, high, unit):
    if not (np.isfinite(value) and low < value <= high):
        raise ValueError(f"{name} = {value!r} {unit} is outside ({low}, {high}]")


#: edge of the inference tiles (voxels): the training patch size, so that every group norm
#: sees statistics of the extent it was trained on; tiles overlap by a third
TILE = 24


def _tile_starts(n, tile, stride):
    return sorted(set(range(0, n - tile + 1, stride)) | {n - tile})


def run_network(model, x, condition, zero_embedding=False, tile=TILE, batch=8):
    """Network output ``[nx, ny, nz]`` for channels ``x`` ``[3, ...]`` and a scaled condition.

    The volume is processed in overlapping tiles of ``tile``³ voxels (edge-padded where
    the volume is smaller), blended with a separable triangular weight.
    """
    import itertools

    import torch

    shape = x.shape[1:]
    padded = np.pad(x, [(0, 0)] + [(0, max(tile - n, 0)) for n in shape], mode="edge")
    full = padded.shape[1:]
    stride = max(2 * tile // 3, 1)
    ramp = np.minimum(np.arange(tile) + 1.0, tile - np.arange(tile)).astype(np.float32)
    weight = ramp[:, None, None] * ramp[None, :, None] * ramp[None, None, :]
    out, norm = np.zeros(full, np.float32), np.zeros(full, np.float32)
    corners = list(itertools.product(*(_tile_starts(n, tile, stride) for n in full)))
    conditions = torch.from_numpy(np.repeat(np.asarray(condition, np.float32)[None], batch, axis=0))
    with torch.no_grad():
        for first in range(0, len(corners), batch):
            chunk = corners[first : first + batch]
            tiles = np.stack([padded[:, i : i + tile, j : j + tile, k : k + tile] for i, j, k in chunk])
            predicted = model(
                torch.from_numpy(tiles), conditions[: len(chunk)], zero_embedding=zero_embedding
            )
            for (i, j, k), value in zip(chunk, predicted[:, 0].numpy(), strict=True):
                out[i : i + tile, j : j + tile, k : k + tile] += weight * value
                norm[i : i + tile, j : j + tile, k : k + tile] += weight
    return (out / norm)[: shape[0], : shape[1], : shape[2]]


def synthesize_standard_dose(
    pre: ArrayLike,
    low: ArrayLike,
    fraction: float,
    field_strength: float,
    agent: str,
    voxel_size: float | ArrayLike,
    *,
    pre_affine: ArrayLike | None = None,
    low_affine: ArrayLike | None = None,
    relaxivity: float | None = None,
    register: bool = True,
    dose_scale: float = 1.0,
    zero_embedding: bool = False,
    weights_directory: str | Path | None = None,
) -> DoseSynthesis:
    """Predict the standard-dose enhancement and synthesise the standard-dose image.

    Parameters
    ----------
    pre, low : ndarray ``[nx, ny, nz]``
        Pre-contrast and low-dose T1-weighted magnitude images (same sequence).
    fraction : float
        Low dose as a fraction of the standard dose (0 < fraction < 1, e.g. 0.25).
    field_strength : float
        B0 (T).
    agent : str
        Contrast agent (generic or brand name; :func:`bidsapp.relaxivity_for`).
    voxel_size : float or sequence of 3 floats
        Voxel size of the low-dose image (mm).
    pre_affine, low_affine : ndarray ``(4, 4)``, optional
        Voxel-to-RAS (mm) affines; default a diagonal of ``voxel_size`` (same grid).
    relaxivity : float, optional
        r1 (/mM/s) instead of the tabulated value of ``agent`` at ``field_strength``.
    register : bool
        Register ``pre`` rigidly to ``low`` (default); False requires both on one grid.
    dose_scale : float
        Multiplier of the predicted standard-dose enhancement (1 = standard dose;
        above 1 extrapolates beyond it).
    zero_embedding : bool
        Replace the conditioning embedding by zeros (ablation only).
    weights_directory : path, optional
        Directory of ``dose.pt``/``dose.json`` (default: the shipped weights).
    """
    pre, low = np.asarray(pre, np.float32), np.asarray(low, np.float32)
    if pre.ndim != 3 or low.ndim != 3:
        raise ValueError(f"pre and low must be 3-D volumes, got shapes {pre.shape} and {low.shape}")
    _check("fraction", float(fraction), 0.0, 1.0, "")
    _check("field_strength", float(field_strength), 0.0, 12.0, "T")
    voxel = np.broadcast_to(np.asarray(voxel_size, float), (3,))
    default = np.diag([*voxel, 1.0])
    pre_affine = default if pre_affine is None else np.asarray(pre_affine, float)
    low_affine = default if low_affine is None else np.asarray(low_affine, float)
    if register:
        pre_on_low, matrix = align_to_low(pre, pre_affine, low, low_affine)
    elif pre.shape != low.shape or not np.allclose(pre_affine, low_affine, atol=1e-3):
        raise ValueError(f"pre {pre.shape} and low {low.shape} are on different grids; pass register=True")
    else:
        pre_on_low, matrix = pre, np.eye(4)
    r1 = float(relaxivity) if relaxivity is not None else float(relaxivity_for(agent, field_strength))
    _check("relaxivity", r1, 0.0, 100.0, "/mM/s")
    x, s, noise_level, _ = network_inputs(pre_on_low, low, float(fraction))
    condition = condition_vector(field_strength, float(fraction), r1, noise_level, voxel)
    model, shipped = load_dose_network(None if weights_directory is None else str(weights_directory))
    enhancement = run_network(model, x, condition, zero_embedding) * s
    physical = condition * np.asarray(CONDITION_SCALE, float)
    conditions = {name: float(f"{value:.6g}") for name, value in zip(CONDITION_NAMES, physical, strict=True)}
    return DoseSynthesis(
        synthetic_standard_dose=(pre_on_low + float(dose_scale) * enhancement).astype(np.float32),
        enhancement=(float(dose_scale) * enhancement).astype(np.float32),
        pre_on_low=pre_on_low,
        registration=matrix,
        conditions=conditions,
        reference_intensity=s,
        dose_scale=float(dose_scale),
        weights_sha256=shipped.sha256,
        card=shipped.card,
    )
