"""Find every DICOM file under a folder and read its header (never its pixels).

Files are recognised by content (the ``DICM`` preamble marker, via
``pydicom.dcmread(force=False)``; a file without preamble is accepted only if it starts
with a group-0008 element and holds a SOPInstanceUID), not by name, so any naming
scheme works. Files that
are not DICOM, that cannot be parsed, or whose pixel data is shorter than the header
promises (a truncated copy) are reported as notes and skipped; they never stop the
rest of the study from converting.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from .headers import frames_from_dataset, is_enhanced, series_label

#: DICOMDIR and other non-image objects carry no pixels and are skipped quietly
NON_IMAGE_SOP_PREFIXES = ("1.2.840.10008.1.3.10",)  # Media Storage Directory
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
RAW_TRANSFER_SYNTAXES = (IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN)
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian


@dataclass
class Discovery:
    """Result of :func:`discover_dicom`: frames of all readable images, plus notes."""

    frames: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # one-line messages, each naming a file
    n_files: int = 0


def _expected_pixel_bytes(ds):
    """Bytes of uncompressed pixel data the header announces, or None if compressed."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and ts.is_compressed:
        return None
    try:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
        return int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) // 8 * frames * samples
    except (AttributeError, TypeError, ValueError):
        return None


def _series_of_broken_file(path):
    """`` of series …`` for a file whose full header cannot be read, if its start can."""
    from pydicom.filereader import read_partial

    def after_series_number(tag, vr, length):
        return tag > 0x00200011

    try:
        with open(path, "rb") as fh:
            ds = read_partial(fh, stop_when=after_series_number)
        uid = ds.SeriesInstanceUID
    except Exception:
        return ""
    return " of " + series_label(getattr(ds, "SeriesNumber", None), getattr(ds, "SeriesDescription", ""), uid)


def _read_without_preamble(fh):
    """Header of a DICOM stream without preamble/meta (starts with group 0008), or None.

    Such files (ACR-NEMA style exports) are valid data sets; the transfer syntax is the
    encoding pydicom detected, recorded in ``file_meta`` for the pixel reader.
    """
    fh.seek(0)
    if fh.read(2) != b"\x08\x00":
        return None
    fh.seek(0)
    ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
    implicit, little = ds.original_encoding
    if not little or "SOPInstanceUID" not in ds:
        return None
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = IMPLICIT_VR_LITTLE_ENDIAN if implicit else EXPLICIT_VR_LITTLE_ENDIAN
    return ds


def _pixel_value_offset(fh, ds, pixel_start):
    """File offset of the Pixel Data value if stored raw (little endian), else None."""
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    if ts not in RAW_TRANSFER_SYNTAXES:
        return None
    fh.seek(pixel_start)
    head = fh.read(12)
    if len(head) < 8 or head[:4] != PIXEL_DATA_TAG:
        return None
    if ts == EXPLICIT_VR_LITTLE_ENDIAN:
        return pixel_start + 12 if head[4:6] in (b"OB", b"OW") else None
    return pixel_start + 8


def read_header(path):
    """Read one file's header; return ``(dataset, pixel_offset, None)`` or ``(None, None, reason)``.

    Reading stops at the Pixel Data element; the file position there tells whether the
    pixel data the header announces is complete on disk (a truncated copy is caught
    here, before any pixels are read). ``pixel_offset`` is where raw (uncompressed,
    little-endian) pixel values start, so they can be read without parsing the file
    again; None for compressed or other encodings.
    """
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as fh:
            try:
                ds = pydicom.dcmread(fh, stop_before_pixels=True, force=False)
            except InvalidDicomError:
                ds = _read_without_preamble(fh)
                if ds is None:
                    return None, None, "not a DICOM file"
            pixel_start = fh.tell()
            offset = _pixel_value_offset(fh, ds, pixel_start) if pixel_start < size else None
    except Exception as exc:  # truncated or corrupt header
        return (
            None,
            None,
            f"unreadable DICOM header{_series_of_broken_file(path)} ({type(exc).__name__}: {exc})",
        )
    label = series_label(
        getattr(ds, "SeriesNumber", None),
        getattr(ds, "SeriesDescription", ""),
        getattr(ds, "SeriesInstanceUID", ""),
    )
    sop_class = str(getattr(ds, "SOPClassUID", ""))
    if sop_class.startswith(NON_IMAGE_SOP_PREFIXES):
        return None, None, "DICOM directory or non-image object"
    if "Rows" not in ds or pixel_start >= size:
        return None, None, f"no pixel data in file of {label} (non-image object or truncated file)"
    expected = _expected_pixel_bytes(ds)
    # without a raw layout, 8 bytes is the smallest Pixel Data element header (implicit VR)
    available = size - (offset if offset is not None else pixel_start + 8)
    if expected is not None and available < expected:
        return (
            None,
            None,
            f"truncated file of {label}: pixel data has {max(available, 0)} of {expected} bytes",
        )
    return ds, offset, None


def discover_dicom(dicom_dir):
    """Walk ``dicom_dir`` recursively and return a :class:`Discovery`.

    Hidden files and folders (names starting with ``.``) are skipped. Files are visited
    in sorted order so notes are reproducible; nothing downstream depends on that order.
    """
    root = Path(dicom_dir)
    if not root.is_dir():
        raise ValueError(f"DICOM_DIR {root}: not a folder")
    found = Discovery()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            found.n_files += 1
            ds, offset, reason = read_header(path)
            if ds is None:
                found.notes.append(f"{path}: skipped, {reason}")
                continue
            try:
                frames = frames_from_dataset(ds, path)
                if offset is not None and len(frames) == 1:
                    frames[0].pixel_offset = offset
                found.frames.extend(frames)
            except ValueError as exc:
                kind = "enhanced multi-frame" if is_enhanced(ds) else "DICOM"
                found.notes.append(f"{path}: skipped {kind} file, {exc}")
    return found
