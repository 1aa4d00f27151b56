"""DICOM stage: convert one session's DICOM series into raw BIDS before processing."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from . import interfaces as ifc


def init_dicom_wf(*, dicom_dir, subject, session, bids_dir, work_dir, name="dicom_wf"):
    """Convert a session's DICOM into raw BIDS files (as ``dcequant-convert`` does).

    Files are written into ``bids_dir`` when it is writable, else into
    ``<work_dir>/bids_from_dicom`` (:func:`bidsapp.session_steps.convert_dicom_step`).

    Parameters
    ----------
    dicom_dir : path
        ``sourcedata/dicom/sub-<L>[/ses-<S>]`` of the session.
    subject, session : str
        Labels without prefixes (``session`` ``None`` or empty when the input has none).
    bids_dir : path
        Raw BIDS root.
    work_dir : path
        Work folder (holds the fallback BIDS root).
    name : str
        Name of the workflow.

    Inputs
    ------
    (none)
        The stage starts from files named by its parameters.

    Outputs
    -------
    dce
        Converted DCE series (NIfTI with its sidecar).
    vfa
        Converted VFA volumes, ascending flip angle.
    b1
        Converted TB1map (percent), when the session has one.
    raw_root
        Root of the raw dataset the files were written into.
    """
    wf = pe.Workflow(name=name)
    wf.__desc__ = (
        "The DICOM series were converted to BIDS with dcequant's converter (pixel data and "
        "geometry read with pydicom; anatomical series converted with dcm2niix [@dcm2niix])."
    )
    wf.__refs__ = ["dcm2niix"]
    node = pe.Node(
        ifc.ConvertDICOM(
            dicom_dir=str(dicom_dir),
            bids_dir=str(Path(bids_dir).resolve()),
            fallback_dir=str(Path(work_dir).resolve() / "bids_from_dicom"),
            subject=subject,
            session=session or "",
        ),
        name="convert",
    )
    outputnode = pe.Node(IdentityInterface(fields=["dce", "vfa", "b1", "raw_root"]), name="outputnode")
    wf.connect([(node, outputnode, [("dce", "dce"), ("vfa", "vfa"), ("b1", "b1"), ("raw_root", "raw_root")])])
    return wf
