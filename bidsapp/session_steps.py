"""File-in, file-out processing steps of one subject/session.

Each step reads NIfTI/JSON inputs, calls the public ``bidsapp`` API (T1 mapping,
signal-to-concentration, AIF, model fitting), writes its results into the current
folder (a Nipype node's working folder) and returns a dict of output paths plus a
``manifest`` JSON listing the derivative files it produced (see
:mod:`bidsapp.derivatives`). The Nipype interfaces in :mod:`workflows.interfaces` are
thin wrappers around these functions, so every step is also usable without Nipype.

All outputs are deterministic functions of the inputs and options (fixed random
seed, float32 maps, fixed NIfTI headers), so a resumed run reproduces them exactly.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np

from .acquisition import read_dce_acquisition, read_vfa_acquisition, resolve_relaxivity
from .bolus_arrival import estimate_bolus_arrival
from .derivatives import Entry, model_label, ref, software_info, stderr_label, write_manifest
from .io_utils import save_nifti_atomic, write_json_atomic, write_text_atomic
from .registry.kinetic import get_model

LOGGER = logging.getLogger("dcequant")
#: background threshold of the analysis mask, as a fraction of the bright first-frame signal
SIGNAL_FRACTION = 0.1
#: population AIF used when image detection finds no acceptable arterial curve
FALLBACK_POPULATION_AIF = "parker"


def _load(path, ndim=None):
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=float)
    if ndim is not None and data.ndim != ndim:
        if ndim == 3 and data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        else:
            raise ValueError(f"{path}: expected a {ndim}-D image, got shape {data.shape}")
    return img, data


def _save(array, ref_img, name, dtype=np.float32):
    """Save ``array`` on the grid of ``ref_img`` as ``./name``; return the absolute path.

    Float maps keep NaN where nothing was estimated (non-finite values become NaN).
    """
    array = np.asarray(array)
    if dtype is np.float32:  # not estimated stays NaN (never a plausible 0); ±inf is not a value either
        array = array.astype(np.float32)
        array[~np.isfinite(array)] = np.nan
    else:
        array = array.astype(dtype)
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(array, ref_img.affine, header)
    img.set_qform(ref_img.affine, code=1)
    img.set_sform(ref_img.affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    path = Path(name).resolve()
    save_nifti_atomic(img, path)
    return str(path)


def _same_grid(path_a, shape_a, path_b, shape_b):
    if tuple(shape_a[:3]) != tuple(shape_b[:3]):
        raise ValueError(
            f"{path_b}: grid {tuple(shape_b[:3])} differs from {path_a} {tuple(shape_a[:3])} "
            "(dcequant does not resample; register the inputs first)"
        )


def _provenance(sources, raw_root):
    """BIDS URIs of the input files (``bids:raw:<relative path>``)."""
    out = []
    for source in sources:
        if not source:
            continue
        try:
            out.append("bids:raw:" + Path(source).resolve().relative_to(Path(raw_root).resolve()).as_posix())
        except ValueError:
            out.append(Path(source).resolve().as_uri())
    return out


def signal_mask(dce, fraction=SIGNAL_FRACTION):
    """Return the mask of voxels with signal in the first frame.

    Voxels whose first-frame signal exceeds ``fraction`` of the 99th percentile of the first frame: excludes
    background and air, where T1 and concentration are noise. (The T1 step applies it to the brightest flip
    angle of each voxel.)
    """
    first = np.asarray(dce, float)[..., 0]
    return first > fraction * np.percentile(first, 99)


def _b1_relative(b1_file, shape):
    if not b1_file:
        return None
    _, b1 = _load(b1_file, 3)
    _same_grid("the VFA/DCE data", shape, b1_file, b1.shape)
    return b1 / 100.0


def convert_dicom_step(dicom_dir, bids_dir, fallback_dir, subject, session):
    """Convert one session's DICOM to raw BIDS (the code behind ``dcequant-convert``).

    Files go into ``bids_dir`` when it is writable, else into ``fallback_dir`` (in the
    work folder); existing identical files are left as they are and existing different
    files are never replaced. Conversions are serialised with a lock file next to
    ``fallback_dir`` so parallel sessions do not race on ``participants.tsv``.
    Returns ``dce``, ``vfa`` (ascending flip), ``b1`` (or ``None``) and ``raw_root``.
    """
    import os

    from filelock import FileLock

    from .bids_raw import b1_path, dce_path, vfa_path
    from .conversion import convert_dicom_study

    target = Path(bids_dir) if os.access(bids_dir, os.W_OK) else Path(fallback_dir)
    target.mkdir(parents=True, exist_ok=True)
    Path(fallback_dir).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(Path(fallback_dir).parent / "dicom_conversion.lock")):
        result = convert_dicom_study(dicom_dir, target, subject, session_label=session or None)
    for entry in result.entries:
        if entry.files:
            LOGGER.info("DICOM conversion: %s %s", entry.status, ", ".join(str(f) for f in entry.files))
    if not result.ok:
        raise RuntimeError(f"DICOM conversion of {dicom_dir} failed: {'; '.join(result.errors)}")
    dce = dce_path(target, subject, session)
    if not dce.exists():
        raise RuntimeError(f"DICOM conversion of {dicom_dir} produced no DCE series ({dce.name})")
    vfa, index = [], 1
    while vfa_path(target, subject, session, index).exists():
        vfa.append(str(vfa_path(target, subject, session, index)))
        index += 1
    b1 = b1_path(target, subject, session)
    return {"dce": str(dce), "vfa": vfa, "b1": str(b1) if b1.exists() else None, "raw_root": str(target)}


def t1_step(vfa_files, b1_file, method, raw_root, validity="physical"):
    """Compute the VFA T1 map step.

    VFA T1 (s) and M0 maps and the relative fit residual (QC); outputs ``t1``, ``m0``, ``residual``, ``mask``
    (voxels with a T1 under the ``validity`` rule of :func:`bidsapp.compute_t1_map`) and ``manifest``. Poor
    fits (residual above ``max_residual``) are counted in the T1 sidecar and, under ``physical``, kept.
    """
    from . import compute_t1_map

    flips, tr = read_vfa_acquisition(vfa_files)
    if len(vfa_files) < 2:
        raise ValueError(f"{vfa_files[0]}: T1 mapping needs at least 2 flip angles, found {len(vfa_files)}")
    imgs = [_load(f, 3) for f in vfa_files]
    for (_img, data), path in zip(imgs[1:], vfa_files[1:], strict=True):
        _same_grid(vfa_files[0], imgs[0][1].shape, path, data.shape)
    signals = np.stack([d for _, d in imgs], axis=-1)
    b1 = _b1_relative(b1_file, signals.shape)
    # background (air) is not fitted: its noise often passes the physical rule and would read as tissue
    foreground = signal_mask(signals.max(axis=-1, keepdims=True))
    result = compute_t1_map(signals, flips, tr, method=method, b1=b1, mask=foreground, validity=validity)
    ref = imgs[0][0]
    out = {
        "t1": _save(result.t1, ref, "T1map.nii.gz"),
        "m0": _save(result.m0, ref, "M0map.nii.gz"),
        "residual": _save(result.residual, ref, "T1residual.nii.gz"),
        "mask": _save(result.valid, ref, "T1mask.nii.gz", np.uint8),
    }
    n_poor = int(result.poor_fit.sum())
    quality = {
        "T1Validity": validity,
        "PoorFitResidualThreshold": result.max_residual,
        "NumberOfT1Voxels": int(result.valid.sum()),
        "NumberOfPoorFitVoxels": n_poor,
        "PoorFitVoxelsKept": validity == "physical",
    }
    common = {
        "Software": software_info(),
        "Sources": _provenance([*vfa_files, b1_file], raw_root),
        "T1Method": method,
        "FlipAngles": flips.tolist(),
        "RepetitionTimeExcitation": tr,
        "B1Corrected": b1 is not None,
    }
    entries = [
        Entry(
            out["t1"],
            "anat",
            "T1map",
            "vfa",
            sidecar={
                **common,
                **quality,
                "Units": "s",
                "Description": "Pre-contrast longitudinal relaxation time (variable flip angle)",
            },
        ),
        Entry(
            out["m0"],
            "anat",
            "M0map",
            "vfa",
            sidecar={
                **common,
                "Units": "arbitrary",
                "Description": "Equilibrium magnetisation from the variable flip angle fit",
            },
        ),
        Entry(
            out["residual"],
            "anat",
            "T1residual",
            "vfa",
            sidecar={
                **common,
                **quality,
                "Units": "fraction",
                "Description": "Relative RMS residual of the variable flip angle fit, "
                "sqrt(mean((S - fit)^2)) / mean(S); above PoorFitResidualThreshold = poor fit",
            },
        ),
    ]
    out["manifest"] = str(Path("manifest.json").resolve())
    write_manifest(out["manifest"], entries)
    return out


def fixed_t1_step(dce_file, t10):
    """Constant T1 map (s) on the DCE grid when no VFA data exist."""
    img, data = _load(dce_file)
    shape = data.shape[:3]
    out = {
        "t1": _save(np.full(shape, float(t10)), img, "T1map.nii.gz"),
        "mask": _save(np.ones(shape, bool), img, "T1mask.nii.gz", np.uint8),
    }
    out["manifest"] = str(Path("manifest.json").resolve())
    write_manifest(out["manifest"], [])
    return out


def concentration_step(
    dce_file, t1_file, t1_mask_file, b1_file, relaxivity, baseline_frames, t1_source, raw_root
):
    """Gadolinium concentration (mM) from the DCE signal.

    Outputs ``conc``, ``mask`` (voxels with valid T1 and concentration), ``acquisition``
    (JSON: frame times, TR, flip angle, relaxivity and its source, baseline frames,
    bolus arrival (s, sub-frame, null when no enhancement was found) and its method,
    warnings) and ``manifest``. One estimate (:func:`bidsapp.bolus_arrival.estimate_bolus_arrival`)
    gives the arrival and, unless ``baseline_frames`` is given, the baseline frames.
    """
    from . import signal_to_concentration

    img, signal = _load(dce_file, 4)
    _, t10 = _load(t1_file, 3)
    _, t1_valid = _load(t1_mask_file, 3)
    _same_grid(dce_file, signal.shape, t1_file, t10.shape)
    acq = read_dce_acquisition(dce_file, signal.shape[3])
    relax = resolve_relaxivity(relaxivity, acq.agent, acq.field_strength)
    warnings = list(relax.warnings)
    mask = (t1_valid > 0) & signal_mask(signal)
    arrival = estimate_bolus_arrival(signal, acq.times, mask)
    if baseline_frames is None:
        n_base = arrival.baseline_frames
        warnings += arrival.warnings
        base_source = "detected: the frames before the bolus arrival"
    else:
        n_base, base_source = int(baseline_frames), "user (--baseline-frames)"
        if n_base >= signal.shape[3]:
            raise ValueError(f"--baseline-frames {n_base}: {dce_file} has only {signal.shape[3]} frames")
        if np.isfinite(arrival.time) and n_base > arrival.baseline_frames:
            warnings.append(
                f"--baseline-frames {n_base} includes frames acquired after the estimated bolus "
                f"arrival at {arrival.time:.2f} s ({arrival.baseline_frames} frames before it)"
            )
    b1 = _b1_relative(b1_file, signal.shape)
    t10 = np.where(mask, t10, 1.0)  # placeholder T1 where T1 mapping failed; those voxels are masked out
    result = signal_to_concentration(
        signal, t10, acq.tr, acq.flip_angle, relax.value, n_base, method="spgr", b1=b1
    )
    mask = mask & np.asarray(result.voxel_valid, bool)
    for message in warnings:
        LOGGER.warning("%s: %s", Path(dce_file).name, message)
    concentration = np.where(mask[..., None], result.concentration, np.nan)  # outside the mask: not estimated
    out = {
        "conc": _save(concentration, img, "conc.nii.gz"),
        "mask": _save(mask, img, "mask.nii.gz", np.uint8),
    }
    info = {
        "VolumeTiming": acq.times.tolist(),
        "RepetitionTimeExcitation": acq.tr,
        "FlipAngle": acq.flip_angle,
        "MagneticFieldStrength": acq.field_strength,
        "ContrastBolusAgent": acq.agent,
        "Relaxivity": relax.value,
        "RelaxivityUnits": "/mM/s",
        "RelaxivitySource": relax.source,
        "BaselineFrames": n_base,
        "BaselineFramesSource": base_source,
        "BolusArrivalTime": arrival.time if np.isfinite(arrival.time) else None,
        "BolusArrivalTimeUnits": "s",
        "BolusArrivalMethod": arrival.method,
        "T1Source": t1_source,
        "B1Corrected": b1 is not None,
        "Warnings": warnings,
    }
    out["acquisition"] = str(Path("acquisition.json").resolve())
    write_json_atomic(out["acquisition"], info)
    sidecar = {
        "Description": "Contrast agent concentration (SPGR signal model, fast exchange)",
        "Units": "mM",
        "Software": software_info(),
        "Sources": _provenance([dce_file, b1_file], raw_root),
        **info,
    }
    out["manifest"] = str(Path("manifest.json").resolve())
    write_manifest(out["manifest"], [Entry(out["conc"], "perf", "dce", "conc", sidecar=sidecar)])
    return out


def _read_aif_table(path, t):
    """Plasma curve (mM) from a TSV/CSV with columns ``time`` (s) and ``plasma`` (mM)."""
    import pandas as pd

    sep = "," if str(path).endswith(".csv") else "\t"
    try:
        table = pd.read_csv(path, sep=sep)
    except (OSError, ValueError) as exc:
        raise ValueError(f"--aif {path}: cannot read table ({exc})") from None
    for column in ("time", "plasma"):
        if column not in table.columns:
            raise ValueError(f"--aif {path}: column {column!r} is missing (need 'time' in s, 'plasma' in mM)")
    time = table["time"].to_numpy(float)
    if time.min() > t.min() + 1e-6 or time.max() < t.max() - 1e-6:
        raise ValueError(
            f"--aif {path}: 'time' spans {time.min()}-{time.max()} s, the DCE series {t.min()}-{t.max()} s"
        )
    return np.interp(t, time, table["plasma"].to_numpy(float))


def aif_step(
    conc_file, mask_file, acquisition_file, t1_file, aif, hematocrit, raw_root, vfa_files=None, b1_file=None
):
    """Arterial input function.

    Outputs ``tsv`` (time s, plasma mM, blood mM), ``json``, ``aif_mask`` (selected voxels, may be all zero)
    and ``manifest``.

    ``aif`` (:class:`bidsapp.config.AIFChoice`, placeholders filled in): ``auto`` (detected in
    the image by :func:`bidsapp.detect_aif` with
    signal-domain pooling from the acquisition's TR, flip angle and relaxivity and the area
    check against the Parker AIF; it falls back to the Parker population AIF, with a
    warning, when no arterial curve of sufficient quality is found, e.g. when partial
    volume leaves no pure arterial voxel), a population AIF, a TSV/CSV table, or a NIfTI ROI mask
    of arterial voxels on the DCE grid. With ``auto``, the VFA volumes the T1 map came from
    (``vfa_files``, on the DCE grid) give the blood T10 as one fit to the pooled arterial VFA
    signal, and ``b1_file`` (percent) the flip-angle scale of the signal model.

    The TSV holds the AIF exactly as the fit uses it, once: an image, mask or table AIF at
    the frame times; a population AIF on its sub-step grid (:func:`population_grid`), so the
    fit, the report's example curves and any later reader use the same samples and no
    reader evaluates a population curve again.
    """
    from . import AIFOptions, aif_from_mask, detect_aif, population_aif

    img, conc = _load(conc_file, 4)
    _, mask = _load(mask_file, 3)
    _, t10 = _load(t1_file, 3)
    info = json.loads(Path(acquisition_file).read_text())
    t = np.asarray(info["VolumeTiming"], float)
    arrival = info.get("BolusArrivalTime")  # s; None when no enhancement was found
    warnings, source, quality, aif_mask = [], None, None, np.zeros(conc.shape[:3], bool)
    population = None  # (name, bolus arrival s) of an analytic AIF, evaluated on its sub-step grid below
    blood_t10 = None  # the blood T10 an image AIF was converted with

    if aif.kind == "auto":
        signal_model = {
            "tr": info["RepetitionTimeExcitation"],
            "flip_angle": info["FlipAngle"],
            "relaxivity": info["Relaxivity"],
        }
        b1 = _b1_relative(b1_file, conc.shape)
        if b1 is not None:
            signal_model["b1"] = b1
        vfa = None
        if vfa_files:
            flips, tr = read_vfa_acquisition(vfa_files)
            signals = np.stack([_load(f, 3)[1] for f in vfa_files], axis=-1)
            _same_grid(conc_file, conc.shape, vfa_files[0], signals.shape)
            vfa = {"signals": signals, "flip_angles": flips, "tr": tr}
        options = AIFOptions(fallback=FALLBACK_POPULATION_AIF, population_check=FALLBACK_POPULATION_AIF)
        result = detect_aif(
            conc,
            t,
            t10=t10,
            mask=mask > 0,
            hematocrit=hematocrit,
            signal_model=signal_model,
            bolus_arrival=arrival,
            vfa=vfa,
            baseline_frames=info["BaselineFrames"],
            options=options,
        )
        plasma, blood, source, quality = result.plasma, result.blood, result.source, float(result.quality)
        aif_mask, warnings = np.asarray(result.mask, bool), warnings + list(result.warnings)
        if result.source == "image":
            blood_t10 = result.blood_t10
        if result.bolus_arrival is not None:  # fell back to the population curve
            population = (source.split(":", 1)[1], float(result.bolus_arrival))
    elif aif.kind == "population":
        if arrival is None:
            raise ValueError(
                f"--aif {aif}: {acquisition_file} has no BolusArrivalTime (no enhancement found), "
                "so the population AIF cannot be aligned; give an AIF table instead"
            )
        population, source = (aif.value, arrival), f"population:{aif.value}"
    elif aif.kind == "table":
        plasma = _read_aif_table(aif.value, t)
        blood, source = plasma * (1.0 - hematocrit), f"file:{aif.path.name}"
    elif aif.kind == "mask":
        _, roi = _load(aif.value, 3)
        _same_grid(conc_file, conc.shape, aif.value, roi.shape)
        result = aif_from_mask(conc, roi > 0, t, hematocrit=hematocrit)
        plasma, blood, source, quality = result.plasma, result.blood, result.source, float(result.quality)
        aif_mask, warnings = np.asarray(result.mask, bool), warnings + list(result.warnings)
    else:
        raise ValueError(f"--aif: unknown kind {aif.kind!r} (parse the option with AIFChoice.parse)")
    times, grid = t, "frames"
    if population is not None:
        times = population_grid(t)
        plasma = population_aif(population[0], times, bolus_arrival=population[1], hematocrit=hematocrit)
        blood = plasma * (1.0 - hematocrit)
        grid = (
            f"frame intervals in equal sub-steps of at most {POPULATION_AIF_STEP} s (the frames among them)"
        )
    for message in warnings:
        LOGGER.warning("AIF: %s", message)
    rows = ["time\tplasma\tblood"] + [
        f"{a!r}\t{b!r}\t{c!r}"
        for a, b, c in zip(
            times.tolist(), np.asarray(plasma, float).tolist(), np.asarray(blood, float).tolist(), strict=True
        )
    ]
    out = {
        "tsv": str(Path("aif.tsv").resolve()),
        "json": str(Path("aif.json").resolve()),
        "aif_mask": _save(aif_mask, img, "aif_mask.nii.gz", np.uint8),
    }
    write_text_atomic(out["tsv"], "\n".join(rows) + "\n")
    sidecar = {
        "Description": "Arterial input function, as used by the kinetic fits",
        "Source": source,
        "Quality": quality,
        "Hematocrit": hematocrit,
        "NumberOfVoxels": int(aif_mask.sum()),
        "Grid": grid,
        "Warnings": warnings,
        "time": {"Description": "time from the first dynamic frame", "Units": "s"},
        "plasma": {"Description": "plasma concentration", "Units": "mM"},
        "blood": {"Description": "whole-blood concentration (plasma x (1 - hematocrit))", "Units": "mM"},
        "Software": software_info(),
        "Sources": _provenance([aif.value if aif.path and aif.path.exists() else None], raw_root),
    }
    if blood_t10 is not None:
        se = blood_t10["standard_error"]
        sidecar["BloodT1"] = {
            "Value": blood_t10["value"],
            "StandardError": se if np.isfinite(se) else None,
            "Units": "s",
            "Voxels": blood_t10["voxels"],
            "Method": f"{blood_t10['method']} of the arterial blood pool "
            "(bootstrap standard error over its voxels); "
            "the AIF area changes by about -2x its relative error",
        }
    if population is not None:
        sidecar["PopulationAIF"] = {
            "Name": population[0],
            "BolusArrival": population[1],
            "BolusArrivalUnits": "s",
        }
    write_json_atomic(out["json"], sidecar)
    entries = [Entry(out["tsv"], "perf", "timeseries", "aif", ".tsv", sidecar)]
    if aif_mask.any():
        entries.append(
            Entry(
                out["aif_mask"],
                "perf",
                "mask",
                "aif",
                sidecar={
                    "Description": "Voxels averaged into the AIF",
                    "Type": "ROI",
                    "Software": software_info(),
                },
            )
        )
    out["manifest"] = str(Path("manifest.json").resolve())
    write_manifest(out["manifest"], entries)
    return out


POPULATION_AIF_STEP = 0.5  # s: the longest sub-step on which analytic AIFs are given to the fit


def population_grid(t):
    """Return the times (s) at which an analytic population AIF is written and fitted.

    Every frame interval is split into equal sub-steps of at most
    :data:`POPULATION_AIF_STEP` (the frames are among them), so the exact convolution
    resolves the first pass between frames (see :class:`bidsapp.models.PlasmaInput`).
    """
    import torch

    from .convolution import substep_times

    n_sub = int(np.ceil(float(np.max(np.diff(t))) / POPULATION_AIF_STEP - 1e-9))
    return substep_times(torch.as_tensor(t, dtype=torch.float64), max(n_sub, 1)).numpy()


def read_aif(aif_tsv, t):
    """Read the plasma AIF (mM) of an AIF TSV and its time grid.

    The plasma AIF (mM) of an AIF TSV and its time grid: ``(plasma, aif_times)``, with ``aif_times`` None when
    the AIF is sampled at the frame times ``t`` (s).
    """
    table = np.loadtxt(aif_tsv, skiprows=1, ndmin=2)
    times, plasma = table[:, 0], table[:, 1]
    if times.shape == np.shape(t) and np.allclose(times, t, rtol=0, atol=1e-9):
        return plasma, None
    return plasma, times


#: derivatives of the session a fit was computed from (the datasink writes them as URIs)
CONC_REF = ref("perf", "dce", "conc")
AIF_REF = ref("perf", "timeseries", "aif", ".tsv")


def fit_step(model, conc_file, mask_file, acquisition_file, aif_tsv, aif_json, fit_delay, device):
    """Fit ``model`` voxel-wise.

    Outputs one map per parameter (and its standard error), ``r2``, ``quality`` mask and
    ``manifest``.

    Sidecars name the concentration and the AIF derivative they came from (``Sources``,
    ``AIF.File``) and the run's ``T1Method`` through :class:`bidsapp.derivatives.Entry`
    links, filled in by the datasink. Thread counts and seeds are the caller's
    (:func:`bidsapp.runtime.configure_process`).
    """
    from . import fit_model

    img, conc = _load(conc_file, 4)
    _, mask = _load(mask_file, 3)
    info = json.loads(Path(acquisition_file).read_text())
    aif_info = json.loads(Path(aif_json).read_text())
    t = np.asarray(info["VolumeTiming"], float)
    aif, aif_times = read_aif(aif_tsv, t)
    spec = get_model(model)
    fit = fit_model(
        model, conc, t, aif, mask=mask > 0, fit_delay=bool(fit_delay), device=device, aif_times=aif_times
    )
    quality = np.asarray(fit.valid, bool) & (mask > 0)
    label = model_label(model)
    common = {
        "Model": spec.name,
        "ModelDescription": spec.description,
        "FitDelay": bool(fit_delay),
        "AIF": {"Source": aif_info["Source"], "Quality": aif_info.get("Quality")},
        "Relaxivity": info["Relaxivity"],
        "RelaxivityUnits": "/mM/s",
        "RelaxivitySource": info["RelaxivitySource"],
        "Hematocrit": aif_info["Hematocrit"],
        "BaselineFrames": info["BaselineFrames"],
        "T1Source": info["T1Source"],
        "Software": software_info(),
    }
    provenance = {
        "links": {"AIF.File": AIF_REF, "Sources": [CONC_REF, AIF_REF]},
        "run_metadata": ["T1Method"],
    }
    out, entries = {}, []
    for name, values in fit.params.items():
        units = spec.units[name]
        path = _save(np.where(mask > 0, values, np.nan), img, f"{name}.nii.gz")
        entries.append(
            Entry(
                path,
                "perf",
                name,
                label,
                sidecar={
                    **common,
                    "Parameter": name,
                    "Units": units,
                    "Description": spec.parameter_description(name),
                },
                **provenance,
            )
        )
        if name in fit.stderr:
            err = _save(np.where(mask > 0, fit.stderr[name], np.nan), img, f"{name}_stderr.nii.gz")
            entries.append(
                Entry(
                    err,
                    "perf",
                    name,
                    stderr_label(model),
                    sidecar={
                        **common,
                        "Parameter": name,
                        "Units": units,
                        "Description": f"Standard error of {spec.parameter_description(name)}",
                    },
                    **provenance,
                )
            )
    out["r2"] = _save(np.where(mask > 0, fit.r2, np.nan), img, "R2map.nii.gz")
    out["quality"] = _save(quality, img, "quality_mask.nii.gz", np.uint8)
    entries.append(
        Entry(
            out["r2"],
            "perf",
            "R2map",
            label,
            sidecar={**common, "Units": "fraction", "Description": "Coefficient of determination of the fit"},
            **provenance,
        )
    )
    entries.append(
        Entry(
            out["quality"],
            "perf",
            "mask",
            label,
            sidecar={
                **common,
                "Type": "ROI",
                "Description": "Voxels whose fit converged within bounds (quality mask)",
            },
            **provenance,
        )
    )
    out["manifest"] = str(Path("manifest.json").resolve())
    write_manifest(out["manifest"], entries)
    return out
