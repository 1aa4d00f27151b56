"""Blood and tissue concentration of a simulated session.

The arterial input is a population AIF (:func:`bidsapp.population_aif`), scaled by the
injected dose relative to the standard 0.1 mmol/kg and by a per-session amplitude
factor, and shifted to a per-session bolus arrival. Tissue curves come from
:func:`bidsapp.model_curve` with the extended Tofts model, evaluated on a fine time
grid (step ≤ ``Protocol.fine_step``) that contains every acquisition time, then
sampled at the acquisition times. Vessel voxels (``Ktrans = 0``, ``vp = 1 − Hct``)
thus carry the whole-blood concentration; the sagittal sinus is delayed by the
phantom's venous ``delay``.
"""

from dataclasses import dataclass

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
    cp = population_aif(protocol.aif, np.asarray(t, dtype=float), bolus_arrival=session_input.bolus_arrival, hematocrit=protocol.hematocrit)
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
