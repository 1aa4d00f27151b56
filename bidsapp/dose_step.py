"""File-in, file-out dose-reduction step of one session (style of :mod:`bidsapp.session_steps`).

:func:`dose_step` reads the pre-contrast ``anat/*_T1w``, the low-dose
``anat/*_acq-lowdose_ce-<agent>_T1w`` (sidecar: ``DoseFraction``,
``MagneticFieldStrength``, ``ContrastBolusAgent``) and optionally the standard-dose
``anat/*_acq-standarddose_ce-<agent>_T1w`` (``acq-fulldose`` as ``dcequant-convert``
names it), runs :func:`bidsapp.synthesize_standard_dose` and writes, into the current
folder, on the low-dose image's grid:

* ``*_ce-<agent>_desc-synthSD_T1w.nii.gz``: the synthesised standard-dose image
  (registered pre-contrast + predicted standard-dose enhancement);
* ``*_ce-<agent>_desc-ceSignal_T1w.nii.gz``: the predicted standard-dose
  contrast-enhancement signal;
* ``figures/*_ce-<agent>_desc-dose_T1w.png``: pre / low / synthesised / enhancement
  (and the acquired standard dose when present);

each with a sidecar (dose fraction and its source, the conditioning values, the
weights' sha256, the registration; with a standard dose, PSNR/SSIM of the synthesised
image and of the naive baseline against it), plus a ``manifest``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from .derivatives import Entry, software_info, write_manifest
from .session_steps import _load, _provenance, _save

#: conditions the shipped network was trained on (outside them the result is flagged)
TRAINED_FRACTIONS = (0.10, 0.33)
TRAINED_FIELDS_T = (1.5, 3.0)


def _json_of(nifti):
    return Path(str(nifti).replace(".nii.gz", ".json").replace(".nii", ".json"))


def read_low_dose_metadata(low_file, dose_fraction=None):
    """``(fraction, fraction_source, field_strength, agent)`` from the low-dose sidecar.

    ``dose_fraction`` (``--dose-fraction``) overrides ``DoseFraction``. Raises
    ``ValueError`` naming the file and the field when one is missing or invalid.
    """
    from .relaxivity import relaxivity_for

    path = _json_of(low_file)
    if not path.exists():
        raise ValueError(
            f"{path}: sidecar not found (needs DoseFraction, MagneticFieldStrength, ContrastBolusAgent)"
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if dose_fraction is None:
        fraction, source = meta.get("DoseFraction"), "DoseFraction (sidecar)"
        if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ValueError(
                f"{path}: DoseFraction = {fraction!r} must be a number in (0, 1) (or give --dose-fraction)"
            )
    else:
        fraction, source = dose_fraction, "--dose-fraction"
    field = meta.get("MagneticFieldStrength")
    if not isinstance(field, (int, float)) or not field > 0:
        raise ValueError(f"{path}: MagneticFieldStrength = {field!r} must be a positive number (T)")
    agent = meta.get("ContrastBolusAgent")
    if not isinstance(agent, str) or not agent:
        raise ValueError(f"{path}: ContrastBolusAgent = {agent!r} must name the contrast agent")
    try:
        relaxivity_for(agent, field)
    except ValueError as error:
        raise ValueError(f"{path}: ContrastBolusAgent/MagneticFieldStrength: {error}") from None
    return float(fraction), source, float(field), agent


def _ce_label(low_file):
    """Return the ``ce`` entity of the low-dose file name (the agent label of the outputs)."""
    for part in Path(low_file).name.split("_"):
        if part.startswith("ce-"):
            return part[3:]
    raise ValueError(f"{low_file}: low-dose file name has no ce-<agent> entity")


def _warnings(fraction, field):
    out = []
    if not TRAINED_FRACTIONS[0] - 1e-9 <= fraction <= TRAINED_FRACTIONS[1] + 1e-9:
        out.append(
            f"dose fraction {fraction:g} outside the trained range {TRAINED_FRACTIONS[0]:g}-"
            f"{TRAINED_FRACTIONS[1]:g}; the synthesised standard dose is an extrapolation"
        )
    if not TRAINED_FIELDS_T[0] - 0.1 <= field <= TRAINED_FIELDS_T[1] + 0.1:
        out.append(f"field strength {field:g} T outside the trained range 1.5-3 T")
    return out


def _comparison(synth, naive, standard, mask):
    from .nets.dose_metrics import psnr, ssim

    return {
        "PSNR": round(psnr(synth, standard, mask), 3),
        "SSIM": round(ssim(synth, standard, mask), 4),
        "NaiveBaselinePSNR": round(psnr(naive, standard, mask), 3),
        "NaiveBaselineSSIM": round(ssim(naive, standard, mask), 4),
        "Description": "against the acquired standard-dose image registered to the low-dose grid, "
        "over the head (low-dose signal above 10 % of its 99th percentile); naive baseline: "
        "registered pre-contrast + low-dose subtraction / dose fraction",
    }


def _figure(rows, path):
    from .report import figures

    Path(path).write_bytes(base64.b64decode(figures.map_grid(rows, "Gadolinium dose reduction")))
    return str(Path(path).resolve())


def dose_step(pre_file, low_file, standard_file, raw_root, dose_fraction=None, weights_directory=None):
    """Synthesise the standard-dose image of one session; see the module docstring.

    Returns ``synth``, ``ce``, ``figure`` (paths) and ``manifest``.
    """
    from . import synthesize_standard_dose
    from .nets.dose_inputs import align_to_low, head_mask

    fraction, source, field, agent = read_low_dose_metadata(low_file, dose_fraction)
    pre_img, pre = _load(pre_file, 3)
    low_img, low = _load(low_file, 3)
    voxel = np.asarray(low_img.header.get_zooms()[:3], float)
    result = synthesize_standard_dose(
        pre,
        low,
        fraction,
        field,
        agent,
        voxel,
        pre_affine=pre_img.affine,
        low_affine=low_img.affine,
        weights_directory=weights_directory,
    )
    label = _ce_label(low_file)
    sidecar = {
        "Software": software_info(),
        "Sources": _provenance([pre_file, low_file], raw_root),
        "DoseFraction": fraction,
        "DoseFractionSource": source,
        "ContrastBolusAgent": agent,
        "MagneticFieldStrength": field,
        "Conditioning": result.conditions,
        "ReferenceIntensity": result.reference_intensity,
        "DoseScale": result.dose_scale,
        "Network": "dose (conditional 3D U-Net, Pinetz et al. 2024)",
        "NetworkWeightsSHA256": result.weights_sha256,
        "RegistrationPreToLowDose": np.round(result.registration, 6).tolist(),
        "Warnings": _warnings(fraction, field),
    }
    rows = [
        dict(volume=result.pre_on_low, title="pre", units="signal", cmap="gray"),
        dict(volume=low, title=f"low dose ({fraction:.0%})", units="signal", cmap="gray"),
        dict(volume=result.synthetic_standard_dose, title="synthesised SD", units="signal", cmap="gray"),
        dict(volume=result.enhancement, title="enhancement", units="signal", cmap="magma"),
    ]
    synth_sidecar = dict(
        sidecar,
        Description="synthesised standard-dose T1-weighted image (registered "
        "pre-contrast + predicted standard-dose contrast enhancement), on the low-dose grid",
        Units="signal units of the input images",
    )
    if standard_file:
        std_img, standard = _load(standard_file, 3)
        standard_on_low, _ = align_to_low(standard, std_img.affine, low, low_img.affine)
        naive = result.pre_on_low + (low - result.pre_on_low) / fraction
        synth_sidecar["ComparisonWithStandardDose"] = _comparison(
            result.synthetic_standard_dose, naive, standard_on_low, head_mask(low)
        )
        synth_sidecar["Sources"] = _provenance([pre_file, low_file, standard_file], raw_root)
        rows.append(dict(volume=standard_on_low, title="acquired SD", units="signal", cmap="gray"))
    out = {
        "synth": _save(result.synthetic_standard_dose, low_img, "synthSD_T1w.nii.gz"),
        "ce": _save(result.enhancement, low_img, "ceSignal_T1w.nii.gz"),
        "figure": _figure(rows, "dose_T1w.png"),
    }
    ce_sidecar = dict(
        sidecar,
        Description="predicted standard-dose contrast-enhancement signal (standard-dose "
        "minus pre-contrast signal), on the low-dose grid",
        Units="signal units of the input images",
    )
    entities = {"ce": label}
    entries = [
        Entry(out["synth"], "anat", "T1w", "synthSD", ".nii.gz", synth_sidecar, entities),
        Entry(out["ce"], "anat", "T1w", "ceSignal", ".nii.gz", ce_sidecar, entities),
        Entry(out["figure"], "figures", "T1w", "dose", ".png", {}, entities),
    ]
    write_manifest("manifest.json", entries)
    out["manifest"] = str(Path("manifest.json").resolve())
    return out
