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

Motion: :meth:`Phantom.moved` evaluates the same head displaced rigidly — the tissue
geometry is sampled afresh at the moved points (``supersample``³ points per voxel) and
the smooth parameter fields are read at the moved points — so each moved volume is a new
acquisition of the moved object, as in a scanner, not an interpolation of the still image.
"""

from dataclasses import dataclass, field, replace

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
    subject-level class values drawn from the priors; ``fields`` the unit random fields
    (parameter -> array on ``field_grid``, or on ``grid`` when it is None) and
    ``supersample`` the points per voxel edge, from which :meth:`moved` re-evaluates the head.
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
    fields: dict = field(default_factory=dict, repr=False)
    field_grid: Grid | None = None
    supersample: int = 3

    @property
    def head_mask(self):
        """Voxels with any tissue in them."""
        return self.fractions[..., 0] < 1.0

    def purity(self):
        """Largest class fraction per voxel (1 = no partial volume)."""
        return self.fractions.max(axis=-1)

    def moved(self, pose):
        """Return the phantom of the head displaced rigidly by ``pose``, sampled on the same grid.

        ``pose`` is 4×4, RAS mm; a point ``p`` of the head moves to ``pose · p``. Fractions from
        the geometry at the moved points, parameters from the fields at the moved points
        (linear interpolation of the smooth fields, nearest edge value outside their grid).
        ``pose`` = identity gives this phantom's maps.
        """
        to_object = np.linalg.inv(np.asarray(pose, float))
        fractions = class_fractions(self.geometry, self.grid, self.supersample, to_object)
        source = self.field_grid or self.grid
        maps = _parameter_maps(
            fractions,
            {p: _field_at(self.grid, source, f, to_object) for p, f in self.fields.items()},
            self.subject_values,
            priors(self.field_strength, self.hematocrit),
        )
        return replace(self, fractions=fractions, **_derived(fractions, maps, self.sinus_delay))

    def truth_maps(self):
        """Kinetic truth maps keyed like ``FitResult.params`` (``Ktrans``, ``ve``, ``vp``, ``kep``)."""
        return {"Ktrans": self.ktrans, "ve": self.ve, "vp": self.vp, "kep": self.kep}


def smooth_field(rng, shape, voxel_size, smoothness_mm):
    """Gaussian random field with zero mean and unit standard deviation."""
    noise = rng.standard_normal(shape)
    sigma = [smoothness_mm / v for v in voxel_size]
    g = gaussian_filter(noise, sigma, mode="reflect")
    return (g - g.mean()) / max(g.std(), 1e-12)


def _field_at(grid, field_grid, field, to_object=None):
    """Sample ``field`` (drawn on ``field_grid``) at the voxel centres of ``grid``.

    The centres are mapped by ``to_object`` (4×4) when given (linear; edge values outside).
    """
    if to_object is None and field_grid == grid:
        return field
    i, j, k = np.indices(grid.matrix)
    world = np.stack(grid.coordinates(i, j, k) + (np.ones(grid.matrix),)).reshape(4, -1)
    if to_object is not None:
        world = np.asarray(to_object, float) @ world
    index = (np.linalg.inv(field_grid.affine) @ world)[:3]
    return map_coordinates(field, index, order=1, mode="nearest").reshape(grid.matrix)


def _parameter_maps(fractions, fields, values, table):
    """Return voxel T1, M0, Ktrans, ve, vp (partial-volume mixtures, module docstring).

    They come from the class ``fractions`` and the unit random ``fields`` (parameter -> array on the grid).
    """
    tissues = [TISSUE_CLASSES[i][0] for i in range(1, len(TISSUE_CLASSES))]
    f = fractions[..., 1:].astype(float)
    head = f.sum(axis=-1)
    maps = {}
    for parameter in PARAMETERS:
        per_class = np.empty(f.shape)
        for c, tissue in enumerate(tissues):
            prior = table[tissue][parameter]
            value = values[tissue][parameter] * np.exp(prior.cv * fields[parameter])
            per_class[..., c] = np.clip(value, prior.low, prior.high) if prior.median else 0.0
        if parameter == "T1":
            r1 = np.divide((f / per_class).sum(axis=-1), head, out=np.zeros(head.shape), where=head > 0)
            maps[parameter] = np.divide(1.0, r1, out=np.zeros(head.shape), where=r1 > 0)
        else:
            maps[parameter] = (f * per_class).sum(axis=-1)
    return maps


def _derived(fractions, maps, sinus_delay):
    """Phantom map fields (float32) of the parameter ``maps``: kep, dseg, delay added."""
    ktrans, ve = maps["Ktrans"], maps["ve"]
    kep = np.divide(ktrans, ve, out=np.zeros(ve.shape), where=ve > 0)
    dseg = fractions.argmax(axis=-1).astype(np.int16)
    delay = np.where(dseg == CLASS_INDEX["sagittal_sinus"], sinus_delay, 0.0)
    as32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return {
        "dseg": dseg,
        "t1": as32(maps["T1"]),
        "m0": as32(maps["M0"]),
        "ktrans": as32(ktrans),
        "ve": as32(ve),
        "vp": as32(maps["vp"]),
        "kep": as32(kep),
        "delay": as32(delay),
    }


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
    source = field_grid or grid
    fields = {p: smooth_field(rng, source.matrix, source.voxel_size, smoothness_mm) for p in PARAMETERS}
    maps = _parameter_maps(
        fractions,
        {p: _field_at(grid, source, f) for p, f in fields.items()},
        values,
        priors(field_strength, hematocrit),
    )
    return Phantom(
        grid=grid,
        geometry=geometry,
        fractions=fractions,
        subject_values=values,
        sinus_delay=sinus_delay,
        field_strength=float(field_strength),
        hematocrit=float(hematocrit),
        group=group,
        shifts=dict(shifts or {}),
        fields=fields,
        field_grid=field_grid,
        supersample=int(supersample),
        **_derived(fractions, maps, sinus_delay),
    )
