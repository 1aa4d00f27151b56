"""Network stage: extended Tofts maps (Ktrans, vp, ve) from the shipped kinetic networks."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.config import Config

from . import interfaces as ifc
from .aif import cite_keys

#: the methods sentence and the citation keys of each shipped network
METHODS = {
    "cnn": ("a direct-inference convolutional network after Ulas et al.", ["ulas2018"]),
    "punet": (
        "a temporal convolutional network followed by a probabilistic U-Net after Lyoo et al. "
        "(mean and standard deviation over draws from the prior latent)",
        ["lyoo2025", "kohl2018"],
    ),
}


def init_nets_wf(*, config: Config, nets, name="nets_wf"):
    """Infer extended Tofts maps with the shipped networks ``nets``.

    The step is :func:`bidsapp.nets_step.nets_step` (:func:`bidsapp.infer_parameters` per
    network). When the envelope guard refuses the series (shorter than the training
    duration), the node writes no map, logs a warning and the run goes on.

    Parameters
    ----------
    config : Config
        ``device``, ``random_seed`` (prior draws), ``omp_nthreads``.
    nets : list of str
        Shipped kinetic networks to run (``cnn``, ``punet``).
    name : str
        Workflow name.

    Inputs
    ------
    conc, mask, acquisition
        Concentration (mM), analysis mask and acquisition JSON of the concentration stage.
    aif_tsv, aif_json
        The AIF table and sidecar of the AIF stage (the AIF the fits use).

    Outputs
    -------
    manifest
        Derivative entries: ``desc-<net>_<param>`` and ``desc-punetStd_<param>`` maps
        (empty when the guard refused the series).
    refused
        The guard's message when the networks did not run, else ``""``.
    """
    wf = pe.Workflow(name=name)
    phrases = [METHODS[net][0] for net in nets]
    keys = list(dict.fromkeys(key for net in nets for key in METHODS[net][1]))
    wf.__desc__ = (
        "Extended Tofts maps (Ktrans, vp, ve) were also inferred from the concentration and the same AIF "
        f"by {' and by '.join(phrases)} {cite_keys(keys)}, trained on simulated data only; the input "
        "(concentration and plasma AIF divided by the AIF peak, resampled to 0-300 s every 5 s) and the "
        "training envelope are recorded in each map's sidecar, and series outside the envelope are flagged "
        "or, when shorter than 300 s, not processed."
    )
    wf.__refs__ = keys
    inputnode = pe.Node(
        IdentityInterface(fields=["conc", "mask", "acquisition", "aif_tsv", "aif_json"]), name="inputnode"
    )
    outputnode = pe.Node(IdentityInterface(fields=["manifest", "refused"]), name="outputnode")
    node = pe.Node(
        ifc.InferParameters(
            nets=list(nets), device=config.device, seed=config.random_seed, threads=config.omp_nthreads
        ),
        name="infer",
        n_procs=config.omp_nthreads,
    )
    fields = ["conc", "mask", "acquisition", "aif_tsv", "aif_json"]
    wf.connect(
        [
            (inputnode, node, [(f, f) for f in fields]),
            (node, outputnode, [("manifest", "manifest"), ("refused", "refused")]),
        ]
    )
    return wf
