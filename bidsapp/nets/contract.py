"""The networks' input contract and training envelope.

Every network sees the same input, defined here once:

- the tissue **concentration** (mM) of each voxel and the **plasma AIF** (mM), both
  resampled (linearly) to the fixed time grid :data:`GRID` (0–300 s every 5 s, 61
  points; time 0 is the first dynamic frame);
- both divided by the AIF's peak on that grid. The extended Tofts parameters are
  unchanged when tissue and plasma concentration are scaled by the same factor, so this
  removes dose, relaxivity and AIF-amplitude differences from what the network must
  learn, without changing what it predicts (Ktrans 1/min, ve, vp fractions).

The input tensor is ``[B, 2·N, H, W]``: N concentration channels, then N AIF channels
(the AIF is the same in every voxel of a slice). Concentration rather than relative
enhancement is used because it is what the project's T1 mapping and
signal→concentration stages already produce, it is linear in the kinetic model (so the
physics loss uses :func:`bidsapp.model_curve` directly) and it does not depend on flip
angle, TR, T10 or field strength, which therefore only affect noise and are checked by
the envelope guard below rather than learned.

The **envelope** is the range of acquisitions the training data covered
(:data:`ENVELOPE`). :func:`check_envelope` returns one message per quantity outside it;
a series shorter than the grid cannot be resampled and is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: fixed input time grid (s): 0–300 s every 5 s
GRID_STEP = 5.0
GRID_END = 300.0
GRID = np.arange(0.0, GRID_END + GRID_STEP / 2, GRID_STEP)

#: quantity -> (low, high, unit) covered by the training data
ENVELOPE = {
    "duration": (GRID_END, np.inf, "s"),
    "temporal_resolution": (1.0, 8.0, "s"),
    "flip_angle": (10.0, 35.0, "deg"),
    "repetition_time": (0.0025, 0.008, "s"),
    "field_strength": (1.5, 3.0, "T"),
    "baseline_length": (10.0, 60.0, "s"),
}

#: quantities without which the input cannot be formed (the rest only warn)
REFUSE = ("duration",)


class EnvelopeError(ValueError):
    """The data lie outside the training envelope in a way the network cannot handle."""


@dataclass(frozen=True)
class Acquisition:
    """What the envelope guard checks; ``None`` = unknown (not checked).

    ``duration`` and ``temporal_resolution`` (s) come from the frame times;
    ``flip_angle`` (deg), ``repetition_time`` (s), ``field_strength`` (T);
    ``baseline_length`` (s): time of the bolus arrival after the first frame.
    """

    duration: float | None = None
    temporal_resolution: float | None = None
    flip_angle: float | None = None
    repetition_time: float | None = None
    field_strength: float | None = None
    baseline_length: float | None = None


def describe() -> dict:
    """Return the input contract as a JSON-ready dict (written into every model card and sidecar)."""
    return {
        "input": "tissue concentration and plasma AIF (mM), each divided by the AIF peak",
        "time_grid_s": {"start": 0.0, "stop": GRID_END, "step": GRID_STEP, "n": int(GRID.size)},
        "resampling": "linear interpolation of the frames onto the grid (time 0 = first frame)",
        "channels": "N concentration channels then N AIF channels",
        "outputs": {"Ktrans": "1/min", "ve": "fraction", "vp": "fraction"},
        "envelope": {k: [lo, None if np.isinf(hi) else hi, unit] for k, (lo, hi, unit) in ENVELOPE.items()},
    }


def check_envelope(acquisition: Acquisition, strict: bool = False) -> list[str]:
    """Messages naming every quantity of ``acquisition`` outside :data:`ENVELOPE`.

    Raises
    ------
    EnvelopeError
        If a quantity in :data:`REFUSE` is outside (the input cannot be formed), or
        ``strict`` and any quantity is outside. The message names all of them.
    """
    messages, fatal = [], False
    for name, value in asdict(acquisition).items():
        if value is None:
            continue
        low, high, unit = ENVELOPE[name]
        if not low - 1e-9 <= float(value) <= high + 1e-9:
            span = f"≥ {low:g} {unit}" if np.isinf(high) else f"{low:g}–{high:g} {unit}"
            messages.append(f"{name} {float(value):g} {unit} is outside the training envelope ({span})")
            fatal |= name in REFUSE
    if messages and (fatal or strict):
        raise EnvelopeError("; ".join(messages))
    return messages


def acquisition_from_times(t, **known) -> Acquisition:
    """Return an :class:`Acquisition` with duration and temporal resolution from frame times ``t`` (s)."""
    t = np.asarray(t, dtype=float)
    return Acquisition(duration=float(t[-1] - t[0]), temporal_resolution=float(np.max(np.diff(t))), **known)


def resample(curves, t):
    """Curves ``[..., T]`` at frame times ``t`` (s) linearly resampled to :data:`GRID` (``[..., N]``)."""
    t = np.asarray(t, dtype=float) - float(t[0])
    curves = np.asarray(curves, dtype=np.float32)
    flat = curves.reshape(-1, t.size)
    index = np.clip(np.searchsorted(t, GRID, side="right") - 1, 0, t.size - 2)
    weight = ((GRID - t[index]) / (t[index + 1] - t[index])).astype(np.float32)
    out = flat[:, index] * (1.0 - weight) + flat[:, index + 1] * weight
    return out.reshape(curves.shape[:-1] + (GRID.size,))


def network_input(concentration, aif):
    """Return the network input ``[2N, H, W]`` (float32) and the scale (mM) it was divided by.

    Parameters
    ----------
    concentration : array ``[H, W, N]``
        Tissue concentration on :data:`GRID` (mM); non-finite values are set to 0.
    aif : array ``[N]``
        Plasma concentration on :data:`GRID` (mM).
    """
    aif = np.asarray(aif, dtype=np.float32)
    scale = float(np.max(aif))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("aif: the plasma AIF has no positive peak on the input grid")
    conc = np.nan_to_num(np.asarray(concentration, dtype=np.float32) / scale, nan=0.0, posinf=0.0, neginf=0.0)
    h, w, n = conc.shape
    channels = np.concatenate(
        [np.moveaxis(conc, -1, 0), np.broadcast_to((aif / scale)[:, None, None], (n, h, w))]
    )
    return np.ascontiguousarray(channels, dtype=np.float32), scale
