"""AIF stage: the arterial input function, written once on the grid the fits use."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.config import AIFChoice, Config

from . import interfaces as ifc


def _methods_text(aif: AIFChoice):
    if aif.kind == "auto":
        return ("detected automatically in the concentration images (the Parker population AIF [@parker2006] "
                "was used instead where detection failed)")
    if aif.kind == "mask":
        return "averaged over a user-supplied arterial mask"
    if aif.kind == "table":
        return "read from a user-supplied table"
    return f"the {aif.value} population AIF [@parker2006], shifted to the detected bolus arrival"


def init_aif_wf(*, config: Config, aif: AIFChoice, name="aif_wf"):
    """Arterial input function (``--aif``; :func:`bidsapp.session_steps.aif_step`).

    Parameters
    ----------
    config : Config
        ``hematocrit`` (blood to plasma).
    aif : AIFChoice
        The session's ``--aif`` choice, placeholders filled in (:meth:`AIFChoice.for_session`).
    name : str
        Name of the workflow.

    Inputs
    ------
    conc, mask, acquisition
        Concentration (mM), analysis mask and acquisition JSON of the concentration stage.
    t1
        T1 map (s): blood T10 of an image AIF.
    vfa, b1
        VFA volumes and TB1map (percent) on the DCE grid, when present: the blood T10 is fitted
        to the pooled arterial VFA signal.
    raw_root
        Root of the raw dataset (provenance of the sidecars).

    Outputs
    -------
    tsv, json
        The AIF (``time`` s, ``plasma`` and ``blood`` mM) exactly as the fits use it, and its
        sidecar (source, quality, haematocrit, warnings).
    manifest
        Derivative entries (AIF table, AIF voxel mask).
    """
    wf = pe.Workflow(name=name)
    text = _methods_text(aif)
    wf.__desc__ = (f"The arterial input function was {text}; blood concentrations were converted to plasma "
                   f"with a haematocrit of {config.hematocrit}.")
    wf.__refs__ = ["parker2006"] if "parker2006" in text else []
    inputnode = pe.Node(IdentityInterface(fields=["conc", "mask", "acquisition", "t1", "raw_root", "vfa", "b1"]),
                        name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["tsv", "json", "manifest"]), name="outputnode")
    node = pe.Node(ifc.AIF(aif_kind=aif.kind, aif_value=aif.value, hematocrit=config.hematocrit), name="aif")
    wf.connect([(inputnode, node, [("conc", "conc"), ("mask", "mask"), ("acquisition", "acquisition"),
                                   ("t1", "t1_file"), ("raw_root", "raw_root"), ("vfa", "vfa"), ("b1", "b1")]),
                (node, outputnode, [("tsv", "tsv"), ("json", "json"), ("manifest", "manifest")])])
    return wf
