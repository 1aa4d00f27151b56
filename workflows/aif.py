"""AIF stage: the arterial input function, written once on the grid the fits use."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.config import AIFChoice, Config
from bidsapp.registry import get_population_aif
from bidsapp.session_steps import FALLBACK_POPULATION_AIF

from . import interfaces as ifc


def cite_keys(keys):
    """Pandoc-style citation of registry keys: ``[@tofts1999]``, ``[@weinmann1984; @tofts1991]``."""
    return "[" + "; ".join(f"@{key}" for key in keys) + "]"


def _methods_text(aif: AIFChoice):
    """Return the methods phrase for the AIF choice and the citation keys it uses."""
    if aif.kind == "auto":
        fallback = get_population_aif(FALLBACK_POPULATION_AIF)
        refs = list(fallback.citations)
        return (
            f"detected automatically in the concentration images (the {fallback.human} {cite_keys(refs)} "
            "was used instead where detection failed)"
        ), refs
    if aif.kind == "mask":
        return "averaged over a user-supplied arterial mask", []
    if aif.kind == "table":
        return "read from a user-supplied table", []
    population = get_population_aif(aif.value)
    refs = list(population.citations)
    return f"the {population.human} {cite_keys(refs)}, shifted to the detected bolus arrival", refs


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
    text, refs = _methods_text(aif)
    wf.__desc__ = (
        f"The arterial input function was {text}; blood concentrations were converted to plasma "
        f"with a haematocrit of {config.hematocrit}."
    )
    wf.__refs__ = refs
    inputnode = pe.Node(
        IdentityInterface(fields=["conc", "mask", "acquisition", "t1", "raw_root", "vfa", "b1"]),
        name="inputnode",
    )
    outputnode = pe.Node(IdentityInterface(fields=["tsv", "json", "manifest"]), name="outputnode")
    node = pe.Node(ifc.AIF(aif_kind=aif.kind, aif_value=aif.value, hematocrit=config.hematocrit), name="aif")
    wf.connect(
        [
            (
                inputnode,
                node,
                [
                    ("conc", "conc"),
                    ("mask", "mask"),
                    ("acquisition", "acquisition"),
                    ("t1", "t1_file"),
                    ("raw_root", "raw_root"),
                    ("vfa", "vfa"),
                    ("b1", "b1"),
                ],
            ),
            (node, outputnode, [("tsv", "tsv"), ("json", "json"), ("manifest", "manifest")]),
        ]
    )
    return wf
