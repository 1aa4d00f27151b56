"""One record per image frame, read from a DICOM header (classic or enhanced MR).

A classic MR file holds one frame; an enhanced multi-frame MR file (Enhanced MR Image
Storage) holds many, with per-frame values in the Per-frame and Shared Functional
Groups. :func:`frames_from_dataset` flattens both into :class:`Frame` records with the
same fields, so grouping, classification, geometry and timing never need to know which
kind of file a frame came from.

Units in :class:`Frame`: times in s (DICOM stores TR, TE, TI, TriggerTime and
TemporalResolution in ms), lengths in mm, flip angle in degrees, field strength in T.
Clock times (AcquisitionTime, ContentTime) are seconds since midnight; ``*_date`` fields
are proleptic Gregorian day numbers (``date.toordinal()``) or ``None``.

Reference: DICOM PS3.3 C.7.6.2 (Image Plane), C.8.13 (Enhanced MR Image), C.7.6.16
(Multi-frame Functional Groups).
"""

from dataclasses import dataclass, field
from datetime import date

ENHANCED_MR_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
}
PHILIPS_SCALE_SLOPE_TAG = (0x2005, 0x100E)


@dataclass
class Frame:
    """Header values of one 2-D image frame (see module docstring for units)."""

    path: str
    frame_index: int | None  # index in a multi-frame file, None for a classic file
    series_uid: str
    study_uid: str
    sop_uid: str
    series_number: int | None
    series_description: str
    protocol_name: str
    manufacturer: str
    model_name: str
    image_type: tuple
    scanning_sequence: str
    sequence_variant: str
    sequence_name: str
    mr_acquisition_type: str
    rows: int
    columns: int
    pixel_spacing: tuple | None  # (row spacing, column spacing) mm
    slice_thickness: float | None
    spacing_between_slices: float | None
    position: tuple | None  # ImagePositionPatient (LPS mm)
    orientation: tuple | None  # ImageOrientationPatient (6 direction cosines)
    flip_angle: float | None
    repetition_time: float | None
    echo_time: float | None
    inversion_time: float | None
    echo_number: int | None
    field_strength: float | None
    instance_number: int | None
    temporal_position: int | None
    n_temporal_positions: int | None
    temporal_resolution: float | None
    trigger_time: float | None
    acquisition_time: float | None
    acquisition_date: int | None
    content_time: float | None
    content_date: int | None
    series_time: float | None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    philips_scale_slope: float | None = None
    contrast: dict = field(default_factory=dict)
    dataset: object = field(default=None, repr=False, compare=False)
    pixel_offset: int | None = None  # file offset of raw little-endian pixel values

    @property
    def label(self):
        """Short human-readable name of the frame's series."""
        return series_label(self.series_number, self.series_description, self.series_uid)


def series_label(number, description, uid):
    """``series 7 'fl3d_dyn' (1.2.3…)`` — how messages name a series."""
    num = "?" if number is None else number
    return f"series {num} '{description}' ({uid})"


def parse_tm(value):
    """DICOM TM ``HHMMSS.FFFFFF`` (or ``HH:MM:SS``) -> seconds since midnight, or None."""
    if value in (None, ""):
        return None
    text = str(value).strip().replace(":", "")
    if not text:
        return None
    try:
        hh = int(text[0:2])
        mm = int(text[2:4]) if len(text) >= 4 else 0
        ss = float(text[4:]) if len(text) > 4 else 0.0
    except ValueError:
        return None
    return hh * 3600.0 + mm * 60.0 + ss


def parse_da(value):
    """DICOM DA ``YYYYMMDD`` -> day number (``date.toordinal``), or None."""
    text = str(value or "").strip().replace(".", "").replace("-", "")
    if len(text) < 8:
        return None
    try:
        return date(int(text[0:4]), int(text[4:6]), int(text[6:8])).toordinal()
    except ValueError:
        return None


def parse_dt(value):
    """DICOM DT ``YYYYMMDDHHMMSS.FFFFFF`` -> (day number, seconds since midnight)."""
    text = str(value or "").strip()
    if len(text) < 8:
        return None, None
    text = text.split("+")[0].split("-")[0] if len(text) > 14 else text
    return parse_da(text[:8]), parse_tm(text[8:]) if len(text) > 8 else 0.0


def _get(ds, keyword, default=None):
    value = getattr(ds, keyword, None) if ds is not None else None
    return default if value in (None, "") else value


def _float(value, scale=1.0):
    try:
        return None if value in (None, "") else float(value) * scale
    except (TypeError, ValueError):
        return None


def _int(value):
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _floats(value, n):
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _multi(value):
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.split("\\") if v)
    return tuple(str(v) for v in value)


CONTRAST_KEYWORDS = (
    "ContrastBolusAgent",
    "ContrastBolusRoute",
    "ContrastBolusVolume",
    "ContrastBolusTotalDose",
    "ContrastBolusStartTime",
    "ContrastBolusIngredient",
    "ContrastBolusIngredientConcentration",
    "ContrastFlowRate",
)


def _contrast(ds):
    out = {}
    for key in CONTRAST_KEYWORDS:
        value = _get(ds, key)
        if value is None:
            continue
        if key == "ContrastBolusStartTime":
            out[key] = parse_tm(value)
        elif key in ("ContrastBolusAgent", "ContrastBolusRoute", "ContrastBolusIngredient"):
            out[key] = str(value).strip()
        elif key == "ContrastFlowRate":
            out[key] = [float(v) for v in _multi(value)] or None
        else:
            out[key] = _float(value)
    return {k: v for k, v in out.items() if v not in (None, "")}


def _philips_scale(ds):
    elem = ds.get(PHILIPS_SCALE_SLOPE_TAG) if "philips" in str(_get(ds, "Manufacturer", "")).lower() else None
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        import struct

        value = struct.unpack("<f", bytes(value[:4]))[0] if len(value) >= 4 else None
    value = _float(value[0] if isinstance(value, (list, tuple)) else value)
    return value if value else None


def _base_fields(ds, path):
    """Fields common to every frame of a file (classic or enhanced)."""
    return dict(
        path=str(path),
        series_uid=str(_get(ds, "SeriesInstanceUID", "")),
        study_uid=str(_get(ds, "StudyInstanceUID", "")),
        sop_uid=str(_get(ds, "SOPInstanceUID", "")),
        series_number=_int(_get(ds, "SeriesNumber")),
        series_description=str(_get(ds, "SeriesDescription", "")).strip(),
        protocol_name=str(_get(ds, "ProtocolName", "")).strip(),
        manufacturer=str(_get(ds, "Manufacturer", "")).strip(),
        model_name=str(_get(ds, "ManufacturerModelName", "")).strip(),
        image_type=tuple(v.upper() for v in _multi(_get(ds, "ImageType"))),
        scanning_sequence="\\".join(_multi(_get(ds, "ScanningSequence"))),
        sequence_variant="\\".join(_multi(_get(ds, "SequenceVariant"))),
        sequence_name=str(_get(ds, "SequenceName", _get(ds, "PulseSequenceName", ""))).strip(),
        mr_acquisition_type=str(_get(ds, "MRAcquisitionType", "")).strip(),
        rows=_int(_get(ds, "Rows")) or 0,
        columns=_int(_get(ds, "Columns")) or 0,
        field_strength=_float(_get(ds, "MagneticFieldStrength")),
        instance_number=_int(_get(ds, "InstanceNumber")),
        n_temporal_positions=_int(_get(ds, "NumberOfTemporalPositions")),
        temporal_resolution=_float(_get(ds, "TemporalResolution"), 1e-3),
        series_time=parse_tm(_get(ds, "SeriesTime")),
        philips_scale_slope=_philips_scale(ds),
        contrast=_contrast(ds),
        dataset=ds,
    )


def _classic_frame(ds, path):
    return Frame(
        frame_index=None,
        pixel_spacing=_floats(_get(ds, "PixelSpacing"), 2),
        slice_thickness=_float(_get(ds, "SliceThickness")),
        spacing_between_slices=_float(_get(ds, "SpacingBetweenSlices")),
        position=_floats(_get(ds, "ImagePositionPatient"), 3),
        orientation=_floats(_get(ds, "ImageOrientationPatient"), 6),
        flip_angle=_float(_get(ds, "FlipAngle")),
        repetition_time=_float(_get(ds, "RepetitionTime"), 1e-3),
        echo_time=_float(_get(ds, "EchoTime"), 1e-3),
        inversion_time=_float(_get(ds, "InversionTime"), 1e-3),
        echo_number=_int(_get(ds, "EchoNumbers")),
        temporal_position=_int(_get(ds, "TemporalPositionIdentifier")),
        trigger_time=_float(_get(ds, "TriggerTime"), 1e-3),
        acquisition_time=parse_tm(_get(ds, "AcquisitionTime")),
        acquisition_date=parse_da(_get(ds, "AcquisitionDate")),
        content_time=parse_tm(_get(ds, "ContentTime")),
        content_date=parse_da(_get(ds, "ContentDate")),
        rescale_slope=_float(_get(ds, "RescaleSlope")) or 1.0,
        rescale_intercept=_float(_get(ds, "RescaleIntercept")) or 0.0,
        **_base_fields(ds, path),
    )


def _group_item(groups, keyword):
    """First item of the functional-group sequence ``keyword`` in ``groups``, or None."""
    seq = _get(groups, keyword)
    return seq[0] if seq else None


def _functional(per_frame, shared, sequence, keyword):
    """Value of ``keyword`` inside functional group ``sequence``, per-frame first."""
    for groups in (per_frame, shared):
        item = _group_item(groups, sequence) if groups is not None else None
        value = _get(item, keyword)
        if value is not None:
            return value
    return None


def _enhanced_frames(ds, path):
    base = _base_fields(ds, path)
    shared = _group_item(ds, "SharedFunctionalGroupsSequence")
    per_frames = _get(ds, "PerFrameFunctionalGroupsSequence") or []
    n_frames = _int(_get(ds, "NumberOfFrames")) or len(per_frames)
    if len(per_frames) != n_frames:
        raise ValueError(
            f"{path}: NumberOfFrames={n_frames} but {len(per_frames)} per-frame functional groups"
        )
    frames = []
    for index, pf in enumerate(per_frames):

        def fg(seq, key, _pf=pf):
            return _functional(_pf, shared, seq, key)

        acq_date, acq_time = parse_dt(fg("FrameContentSequence", "FrameAcquisitionDateTime"))
        ref_date, ref_time = parse_dt(fg("FrameContentSequence", "FrameReferenceDateTime"))
        frame_type = _multi(fg("MRImageFrameTypeSequence", "FrameType"))
        fields = dict(base)
        if frame_type:
            fields["image_type"] = tuple(v.upper() for v in frame_type)
        trigger = fg("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime")
        frames.append(
            Frame(
                frame_index=index,
                pixel_spacing=_floats(fg("PixelMeasuresSequence", "PixelSpacing"), 2),
                slice_thickness=_float(fg("PixelMeasuresSequence", "SliceThickness")),
                spacing_between_slices=_float(fg("PixelMeasuresSequence", "SpacingBetweenSlices")),
                position=_floats(fg("PlanePositionSequence", "ImagePositionPatient"), 3),
                orientation=_floats(fg("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                flip_angle=_float(fg("MRTimingAndRelatedParametersSequence", "FlipAngle")),
                repetition_time=_float(fg("MRTimingAndRelatedParametersSequence", "RepetitionTime"), 1e-3),
                echo_time=_float(fg("MREchoSequence", "EffectiveEchoTime"), 1e-3),
                inversion_time=_float(fg("MRModifierSequence", "InversionTimes"), 1e-3),
                echo_number=None,
                temporal_position=_int(fg("FrameContentSequence", "TemporalPositionIndex")),
                trigger_time=_float(trigger, 1e-3),
                acquisition_time=acq_time,
                acquisition_date=acq_date,
                content_time=ref_time,
                content_date=ref_date,
                rescale_slope=_float(fg("PixelValueTransformationSequence", "RescaleSlope")) or 1.0,
                rescale_intercept=_float(fg("PixelValueTransformationSequence", "RescaleIntercept")) or 0.0,
                **fields,
            )
        )
        frame = frames[-1]  # legacy-converted objects may keep FlipAngle/TR at the top level
        if frame.flip_angle is None:
            frame.flip_angle = _float(_get(ds, "FlipAngle"))
        if frame.repetition_time is None:
            frame.repetition_time = _float(_get(ds, "RepetitionTime"), 1e-3)
    return frames


def is_enhanced(ds):
    """Return True for an enhanced (multi-frame) MR object."""
    return (
        str(_get(ds, "SOPClassUID", "")) in ENHANCED_MR_SOP_CLASSES
        or "PerFrameFunctionalGroupsSequence" in ds
    )


def frames_from_dataset(ds, path):
    """List of :class:`Frame` records for a header read without pixel data."""
    return _enhanced_frames(ds, path) if is_enhanced(ds) else [_classic_frame(ds, path)]
