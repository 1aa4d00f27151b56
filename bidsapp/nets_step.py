"""File-in, file-out network step of one session (style of :mod:`bidsapp.session_steps`).

:func:`nets_step` reads the concentration (mM), the analysis mask, the acquisition JSON
and the AIF TSV exactly as :func:`bidsapp.session_steps.fit_step` does (one AIF, read by
:func:`bidsapp.session_steps.read_aif`), runs :func:`bidsapp.infer_parameters` with each
requested shipped network and writes, into the current folder:

* ``desc-<net>_<param>`` maps (``cnn``, ``punet``) of Ktrans (1/min), vp and ve
  (fractions), NaN outside the mask and where not estimated (ve where Ktrans < 0.01 /min);
* ``desc-punetStd_<param>``: the probabilistic U-Net's SD over its prior draws;

each with a sidecar naming the network, its weights' sha256, the input contract and the
envelope warnings, plus a ``manifest``. When the envelope guard refuses the series (e.g.
shorter than the 300 s the networks were trained on), no map is written, a warning is
logged and the manifest lists nothing: the run goes on.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

from .derivatives import Entry, software_info, write_manifest
from .registry.kinetic import get_model
from .session_steps import AIF_REF, CONC_REF, _load, _save, read_aif

LOGGER = logging.getLogger("dcequant")
#: the maps each network writes (its model card's outputs)
PARAMETERS = ("Ktrans", "vp", "ve")
#: the published method each shipped network follows
NETWORK_DESCRIPTIONS = {
    "cnn": "direct-inference CNN after Ulas et al. 2018",
    "punet": "temporal convolutional network + probabilistic U-Net after Lyoo et al. 2025 "
    "(mean over draws of the prior latent)",
}


def sd_label(net):
    """``desc`` label of a network's SD maps (``punet`` -> ``punetStd``)."""
    return f"{net}Std"


def _acquisition(info, t):
    """Return the envelope-guard quantities of the acquisition JSON (unknown ones ``None``)."""
    arrival = info.get("BolusArrivalTime")
    return {
        "flip_angle": info.get("FlipAngle"),
        "repetition_time": info.get("RepetitionTimeExcitation"),
        "field_strength": info.get("MagneticFieldStrength"),
        "baseline_length": None if arrival is None else float(arrival) - float(t[0]),
    }


def nets_step(nets, conc_file, mask_file, acquisition_file, aif_tsv, aif_json, device, seed=0):
    """Run the shipped kinetic networks ``nets`` on one session; see the module docstring.

    Returns ``manifest`` (path) and ``refused`` (the envelope guard's message, ``""`` when
    the networks ran).
    """
    from .nets.contract import EnvelopeError
    from .nets.infer import NETS_WITH_SD, infer_parameters

    img, conc = _load(conc_file, 4)
    _, mask = _load(mask_file, 3)
    info = json.loads(Path(acquisition_file).read_text())
    aif_info = json.loads(Path(aif_json).read_text())
    t = np.asarray(info["VolumeTiming"], float)
    plasma, aif_times = read_aif(aif_tsv, t)
    aif = plasma if aif_times is None else np.interp(t, aif_times, plasma)
    units = get_model("extended_tofts").units
    out = {"manifest": str(Path("manifest.json").resolve()), "refused": ""}
    entries = []
    for net in nets:
        try:
            with warnings.catch_warnings():  # the messages are in the result (and the sidecars)
                warnings.simplefilter("ignore", UserWarning)
                result = infer_parameters(
                    conc,
                    t,
                    aif,
                    mask=mask > 0,
                    net=net,
                    device=device,
                    acquisition=_acquisition(info, t),
                    seed=seed,
                )
        except EnvelopeError as error:
            out["refused"] = f"networks not run: {error}"
            LOGGER.warning("%s: %s", conc_file, out["refused"])
            entries = []
            break
        common = {
            "Network": net,
            "NetworkDescription": NETWORK_DESCRIPTIONS.get(net, net),
            "NetworkWeightsSHA256": result.sha256,
            "InputContract": result.input_contract,
            "EnvelopeWarnings": result.envelope_warnings,
            "Warnings": [f"{net}: {message}" for message in result.envelope_warnings],
            "Model": "extended_tofts",
            "AIF": {"Source": aif_info["Source"], "Quality": aif_info.get("Quality")},
            "Software": software_info(),
        }
        provenance = {
            "links": {"AIF.File": AIF_REF, "Sources": [CONC_REF, AIF_REF]},
            "run_metadata": ["T1Method"],
        }
        # a network with an SD writes all its SD maps, also one that is all NaN (ve where every
        # predicted Ktrans < 0.01 /min)
        has_sd = net in NETS_WITH_SD
        for name in PARAMETERS:
            sidecar = {**common, "Parameter": name, "Units": units[name]}
            path = _save(np.where(mask > 0, result.params[name], np.nan), img, f"{net}_{name}.nii.gz")
            description = f"{name} (extended Tofts) inferred by the {NETWORK_DESCRIPTIONS.get(net, net)}"
            entries.append(
                Entry(path, "perf", name, net, sidecar={**sidecar, "Description": description}, **provenance)
            )
            sd = np.where(mask > 0, result.stderr[name], np.nan)
            if has_sd:
                sd_path = _save(sd, img, f"{net}_{name}_sd.nii.gz")
                sd_sidecar = {
                    **sidecar,
                    "Description": f"Standard deviation over the prior draws of {description}",
                }
                entries.append(Entry(sd_path, "perf", name, sd_label(net), sidecar=sd_sidecar, **provenance))
    write_manifest(out["manifest"], entries)
    return out
