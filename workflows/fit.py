"""Fit stage: voxel-wise kinetic model fit of one model."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.config import Config
from bidsapp.registry import get_model

from . import interfaces as ifc
from .aif import cite_keys


def node_name(text):
    """``text`` as a Nipype node name (non-alphanumerics become ``_``)."""
    return "".join(c if c.isalnum() else "_" for c in text)


def init_fit_wf(*, config: Config, model, name=None):
    """Fit one kinetic model voxel-wise, with standard errors, R² and a quality mask.

    The fit is :func:`bidsapp.fit_model` through :func:`bidsapp.session_steps.fit_step`.

    The fit node sets up its process (torch threads, seed, allocator;
    :func:`bidsapp.runtime.configure_process`), since under MultiProc it runs in a worker.

    Parameters
    ----------
    config : Config
        ``fit_delay``, ``device``, ``random_seed``, ``omp_nthreads``.
    model : str
        Kinetic model (``tofts``, ``extended_tofts``, ``patlak``, ``2cxm``, ``2cum``).
    name : str
        Name of the workflow; default ``fit_<model>_wf``.

    Inputs
    ------
    conc, mask, acquisition
        Concentration (mM), analysis mask and acquisition JSON of the concentration stage.
    aif_tsv, aif_json
        The AIF table and sidecar of the AIF stage (read as written: no AIF is re-evaluated).

    Outputs
    -------
    manifest
        Derivative entries (parameter and standard-error maps, R², quality mask; their
        ``Sources``, ``AIF.File`` and ``T1Method`` are filled in by the datasink).
    r2, quality
        R² map and quality mask.
    """
    wf = pe.Workflow(name=name or f"fit_{node_name(model)}_wf")
    spec = get_model(model)
    delay = " and a bolus-arrival delay" if config.fit_delay else ""
    wf.__desc__ = (
        f"Concentration curves were fitted voxel-wise with {spec.methods}{delay} by non-linear least "
        "squares; standard errors come from the Jacobian at the optimum and a quality mask keeps "
        f"converged fits within the parameter bounds {cite_keys(spec.citations)}."
    )
    wf.__refs__ = list(spec.citations)
    inputnode = pe.Node(
        IdentityInterface(fields=["conc", "mask", "acquisition", "aif_tsv", "aif_json"]), name="inputnode"
    )
    outputnode = pe.Node(IdentityInterface(fields=["manifest", "r2", "quality"]), name="outputnode")
    node = pe.Node(
        ifc.FitModel(
            model=model,
            fit_delay=config.fit_delay,
            device=config.device,
            seed=config.random_seed,
            threads=config.omp_nthreads,
        ),
        name="fit",
        n_procs=config.omp_nthreads,
    )
    wf.connect(
        [
            (
                inputnode,
                node,
                [
                    ("conc", "conc"),
                    ("mask", "mask"),
                    ("acquisition", "acquisition"),
                    ("aif_tsv", "aif_tsv"),
                    ("aif_json", "aif_json"),
                ],
            ),
            (node, outputnode, [("manifest", "manifest"), ("r2", "r2"), ("quality", "quality")]),
        ]
    )
    return wf
