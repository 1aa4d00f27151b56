"""Concentration stage: DCE signal to gadolinium concentration (mM)."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.config import Config

from . import interfaces as ifc


def init_concentration_wf(*, config: Config, t1_source, use_b1=False, name="concentration_wf"):
    """Signal to concentration (mM) by inverting the SPGR equation (:func:`bidsapp.signal_to_concentration`).

    The bolus arrival is estimated once here (:func:`bidsapp.bolus_arrival.estimate_bolus_arrival`);
    it sets the baseline frames unless ``--baseline-frames`` is given, and the shift of a
    population AIF downstream.

    Parameters
    ----------
    config : Config
        ``relaxivity`` (/mM/s; default from the DCE sidecar) and ``baseline_frames``
        (default: detected).
    t1_source : str
        Where the T1 map came from (``vfa`` or ``fixed T10 = <t10> s``; recorded in the sidecar).
    use_b1 : bool
        Scale the nominal flip angle by the TB1map.
    name : str
        Name of the workflow.

    Inputs
    ------
    dce
        DCE series (motion-corrected where corrected) with its sidecar.
    t1, t1_mask
        T1 map (s) and its valid voxels.
    b1
        TB1map in percent on the DCE grid (with ``use_b1``).
    raw_root
        Root of the raw dataset (provenance of the sidecars).

    Outputs
    -------
    conc
        Concentration (mM), NaN outside ``mask``.
    mask
        Voxels with a valid T1 and concentration (the analysis mask).
    acquisition
        JSON: frame times (s), TR (s), flip angle (deg), relaxivity, baseline frames, bolus arrival (s).
    manifest
        Derivative entries (concentration series and sidecar).
    """
    wf = pe.Workflow(name=name)
    relax = (
        f"a relaxivity of {config.relaxivity} /mM/s"
        if config.relaxivity
        else "the relaxivity of the contrast agent named in the DCE sidecar at its field strength "
        "(gadobutrol when not stated)"
    )
    base = (
        f"the first {config.baseline_frames} frames"
        if config.baseline_frames
        else "the frames before the bolus arrival, detected in the most strongly enhancing voxels"
    )
    wf.__desc__ = (
        f"The dynamic signal was converted to contrast agent concentration by inverting the "
        f"spoiled gradient-echo signal equation under fast water exchange, with {relax}, "
        f"the pre-contrast signal taken from {base} [@schabel2008]."
    )
    wf.__refs__ = ["schabel2008"]
    inputnode = pe.Node(
        IdentityInterface(fields=["dce", "t1", "t1_mask", "b1", "raw_root"]), name="inputnode"
    )
    outputnode = pe.Node(
        IdentityInterface(fields=["conc", "mask", "acquisition", "manifest"]), name="outputnode"
    )
    node = pe.Node(ifc.Concentration(t1_source=t1_source), name="concentration")
    if config.relaxivity is not None:
        node.inputs.relaxivity = config.relaxivity
    if config.baseline_frames is not None:
        node.inputs.baseline_frames = config.baseline_frames
    wf.connect(
        [
            (
                inputnode,
                node,
                [("dce", "dce_file"), ("t1", "t1_file"), ("t1_mask", "t1_mask"), ("raw_root", "raw_root")],
            ),
            (
                node,
                outputnode,
                [
                    ("conc", "conc"),
                    ("mask", "mask"),
                    ("acquisition", "acquisition"),
                    ("manifest", "manifest"),
                ],
            ),
        ]
    )
    if use_b1:
        wf.connect(inputnode, "b1", node, "b1_file")
    return wf
