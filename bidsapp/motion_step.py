"""File-in, file-out motion step of one session (style of :mod:`bidsapp.session_steps`).

:func:`motion_step` motion-corrects the DCE series, brings the VFA volumes and the B1
map onto the DCE grid (:mod:`bidsapp.motion`) and writes, into the current folder:
the corrected series and VFA/B1 volumes (each with a copy of its raw JSON sidecar, so
the later steps read the acquisition as before), the confounds table with its sidecar,
the transforms (ITK text) and a before/after figure, plus a ``manifest`` of the
derivative entries. Volumes that need no change are passed through as the raw files.
"""

from __future__ import annotations

import base64
import logging
import shutil
from pathlib import Path

import numpy as np

from . import motion
from .acquisition import read_dce_acquisition, read_vfa_acquisition
from .bolus_arrival import estimate_bolus_arrival
from .derivatives import Entry, software_info, write_manifest
from .io_utils import write_text_atomic
from .session_steps import _load, _provenance, _save, signal_mask

LOGGER = logging.getLogger("dcequant")
HMC_ENTITIES = {"from": "orig", "to": "dceref", "mode": "image"}
VFA_ENTITIES = {"from": "VFA", "to": "dceref", "mode": "image"}


def _copy_sidecar(source_nifti, target_nifti):
    """Copy the raw JSON sidecar of ``source_nifti`` next to ``target_nifti`` (if any)."""
    json_of = lambda p: Path(str(p).replace(".nii.gz", ".json").replace(".nii", ".json"))  # noqa: E731
    if json_of(source_nifti).exists():
        shutil.copyfile(json_of(source_nifti), json_of(target_nifti))


#: folder (in the node's working folder) that mirrors the raw layout of the files handed on
MIRROR = "raw"


def _mirror_path(source, raw_root):
    """Return the path of a raw file mirrored under ``./raw``.

    ``./raw/<path of source relative to raw_root>``, so that the later steps' ``Sources`` name the raw file
    (``bids:raw:...``) the handed-on file was made from.
    """
    try:
        relative = Path(source).resolve().relative_to(Path(raw_root).resolve())
    except ValueError:
        relative = Path(Path(source).name)
    target = Path(MIRROR).resolve() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _save_like(array, ref_img, source, raw_root):
    """Save ``array`` at the mirror path of ``source`` with the raw sidecar next to it."""
    path = _save(array, ref_img, _mirror_path(source, raw_root))
    _copy_sidecar(source, path)
    return path


def _link_like(source, raw_root):
    """Symbolic link (and sidecar link) to an unchanged raw file at its mirror path."""
    target = _mirror_path(source, raw_root)
    json_of = lambda p: Path(str(p).replace(".nii.gz", ".json").replace(".nii", ".json"))  # noqa: E731
    for src, dst in ((Path(source), target), (json_of(source), json_of(target))):
        if src.exists() and not dst.exists():
            dst.symlink_to(src.resolve())
    return str(target)


def _baseline(signal, times, baseline_frames):
    """Return the frames averaged into the registration reference.

    Frames averaged into the registration reference: the user's, else those before the bolus arrival
    (:func:`bidsapp.bolus_arrival.estimate_bolus_arrival`, on the uncorrected series).
    """
    if baseline_frames is not None:
        return min(int(baseline_frames), signal.shape[3]), "user (--baseline-frames)"
    arrival = estimate_bolus_arrival(signal, times, signal_mask(signal))
    return max(
        int(arrival.baseline_frames), 1
    ), "detected: the frames before the bolus arrival (before correction)"


def confounds_table(params, fd, threshold):
    """TSV text of the confounds (``n/a`` where not estimated) and the flagged frames."""
    flagged = np.nan_to_num(fd) > threshold
    columns = list(motion.PARAM_NAMES) + ["framewise_displacement", "motion_outlier"]
    rows = ["\t".join(columns)]
    for p, d, f in zip(params, fd, flagged, strict=True):
        values = [f"{v:.6g}" if np.isfinite(v) else "n/a" for v in (*p, d)] + [str(int(f))]
        rows.append("\t".join(values))
    return "\n".join(rows) + "\n", np.flatnonzero(flagged)


def confounds_sidecar(result, threshold, n_base, base_source, sources):
    """Return the JSON sidecar of the confounds TSV: column descriptions with units and provenance."""
    doc = {
        name: {
            "Description": f"{'translation along' if name.startswith('trans') else 'rotation about'} "
            f"the {name[-1]} axis",
            "Units": "mm" if name.startswith("trans") else "rad",
        }
        for name in motion.PARAM_NAMES
    }
    doc["framewise_displacement"] = {
        "Description": "framewise displacement (Power et al. 2012): sum of absolute parameter changes from "
        f"the previous frame, rotations as arc length on a {motion.FD_RADIUS:g} mm sphere",
        "Units": "mm",
    }
    doc["motion_outlier"] = {
        "Description": f"1 where framewise_displacement > {threshold:g} mm",
        "Levels": {"0": "kept", "1": "large motion"},
    }
    axes = (
        "image-plane axes (x: first voxel axis, y: second, z: slice normal); trans_z, rot_x, rot_y are "
        "not estimated (in-plane rigid model of a single-slice series)"
        if result.in_plane
        else "RAS scanner axes; rotations R = Rz·Ry·Rx about the centre of the DCE field of view"
    )
    doc.update(
        {
            "Description": "Rigid head-motion parameters of every DCE frame relative to the reference (mean "
            "of the baseline frames), as estimated by dcequant's motion correction",
            "Axes": axes,
            "RotationCentre": [float(v) for v in result.centre],
            "RotationCentreUnits": "mm (RAS)",
            "Method": "SimpleITK rigid registration, Mattes mutual information, multi-resolution; frames "
            "resampled once with cubic B-spline interpolation",
            "DegreesOfFreedom": 3 if result.in_plane else 6,
            "BaselineFrames": int(n_base),
            "BaselineFramesSource": base_source,
            "FramewiseDisplacementThreshold": threshold,
            "FramewiseDisplacementThresholdUnits": "mm",
            "Software": software_info(),
            "Sources": sources,
        }
    )
    return doc


def _figure(before, after, path):
    """Temporal standard deviation before and after correction (same scale)."""
    from .report import figures

    sd_before, sd_after = np.std(before, axis=-1), np.std(after, axis=-1)
    limits = figures.robust_limits(np.concatenate([sd_before.ravel(), sd_after.ravel()]))
    rows = [
        dict(volume=sd_before, title="before", units="temporal SD", cmap="inferno", limits=limits),
        dict(volume=sd_after, title="after", units="temporal SD", cmap="inferno", limits=limits),
    ]
    Path(path).write_bytes(
        base64.b64decode(
            figures.map_grid(rows, "Temporal SD of the DCE series before/after motion correction")
        )
    )
    return str(Path(path).resolve())


def motion_step(dce_file, vfa_files, b1_file, baseline_frames, correct, fd_threshold, threads, raw_root):
    """Motion correction and VFA alignment of one session.

    Outputs ``dce`` (series used downstream), ``vfa`` (list, on the DCE grid), ``b1`` (on
    the DCE grid or None), ``raw_root`` and ``manifest``. Files handed on lie in
    ``./raw`` laid out as in the raw dataset (unchanged ones as links), and ``raw_root``
    points there, so the later steps' ``Sources`` keep naming the raw files.
    ``correct=False`` (``--no-motion-correction``) registers nothing: the series is passed
    through and VFA/B1 data on another grid are resampled onto the DCE grid in scanner
    coordinates.
    """
    img, signal = _load(dce_file, 4)
    vfa_files, entries = list(vfa_files or []), []
    out = {"dce": str(dce_file), "vfa": [str(v) for v in vfa_files], "b1": str(b1_file) if b1_file else None}
    sources = _provenance([dce_file], raw_root)
    reference = signal[..., 0]
    if correct and not motion.registrable(signal.shape):
        LOGGER.warning(
            "%s: motion correction skipped: a %s grid cannot be registered (need %d voxels along "
            "each in-plane axis and 1 or at least 4 slices)",
            Path(dce_file).name,
            signal.shape[:3],
            motion.MIN_INPLANE,
        )
        correct = False
    if correct:
        times = read_dce_acquisition(dce_file, signal.shape[3]).times
        n_base, base_source = _baseline(signal, times, baseline_frames)
        result = motion.correct_motion(signal, img.affine, n_base, threads=threads)
        reference = result.reference
        out["dce"] = _save_like(result.corrected, img, dce_file, raw_root)
        text, flagged = confounds_table(result.params, result.fd, fd_threshold)
        tsv = str(Path("confounds_timeseries.tsv").resolve())
        write_text_atomic(tsv, text)
        sidecar = confounds_sidecar(result, fd_threshold, n_base, base_source, sources)
        if flagged.size:
            sidecar["Warnings"] = [
                f"{flagged.size} frame(s) with framewise displacement > {fd_threshold:g} mm: "
                f"{', '.join(str(int(i)) for i in flagged)}"
            ]
            LOGGER.warning("%s: %s", Path(dce_file).name, sidecar["Warnings"][0])
        xfm = str(Path("hmc_xfm.txt").resolve())
        write_text_atomic(xfm, motion.itk_transform_text(result.matrices))
        figure = _figure(signal, result.corrected, "hmc_dce.png")
        entries += [
            Entry(tsv, "perf", "timeseries", "confounds", ".tsv", sidecar),
            Entry(
                xfm,
                "perf",
                "xfm",
                "hmc",
                ".txt",
                {
                    "Description": "ITK transforms (one per frame, in frame order) mapping DCE reference "
                    "points to the same anatomy in each original frame",
                    "Software": software_info(),
                    "Sources": sources,
                },
                HMC_ENTITIES,
            ),
            Entry(figure, "figures", "dce", "hmc", ".png"),
        ]
    if vfa_files:
        out["vfa"], out["b1"], more = _align_vfa_files(
            vfa_files, b1_file, dce_file, signal.shape[3], img, reference, correct, threads, raw_root
        )
        entries += more
    out["raw_root"] = str(raw_root)
    mirror = Path(MIRROR).resolve()
    written = [p for p in [out["dce"], *out["vfa"], out["b1"]] if p and Path(p).is_relative_to(mirror)]
    if written:  # hand on one tree: changed files and links to the unchanged ones
        out["dce"] = out["dce"] if out["dce"] in written else _link_like(out["dce"], raw_root)
        out["vfa"] = [v if v in written else _link_like(v, raw_root) for v in out["vfa"]]
        if out["b1"]:
            out["b1"] = out["b1"] if out["b1"] in written else _link_like(out["b1"], raw_root)
        out["raw_root"] = str(mirror)
    out["manifest"] = str(Path("manifest.json").resolve())
    write_manifest(out["manifest"], entries)
    return out


def _align_vfa_files(
    vfa_files, b1_file, dce_file, n_frames, dce_img, dce_reference, register, threads, raw_root
):
    """VFA (and B1) files on the DCE grid; returns ``(vfa, b1, entries)``."""
    loaded = [_load(f, 3) for f in vfa_files]
    b1 = _load(b1_file, 3) if b1_file else None
    same = [
        tuple(d.shape) == tuple(dce_reference.shape) and np.allclose(i.affine, dce_img.affine, atol=1e-3)
        for i, d in loaded + ([b1] if b1 else [])
    ]
    if all(same) and not register:
        return [str(f) for f in vfa_files], (str(b1_file) if b1_file else None), []
    flips, _ = read_vfa_acquisition(vfa_files)
    dce_flip = read_dce_acquisition(dce_file, n_frames).flip_angle
    ref_index = int(np.argmin(np.abs(np.asarray(flips) - dce_flip)))
    try:
        aligned = motion.align_vfa(
            [d for _, d in loaded],
            [i.affine for i, _ in loaded],
            dce_reference,
            dce_img.affine,
            ref_index,
            b1=None if b1 is None else b1[1],
            b1_affine=None if b1 is None else b1[0].affine,
            register=register,
            threads=threads,
        )
    except ValueError as exc:
        raise ValueError(f"{vfa_files[ref_index]}: {exc} of {dce_file}") from None
    covered = float(aligned.coverage.mean())
    if covered < 1.0:
        LOGGER.warning(
            "%s: %.0f %% of the DCE voxels lie outside the VFA field of view (T1 not estimated there)",
            Path(dce_file).name,
            100 * (1 - covered),
        )
    vfa = [_save_like(v, dce_img, f, raw_root) for v, f in zip(aligned.vfa, vfa_files, strict=True)]
    b1_out = _save_like(aligned.b1, dce_img, b1_file, raw_root) if b1 is not None else None
    xfm = str(Path("vfa_xfm.txt").resolve())
    write_text_atomic(xfm, motion.itk_transform_text(aligned.matrices))
    sidecar = {
        "Description": "ITK transforms (one per VFA volume, in flip-angle order) mapping DCE reference "
        "points to the same anatomy in each VFA volume; each VFA volume was resampled once onto the "
        "DCE grid with its transform (cubic B-spline interpolation after Gaussian anti-aliasing)",
        "Registered": bool(register),
        "ReferenceFlipAngle": float(flips[ref_index]),
        "DCEVoxelsCovered": covered,
        "Software": software_info(),
        "Sources": _provenance([*vfa_files, dce_file], raw_root),
    }
    return vfa, b1_out, [Entry(xfm, "anat", "xfm", None, ".txt", sidecar, VFA_ENTITIES)]
