"""Small synthetic DICOM series for the converter's tests and benchmark.

Images are written from NIfTI-ordered arrays ``data[i, j, k(, t)]`` and a RAS affine
with a negative determinant (radiological order, e.g. LAS), i.e. the inverse of the
converter's geometry convention (column i, row ny−1−j), in these vendor timing styles:

* ``siemens`` — AcquisitionTime per frame, AcquisitionNumber = volume;
* ``ge`` — one AcquisitionTime for the series, TriggerTime (ms) per frame;
* ``philips`` — TemporalPositionIdentifier, NumberOfTemporalPositions, AcquisitionTime;
* ``acqtime`` — AcquisitionTime only (no AcquisitionNumber/TPI/TriggerTime).
"""

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


def tm(seconds):
    """Seconds since midnight -> DICOM TM (wraps past midnight)."""
    seconds = seconds % 86400.0
    h = int(seconds // 3600)
    m = int((seconds - h * 3600) // 60)
    s = seconds - h * 3600 - m * 60
    return f"{h:02d}{m:02d}{s:09.6f}"


def geometry_from_affine(affine, n_rows):
    """(IOP, PixelSpacing, IPP of slice 0, slice step vector) in LPS from a RAS affine."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, float)
    dcol, drow = np.linalg.norm(lps[:3, 0]), np.linalg.norm(lps[:3, 1])
    rowcos, colcos = lps[:3, 0] / dcol, -lps[:3, 1] / drow
    ipp0 = lps[:3, 3] + (n_rows - 1) * lps[:3, 1]  # voxel (0, ny-1, 0) = pixel row 0, column 0
    return list(rowcos) + list(colcos), [drow, dcol], ipp0, lps[:3, 2]


def pixel_rows(image):
    """DICOM pixel array (rows × columns) of a NIfTI-ordered slice ``image[i, j]``."""
    return image[:, ::-1].T


def _base(
    study_uid,
    series_uid,
    series_number,
    description,
    manufacturer,
    flip,
    tr,
    te,
    seq="GR",
    ti=None,
    image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
    field=3.0,
):
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.PatientName = "Test^Phantom"
    ds.PatientID = "phantom"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = "TestScanner"
    ds.MagneticFieldStrength = field
    ds.ImageType = list(image_type)
    ds.ScanningSequence = seq
    ds.SequenceVariant = "SP" if seq == "GR" else "SK"
    ds.MRAcquisitionType = "3D"
    if flip is not None:
        ds.FlipAngle = flip
    if tr is not None:
        ds.RepetitionTime = tr * 1e3
    if te is not None:
        ds.EchoTime = te * 1e3
    if ti is not None:
        ds.InversionTime = ti * 1e3
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.StudyDate = ds.SeriesDate = "20260101"
    return ds


def _save(ds, path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_series(
    folder,
    data,
    affine,
    *,
    vendor="siemens",
    series_number=1,
    description="series",
    flip=15.0,
    tr=0.005,
    te=0.002,
    times=None,
    start=36000.0,
    slice_dt=0.0,
    study_uid=None,
    series_uid=None,
    manufacturer=None,
    contrast=None,
    seq="GR",
    ti=None,
    slope=1.0,
    intercept=0.0,
    image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
    philips_scale=None,
    names=None,
    rng=None,
    extra=None,
):
    """Write ``data`` (i, j, k[, t]) as classic MR files under ``folder``; return paths.

    ``times`` are volume onsets in s from ``start`` (seconds since midnight);
    ``slice_dt`` spreads slices of one volume in time (2-D acquisition). Stored value =
    (data − intercept) / slope, rounded to int16. ``names``: callable(index) -> relative
    path (default: random names in two sub-folders, so disk order means nothing).
    """
    from pathlib import Path

    folder = Path(folder)
    rng = rng or np.random.default_rng()
    data = np.asarray(data, float)
    if data.ndim == 3:
        data = data[..., None]
    nx, ny, nz, nt = data.shape
    times = np.zeros(nt) if times is None else np.asarray(times, float)
    iop, spacing, ipp0, step = geometry_from_affine(affine, ny)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    manufacturer = (
        manufacturer
        or {
            "siemens": "SIEMENS",
            "ge": "GE MEDICAL SYSTEMS",
            "philips": "Philips Medical Systems",
            "acqtime": "SIEMENS",
        }[vendor]
    )
    paths = []
    for t in range(nt):
        for k in range(nz):
            ds = _base(
                study_uid,
                series_uid,
                series_number,
                description,
                manufacturer,
                flip,
                tr,
                te,
                seq,
                ti,
                image_type,
            )
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = t * nz + k + 1
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
            ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp0 + k * step]
            ds.PixelSpacing = [f"{v:.6f}" for v in spacing]
            ds.SliceThickness = float(np.linalg.norm(step))
            ds.Rows, ds.Columns = ny, nx
            clock = start + times[t] + k * slice_dt
            ds.SeriesTime = tm(start)
            if vendor == "ge":
                ds.AcquisitionTime = tm(start)
                ds.TriggerTime = f"{(times[t] + k * slice_dt) * 1e3:.3f}"
            else:
                ds.AcquisitionTime = tm(clock)
                ds.ContentTime = tm(clock)
            if vendor == "siemens":
                ds.AcquisitionNumber = t + 1
            if vendor == "philips" and nt > 1:
                ds.TemporalPositionIdentifier = t + 1
                ds.NumberOfTemporalPositions = nt
            if slope != 1.0 or intercept != 0.0:
                ds.RescaleSlope = slope
                ds.RescaleIntercept = intercept
            if philips_scale is not None:
                ds.add_new((0x2005, 0x0010), "LO", "Philips MR Imaging DD 001")
                ds.add_new((0x2005, 0x100E), "FL", philips_scale)
            for key, value in (contrast or {}).items():
                setattr(ds, key, value)
            for key, value in (extra or {}).items():
                setattr(ds, key, value)
            stored = np.rint((pixel_rows(data[:, :, k, t]) - intercept) / slope).astype(np.int16)
            ds.PixelData = stored.tobytes()
            index = len(paths)
            rel = names(index) if names else f"d{rng.integers(3)}/{rng.integers(1 << 40):012x}"
            path = folder / rel
            _save(ds, path)
            paths.append(path)
    return paths


def write_enhanced(
    path,
    data,
    affine,
    *,
    series_number=1,
    description="enhanced",
    flip=15.0,
    tr=0.005,
    te=0.002,
    times=None,
    start=36000.0,
    study_uid=None,
):
    """Write ``data`` (i, j, k[, t]) as one Enhanced MR multi-frame file (frames in t-major order)."""
    from pathlib import Path

    data = np.asarray(data, float)
    if data.ndim == 3:
        data = data[..., None]
    nx, ny, nz, nt = data.shape
    times = np.zeros(nt) if times is None else np.asarray(times, float)
    iop, spacing, ipp0, step = geometry_from_affine(affine, ny)
    ds = _base(
        study_uid or generate_uid(), generate_uid(), series_number, description, "SIEMENS", None, None, None
    )
    ds.SOPClassUID = ENHANCED_MR
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = ny, nx
    ds.NumberOfFrames = nz * nt
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [f"{v:.6f}" for v in spacing]
    pm.SliceThickness = float(np.linalg.norm(step))
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
    shared.PlaneOrientationSequence = Sequence([po])
    mt = Dataset()
    mt.RepetitionTime = tr * 1e3
    mt.FlipAngle = flip
    shared.MRTimingAndRelatedParametersSequence = Sequence([mt])
    me = Dataset()
    me.EffectiveEchoTime = te * 1e3
    shared.MREchoSequence = Sequence([me])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame, pixels = [], []
    for t in range(nt):
        for k in range(nz):
            fg = Dataset()
            pp = Dataset()
            pp.ImagePositionPatient = [f"{v:.6f}" for v in ipp0 + k * step]
            fg.PlanePositionSequence = Sequence([pp])
            fc = Dataset()
            fc.TemporalPositionIndex = t + 1
            day = 1 + int((start + times[t]) // 86400)
            fc.FrameAcquisitionDateTime = f"202601{day:02d}" + tm(start + times[t])
            fg.FrameContentSequence = Sequence([fc])
            per_frame.append(fg)
            pixels.append(np.rint(pixel_rows(data[:, :, k, t])).astype(np.int16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = np.stack(pixels).tobytes()
    _save(ds, Path(path))
    return Path(path)


def phantom(shape, seed=0, low=50, high=1000):
    """Integer-valued random image of ``shape`` (exact in int16)."""
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(float)


def oblique_affine(voxel=(1.5, 1.8, 3.0), origin=(-40.0, 25.0, 10.0), angle_deg=12.0):
    """An oblique RAS affine in radiological order (LAS-like, negative determinant)."""
    a = np.deg2rad(angle_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(a / 2), -np.sin(a / 2), 0], [np.sin(a / 2), np.cos(a / 2), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rz @ rx @ np.diag([-voxel[0], voxel[1], voxel[2]])
    aff[:3, 3] = origin
    return aff
