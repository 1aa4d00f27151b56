"""Motion stage: rigid motion correction of the DCE series and VFA/B1 onto the DCE grid."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.config import Config

from . import interfaces as ifc


def init_motion_wf(*, config: Config, use_vfa=True, use_b1=False, name="motion_wf"):
    """Motion correction (``--no-motion-correction``: resampling onto the DCE grid only).

    Parameters
    ----------
    config : Config
        ``motion_correction``, ``fd_threshold``, ``baseline_frames``, ``omp_nthreads``.
    use_vfa, use_b1 : bool
        Whether VFA volumes / a TB1map enter the stage.
    name : str
        Name of the workflow.

    Inputs
    ------
    dce, vfa, b1, raw_root
        Raw DCE series, VFA volumes (ascending flip), TB1map, raw dataset root.

    Outputs
    -------
    dce
        Series used downstream (motion-corrected, or the raw file).
    vfa, b1
        VFA volumes and TB1map on the DCE grid.
    raw_root
        Root of these files, laid out as the raw dataset (provenance of the later steps).
    manifest
        Derivative entries (confounds table, transforms, figure).
    """
    wf = pe.Workflow(name=name)
    if config.motion_correction:
        wf.__desc__ = (
            "Head motion was corrected by rigid (6 degrees of freedom; 3 in-plane for a single slice) "
            "registration of every dynamic frame to the mean of the pre-contrast frames with Mattes mutual "
            "information, multi-resolution, in SimpleITK [@simpleitk]; framewise displacement was computed "
            "as in [@power2012]"
            + (
                "; the variable-flip-angle volumes were registered to each other and to the dynamic "
                "reference and resampled once onto the dynamic grid with the composed transforms (cubic "
                "B-spline interpolation)."
                if use_vfa
                else "."
            )
        )
        wf.__refs__ = ["simpleitk", "power2012"]
    else:
        wf.__desc__ = (
            "Motion correction was switched off; data on another grid were resampled onto the dynamic "
            "grid in scanner coordinates."
            if use_vfa
            else "Motion correction was switched off."
        )
        wf.__refs__ = []
    inputnode = pe.Node(IdentityInterface(fields=["dce", "vfa", "b1", "raw_root"]), name="inputnode")
    outputnode = pe.Node(
        IdentityInterface(fields=["dce", "vfa", "b1", "raw_root", "manifest"]), name="outputnode"
    )
    node = pe.Node(
        ifc.Motion(
            correct=config.motion_correction, fd_threshold=config.fd_threshold, threads=config.omp_nthreads
        ),
        name="motion",
        n_procs=config.omp_nthreads,
    )
    if config.baseline_frames is not None:
        node.inputs.baseline_frames = config.baseline_frames
    wf.connect(
        [
            (inputnode, node, [("dce", "dce_file"), ("raw_root", "raw_root")]),
            (node, outputnode, [("dce", "dce"), ("raw_root", "raw_root"), ("manifest", "manifest")]),
        ]
    )
    if use_vfa:
        wf.connect([(inputnode, node, [("vfa", "vfa_files")]), (node, outputnode, [("vfa", "vfa")])])
    if use_b1:
        wf.connect([(inputnode, node, [("b1", "b1_file")]), (node, outputnode, [("b1", "b1")])])
    return wf
