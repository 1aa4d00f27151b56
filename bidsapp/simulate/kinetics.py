"""Blood and tissue concentration of a simulated session.

The arterial input is a population AIF (:func:`bidsapp.population_aif`), scaled by the
injected dose relative to the standard 0.1 mmol/kg and by a per-session amplitude
factor, and shifted to a per-session bolus arrival. Tissue curves come from
:func:`bidsapp.model_curve` with the extended Tofts model, evaluated on a fine time
grid (step ≤ ``Protocol.fine_step``) that contains every acquisition time, then
sampled at the acquisition times. Vessel voxels (``Ktrans = 0``, ``vp = 1 − Hct``)
thus carry the whole-blood concentration; the sagittal sinus is delayed by the
phantom's venous ``delay``.

A moving head changes every voxel's parameters from frame to frame, so a moved frame
needs each voxel's curve at one time only: :class:`FrameResponses` tabulates the model's
two unit responses (plasma and leakage) at the frame times over a fine ``kep`` grid, and
gives any voxel's concentration at a frame from them (extended Tofts is linear in
``vp`` and ``Ktrans``).
"""

from dataclasses import dataclass, field

import numpy as np

from .protocol import STANDARD_DOSE

TRUTH_MODEL = "extended_tofts"


@dataclass(frozen=True)
class SessionInput:
    """Per-session arterial input: bolus arrival (s) and amplitude factor."""

    bolus_arrival: float
    amplitude: float

    @classmethod
    def draw(cls, rng, protocol):
        """Draw a subject's bolus arrival (s) and AIF amplitude factor from ``protocol``'s variability."""
        arrival = protocol.nominal_arrival + protocol.arrival_jitter * rng.standard_normal()
        amplitude = float(np.exp(protocol.aif_amplitude_cv * rng.standard_normal()))
        return cls(bolus_arrival=float(max(arrival, protocol.earliest_arrival)), amplitude=amplitude)


def fine_time_grid(protocol, t_end=None):
    """Fine grid (s) containing every ``every``-th point an acquisition time.

    Returns ``(t_fine, every)``; ``t_end`` defaults to the last frame time.
    """
    dt = float(protocol.temporal_resolution)
    every = int(np.ceil(dt / protocol.fine_step - 1e-9))
    step = dt / every
    t_end = protocol.frame_times[-1] if t_end is None else float(t_end)
    n = int(np.ceil(t_end / step - 1e-9)) + 1
    return np.arange(n) * step, every


def plasma_aif(protocol, session_input, t, dose_fraction=1.0):
    """Arterial plasma concentration (mM) at times ``t`` (s)."""
    from bidsapp import population_aif

    scale = session_input.amplitude * dose_fraction * protocol.dose / STANDARD_DOSE
    cp = population_aif(
        protocol.aif,
        np.asarray(t, dtype=float),
        bolus_arrival=session_input.bolus_arrival,
        hematocrit=protocol.hematocrit,
    )
    return scale * np.asarray(cp, dtype=float)


def tissue_concentration(phantom, t_fine, aif_fine, every=1, chunk=8192):
    """Noise-free tissue concentration (mM) ``[nx, ny, nz, n]`` sampled ``t_fine[::every]``.

    Voxels without plasma or leakage stay 0. ``ve`` is only a divisor of ``Ktrans``
    in the model, so voxels with ``Ktrans = ve = 0`` (vessels, CSF) are evaluated
    with ``ve = 1`` (their curve is ``vp · Cp``).
    """
    from bidsapp import model_curve

    n_out = len(t_fine[::every])
    out = np.zeros(phantom.ktrans.shape + (n_out,), dtype=np.float32)
    active = (phantom.ktrans > 0) | (phantom.vp > 0)
    flat = out.reshape(-1, n_out)
    for delay in np.unique(phantom.delay[active]):
        index = np.flatnonzero(active & (phantom.delay == delay))
        for start in range(0, index.size, chunk):
            sel = index[start : start + chunk]
            ve = phantom.ve.ravel()[sel].astype(float)
            params = {
                "Ktrans": phantom.ktrans.ravel()[sel].astype(float),
                "ve": np.where(ve > 0, ve, 1.0),
                "vp": phantom.vp.ravel()[sel].astype(float),
            }
            curve = model_curve(TRUTH_MODEL, params, t_fine, aif_fine, delay=float(delay) if delay else None)
            flat[sel] = np.asarray(curve)[:, ::every]
    return out


#: kep grid (1/min) of :class:`FrameResponses`: 2000 points per decade, so linear
#: interpolation in log(kep) is exact to ~1e-7 of the response (measured in the tests)
KEP_GRID = np.geomspace(1e-4, 1e3, 14001)


@dataclass
class FrameResponses:
    """Unit responses of the truth model at the frame times, per bolus delay (s).

    ``plasma[d]`` ``[T]``: the arterial plasma concentration read ``d`` s late (mM);
    ``leakage[d]`` ``[K, T]``: the extended Tofts response of ``Ktrans`` = 1/min, ``vp`` = 0
    with ``kep`` = :data:`KEP_GRID` (mM per 1/min). Both come from
    :func:`bidsapp.model_curve`, so a voxel's concentration
    ``vp · plasma + Ktrans · leakage(kep)`` is the model's curve at that frame.
    """

    plasma: dict = field(default_factory=dict)
    leakage: dict = field(default_factory=dict)

    @classmethod
    def build(cls, t_fine, aif_fine, every, delays):
        """Tabulate the unit responses on every ``every``-th point of the fine grid ``t_fine`` (s).

        ``aif_fine`` is the plasma AIF (mM) on ``t_fine``; one table per delay (s) in ``delays``.
        """
        from bidsapp import model_curve

        out = cls()
        t = np.asarray(t_fine)[::every]
        for delay in {_key(d) for d in delays}:
            shift = delay or None
            out.plasma[delay] = np.asarray(
                model_curve(
                    TRUTH_MODEL,
                    {"Ktrans": 0.0, "ve": 1.0, "vp": 1.0},
                    t,
                    aif_fine,
                    delay=shift,
                    aif_times=t_fine,
                )
            )
            out.leakage[delay] = np.asarray(
                model_curve(
                    TRUTH_MODEL,
                    {"Ktrans": 1.0, "ve": 1.0 / KEP_GRID, "vp": 0.0},
                    t,
                    aif_fine,
                    delay=shift,
                    aif_times=t_fine,
                )
            )
        return out

    def concentration(self, frame, ktrans, kep, vp, delay):
        """Return the concentration (mM) at frame index ``frame``.

        The voxels have ``ktrans``, ``kep`` (1/min), ``vp`` and ``delay`` (s; values given to :meth:`build`,
        compared in float32 as the
        phantom stores them).
        """
        ktrans, kep, vp, delay = (np.asarray(a, float) for a in (ktrans, kep, vp, delay))
        out = np.zeros(ktrans.shape)
        leaky = ktrans > 0
        if np.any(leaky & ((kep < KEP_GRID[0]) | (kep > KEP_GRID[-1]))):
            raise ValueError(f"kep outside the tabulated {KEP_GRID[0]:g}-{KEP_GRID[-1]:g} /min")
        log_grid = np.log(KEP_GRID)
        for d in np.unique(delay):
            sel = delay == d
            out[sel] = vp[sel] * self.plasma[_key(d)][frame]
            both = sel & leaky
            out[both] += ktrans[both] * np.interp(
                np.log(kep[both]), log_grid, self.leakage[_key(d)][:, frame]
            )
        return out


def _key(delay):
    return float(np.float32(delay))
