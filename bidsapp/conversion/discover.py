"""Find every DICOM file under a folder and read its header (never its pixels).

Files are recognised by content (the ``DICM`` preamble marker, via
``pydicom.dcmread(force=False)``), not by name, so any naming scheme works. Files that
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


def read_header(path):
    """Read one file's header; return ``(dataset, None)`` or ``(None, reason)``."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=False)
    except InvalidDicomError:
        return None, "not a DICOM file"
    except Exception as exc:  # truncated or corrupt header
        return None, f"unreadable DICOM header ({type(exc).__name__}: {exc})"
    sop_class = str(getattr(ds, "SOPClassUID", ""))
    if sop_class.startswith(NON_IMAGE_SOP_PREFIXES) or "Rows" not in ds:
        return None, "DICOM object without image data"
    expected = _expected_pixel_bytes(ds)
    if expected is not None and os.path.getsize(path) < expected:
        label = series_label(getattr(ds, "SeriesNumber", None), getattr(ds, "SeriesDescription", ""),
                             getattr(ds, "SeriesInstanceUID", ""))
        return None, (f"truncated file of {label}: {os.path.getsize(path)} bytes on disk, "
                      f"pixel data alone needs {expected}")
    return ds, None


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
            ds, reason = read_header(path)
            if ds is None:
                found.notes.append(f"{path}: skipped, {reason}")
                continue
            try:
                found.frames.extend(frames_from_dataset(ds, path))
            except ValueError as exc:
                kind = "enhanced multi-frame" if is_enhanced(ds) else "DICOM"
                found.notes.append(f"{path}: skipped {kind} file, {exc}")
    return found
