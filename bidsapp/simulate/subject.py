"""One simulated session of one subject, in memory: VFA, DCE and dose-pair volumes.

All images come from the truth through the signal equation: VFA volumes from
:func:`bidsapp.spgr_signal`, DCE frames and post-contrast T1-weighted volumes from
:func:`bidsapp.concentration_to_signal` (SPGR with ``R1 = 1/T10 + r1·C``, the agent's
relaxivity from :func:`bidsapp.relaxivity_for`). The receiver gain scales M0 to
signal units (``RECEIVER_GAIN``).

With motion, every DCE frame and the VFA set image the head displaced rigidly
(:meth:`Phantom.moved <bidsapp.simulate.phantom.Phantom.moved>`: geometry and parameter
fields evaluated at the moved points, then the voxel's signal), while the transmit
field stays in scanner coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..spgr import spgr_signal
from .acquisition import b1_map, motion_trace, pose_matrix, rician
from .kinetics import FrameResponses, SessionInput, fine_time_grid, plasma_aif, tissue_concentration
from .protocol import Protocol
from .tissues import CLASS_INDEX

if TYPE_CHECKING:
    from .geometry import Grid
    from .phantom import Phantom

RECEIVER_GAIN = 10000.0


@dataclass
class SubjectSimulation:
    """Images and truth of one session.

    ``vfa`` ``[nx, ny, nz, n_angles]`` and ``dce`` ``[nx, ny, nz, n_frames]`` are noisy
    magnitude signals (float32); ``concentration`` the noise-free tissue concentration
    (mM) at ``t`` (s); ``aif_plasma``/``aif_blood`` the arterial concentrations (mM) at
    ``t``; ``b1`` the relative transmit field; ``noise_sigma`` the Gaussian SD per
    channel; ``motion`` ``[n_frames, 6]`` (tx, ty, tz mm, rx, ry, rz deg) or None and
    ``vfa_motion`` ``(6,)`` or None; ``relaxivity`` in /mM/s; ``vfa_grid`` the grid of
    ``vfa`` when it differs from the phantom's (DCE) grid, else None.
    """

    phantom: Phantom
    protocol: Protocol
    session_input: SessionInput
    t: np.ndarray
    aif_plasma: np.ndarray
    aif_blood: np.ndarray
    concentration: np.ndarray
    vfa: np.ndarray
    dce: np.ndarray
    b1: np.ndarray
    noise_sigma: float
    relaxivity: float
    motion: np.ndarray | None = None
    vfa_motion: np.ndarray | None = None
    vfa_grid: Grid | None = None


@dataclass
class DosePair:
    """Pre-contrast, low-dose and standard-dose T1-weighted volumes of one subject.

    Noisy volumes ``pre``, ``low``, ``standard``; noise-free ``*_clean``;
    ``enhancement`` = ``standard_clean − pre_clean`` and ``low_enhancement`` =
    ``low_clean − pre_clean`` (the true contrast-enhancement maps, signal units);
    ``concentration`` the standard-dose tissue concentration (mM) at ``time`` (s after
    the start of the dynamic series); ``low_dose_fraction`` of the standard dose.
    """

    pre: np.ndarray
    low: np.ndarray
    standard: np.ndarray
    pre_clean: np.ndarray
    low_clean: np.ndarray
    standard_clean: np.ndarray
    enhancement: np.ndarray
    low_enhancement: np.ndarray
    concentration: np.ndarray
    low_dose_fraction: float
    time: float
    flip_angle: float
    tr: float
    b1: np.ndarray
    noise_sigma: float
    relaxivity: float


def _protocol_for(phantom, protocol):
    protocol = protocol or Protocol(field_strength=phantom.field_strength, hematocrit=phantom.hematocrit)
    if not np.isclose(protocol.field_strength, phantom.field_strength):
        raise ValueError(
            f"protocol.field_strength {protocol.field_strength} T differs from the phantom's "
            f"{phantom.field_strength} T"
        )
    if not np.isclose(protocol.hematocrit, phantom.hematocrit):
        raise ValueError(
            f"protocol.hematocrit {protocol.hematocrit} differs from the phantom's {phantom.hematocrit}"
        )
    return protocol


def _relaxivity(protocol):
    from bidsapp import relaxivity_for

    return float(relaxivity_for(protocol.agent, protocol.field_strength))


def check_physics(protocol):
    """Fail early (ValueError) if the protocol's agent, field or AIF name is unknown."""
    _relaxivity(protocol)
    plasma_aif(protocol, SessionInput(protocol.nominal_arrival, 1.0), np.zeros(1))


def _enhanced_signal(concentration, t10, m0, tr, flip_angle, relaxivity, b1):
    """SPGR signal of voxels ``[v]`` with concentration ``[v, n]`` (mM)."""
    from bidsapp import concentration_to_signal

    return np.asarray(concentration_to_signal(concentration, t10, m0, tr, flip_angle, relaxivity, b1=b1))


def _reference_sigma(clean, phantom, snr):
    """Noise SD giving ``snr`` for the mean of ``clean`` in normal brain."""
    brain = np.isin(phantom.dseg, [CLASS_INDEX["white_matter"], CLASS_INDEX["grey_matter"]])
    return float(clean[brain].mean() / snr)


def simulate_subject(
    phantom: Phantom,
    protocol: Protocol | None = None,
    rng: np.random.Generator | int | None = None,
    vfa_phantom: Phantom | None = None,
) -> SubjectSimulation:
    """Simulate one session of ``phantom`` (:class:`SubjectSimulation`).

    ``rng`` (seed or Generator) draws the session's AIF amplitude and arrival, B1
    pattern, motion and noise; the phantom (truth) is not changed, so two calls with
    different ``rng`` are a test–retest pair. ``vfa_phantom``: the same subject on
    another grid (``make_phantom(..., field_grid=phantom.grid)``), on which the VFA
    volumes are then acquired (the B1 pattern is the same in scanner coordinates).
    """
    import copy

    rng = np.random.default_rng(rng)
    protocol = _protocol_for(phantom, protocol)
    session_input = SessionInput.draw(rng, protocol)
    vfa_phantom = vfa_phantom or phantom
    b1_vfa = b1_map(vfa_phantom.grid, protocol.b1_amplitude, copy.deepcopy(rng))
    b1 = b1_map(phantom.grid, protocol.b1_amplitude, rng)
    t_fine, every = fine_time_grid(protocol)
    cp_fine = plasma_aif(protocol, session_input, t_fine)
    concentration = tissue_concentration(phantom, t_fine, cp_fine, every)
    aif_plasma = cp_fine[::every]
    relaxivity = _relaxivity(protocol)

    head = phantom.t1 > 0
    t10, m0, b1h = (
        phantom.t1[head].astype(float),
        RECEIVER_GAIN * phantom.m0[head].astype(float),
        b1[head].astype(float),
    )
    dce = np.zeros(concentration.shape)
    dce[head] = _enhanced_signal(
        concentration[head].astype(float), t10, m0, protocol.dce_tr, protocol.dce_flip_angle, relaxivity, b1h
    )
    angles = np.asarray(protocol.vfa_flip_angles)
    sigma = _reference_sigma(dce[..., : protocol.baseline_frames], phantom, protocol.snr)

    motion = vfa_motion = None
    vfa_pose = vfa_phantom
    if protocol.motion > 0:
        motion = motion_trace(rng, protocol.n_frames, protocol.motion)
        vfa_motion = rng.uniform(-1.0, 1.0, 6) * protocol.motion
        dce = _moving_dce(
            phantom,
            motion,
            FrameResponses.build(t_fine, cp_fine, every, (0.0, phantom.sinus_delay)),
            protocol,
            relaxivity,
            b1,
        )
        vfa_pose = vfa_phantom.moved(pose_matrix(vfa_motion, vfa_phantom.grid.slab_centre))
    vfa_grid = vfa_phantom.grid
    vhead = vfa_pose.t1 > 0
    vfa = np.zeros(vfa_grid.matrix + (angles.size,))
    vfa[vhead] = spgr_signal(
        RECEIVER_GAIN * vfa_pose.m0[vhead][:, None].astype(float),
        1.0 / vfa_pose.t1[vhead][:, None].astype(float),
        angles[None, :],
        protocol.vfa_tr,
        b1_vfa[vhead][:, None].astype(float),
    )
    return SubjectSimulation(
        phantom=phantom,
        protocol=protocol,
        session_input=session_input,
        t=protocol.frame_times,
        aif_plasma=aif_plasma,
        aif_blood=(1.0 - protocol.hematocrit) * aif_plasma,
        concentration=concentration,
        vfa=rician(vfa, sigma, rng),
        dce=rician(dce, sigma, rng),
        b1=b1,
        noise_sigma=sigma,
        relaxivity=relaxivity,
        motion=motion,
        vfa_motion=vfa_motion,
        vfa_grid=None if vfa_grid == phantom.grid else vfa_grid,
    )


def _moving_dce(phantom, motion, responses, protocol, relaxivity, b1):
    """Return noise-free DCE frames ``[nx, ny, nz, n]`` of the head in pose ``motion[n]`` at frame ``n``.

    Each frame samples the moved phantom afresh (the sinus delay moves with it).
    """
    dce = np.zeros(phantom.grid.matrix + (len(motion),))
    for n, params in enumerate(motion):
        moved = phantom.moved(pose_matrix(params, phantom.grid.slab_centre)) if np.any(params) else phantom
        head = moved.t1 > 0
        conc = responses.concentration(
            n, moved.ktrans[head], moved.kep[head], moved.vp[head], moved.delay[head]
        )
        dce[head, n] = _enhanced_signal(
            conc[:, None],
            moved.t1[head].astype(float),
            RECEIVER_GAIN * moved.m0[head].astype(float),
            protocol.dce_tr,
            protocol.dce_flip_angle,
            relaxivity,
            b1[head].astype(float),
        )[:, 0]
    return dce


def simulate_dose_pair(
    phantom: Phantom,
    protocol: Protocol | None = None,
    rng: np.random.Generator | int | None = None,
    low_dose_fraction: float = 0.25,
    session_input: SessionInput | None = None,
    b1: ArrayLike | None = None,
) -> DosePair:
    """Pre-contrast, low-dose and standard-dose T1-weighted SPGR volumes (:class:`DosePair`).

    The standard-dose tissue concentration at ``bolus_arrival + post_contrast_delay``
    comes from the kinetic model; the low dose gives ``low_dose_fraction`` × that
    concentration (the models are linear in the AIF, which scales with dose). Each
    volume's signal is computed through the SPGR equation with ``R1 = 1/T10 + r1·C``
    and gets independent Rician noise — nothing is obtained by scaling images.
    Typical low-dose fractions are 0.1–0.33. ``session_input`` and ``b1`` (relative
    transmit field) default to new draws; pass a session's to pair it with that session.
    """
    if not 0.0 < low_dose_fraction < 1.0:
        raise ValueError(f"low_dose_fraction {low_dose_fraction} must lie in (0, 1)")
    rng = np.random.default_rng(rng)
    protocol = _protocol_for(phantom, protocol)
    session_input = session_input or SessionInput.draw(rng, protocol)
    b1 = b1_map(phantom.grid, protocol.b1_amplitude, rng) if b1 is None else np.asarray(b1, dtype=np.float32)
    if b1.shape != phantom.grid.matrix:
        raise ValueError(f"b1 shape {b1.shape} differs from the phantom grid {phantom.grid.matrix}")
    time = session_input.bolus_arrival + protocol.post_contrast_delay
    n_fine = int(np.ceil(time / protocol.fine_step)) + 1
    t_fine = np.linspace(0.0, time, n_fine)
    cp = plasma_aif(protocol, session_input, t_fine)
    standard_c = tissue_concentration(phantom, t_fine, cp, every=n_fine - 1)[..., -1]
    relaxivity = _relaxivity(protocol)

    head = phantom.t1 > 0
    t10, m0, b1h = (
        phantom.t1[head].astype(float),
        RECEIVER_GAIN * phantom.m0[head].astype(float),
        b1[head].astype(float),
    )
    fa, tr = protocol.t1w_flip_angle, protocol.t1w_tr
    volumes = {}
    for name, c in (
        ("pre", 0.0 * standard_c),
        ("low", low_dose_fraction * standard_c),
        ("standard", standard_c),
    ):
        vol = np.zeros(phantom.grid.matrix)
        vol[head] = _enhanced_signal(c[head][:, None].astype(float), t10, m0, tr, fa, relaxivity, b1h)[:, 0]
        volumes[name] = vol.astype(np.float32)
    sigma = _reference_sigma(volumes["pre"], phantom, protocol.snr)
    noisy = {name: rician(vol, sigma, rng) for name, vol in volumes.items()}
    return DosePair(
        pre=noisy["pre"],
        low=noisy["low"],
        standard=noisy["standard"],
        pre_clean=volumes["pre"],
        low_clean=volumes["low"],
        standard_clean=volumes["standard"],
        enhancement=volumes["standard"] - volumes["pre"],
        low_enhancement=volumes["low"] - volumes["pre"],
        concentration=standard_c,
        low_dose_fraction=float(low_dose_fraction),
        time=float(time),
        flip_angle=float(fa),
        tr=float(tr),
        b1=b1,
        noise_sigma=sigma,
        relaxivity=relaxivity,
    )
