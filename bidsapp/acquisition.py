"""Acquisition parameters of a DCE session: sidecars, frame times, relaxivity.

The bolus arrival and baseline frames are estimated in :mod:`bidsapp.bolus_arrival`.

* :func:`read_dce_acquisition` reads the DCE sidecar (``RepetitionTimeExcitation`` s,
  ``FlipAngle`` deg, ``VolumeTiming`` or ``RepetitionTime`` s (:func:`frame_times`),
  ``MagneticFieldStrength`` T, ``ContrastBolusAgent``).
* :func:`read_vfa_acquisition` reads the flip angles and TR of the VFA volumes.
* :func:`resolve_relaxivity` picks r1 (/mM/s): the user's value, else
  :func:`bidsapp.relaxivity_for` of the sidecar's agent and field strength, else
  gadobutrol at the field strength (3 T when unknown) with a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import DEFAULT_AGENT, DEFAULT_FIELD_STRENGTH


@dataclass
class DCEAcquisition:
    """What the fit needs from the DCE sidecar."""

    tr: float
    flip_angle: float
    times: np.ndarray
    field_strength: float | None = None
    agent: str | None = None
    timing_field: str = "VolumeTiming"


@dataclass
class Relaxivity:
    """r1 in /mM/s, where it came from, and any warning raised while choosing it."""

    value: float
    source: str
    warnings: list[str] = field(default_factory=list)


def read_sidecar(nifti_path):
    """JSON sidecar of a NIfTI file (``x.nii.gz`` -> ``x.json``); ValueError if absent."""
    path = Path(str(nifti_path).replace(".nii.gz", ".json").replace(".nii", ".json"))
    try:
        return json.loads(path.read_text())
    except OSError:
        raise ValueError(f"{nifti_path}: JSON sidecar {path.name} is missing") from None
    except ValueError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None


def _require(meta, key, path):
    if key not in meta:
        raise ValueError(f"{path}: sidecar field {key!r} is missing")
    return meta[key]


#: shortest frame interval (s) a lone ``RepetitionTime`` may mean; anything shorter is an
#: excitation TR written into the wrong field
MIN_FRAME_INTERVAL = 0.1


def frame_times(meta, path, n_frames):
    """Frame times (s from the first frame) and the SPGR excitation TR (s) of a DCE sidecar.

    BIDS gives a 4-D series its timing as ``VolumeTiming`` (onset of every volume, s) *or*
    ``RepetitionTime`` (regular sampling: frame ``i`` at ``i × RepetitionTime``), never both;
    the excitation TR of the SPGR readout is then ``RepetitionTimeExcitation``. Returns
    ``(times, tr_excitation, timing_field)``. A sidecar with both timing fields or neither,
    a lone ``RepetitionTime`` shorter than :data:`MIN_FRAME_INTERVAL` without
    ``RepetitionTimeExcitation`` (an excitation TR in the frame-interval field), or timings
    that do not match ``n_frames`` raise ``ValueError`` naming the file and the fields.
    """
    has_vt, has_rt = "VolumeTiming" in meta, "RepetitionTime" in meta
    if has_vt and has_rt:
        raise ValueError(
            f"{path}: sidecar has both 'VolumeTiming' and 'RepetitionTime' (BIDS allows only one of them)"
        )
    if not (has_vt or has_rt):
        raise ValueError(
            f"{path}: sidecar field 'VolumeTiming' or 'RepetitionTime' is missing "
            "(the frame times of the DCE series)"
        )
    if has_rt:
        interval = _positive_number(meta, "RepetitionTime", path)
        if interval < MIN_FRAME_INTERVAL and "RepetitionTimeExcitation" not in meta:
            raise ValueError(
                f"{path}: sidecar field 'RepetitionTime' = {interval:g} s cannot be a frame "
                f"interval (< {MIN_FRAME_INTERVAL} s) and 'RepetitionTimeExcitation' is missing; "
                "give the SPGR TR as 'RepetitionTimeExcitation' and the frame interval as "
                "'RepetitionTime' or 'VolumeTiming'"
            )
        times, field_name = np.arange(n_frames) * interval, "RepetitionTime"
    else:
        try:
            times = np.asarray(meta["VolumeTiming"], dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: sidecar field 'VolumeTiming' must be a list of numbers (s)") from None
        if times.shape != (n_frames,):
            raise ValueError(
                f"{path}: sidecar field 'VolumeTiming' has {times.size} entries for {n_frames} frames"
            )
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise ValueError(f"{path}: sidecar field 'VolumeTiming' must increase")
        times, field_name = times - times[0], "VolumeTiming"
    tr = _positive_number(meta, "RepetitionTimeExcitation", path)
    return times, tr, field_name


def _positive_number(meta, key, path):
    value = _require(meta, key, path)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: sidecar field {key!r} must be a number, got {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{path}: sidecar field {key!r} must be positive, got {value!r}")
    return value


def read_dce_acquisition(dce_path, n_frames):
    """Read the DCE sidecar of ``dce_path`` (``n_frames`` volumes); timing rules in :func:`frame_times`."""
    meta = read_sidecar(dce_path)
    times, tr, timing_field = frame_times(meta, dce_path, n_frames)
    flip = _positive_number(meta, "FlipAngle", dce_path)
    field_strength = meta.get("MagneticFieldStrength")
    return DCEAcquisition(
        tr,
        flip,
        times,
        float(field_strength) if field_strength else None,
        meta.get("ContrastBolusAgent"),
        timing_field,
    )


def read_vfa_acquisition(vfa_paths):
    """Return ``(flip_angles_deg, tr_s)`` of the VFA volumes; all must share one TR."""
    flips, trs = [], []
    for path in vfa_paths:
        meta = read_sidecar(path)
        flips.append(float(_require(meta, "FlipAngle", path)))
        trs.append(float(_require(meta, "RepetitionTimeExcitation", path)))
    if not np.allclose(trs, trs[0]):
        raise ValueError(f"{vfa_paths[0]}: VFA volumes have different RepetitionTimeExcitation {trs}")
    return np.asarray(flips), trs[0]


def resolve_relaxivity(user_value, agent, field_strength):
    """Choose r1 (/mM/s) as documented in the module docstring."""
    from . import relaxivity_for

    if user_value is not None:
        return Relaxivity(float(user_value), "user (--relaxivity)")
    warnings = []
    b0 = field_strength
    if b0 is None:
        b0 = DEFAULT_FIELD_STRENGTH
        warnings.append(f"MagneticFieldStrength missing; assumed {b0} T for the relaxivity")
    if agent:
        try:
            return Relaxivity(float(relaxivity_for(agent, b0)), f"{agent} at {b0} T", warnings)
        except (KeyError, ValueError) as exc:
            warnings.append(f"relaxivity of contrast agent {agent!r} unknown ({exc})")
    else:
        warnings.append("ContrastBolusAgent missing from the DCE sidecar")
    value = float(relaxivity_for(DEFAULT_AGENT, b0))
    warnings.append(
        f"using the default relaxivity of {DEFAULT_AGENT} at {b0} T: {value:.3g} /mM/s "
        "(set --relaxivity to override)"
    )
    return Relaxivity(value, f"default ({DEFAULT_AGENT} at {b0} T)", warnings)
