"""Simulated 3D brain dose triplets for the dose-reduction network (pre, low, standard dose).

One sample is a whole-head phantom (:func:`make_phantom`: cortex, white matter, CSF,
arteries, sagittal sinus, a ring-enhancing tumour) with extra enhancing lesions of
varied size and enhancement painted in, acquired as pre-contrast, low-dose and
standard-dose T1-weighted SPGR volumes by :func:`simulate_dose_pair` (signal equation,
independent Rician noise per volume), with a small rigid displacement of the pre-contrast
volume (the noise-free volume resampled trilinearly by :func:`displace`, then its own
Rician noise). Every random draw comes from one seed, so a sample is a deterministic
function of ``(seed, ranges)``.

The acquisition conditions of a sample (:class:`DoseScenario`) are drawn from
:data:`TRAINING_RANGES`: field strength 1.5 or 3 T, agent from
:data:`bidsapp.relaxivity.RELAXIVITY_TABLE` (its r1 at that field), low-dose fraction
10–33 % of the standard 0.1 mmol/kg, SNR 12–60 (mean normal-brain pre-contrast signal
over the noise SD), isotropic voxels 2.5–3.5 mm, transmit-field inhomogeneity up to
±15 %, pre-contrast misregistration up to ±1.5 mm / ±1.5°.

Extra lesions (metastasis-like, 2–6 per subject): spheres of radius 2–9 mm centred in
brain tissue, a third of them ring-enhancing (core with a tenth of the rim's Ktrans),
with Ktrans log-uniform in 0.005–0.3 /min, ve 0.15–0.6, vp 0.005–0.08 and T1 1.1–1.5 ×
the local tissue T1. A lesion's voxel fraction ``f`` (supersampled, 3³ points) mixes
its values with the tissue already there as the phantom does (R1, M0, Ktrans, ve, vp
fraction-weighted; kep = Ktrans/ve).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import affine_transform

from ..relaxivity import RELAXIVITY_TABLE, relaxivity_for
from .acquisition import rician, rigid_matrix
from .geometry import Grid
from .phantom import Phantom, make_phantom
from .protocol import STANDARD_DOSE, Protocol
from .subject import DosePair, simulate_dose_pair
from .tissues import CLASS_INDEX

#: the head's field of view (mm) covered by every sample's grid
FIELD_OF_VIEW_MM = (180.0, 216.0, 144.0)


@dataclass(frozen=True)
class DoseRanges:
    """Ranges the acquisition conditions are drawn from (units in the field names)."""

    field_strengths_t: tuple = (1.5, 3.0)
    agents: tuple = tuple(sorted(RELAXIVITY_TABLE))
    fraction: tuple = (0.10, 0.33)
    snr: tuple = (12.0, 60.0)
    voxel_mm: tuple = (2.5, 3.5)
    b1_amplitude: tuple = (0.0, 0.15)
    misregistration: tuple = (0.0, 1.5)
    n_lesions: tuple = (2, 6)
    lesion_radius_mm: tuple = (2.0, 9.0)


TRAINING_RANGES = DoseRanges()


@dataclass(frozen=True)
class DoseScenario:
    """Acquisition conditions of one sample.

    ``field_strength`` (T), ``agent``, ``relaxivity`` (/mM/s, plasma r1 of the agent at
    the field), ``fraction`` (low dose / standard dose), ``low_dose`` (mmol/kg),
    ``snr``, ``voxel_size`` (mm, isotropic), ``b1_amplitude``, ``misregistration``
    (mm and deg).
    """

    field_strength: float
    agent: str
    relaxivity: float
    fraction: float
    low_dose: float
    snr: float
    voxel_size: float
    b1_amplitude: float
    misregistration: float

    @classmethod
    def draw(cls, rng, ranges: DoseRanges = TRAINING_RANGES, **fixed):
        """Draw every condition from ``ranges``; ``fixed`` overrides some (e.g. ``fraction=0.1``)."""
        values = {
            "field_strength": float(rng.choice(ranges.field_strengths_t)),
            "agent": str(rng.choice(ranges.agents)),
            "fraction": float(rng.uniform(*ranges.fraction)),
            "snr": float(np.exp(rng.uniform(*np.log(ranges.snr)))),
            "voxel_size": float(rng.uniform(*ranges.voxel_mm)),
            "b1_amplitude": float(rng.uniform(*ranges.b1_amplitude)),
            "misregistration": float(rng.uniform(*ranges.misregistration)),
        }
        values.update(fixed)
        values["relaxivity"] = float(relaxivity_for(values["agent"], values["field_strength"]))
        values["low_dose"] = values["fraction"] * STANDARD_DOSE
        return cls(**values)


@dataclass
class DoseSample:
    """One simulated subject: the dose pair, its conditions and lesion labels.

    ``lesion_labels`` (int16, grid shape): 0 outside lesions, 1 the phantom's enhancing
    tumour rim, 2.. the added lesions (voxels whose lesion fraction is at least 0.5).
    ``head`` marks voxels with tissue. ``pre_motion`` ``(6,)`` (tx, ty, tz mm, rx, ry, rz
    deg): the displacement of the pre-contrast acquisition; ``pair.pre`` and
    ``pair.pre_clean`` are the displaced volume (with and without noise), while
    ``pair.enhancement`` and ``pair.low_enhancement`` stay on the post-contrast position.
    """

    pair: DosePair
    scenario: DoseScenario
    grid: Grid
    lesion_labels: np.ndarray
    head: np.ndarray
    pre_motion: np.ndarray


def sample_grid(voxel_size):
    """Isotropic grid of ``voxel_size`` mm covering :data:`FIELD_OF_VIEW_MM`."""
    matrix = tuple(int(np.ceil(f / voxel_size)) for f in FIELD_OF_VIEW_MM)
    return Grid(matrix, (voxel_size,) * 3)


def _sphere_fraction(grid, centre, radius, supersample=3):
    """Fraction of every voxel inside the sphere ``(centre mm, radius mm)`` (float32)."""
    s = supersample
    offsets = (np.arange(s) + 0.5) / s - 0.5
    out = np.zeros(grid.matrix, dtype=np.float32)
    ijk = np.linalg.inv(grid.affine) @ np.array([*centre, 1.0])
    half = radius / min(grid.voxel_size) + 2
    lo = [max(int(np.floor(c - half)), 0) for c in ijk[:3]]
    hi = [min(int(np.ceil(c + half)) + 1, n) for c, n in zip(ijk[:3], grid.matrix, strict=True)]
    if any(h <= low for low, h in zip(lo, hi, strict=True)):
        return out
    axes = [(np.arange(a, b)[:, None] + offsets[None, :]).ravel() for a, b in zip(lo, hi, strict=True)]
    x, y, z = grid.coordinates(axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :])
    inside = ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) < radius**2
    shape = tuple(h - low for low, h in zip(lo, hi, strict=True))
    counts = inside.reshape(shape[0], s, shape[1], s, shape[2], s).mean(axis=(1, 3, 5))
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = counts
    return out


def _mix(phantom: Phantom, f, values):
    """Phantom maps with a fraction ``f`` of each voxel replaced by a lesion of ``values``."""
    g = 1.0 - f
    r1 = (
        g * np.divide(1.0, phantom.t1, out=np.zeros_like(phantom.t1), where=phantom.t1 > 0) + f / values["T1"]
    )
    ktrans = g * phantom.ktrans + f * values["Ktrans"]
    ve = g * phantom.ve + f * values["ve"]
    return {
        "t1": np.divide(1.0, r1, out=np.zeros_like(r1), where=r1 > 0).astype(np.float32),
        "m0": (g * phantom.m0 + f * values["M0"]).astype(np.float32),
        "ktrans": ktrans.astype(np.float32),
        "ve": ve.astype(np.float32),
        "vp": (g * phantom.vp + f * values["vp"]).astype(np.float32),
        "kep": np.divide(ktrans, ve, out=np.zeros_like(ve), where=ve > 0).astype(np.float32),
    }


def add_enhancing_lesions(phantom: Phantom, rng, ranges: DoseRanges = TRAINING_RANGES):
    """Paint 2–6 enhancing lesions into ``phantom``; return ``(new phantom, lesion labels)``.

    Centres are drawn among brain voxels (white or grey matter) at least one radius
    from CSF and vessels (checked on the dominant-class map); see the module docstring
    for the parameter ranges.
    """
    grid = phantom.grid
    labels = np.where(phantom.dseg == CLASS_INDEX["tumour_rim"], 1, 0).astype(np.int16)
    brain = np.isin(phantom.dseg, [CLASS_INDEX["white_matter"], CLASS_INDEX["grey_matter"]])
    candidates = np.argwhere(brain)
    n = int(rng.integers(ranges.n_lesions[0], ranges.n_lesions[1] + 1))
    for label in range(2, n + 2):
        radius = float(rng.uniform(*ranges.lesion_radius_mm))
        for _ in range(50):
            ijk = candidates[rng.integers(len(candidates))]
            centre = np.array(grid.coordinates(*ijk), dtype=float)
            f = _sphere_fraction(grid, centre, radius)
            inside = f > 0
            if brain[inside].all() and not labels[inside].any():
                break
        else:
            continue
        local_t1 = float(np.median(phantom.t1[inside]))
        ktrans = float(np.exp(rng.uniform(np.log(0.005), np.log(0.3))))
        values = {
            "T1": local_t1 * rng.uniform(1.1, 1.5),
            "M0": float(rng.uniform(0.8, 0.92)),
            "Ktrans": ktrans,
            "ve": float(rng.uniform(0.15, 0.6)),
            "vp": float(rng.uniform(0.005, 0.08)),
        }
        maps = _mix(phantom, f, values)
        if rng.uniform() < 1.0 / 3.0 and radius > 4.0:
            core = _sphere_fraction(grid, centre, 0.55 * radius)
            maps = _mix(
                replace(phantom, **maps), core, {**values, "Ktrans": 0.1 * ktrans, "vp": 0.2 * values["vp"]}
            )
        phantom = replace(phantom, **maps)
        labels[(f >= 0.5) & (labels == 0)] = label
    return phantom, labels


def displace(volume, grid, params):
    """``volume`` with its object displaced rigidly (trilinear resampling, 0 outside).

    ``params``: tx, ty, tz (mm), rx, ry, rz (deg) about the slab centre (0, 0,
    ``grid.slab_centre``); an object point ``p`` moves to ``M · p``.
    """
    centre = np.eye(4)
    centre[2, 3] = grid.slab_centre
    world = centre @ rigid_matrix(params) @ np.linalg.inv(centre)
    vox = np.linalg.inv(grid.affine) @ np.linalg.inv(world) @ grid.affine  # output voxel -> input voxel
    return affine_transform(volume, vox[:3, :3], offset=vox[:3, 3], order=1, mode="constant", cval=0.0)


def simulate_dose_sample(seed, ranges: DoseRanges = TRAINING_RANGES, **fixed) -> DoseSample:
    """Simulate one dose sample (deterministic in ``seed``); ``fixed`` pins conditions.

    Example: ``simulate_dose_sample(7, fraction=0.1, field_strength=3.0)``.
    """
    rng = np.random.default_rng(seed)
    scenario = DoseScenario.draw(rng, ranges, **fixed)
    grid = sample_grid(scenario.voxel_size)
    phantom = make_phantom(rng, grid=grid, field_strength=scenario.field_strength, supersample=2)
    phantom, labels = add_enhancing_lesions(phantom, rng, ranges)
    protocol = Protocol(
        field_strength=scenario.field_strength,
        agent=scenario.agent,
        snr=scenario.snr,
        b1_amplitude=scenario.b1_amplitude,
    )
    pair = simulate_dose_pair(phantom, protocol, rng, scenario.fraction)
    pre_motion = rng.uniform(-1.0, 1.0, 6) * scenario.misregistration
    moved = displace(pair.pre_clean, grid, pre_motion).astype(np.float32)
    pair = replace(pair, pre=rician(moved, pair.noise_sigma, rng), pre_clean=moved)
    return DoseSample(
        pair=pair,
        scenario=scenario,
        grid=grid,
        lesion_labels=labels,
        head=phantom.t1 > 0,
        pre_motion=pre_motion,
    )
