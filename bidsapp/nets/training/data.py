"""Training slices drawn on the fly from the simulator and the shared signal chain.

One training example is a 2-D slice of a simulated head (:func:`bidsapp.make_phantom`
on a one-slice grid at a random height, so partial volume at every tissue edge comes
from the phantom's supersampled class fractions). Per slice the recipe draws
(``docs/networks.md`` lists the ranges):

* an acquisition protocol (:class:`bidsapp.simulate.Protocol`): field 1.5–3 T, DCE flip
  angle 10–35°, TR 2.5–8 ms, frame spacing 1.5–8 s, bolus arrival 10–60 s, dose
  0.05–0.1 mmol/kg, haematocrit 0.38–0.50, one of four population AIF shapes with a
  log-normal amplitude (SD 0.25);
* kinetics: with probability 0.7 per tissue class the phantom's literature value is
  replaced by a wide draw (Ktrans log-uniform 0.001–0.6 /min, ve 0.05–0.7, vp
  log-uniform 0.003–0.2), varied smoothly in space (log-SD 0.25), then mixed by the
  voxels' class fractions; a tissue delay of 0–3 s after the AIF (the sinus keeps its
  venous delay);
* the noise-free tissue concentration from the simulator's kinetics
  (:func:`bidsapp.simulate.kinetics.tissue_concentration`, extended Tofts through
  :func:`bidsapp.model_curve` on a fine grid) and its SPGR signal
  (:func:`bidsapp.concentration_to_signal`).

Each time a slice is used (:func:`noisy_example`), new Rician noise at an SNR drawn
log-uniformly in 5–40 is added to the signal, which is converted back to concentration
with :func:`bidsapp.signal_to_concentration` using a T10 map with a 5 % global and 3 %
voxel-wise error; the plasma AIF gets 2 % (of its peak) frame noise. Everything is a
deterministic function of the seeds: slice ``i`` of stream ``s`` uses
``numpy.random.default_rng([seed, s, i])`` (stream 0 training, 1 validation,
2 benchmark).

The validation split and the benchmark (``tests/benchmarks/bench_nets.py``) share one
recipe, :func:`slab_case` (a 64×64×4 slab, rng ``[seed, stream, 1000 + i]``) and
:func:`image_aif` (the plasma AIF measured in the image, as the pipeline would):
validation uses stream 1, the benchmark stream 2, so they never overlap.

Every example also carries the map of tissue voxels within two voxels of a vessel
(:func:`near_vessel`, the benchmark's distance bins), which the cnn's loss can weight
more (``dcequant-train cnn --near-vessel-weight``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import distance_transform_edt

from bidsapp import aif_from_mask, concentration_to_signal, relaxivity_for, signal_to_concentration
from bidsapp.nets import contract
from bidsapp.simulate import Grid, Protocol, make_phantom
from bidsapp.simulate.acquisition import rician
from bidsapp.simulate.kinetics import (
    SessionInput,
    fine_time_grid,
    plasma_aif,
    tissue_concentration,
)
from bidsapp.simulate.phantom import smooth_field
from bidsapp.simulate.subject import RECEIVER_GAIN
from bidsapp.simulate.tissues import CLASS_INDEX, TISSUE_CLASSES

PARAMS = ("Ktrans", "ve", "vp")
#: typical magnitude of each output (units of the parameter); the loss divides by it
SCALES = {"Ktrans": 0.1, "ve": 0.3, "vp": 0.05}
#: ve enters the loss only where Ktrans (1/min) exceeds this (below, ve is not identifiable)
VE_MIN_KTRANS = 0.01
TRAIN, VALIDATION, BENCHMARK = 0, 1, 2
AIF_SHAPES = ("parker", "georgiou", "weinmann", "fritz-hansen")
WIDE_CLASSES = ("white_matter", "grey_matter", "tumour_rim", "tumour_necrosis", "non_enhancing_lesion")
SLICE_MATRIX = (64, 64, 1)
CROP = 32
#: benchmark and validation slab: 64×64×4 voxels of 3.4×3.4×5 mm
SLAB_MATRIX = (64, 64, 4)
#: SNRs (baseline of normal brain) of every benchmark and validation slab
EVAL_SNRS = (10.0, 15.0, 20.0)
#: classes whose dominant voxels count as tissue in validation and benchmark figures
TISSUE_EVAL = WIDE_CLASSES  # the classes whose kinetics are widened are the ones scored
#: classes that are vessels (vp ≈ 1 − Hct) for :func:`near_vessel`
VESSEL_CLASSES = ("artery", "sagittal_sinus")
#: a voxel with more than this vessel fraction (artery + sinus) counts as vessel in :func:`near_vessel`
VESSEL_FRACTION = 0.02
#: tissue voxels closer than this (voxels, in-plane) to a vessel voxel are "near a vessel"
NEAR_VESSEL_VOXELS = 2.0
#: image AIF: voxels at least this artery fraction ...
AIF_PURITY = 0.8
#: ... or the this many purest artery voxels if fewer are
AIF_MIN_VOXELS = 5
#: keys of an example (:func:`example`) that are maps, cropped and flipped with the slice
MAP_KEYS = ("input", "target", "weight", "conc", "near")


@dataclass
class CleanSlice:
    """Noise-free part of one example (recomputing it is the expensive step).

    ``signal`` ``[H, W, T]`` noise-free SPGR signal at frame times ``t`` (s);
    ``t10`` true T10 (s, 0 outside the head); ``aif`` plasma AIF (mM) at ``t``;
    ``truth`` ``[3, H, W]`` Ktrans (1/min), ve, vp; ``head``/``artery`` masks;
    ``reference`` mean baseline signal of normal brain (defines the SNR);
    ``near_vessel`` tissue voxels next to a vessel (:func:`near_vessel`).
    """

    signal: np.ndarray
    t10: np.ndarray
    aif: np.ndarray
    truth: np.ndarray
    head: np.ndarray
    artery: np.ndarray
    reference: float
    t: np.ndarray
    protocol: Protocol
    relaxivity: float
    near_vessel: np.ndarray


def draw_protocol(rng) -> Protocol:
    """Return a random DCE protocol inside the training envelope (see the module docstring)."""
    dt = float(rng.uniform(1.5, 8.0))
    arrival = float(rng.uniform(10.0, 60.0))
    n_frames = int(np.ceil(contract.GRID_END / dt)) + 2
    return Protocol(
        field_strength=float(rng.uniform(1.5, 3.0)),
        dose=float(rng.uniform(0.05, 0.1)),
        hematocrit=float(rng.uniform(0.38, 0.50)),
        aif=str(rng.choice(AIF_SHAPES)),
        aif_amplitude_cv=0.25,
        arrival_jitter=0.0,
        dce_flip_angle=float(rng.uniform(10.0, 35.0)),
        dce_tr=float(rng.uniform(0.0025, 0.008)),
        n_frames=n_frames,
        temporal_resolution=dt,
        baseline_frames=max(1, int(arrival // dt)),
        bolus_arrival=arrival,
    )


def widen_kinetics(rng, phantom, wide_fraction=0.7):
    """Copy of ``phantom`` whose tissue classes get wide kinetic draws (module docstring)."""
    f = phantom.fractions.astype(float)
    maps = {"Ktrans": np.zeros(f.shape[:-1]), "ve": np.zeros(f.shape[:-1]), "vp": np.zeros(f.shape[:-1])}
    grid = phantom.grid
    for index, (tissue, _) in TISSUE_CLASSES.items():
        if index == 0:
            continue
        values = dict(phantom.subject_values[tissue])
        if tissue in WIDE_CLASSES and rng.uniform() < wide_fraction:
            values["Ktrans"] = float(np.exp(rng.uniform(np.log(1e-3), np.log(0.6))))
            values["ve"] = float(rng.uniform(0.05, 0.7))
            values["vp"] = float(min(np.exp(rng.uniform(np.log(0.003), np.log(0.2))), 0.95 - values["ve"]))
        for name in maps:
            field = (
                np.exp(0.25 * smooth_field(rng, grid.matrix, grid.voxel_size, 10.0))
                if tissue in WIDE_CLASSES
                else 1.0
            )
            maps[name] += f[..., index] * values[name] * field
    ve = np.clip(maps["ve"], 0.0, 1.0)
    vp = np.clip(maps["vp"], 0.0, 1.0 - ve)
    ktrans = maps["Ktrans"]
    tissue_delay = float(rng.uniform(0.0, 3.0))
    vessel = np.isin(phantom.dseg, [CLASS_INDEX["artery"], CLASS_INDEX["sagittal_sinus"]])
    delay = np.where(vessel, phantom.delay, tissue_delay)

    def as32(a):
        return np.asarray(a, dtype=np.float32)

    kep = np.divide(ktrans, ve, out=np.zeros(ve.shape), where=ve > 0)
    return replace(phantom, ktrans=as32(ktrans), ve=as32(ve), vp=as32(vp), kep=as32(kep), delay=as32(delay))


def draw_phantom(rng, protocol, grid=None):
    """Return a phantom with wide kinetics (:func:`widen_kinetics`).

    Default grid: one slice at a random height. Redrawn until at least 200 voxels are mostly white or grey
    matter.
    """
    while True:
        g = grid or Grid(matrix=SLICE_MATRIX, slab_centre=float(rng.uniform(-25.0, 45.0)))
        phantom = make_phantom(
            rng, grid=g, field_strength=protocol.field_strength, hematocrit=protocol.hematocrit
        )
        if np.isin(phantom.dseg, [CLASS_INDEX["white_matter"], CLASS_INDEX["grey_matter"]]).sum() >= 200:
            return widen_kinetics(rng, phantom)


def simulate_clean(phantom, protocol, session) -> CleanSlice:
    """Noise-free signal and truth of ``phantom`` (maps ``[X, Y, Z]``) for one session."""
    t_fine, every = fine_time_grid(protocol)
    cp_fine = plasma_aif(protocol, session, t_fine)
    conc = tissue_concentration(phantom, t_fine, cp_fine, every)
    relaxivity = float(relaxivity_for(protocol.agent, protocol.field_strength))
    head = phantom.t1 > 0
    m0 = RECEIVER_GAIN * phantom.m0
    signal = np.zeros(conc.shape, dtype=np.float32)
    signal[head] = concentration_to_signal(
        conc[head].astype(float),
        phantom.t1[head],
        m0[head],
        protocol.dce_tr,
        protocol.dce_flip_angle,
        relaxivity,
    )
    brain = np.isin(phantom.dseg, [CLASS_INDEX["white_matter"], CLASS_INDEX["grey_matter"]])
    return CleanSlice(
        signal=signal,
        t10=phantom.t1,
        aif=cp_fine[::every].astype(np.float32),
        truth=np.stack([phantom.ktrans, phantom.ve, phantom.vp]).astype(np.float32),
        head=head,
        artery=phantom.dseg == CLASS_INDEX["artery"],
        reference=float(signal[brain][:, 0].mean()),
        t=protocol.frame_times,
        protocol=protocol,
        relaxivity=relaxivity,
        near_vessel=near_vessel(phantom),
    )


def clean_slice(seed, stream, index) -> CleanSlice:
    """Return the noise-free slice ``index`` of ``stream`` (deterministic in its seeds); maps ``[H, W]``."""
    rng = np.random.default_rng([int(seed), int(stream), int(index)])
    protocol = draw_protocol(rng)
    phantom = draw_phantom(rng, protocol)
    case = simulate_clean(phantom, protocol, SessionInput.draw(rng, protocol))
    return replace(
        case,
        signal=case.signal[:, :, 0],
        t10=case.t10[..., 0],
        truth=case.truth[..., 0],
        head=case.head[..., 0],
        artery=case.artery[..., 0],
        near_vessel=case.near_vessel[..., 0],
    )


def noisy_concentration(clean: CleanSlice, rng, snr):
    """Concentration (mM) ``[H, W, T]`` from the noisy signal at ``snr`` and an erroneous T10 map."""
    sigma = clean.reference / snr
    noisy = rician(clean.signal, sigma, rng)
    t10 = (
        clean.t10 * (1.0 + 0.05 * rng.standard_normal()) * (1.0 + 0.03 * rng.standard_normal(clean.t10.shape))
    )
    p = clean.protocol
    conc = np.full(noisy.shape, np.nan, dtype=np.float32)
    result = signal_to_concentration(
        noisy[clean.head], t10[clean.head], p.dce_tr, p.dce_flip_angle, clean.relaxivity, p.baseline_frames
    )
    conc[clean.head] = result.concentration.astype(np.float32)
    return conc


def image_aif(conc, artery_fraction, t, hematocrit):
    """Plasma AIF (mM) measured in the image, as the benchmark and the validation split do.

    :func:`bidsapp.aif_from_mask` over the voxels at least :data:`AIF_PURITY` artery (the
    :data:`AIF_MIN_VOXELS` purest if fewer) with finite curves; ``conc`` ``[..., T]`` (mM),
    ``artery_fraction`` ``[...]`` (the phantom's artery class fraction), ``t`` frame times
    (s), ``hematocrit`` (fraction) for blood → plasma.
    """
    fraction = np.asarray(artery_fraction)
    mask = fraction >= AIF_PURITY
    if mask.sum() < AIF_MIN_VOXELS:
        mask = fraction >= np.sort(fraction.ravel())[-AIF_MIN_VOXELS]
    return aif_from_mask(conc, mask & np.isfinite(conc).all(-1), t, hematocrit).plasma


def slab_case(seed, stream, index):
    """Slab ``index`` of ``stream`` as the benchmark draws it: ``(phantom, protocol, clean, rng)``.

    A :data:`SLAB_MATRIX` head slab with wide kinetics, a random protocol and session
    (:func:`draw_protocol`, :func:`draw_phantom`, :func:`simulate_clean`); ``rng``
    (``default_rng([seed, stream, 1000 + index])``, after these draws) is for its noise.
    Stream :data:`VALIDATION` is the validation split, :data:`BENCHMARK` the benchmark.
    """
    rng = np.random.default_rng([int(seed), int(stream), 1000 + int(index)])
    protocol = draw_protocol(rng)
    phantom = draw_phantom(rng, protocol, Grid(matrix=SLAB_MATRIX))
    return phantom, protocol, simulate_clean(phantom, protocol, SessionInput.draw(rng, protocol)), rng


def tissue_mask(phantom):
    """Voxels whose dominant class is one of :data:`TISSUE_EVAL` (validation and benchmark figures)."""
    return np.isin(phantom.dseg, [CLASS_INDEX[c] for c in TISSUE_EVAL])


def vessel_distance(phantom):
    """In-plane distance (voxels) ``[X, Y, Z]`` of each voxel to the nearest vessel voxel.

    A vessel voxel holds more than :data:`VESSEL_FRACTION` of :data:`VESSEL_CLASSES`
    (distance 0); distances are computed per slice (slices are 5 mm, voxels 3.4 mm in-plane).
    """
    f = phantom.fractions
    vessel = sum(f[..., CLASS_INDEX[c]] for c in VESSEL_CLASSES) > VESSEL_FRACTION
    out = np.full(vessel.shape, np.inf)
    for z in range(vessel.shape[2]):
        if vessel[..., z].any():
            out[..., z] = distance_transform_edt(~vessel[..., z])
    return out


def near_vessel(phantom):
    """Tissue voxels (:func:`tissue_mask`) closer than :data:`NEAR_VESSEL_VOXELS` to a vessel ``[X, Y, Z]``.

    Their vp mixes the vessel's (≈ 0.55) by partial volume and a network's spatial pathways
    can carry it further; the cnn's vp error above the fit's sits there (``docs/networks.md``).
    """
    return tissue_mask(phantom) & (vessel_distance(phantom) < NEAR_VESSEL_VOXELS)


def example(conc, t, aif, truth, mask, snr, near):
    """Return one network example from ``conc`` ``[H, W, T]`` and plasma ``aif`` (mM) at ``t`` (s).

    Returns a dict with ``input`` ``[2N, H, W]`` (:func:`bidsapp.nets.contract.network_input`),
    ``target`` ``[3, H, W]`` (``truth``: Ktrans 1/min, ve, vp), ``weight`` ``[3, H, W]`` (1 where
    a parameter enters the loss: ``mask``, and for ve also Ktrans > :data:`VE_MIN_KTRANS`),
    ``conc`` ``[N, H, W]`` and ``aif`` ``[N]`` (the input curves divided by the AIF peak, for
    the physics loss), ``near`` ``[H, W]`` (1 at the tissue voxels near a vessel given by
    ``near``, :func:`near_vessel`) and ``snr``.
    """
    x, _ = contract.network_input(contract.resample(conc, t), contract.resample(aif, t))
    weight = np.repeat(np.asarray(mask)[None].astype(np.float32), 3, axis=0)
    weight[1] *= truth[0] > VE_MIN_KTRANS
    n = contract.GRID.size
    return {
        "input": x,
        "target": np.asarray(truth, dtype=np.float32),
        "weight": weight,
        "conc": x[:n],
        "aif": x[n:, 0, 0].copy(),
        "near": np.asarray(near, np.float32),
        "snr": float(snr),
    }


def noisy_example(clean: CleanSlice, rng, snr=None, crop=CROP):
    """One training example (:func:`example`, head voxels weighted) of ``clean`` with fresh noise.

    SNR log-uniform in 5–40 unless given; the true plasma AIF with 2 % (of peak) frame
    noise; a random ``crop`` × ``crop`` window (``None``: the whole slice).
    """
    snr = float(np.exp(rng.uniform(np.log(5.0), np.log(40.0)))) if snr is None else float(snr)
    conc = noisy_concentration(clean, rng, snr)
    aif = clean.aif + 0.02 * clean.aif.max() * rng.standard_normal(clean.aif.shape).astype(np.float32)
    out = example(conc, clean.t, aif, clean.truth, clean.head, snr, clean.near_vessel)
    if crop:
        h, w = clean.head.shape
        i0 = int(rng.integers(0, h - crop + 1))
        j0 = int(rng.integers(0, w - crop + 1))
        out.update({k: np.ascontiguousarray(out[k][..., i0 : i0 + crop, j0 : j0 + crop]) for k in MAP_KEYS})
    return out


def validation_examples(seed, slabs, start=0):
    """Return the validation split: ``slabs`` slabs of stream :data:`VALIDATION` drawn like the benchmark.

    Slabs ``start`` … ``start + slabs − 1``, so a long stretch of the stream can be drawn
    in parts.

    Each slab (:func:`slab_case`) at every SNR of :data:`EVAL_SNRS` (in turn, from the
    slab's rng), concentration through :func:`noisy_concentration`, the image AIF
    (:func:`image_aif`); one example per slice, weighted in tissue (:func:`tissue_mask`)
    as the benchmark's figures are. Deterministic in ``seed``.
    """
    examples = []
    for index in range(start, start + slabs):
        phantom, _, clean, rng = slab_case(seed, VALIDATION, index)
        tissue, near = tissue_mask(phantom), near_vessel(phantom)
        artery = phantom.fractions[..., CLASS_INDEX["artery"]]
        for snr in EVAL_SNRS:
            conc = noisy_concentration(clean, rng, snr)
            aif = image_aif(conc, artery, clean.t, phantom.hematocrit)
            for z in range(conc.shape[2]):
                truth = clean.truth[..., z]
                examples.append(
                    example(conc[:, :, z], clean.t, aif, truth, tissue[..., z], snr, near[..., z])
                )
    return examples
