r"""Write a simulated session as classic MR Image Storage DICOM (one file per slice per frame).

Geometry: axial slices, ImageOrientationPatient ``1\0\0\0\1\0`` (LPS); pixel
``[row r, column c]`` of slice ``k`` is voxel ``[i=c, j=ny−1−r, k]`` of the simulated
arrays (LAS, see :class:`~bidsapp.simulate.geometry.Grid`), ImagePositionPatient is the
LPS position of voxel ``[0, ny−1, k]``, SliceThickness = SpacingBetweenSlices = slice
step.
Each VFA flip angle is its own series; the dynamic series carries every frame; the
optional dose pair gives three T1-weighted series. Files get random names and are
written in shuffled order into ``folder``; ``simulation.json`` there records which
series is what (for converter tests). Vendor conventions: :mod:`.dicom_vendors`.
"""

import datetime as dt
import zlib
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from .. import bids_raw
from .._version import __version__
from ..io_utils import atomic_path, write_json_atomic
from .bids_writer import DOSE_PAIR_ACQ
from .dicom_vendors import vendor_style

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
GYROMAGNETIC_MHZ_PER_T = 42.577478518
MAX_STORED = 4000  # largest stored value (12-bit data)
SIMULATION_JSON = "simulation.json"
DCE_SERIES_NUMBER = 30


def _tm(moment):
    return moment.strftime("%H%M%S.%f")


class _Series:
    """One DICOM series: its role, acquisition parameters and image data."""

    def __init__(
        self,
        role,
        description,
        number,
        volume,
        flip_angle,
        tr,
        frame_times=None,
        contrast_fraction=None,
        bids_name=None,
    ):
        self.role, self.description, self.number = role, description, number
        self.volume = np.asarray(volume, dtype=float)
        if self.volume.ndim == 3:
            self.volume = self.volume[..., None]
        self.flip_angle, self.tr = float(flip_angle), float(tr)
        self.frame_times = np.zeros(1) if frame_times is None else np.asarray(frame_times, dtype=float)
        self.contrast_fraction = contrast_fraction
        self.bids_name = bids_name


def _session_series(subject, session, sim, style, dose_pair):
    protocol = sim.protocol
    series = []
    for index, angle in enumerate(protocol.vfa_flip_angles, start=1):
        name = bids_raw.vfa_path("", subject, session, index).as_posix()
        series.append(
            _Series(
                "vfa",
                style.vfa_description.format(angle=angle),
                10 + index,
                sim.vfa[..., index - 1],
                angle,
                protocol.vfa_tr,
                bids_name=name,
            )
        )
    if dose_pair is not None:
        series.append(
            _Series(
                "t1w_pre",
                style.t1w_description.format(label="pre"),
                20,
                dose_pair.pre,
                dose_pair.flip_angle,
                dose_pair.tr,
                bids_name=bids_raw.raw_path("", subject, session, "anat", "T1w").as_posix(),
            )
        )
    dce_name = bids_raw.dce_path("", subject, session).as_posix()
    series.append(
        _Series(
            "dce",
            style.dce_description,
            DCE_SERIES_NUMBER,
            sim.dce,
            protocol.dce_flip_angle,
            protocol.dce_tr,
            sim.t,
            1.0,
            dce_name,
        )
    )
    if dose_pair is not None:
        for offset, (dose, volume) in enumerate((("low", dose_pair.low), ("standard", dose_pair.standard))):
            fraction = dose_pair.low_dose_fraction if dose == "low" else 1.0
            acq = DOSE_PAIR_ACQ[dose]
            name = bids_raw.raw_path(
                "", subject, session, "anat", "T1w", acq=acq, ce=protocol.agent
            ).as_posix()
            series.append(
                _Series(
                    f"t1w_{acq}",
                    style.t1w_description.format(label=f"post_{acq}"),
                    40 + offset,
                    volume,
                    dose_pair.flip_angle,
                    dose_pair.tr,
                    contrast_fraction=fraction,
                    bids_name=name,
                )
            )
    return series


def write_dicom_session(
    folder,
    subject,
    session,
    sim,
    vendor="siemens",
    dose_pair=None,
    vfa_separate_study=False,
    seed=0,
    study_datetime=None,
):
    """Write one session's DICOM into ``folder``; return the ``simulation.json`` content.

    ``seed`` makes UIDs, file names and the write order reproducible;
    ``vfa_separate_study`` puts the VFA series in their own StudyInstanceUID (as when
    the T1 mapping was acquired in a separate exam); ``study_datetime`` is the exam
    start (default 2024-03-04 09:00).
    """
    style = vendor_style(vendor)
    folder = Path(folder)
    protocol, grid = sim.protocol, sim.phantom.grid
    key = ("dcequant-simulate", seed, subject, session or "", style.name)

    def uid(*parts):
        return generate_uid(entropy_srcs=[str(p) for p in key + parts])

    rng = np.random.default_rng([int(seed), zlib.crc32("/".join(str(p) for p in key).encode())])
    start = study_datetime or dt.datetime(2024, 3, 4, 9, 0, 0)
    series = _session_series(subject, session, sim, style, dose_pair)
    study_uid = uid("study")
    vfa_study_uid = uid("study-vfa") if vfa_separate_study else study_uid
    frame_of_reference = uid("frame-of-reference")
    global_scale = MAX_STORED / max(float(s.volume.max()) for s in series)
    series_start = {}
    clock = start + dt.timedelta(minutes=2)
    for s in series:
        series_start[s.number] = clock
        clock += dt.timedelta(seconds=float(s.frame_times[-1]) + 90.0)

    records, templates = [], {}
    for s in series:
        study = vfa_study_uid if s.role == "vfa" else study_uid
        scale = global_scale if not style.rescale else MAX_STORED / max(float(s.volume.max()), 1e-12)
        slope = float(rng.uniform(1.5, 3.0)) if style.private_scale else 1.0 / scale
        ds = _series_template(
            style,
            protocol,
            grid,
            s,
            subject,
            study,
            uid(s.number),
            frame_of_reference,
            start,
            series_start[s.number],
        )
        if style.rescale:
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:.10g}", "0", "US"
        if style.private_scale:
            block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
            block.add_new(0x0E, "FL", float(scale))
        templates[s.number] = (ds, scale)
        records.append(
            {
                "role": s.role,
                "SeriesNumber": s.number,
                "SeriesDescription": s.description,
                "SeriesInstanceUID": ds.SeriesInstanceUID,
                "StudyInstanceUID": study,
                "FlipAngle": s.flip_angle,
                "RepetitionTime": s.tr,
                "n_frames": int(s.volume.shape[-1]),
                "n_files": int(s.volume.shape[-1] * grid.matrix[2]),
                "FrameTimes": [float(t) for t in s.frame_times] if s.role == "dce" else None,
                "StoredValueScale": scale,
                "RescaleSlope": slope if style.rescale else None,
                "bids_name": s.bids_name,
            }
        )

    tasks = [(s, n, k) for s in series for n in range(s.volume.shape[-1]) for k in range(grid.matrix[2])]
    folder.mkdir(parents=True, exist_ok=True)
    encoders = {number: _SeriesEncoder() for number in templates}
    for (s, n, k), name in zip(
        [tasks[i] for i in rng.permutation(len(tasks))], _random_names(rng, len(tasks)), strict=True
    ):
        ds, scale = templates[s.number]
        _fill_instance(ds, style, grid, s, n, k, scale, series_start[s.number], uid(s.number, n, k))
        with atomic_path(folder / name, suffix=".dcm") as tmp:
            tmp.write_bytes(encoders[s.number].encode(ds))

    info = {
        "GeneratedBy": {"Name": "dcequant-simulate", "Version": __version__},
        "subject": bids_raw.strip_prefix(subject, "sub"),
        "session": bids_raw.strip_prefix(session, "ses") if session else None,
        "vendor": style.name,
        "PatientID": templates[series[0].number][0].PatientID,
        "StudyInstanceUID": study_uid,
        "VFASeparateStudy": bool(vfa_separate_study),
        "BolusArrivalTime": sim.session_input.bolus_arrival,
        "DCESeriesStart": _tm(series_start[DCE_SERIES_NUMBER]),
        "series": records,
    }
    write_json_atomic(folder / SIMULATION_JSON, info)
    return info


def _random_names(rng, n):
    """``n`` distinct random 12-digit hexadecimal file names."""
    names = set()
    while len(names) < n:
        names.add(f"{rng.integers(0, 16**12):012x}")
    names = sorted(names)
    rng.shuffle(names)
    return names


#: attributes set per file by :func:`_fill_instance` (everything else is per series)
PER_FILE_KEYWORDS = (
    "SOPInstanceUID",
    "AcquisitionTime",
    "ContentTime",
    "AcquisitionNumber",
    "InstanceNumber",
    "ImagePositionPatient",
    "TemporalPositionIdentifier",
    "SliceLocation",
    "TriggerTime",
    "PixelData",
)


class _SeriesEncoder:
    """Explicit VR little endian Part 10 bytes of a series' files.

    Elements that are the same in every file of the series are encoded once; per file
    only :data:`PER_FILE_KEYWORDS` and the file meta information are encoded (the same
    bytes ``Dataset.save_as`` writes, an order of magnitude faster).
    """

    def __init__(self):
        self._dynamic = {pydicom.datadict.tag_for_keyword(k) for k in PER_FILE_KEYWORDS}
        self._static = {}

    def _element_bytes(self, elem):
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_data_element(fp, elem)
        return fp.getvalue()

    def encode(self, ds):
        meta = DicomBytesIO()
        meta.is_little_endian, meta.is_implicit_VR = True, False
        write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
        parts = [b"\0" * 128, b"DICM", meta.getvalue()]
        for elem in ds:  # ascending tag order
            if elem.tag in self._dynamic:
                parts.append(self._element_bytes(elem))
            else:
                cached = self._static.get(elem.tag)
                if cached is None:
                    cached = self._static[elem.tag] = self._element_bytes(elem)
                parts.append(cached)
        return b"".join(parts)


def _series_template(
    style, protocol, grid, s, subject, study_uid, series_uid, frame_of_reference, start, series_start
):
    """Dataset holding every attribute that is the same for all files of a series."""
    label = bids_raw.strip_prefix(subject, "sub")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(style.image_type)
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = start.strftime("%Y%m%d")
    ds.StudyTime = _tm(start)
    ds.SeriesTime = _tm(series_start)
    ds.AccessionNumber = f"A{label}"
    ds.Modality = "MR"
    ds.Manufacturer = style.manufacturer
    ds.InstitutionName = "dcequant simulation"
    ds.ReferringPhysicianName = ""
    ds.StationName = "SIMMR01"
    ds.StudyDescription = "BRAIN DCE"
    ds.SeriesDescription = ds.ProtocolName = s.description
    ds.ManufacturerModelName = style.model
    ds.SoftwareVersions = style.software
    ds.PatientName = f"Simulated^{label}"
    ds.PatientID = f"SIM{label}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.PatientWeight = f"{protocol.patient_weight:g}"
    ds.BodyPartExamined = "BRAIN"
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = "SP"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "3D"
    ds.SequenceName = style.sequence_name
    ds.SliceThickness = f"{grid.voxel_size[2]:.6g}"
    ds.SpacingBetweenSlices = f"{grid.voxel_size[2]:.6g}"
    ds.RepetitionTime = f"{s.tr * 1000:.6g}"
    ds.EchoTime = f"{protocol.echo_time * 1000:.6g}"
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = f"{GYROMAGNETIC_MHZ_PER_T * protocol.field_strength:.6f}"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = f"{protocol.field_strength:g}"
    ds.EchoTrainLength = "1"
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "100"
    ds.PixelBandwidth = "400"
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [grid.matrix[0], 0, 0, grid.matrix[1]]
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.FlipAngle = f"{s.flip_angle:g}"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = s.number
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = grid.matrix[1], grid.matrix[0]
    ds.PixelSpacing = [f"{grid.voxel_size[1]:.6g}", f"{grid.voxel_size[0]:.6g}"]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if s.contrast_fraction is not None:
        ml = protocol.injected_volume_ml(s.contrast_fraction)
        ds.ContrastBolusAgent = protocol.agent
        ds.ContrastBolusRoute = "IV"
        ds.ContrastBolusVolume = f"{ml:.4g}"
        ds.ContrastBolusTotalDose = f"{ml:.4g}"
        ds.ContrastBolusIngredient = "GADOLINIUM"
    if s.volume.shape[-1] > 1 and style.timing != "acquisition_time":
        ds.NumberOfTemporalPositions = s.volume.shape[-1]
    return ds


def _fill_instance(ds, style, grid, s, n, k, scale, series_start, sop_uid):
    """Set the per-file attributes of frame ``n``, slice ``k`` and its pixels."""
    nz = grid.matrix[2]
    n_frames = s.volume.shape[-1]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.InstanceNumber = (k * n_frames + n + 1) if style.slice_major_numbering else (n * nz + k + 1)
    x, y, z = grid.coordinates(0, grid.matrix[1] - 1, k)
    ds.ImagePositionPatient = [f"{-x:.6f}", f"{-y:.6f}", f"{z:.6f}"]
    ds.SliceLocation = f"{z:.6f}"
    frame_time = series_start + dt.timedelta(seconds=float(s.frame_times[n]))
    if style.timing == "trigger_time":
        ds.AcquisitionTime = ds.ContentTime = _tm(series_start)
    else:
        ds.AcquisitionTime = ds.ContentTime = _tm(frame_time)
    ds.AcquisitionNumber = n + 1 if style.timing == "acquisition_time" else 1
    if n_frames > 1 and style.timing != "acquisition_time":
        ds.TemporalPositionIdentifier = n + 1
        if style.timing == "trigger_time":
            ds.TriggerTime = f"{s.frame_times[n] * 1000:.1f}"
    pixels = np.clip(np.rint(s.volume[:, ::-1, k, n].T * scale), 0, 2**12 - 1).astype(np.uint16)
    ds.add_new(0x7FE00010, "OW", pixels.tobytes())  # PixelData
