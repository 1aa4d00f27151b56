"""Subject phantom: geometry + per-subject parameter draws + smooth spatial variation.

Voxel parameters are partial-volume mixtures of the class values in the voxel:
``R1 = Σ f_c R1_c / Σ_{c≠bg} f_c`` (fast water exchange between compartments),
``M0 = Σ f_c M0_c`` (background contributes nothing), and ``Ktrans``, ``ve``, ``vp``
fraction-weighted (each is a volume-normalised quantity), ``kep = Ktrans / ve``. The
tissue concentration is generated from these voxel parameters, so the saved truth
is exactly consistent with the extended Tofts model in every voxel, edges included.

Inside a class each parameter varies smoothly: the subject value is multiplied by
``exp(cv · g(x))`` with ``g`` a unit-variance Gaussian random field (correlation
length ``smoothness_mm``), then clipped to the class's documented range.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from .geometry import Grid, HeadGeometry, class_fractions
from .tissues import CLASS_INDEX, PARAMETERS, SINUS_DELAY, TISSUE_CLASSES, draw_subject_parameters, priors


@dataclass
class Phantom:
    """Ground truth of one subject on an acquisition grid.

    Maps are ``[nx, ny, nz]`` float32: ``t1`` (s, 0 outside the head), ``m0``
    (relative proton density), ``ktrans`` and ``kep`` (1/min), ``ve``, ``vp``
    (fractions), ``delay`` (s, bolus delay relative to the arterial input; non-zero in
    the sagittal sinus only). ``fractions`` ``[nx, ny, nz, n_classes]``; ``dseg`` the
    dominant class (int16, :data:`TISSUE_CLASSES`). ``subject_values`` holds the
    subject-level class values drawn from the priors.
    """

    grid: Grid
    geometry: HeadGeometry
    fractions: np.ndarray
    dseg: np.ndarray
    t1: np.ndarray
    m0: np.ndarray
    ktrans: np.ndarray
    ve: np.ndarray
    vp: np.ndarray
    kep: np.ndarray
    delay: np.ndarray
    subject_values: dict
    sinus_delay: float
    field_strength: float
    hematocrit: float
    group: str | None = None
    shifts: dict = field(default_factory=dict)

    @property
    def head_mask(self):
        """Voxels with any tissue in them."""
        return self.fractions[..., 0] < 1.0

    def purity(self):
        """Largest class fraction per voxel (1 = no partial volume)."""
        return self.fractions.max(axis=-1)

    def truth_maps(self):
        """Kinetic truth maps keyed like ``FitResult.params`` (``Ktrans``, ``ve``, ``vp``, ``kep``)."""
        return {"Ktrans": self.ktrans, "ve": self.ve, "vp": self.vp, "kep": self.kep}


def smooth_field(rng, shape, voxel_size, smoothness_mm):
    """Gaussian random field with zero mean and unit standard deviation."""
    noise = rng.standard_normal(shape)
    sigma = [smoothness_mm / v for v in voxel_size]
    g = gaussian_filter(noise, sigma, mode="reflect")
    return (g - g.mean()) / max(g.std(), 1e-12)


def _field_on(grid, field_grid, field):
    """``field`` (drawn on ``field_grid``) at the voxel centres of ``grid`` (linear; edge values outside)."""
    if field_grid is None or field_grid == grid:
        return field
    i, j, k = np.indices(grid.matrix)
    world = np.stack(grid.coordinates(i, j, k) + (np.ones(grid.matrix),)).reshape(4, -1)
    index = (np.linalg.inv(field_grid.affine) @ world)[:3]
    return map_coordinates(field, index, order=1, mode="nearest").reshape(grid.matrix)


def make_phantom(
    rng: np.random.Generator | int = 0,
    grid: Grid | None = None,
    field_strength: float = 3.0,
    hematocrit: float = 0.45,
    lesion: bool = True,
    group: str | None = None,
    shifts: dict[str, float] | None = None,
    supersample: int = 3,
    smoothness_mm: float = 12.0,
    field_grid: Grid | None = None,
) -> Phantom:
    """Draw one subject's phantom.

    Parameters
    ----------
    rng : int or numpy.random.Generator
        Seed or generator (the phantom is a deterministic function of it).
    grid : Grid, optional
        Acquisition grid (default 64×64×8 at 3.44×3.44×5 mm).
    field_strength : float
        B0 in T (1.5–3), selects the T1 priors.
    hematocrit : float
        Large-vessel hematocrit; vessels get ``vp = 1 − hematocrit``.
    lesion : bool
        Include the non-enhancing lesion.
    group : str, optional
        Group label stored with the phantom (its effect is given by ``shifts``).
    shifts : dict, optional
        ``{(tissue, parameter): d}`` shifts of subject-level log-medians in prior SDs.
    supersample : int
        Points per voxel edge for partial-volume fractions.
    smoothness_mm : float
        Correlation length (Gaussian sigma, mm) of within-class variation.
    field_grid : Grid, optional
        Grid on which the random fields are drawn (then interpolated, linearly, to
        ``grid``). Two phantoms with the same ``rng`` and ``field_grid`` are the same
        subject on two grids (e.g. VFA at 2 mm and DCE at 3 mm voxels).
    """
    rng = np.random.default_rng(rng)
    grid = grid or Grid()
    geometry = HeadGeometry.draw(rng, slab_centre=grid.slab_centre, lesion=lesion)
    values = draw_subject_parameters(rng, field_strength, hematocrit, shifts)
    sinus_delay = SINUS_DELAY.draw(rng)
    fractions = class_fractions(geometry, grid, supersample)
    table = priors(field_strength, hematocrit)
    tissues = [TISSUE_CLASSES[i][0] for i in range(1, len(TISSUE_CLASSES))]
    f = fractions[..., 1:].astype(float)
    head = f.sum(axis=-1)

    maps = {}
    for parameter in PARAMETERS:
        g = _field_on(grid, field_grid, smooth_field(rng, (field_grid or grid).matrix,
                                                     (field_grid or grid).voxel_size, smoothness_mm))
        per_class = np.empty(f.shape)
        for c, tissue in enumerate(tissues):
            prior = table[tissue][parameter]
            value = values[tissue][parameter] * np.exp(prior.cv * g)
            per_class[..., c] = np.clip(value, prior.low, prior.high) if prior.median else 0.0
        if parameter == "T1":
            r1 = np.divide((f / per_class).sum(axis=-1), head, out=np.zeros(head.shape), where=head > 0)
            maps[parameter] = np.divide(1.0, r1, out=np.zeros(head.shape), where=r1 > 0)
        else:
            maps[parameter] = (f * per_class).sum(axis=-1)

    ktrans, ve = maps["Ktrans"], maps["ve"]
    kep = np.divide(ktrans, ve, out=np.zeros(ve.shape), where=ve > 0)
    dseg = fractions.argmax(axis=-1).astype(np.int16)
    delay = np.where(dseg == CLASS_INDEX["sagittal_sinus"], sinus_delay, 0.0)
    as32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return Phantom(
        grid=grid,
        geometry=geometry,
        fractions=fractions,
        dseg=dseg,
        t1=as32(maps["T1"]),
        m0=as32(maps["M0"]),
        ktrans=as32(ktrans),
        ve=as32(ve),
        vp=as32(maps["vp"]),
        kep=as32(kep),
        delay=as32(delay),
        subject_values=values,
        sinus_delay=sinus_delay,
        field_strength=float(field_strength),
        hematocrit=float(hematocrit),
        group=group,
        shifts=dict(shifts or {}),
    )
