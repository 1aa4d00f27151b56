"""ROI statistics of every map of every participant/session.

ROI statistics of every map of every participant/session (the long table ``group_desc-roistats_stats.tsv``).

Maps are found by BIDS entities (:func:`find_maps`); ROIs come from ``*_dseg.nii.gz``
segmentations (names from the ``dseg.tsv`` of their derivative dataset) or binary
``*_mask.nii.gz`` files (named by their ``desc``). An ROI on another grid than the map
is resampled to the map grid by nearest neighbour: each map voxel centre is mapped to
world coordinates with the map affine and to the ROI voxel whose centre is nearest with
the inverse ROI affine; map voxels falling outside the ROI image are outside the ROI.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import ArrayLike

from ..bids_raw import strip_prefix, subject_dir

ROISTATS_COLUMNS = (
    "participant_id",
    "session_id",
    "map",
    "roi",
    "n_voxels",
    "n_valid",
    "mean",
    "sd",
    "median",
    "q25",
    "q75",
    "p05",
    "p95",
)
#: datatype folders searched for maps, and suffixes that are not maps
MAP_DATATYPES = ("anat", "perf")
NOT_MAP_SUFFIXES = ("mask", "dseg", "probseg")
#: desc suffixes of uncertainty maps paired with a map of the same suffix
#: (``extendedtoftsStderr_Ktrans`` for ``extendedtofts_Ktrans``, ``punetStd_Ktrans`` for ``punet_Ktrans``)
UNCERTAINTY_DESCS = ("Stderr", "Std")


def entities(path: str | Path) -> tuple[dict[str, str], str]:
    """``({entity: label}, suffix)`` of a BIDS file name."""
    stem = Path(path).name.split(".")[0]
    parts = stem.split("_")
    return dict(p.split("-", 1) for p in parts[:-1] if "-" in p), parts[-1]


def map_name(path: str | Path) -> str:
    """Map name used by the group tables: ``<desc>_<suffix>`` (``<suffix>`` without desc)."""
    ents, suffix = entities(path)
    return f"{ents['desc']}_{suffix}" if "desc" in ents else suffix


def session_folders(
    root: str | Path,
    participants: Sequence[str] = (),
    sessions: Sequence[str] = (),
) -> Iterator[tuple[str, str | None, Path]]:
    """List the subject/session folders of a derivative dataset.

    ``(subject, session or None, folder)`` of every ``sub-*/[ses-*]`` folder of a derivative dataset,
    restricted to the given labels when any.
    """
    for sub in sorted(Path(root).glob("sub-*")):
        subject = strip_prefix(sub.name, "sub")
        if not sub.is_dir() or (participants and subject not in participants):
            continue
        ses_dirs = sorted(p for p in sub.glob("ses-*") if p.is_dir())
        for folder in ses_dirs or [sub]:
            session = strip_prefix(folder.name, "ses") if ses_dirs else None
            if session is None or not sessions or session in sessions:
                yield subject, session, folder


def find_maps(folder: Path) -> dict[str, Path]:
    """``{map name: path}`` of the 3-D float maps of one session folder.

    Every ``<datatype>/*.nii[.gz]`` with ``datatype`` in :data:`MAP_DATATYPES`, except
    masks and segmentations, whose image is 3-D and of a floating-point type. This is
    the one place that decides which files are maps. Model maps are named by the
    registry (``desc-<ModelSpec.label>_<parameter>``, :mod:`bidsapp.registry.kinetic`);
    maps added by new methods (e.g. ``desc-cnn_Ktrans``) are found the same way.
    """
    found = {}
    for datatype in MAP_DATATYPES:
        for path in sorted((Path(folder) / datatype).glob("*.nii*")):
            if entities(path)[1] in NOT_MAP_SUFFIXES:
                continue
            header = nib.load(str(path)).header
            shape = header.get_data_shape()
            if len(shape) == 3 and header.get_data_dtype().kind == "f":
                found[map_name(path)] = path
    return found


def uncertainty_partner(name: str, maps) -> str | None:
    """Name of the uncertainty map paired with map ``name`` in ``maps``, or None."""
    desc, _, suffix = name.rpartition("_")
    if not desc or desc.endswith(UNCERTAINTY_DESCS):
        return None
    return next((f"{desc}{u}_{suffix}" for u in UNCERTAINTY_DESCS if f"{desc}{u}_{suffix}" in maps), None)


def find_roi_files(specs: Sequence[str | Path], subject: str, session: str | None) -> list[Path]:
    """ROI files (``*_dseg.nii*`` and ``*_mask.nii*``) of one subject/session.

    ``specs`` are files (``{subject}``/``{session}`` are replaced) or derivative folders
    searched under ``sub-<L>[/ses-<S>]``. Raises ``ValueError`` naming a missing path.
    """
    found = []
    for spec in map(str, specs):
        if "{" in spec:
            spec = spec.format(subject=subject, session=session or "")
        path = Path(spec)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            folder = subject_dir(path, subject, session)
            for pattern in ("*_dseg.nii*", "*_mask.nii*"):
                found += sorted(folder.rglob(pattern))
        else:
            raise ValueError(f"--roi {spec}: no such file or folder")
    return found


def _dseg_names(path):
    """``{index: name}`` from the nearest ``dseg.tsv`` (same folder or a parent)."""
    for parent in Path(path).resolve().parents:
        table = parent / "dseg.tsv"
        if table.is_file():
            with table.open(newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter="\t"))
            try:
                return {int(r["index"]): r["name"] for r in rows}
            except (KeyError, ValueError):
                raise ValueError(f"{table}: columns 'index' and 'name' are required") from None
        if (parent / "dataset_description.json").is_file():
            break
    return {}


@dataclass
class ROIImage:
    """Labelled ROI image: ``labels`` (int array), ``names`` {label: ROI name}, ``affine``."""

    labels: np.ndarray
    names: dict
    affine: np.ndarray

    @classmethod
    def load(cls, path):
        """Read a 3-D label image (``dseg`` with its TSV, or a mask) as an ROI image.

        Raises ``ValueError`` naming ``--roi`` and the file when the image is not 3-D.
        """
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
        if data.ndim != 3:
            raise ValueError(f"--roi {path}: a 3-D image is required, got shape {data.shape}")
        labels = np.rint(np.nan_to_num(data)).astype(np.int32)
        ents, suffix = entities(path)
        if suffix == "dseg":
            names = _dseg_names(path)
            names = {int(v): names.get(int(v), f"label-{int(v)}") for v in np.unique(labels) if v > 0}
        else:
            labels = (labels > 0).astype(np.int32)
            names = {1: ents.get("desc", Path(path).name.split(".")[0])}
        return cls(labels, names, img.affine)

    def on_grid(self, shape, affine):
        """Labels resampled (nearest neighbour) to a grid of ``shape`` and ``affine``."""
        if tuple(shape) == self.labels.shape and np.allclose(affine, self.affine, atol=1e-4):
            return self.labels
        to_roi = np.linalg.solve(self.affine, affine)
        ijk = np.indices(shape).reshape(3, -1)
        idx = np.rint(to_roi[:3, :3] @ ijk + to_roi[:3, 3:]).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < np.array(self.labels.shape)[:, None]), axis=0)
        out = np.zeros(ijk.shape[1], np.int32)
        out[inside] = self.labels[idx[0, inside], idx[1, inside], idx[2, inside]]
        return out.reshape(shape)


def summarise(values: ArrayLike) -> tuple:
    """Return the summary statistics of the finite values.

    ``(n_valid, mean, sd, median, q25, q75, p05, p95)`` of the finite values (SD with n - 1; NaN where not
    defined: every statistic with no valid voxel, SD with one).
    """
    v = values[np.isfinite(values)]
    if v.size == 0:
        return (0,) + (np.nan,) * 7
    q = np.percentile(v, [50, 25, 75, 5, 95])
    sd = float(v.std(ddof=1)) if v.size > 1 else np.nan
    return (int(v.size), float(v.mean()), sd, *(float(x) for x in q))


def session_rows(
    participant_id: str,
    session_id: str | None,
    maps: dict[str, Path],
    roi_paths: Sequence[Path],
    uncertainty: tuple[float, bool] | None = None,
) -> list[tuple]:
    """Rows of the ROI statistics table for one session.

    ``maps`` is ``{map name: path}``, ``roi_paths`` the ROI files; ``uncertainty`` an
    optional ``(threshold, relative)``: voxels whose paired uncertainty map
    (:func:`uncertainty_partner`) exceeds ``threshold`` (map units, or a fraction of
    ``|value|`` when ``relative``) are excluded like NaN voxels.
    """
    rois = [ROIImage.load(p) for p in roi_paths]
    rows, cache = [], {}
    for name, path in maps.items():
        img = nib.load(str(path))
        values = np.asarray(img.dataobj, dtype=np.float64)
        partner = uncertainty_partner(name, maps) if uncertainty else None
        if partner:
            sd = np.asarray(nib.load(str(maps[partner])).dataobj, dtype=np.float64)
            limit = uncertainty[0] * (np.abs(values) if uncertainty[1] else 1.0)
            values = np.where(np.isfinite(sd) & (sd <= limit), values, np.nan)
        for k, roi in enumerate(rois):
            key = (k, values.shape, img.affine.tobytes())
            if key not in cache:
                flat_labels = roi.on_grid(values.shape, img.affine).ravel()
                cache[key] = {label: np.flatnonzero(flat_labels == label) for label in roi.names}
            flat = values.ravel()
            for label, roi_name in roi.names.items():
                inside = cache[key][label]
                rows.append(
                    (participant_id, session_id, name, roi_name, inside.size, *summarise(flat[inside]))
                )
    return rows
