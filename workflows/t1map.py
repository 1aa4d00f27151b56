"""T1 map stage: pre-contrast T1 (T10) from variable-flip-angle images, or a fixed ``--t10``."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.config import Config

from . import interfaces as ifc

#: methods text of each ``--t1-method``
METHOD_TEXT = {
    "vfa-linear": "the linearised (DESPOT1) variable-flip-angle fit",
    "vfa-nonlinear": "a non-linear least-squares fit of the SPGR equation",
    "two-angle": "the closed-form two-flip-angle solution",
}


def init_t1map_wf(*, config: Config, use_vfa=True, use_b1=False, name="t1map_wf"):
    """Pre-contrast T1 (T10) map: VFA fit (:func:`bidsapp.compute_t1_map`), or the fixed ``--t10``.

    Parameters
    ----------
    config : Config
        ``t1_method``, ``t1_validity`` (VFA) or ``t10`` (s, without VFA data).
    use_vfa : bool
        Fit the VFA volumes; ``False``: a constant T1 of ``config.t10`` on the DCE grid.
    use_b1 : bool
        Correct the flip angles with the TB1map.
    name : str
        Name of the workflow.

    Inputs
    ------
    vfa
        VFA volumes on the DCE grid, ascending flip angle (with ``use_vfa``).
    dce
        DCE series (its grid, for the fixed T1).
    b1
        TB1map in percent on the DCE grid (with ``use_b1``).
    raw_root
        Root of the raw dataset (provenance of the sidecars).

    Outputs
    -------
    t1
        T1 map (s).
    mask
        Voxels with a T1 (the ``t1_validity`` rule).
    manifest
        Derivative entries (T1, M0 and residual maps with sidecars; none for a fixed T1).
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["vfa", "dce", "b1", "raw_root"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["t1", "mask", "manifest"]), name="outputnode")
    if use_vfa:
        validity = (
            "Every physically valid fit (0 < exp(-TR/T1) < 1, T1 within 1 ms-10 s, M0 > 0) kept its "
            "T1; fits with a relative residual above 0.1 were flagged as poor fits but kept."
            if config.t1_validity == "physical"
            else "Voxels whose fit was not physically valid or had a relative residual above 0.1 were "
            "excluded."
        )
        wf.__desc__ = (
            f"Pre-contrast T1 (T10) and M0 maps were estimated from the variable-flip-angle "
            f"spoiled gradient-echo images with {METHOD_TEXT[config.t1_method]} [@deoni2003]"
            + (", with the actual flip angles corrected by the measured B1 map. " if use_b1 else ". ")
            + validity
        )
        wf.__refs__ = ["deoni2003"]
        node = pe.Node(
            ifc.T1Map(method=config.t1_method, validity=config.t1_validity, threads=config.omp_nthreads),
            name="vfa_t1",
            n_procs=config.omp_nthreads,
        )
        wf.connect([(inputnode, node, [("vfa", "vfa_files"), ("raw_root", "raw_root")])])
        if use_b1:
            wf.connect(inputnode, "b1", node, "b1_file")
    else:
        wf.__desc__ = (
            f"No T1 mapping data were available; a fixed pre-contrast T1 of {config.t10} s was assumed."
        )
        wf.__refs__ = []
        node = pe.Node(ifc.FixedT1(t10=config.t10), name="fixed_t1")
        wf.connect(inputnode, "dce", node, "dce_file")
    wf.connect([(node, outputnode, [("t1", "t1"), ("mask", "mask"), ("manifest", "manifest")])])
    return wf
