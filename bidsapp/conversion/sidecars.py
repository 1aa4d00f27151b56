"""BIDS sidecar dictionaries built from DICOM header values (units converted to SI).

Field names follow BIDS (MRI common metadata, qMRI VFA) and dcequant's raw layout
(:mod:`bidsapp.bids_raw`): times in s, angles in degrees, field strength in T.
Contrast fields are copied from the DICOM Contrast/Bolus module of the dynamic series:
``ContrastBolusVolume`` and ``ContrastBolusTotalDose`` in ml (as DICOM defines them),
``ContrastBolusIngredientConcentration`` in mg/ml, and ``ContrastBolusStartTime`` in s
relative to the first dynamic frame (DICOM stores a clock time). When PatientWeight is
known, the dose per body weight is added as ``ContrastBolusDose`` (mmol/kg,
``ContrastBolusDoseUnits``) = injected volume × formulation concentration / weight,
with the concentrations of :func:`bidsapp.relaxivity.formulation_concentration`
(product labels; 0.5 mmol/ml for other gadolinium agents).
"""

from ..relaxivity import formulation_concentration
from . import timing


def _put(out, key, value):
    if value is not None and value != "":
        out[key] = round(value, 9) if isinstance(value, float) else value


def _positive(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def common_fields(frame):
    """Scanner and sequence fields shared by every converted image."""
    out = {}
    _put(out, "Manufacturer", frame.manufacturer)
    _put(out, "ManufacturersModelName", frame.model_name)
    _put(out, "MagneticFieldStrength", frame.field_strength)
    _put(out, "SeriesDescription", frame.series_description)
    _put(out, "ProtocolName", frame.protocol_name)
    _put(out, "SeriesNumber", frame.series_number)
    _put(out, "ScanningSequence", frame.scanning_sequence)
    _put(out, "SequenceVariant", frame.sequence_variant)
    _put(out, "SequenceName", frame.sequence_name)
    _put(out, "MRAcquisitionType", frame.mr_acquisition_type)
    _put(out, "EchoTime", frame.echo_time)
    _put(out, "FlipAngle", frame.flip_angle)
    _put(out, "RepetitionTimeExcitation", frame.repetition_time)
    return out


def vfa_sidecar(frame, extra=None):
    """Sidecar of one flip-angle image (``*_flip-<i>_VFA.json``)."""
    out = common_fields(frame)
    out["PulseSequenceType"] = "SPGR"
    out.update(extra or {})
    return out


def contrast_fields(frame, first_clock):
    """BIDS contrast fields from the dynamic series' header (see module docstring)."""
    c, out = frame.contrast, {}
    for key in (
        "ContrastBolusAgent",
        "ContrastBolusRoute",
        "ContrastBolusVolume",
        "ContrastBolusTotalDose",
        "ContrastBolusIngredient",
        "ContrastBolusIngredientConcentration",
        "ContrastFlowRate",
    ):
        _put(out, key, c.get(key))
    volume = c.get("ContrastBolusTotalDose", c.get("ContrastBolusVolume"))
    weight = _positive(getattr(frame.dataset, "PatientWeight", None))
    if volume and weight and c.get("ContrastBolusAgent"):
        mmol = volume * formulation_concentration(c["ContrastBolusAgent"])
        _put(out, "ContrastBolusDose", round(mmol / weight, 6))
        out["ContrastBolusDoseUnits"] = "mmol/kg"
    start = c.get("ContrastBolusStartTime")
    if start is not None and first_clock is not None:
        _put(out, "ContrastBolusStartTime", round(timing.clock_difference(start, first_clock), 6))
    return out


def dce_sidecar(frame, volume_timing, first_clock, extra=None):
    """Sidecar of the dynamic series (``*_dce.json``)."""
    out = common_fields(frame)
    out["PulseSequenceType"] = "SPGR"  # the dce role requires a short-TR gradient echo
    out["VolumeTiming"] = [round(float(t), 6) for t in volume_timing]
    out.update(contrast_fields(frame, first_clock))
    out.update(extra or {})
    return out


def b1_sidecar(frame, extra=None):
    """Sidecar of the relative transmit-field map (percent of nominal)."""
    out = common_fields(frame)
    out["Units"] = "percent"
    out.update(extra or {})
    return out
