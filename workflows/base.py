"""Participant-level Nipype workflow of dcequant: assembles the stage modules.

Graph per subject/session (:func:`init_single_session_wf`)::

    [dicom_wf: convert DICOM] -> motion_wf (correction, VFA onto the DCE grid) -> t1map_wf (VFA, B1)
        -> concentration_wf -> aif_wf -> fit_<model>_wf ... [-> nets_wf] -> outputs_wf (datasink, staging)
    and per subject (:func:`init_subject_wf`): all sessions' staged files -> outputs_wf
    (commit into output_dir, then the HTML report).

One module per stage (:mod:`workflows.dicom`, :mod:`workflows.motion`, :mod:`workflows.t1map`,
:mod:`workflows.concentration`, :mod:`workflows.aif`, :mod:`workflows.fit`, :mod:`workflows.nets`,
:mod:`workflows.outputs`); each ``init_*_wf`` factory documents its Parameters, Inputs and
Outputs and sets ``workflow.__desc__`` (and ``__refs__``), the methods paragraph that
:mod:`bidsapp.boilerplate` assembles into ``logs/CITATION.md``. Node outputs are
deterministic, so re-running with the same work folder resumes from the cached nodes and
reproduces the derivatives exactly.
"""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.config import Config

from .aif import init_aif_wf
from .concentration import init_concentration_wf
from .dicom import init_dicom_wf
from .dose import init_dose_session_wf, init_dose_wf
from .fit import init_fit_wf, node_name
from .motion import init_motion_wf
from .nets import init_nets_wf
from .outputs import init_session_outputs_wf, init_subject_outputs_wf
from .t1map import init_t1map_wf


def init_participant_wf(*, config: Config, sessions, work_dir, name="dcequant_wf"):
    """Top workflow: one :func:`init_subject_wf` per subject.

    Subjects and sessions are independent branches, so the MultiProc plugin runs them
    in parallel (``--nprocs``).

    Parameters
    ----------
    config : Config
        The run's configuration.
    sessions : list of bidsapp.bids_query.SessionInputs
        Selected sessions, grouped by subject in this order.
    work_dir : path
        Nipype's working folder (base of the workflow).
    name : str
        Name of the workflow.
    """
    wf = pe.Workflow(name=name, base_dir=str(work_dir))
    wf.__desc__ = (
        f"Results were generated with *dcequant* {__import__('bidsapp').__version__}, "
        "a BIDS App built on Nipype [@nipype1] with inputs queried by PyBIDS [@pybids]."
    )
    wf.__refs__ = ["nipype1", "pybids"]
    for subject, group in groupby(sessions, key=lambda s: s.subject):
        wf.add_nodes(
            [init_subject_wf(config=config, subject=subject, sessions=list(group), work_dir=work_dir)]
        )
    return wf


def init_subject_wf(*, config: Config, subject, sessions, work_dir, name=None):
    """All sessions of one subject, then the commit of their derivatives and the subject's report.

    Parameters
    ----------
    config : Config
        The run's configuration.
    subject : str
        Label without prefix.
    sessions : list of bidsapp.bids_query.SessionInputs
        The subject's sessions.
    work_dir : path
        Nipype's working folder.
    name : str
        Name of the workflow; default ``sub_<label>_wf``.
    """
    wf = pe.Workflow(name=name or f"sub_{node_name(subject)}_wf")
    outputs_wf = init_subject_outputs_wf(
        output_dir=config.output_dir, subject=subject, n_sessions=len(sessions)
    )
    for index, inputs in enumerate(sessions, start=1):
        session_wf = init_single_session_wf(config=config, inputs=inputs, work_dir=work_dir)
        wf.connect(session_wf, "outputnode.staged", outputs_wf, f"inputnode.staged_{index}")
    return wf


def init_single_session_wf(*, config: Config, inputs, work_dir, name=None):
    """One subject/session: inputs (or DICOM conversion), motion, T1, concentration, AIF, fits, datasink.

    Parameters
    ----------
    config : Config
        The run's configuration.
    inputs : bidsapp.bids_query.SessionInputs
        The session's raw files (or its DICOM folder).
    work_dir : path
        Nipype's working folder (fallback target of the DICOM conversion).
    name : str
        Name of the workflow; default ``ses_<label>_wf`` (``single_session_wf`` without sessions).

    Outputs
    -------
    staged
        The session's staged derivative files, relative to ``config.output_dir``.
    """
    name = name or node_name(f"ses_{inputs.session}_wf" if inputs.session else "single_session_wf")
    if inputs.dce is None and not inputs.from_dicom:  # low-dose T1w images only: the dose stage alone
        return init_dose_session_wf(config=config, inputs=inputs, name=name)
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["dce", "vfa", "b1", "raw_root"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["staged"]), name="outputnode")
    has_vfa = bool(inputs.vfa) or (inputs.from_dicom and config.t10 is None)
    if not has_vfa and config.t10 is None:
        raise ValueError(f"{inputs.name}: no VFA data for T1 mapping; give --t10 (s)")

    if inputs.from_dicom:
        convert_wf = init_dicom_wf(
            dicom_dir=inputs.dicom_dir,
            subject=inputs.subject,
            session=inputs.session,
            bids_dir=config.bids_dir,
            work_dir=work_dir,
        )
        for field in ("dce", "vfa", "b1", "raw_root"):
            wf.connect(convert_wf, f"outputnode.{field}", inputnode, field)
    else:
        inputnode.inputs.dce = str(inputs.dce)
        inputnode.inputs.vfa = [str(p) for p in inputs.vfa]
        inputnode.inputs.raw_root = str(Path(config.bids_dir).resolve())
        if inputs.b1:
            inputnode.inputs.b1 = str(inputs.b1)

    use_b1 = config.b1_correction and (inputs.b1 is not None or inputs.from_dicom)
    motion_wf = init_motion_wf(config=config, use_vfa=has_vfa, use_b1=use_b1)
    fields = ["dce", "raw_root"] + (["vfa"] if has_vfa else []) + (["b1"] if use_b1 else [])
    wf.connect([(inputnode, motion_wf, [(f, f"inputnode.{f}") for f in fields])])
    t1_wf = init_t1map_wf(config=config, use_vfa=has_vfa, use_b1=use_b1)
    wf.connect(
        [
            (
                motion_wf,
                t1_wf,
                [("outputnode.dce", "inputnode.dce"), ("outputnode.raw_root", "inputnode.raw_root")],
            )
        ]
    )
    if has_vfa:
        wf.connect(motion_wf, "outputnode.vfa", t1_wf, "inputnode.vfa")
    if use_b1:
        wf.connect(motion_wf, "outputnode.b1", t1_wf, "inputnode.b1")
    conc_wf = init_concentration_wf(
        config=config, use_b1=use_b1, t1_source="vfa" if has_vfa else f"fixed T10 = {config.t10} s"
    )
    wf.connect(
        [
            (
                motion_wf,
                conc_wf,
                [("outputnode.dce", "inputnode.dce"), ("outputnode.raw_root", "inputnode.raw_root")],
            ),
            (t1_wf, conc_wf, [("outputnode.t1", "inputnode.t1"), ("outputnode.mask", "inputnode.t1_mask")]),
        ]
    )
    if use_b1:
        wf.connect(motion_wf, "outputnode.b1", conc_wf, "inputnode.b1")
    aif_wf = init_aif_wf(config=config, aif=config.aif.for_session(inputs.subject, inputs.session))
    if has_vfa:  # the blood T10 of an image AIF is fitted to the pooled arterial VFA signal
        wf.connect(motion_wf, "outputnode.vfa", aif_wf, "inputnode.vfa")
    if use_b1:
        wf.connect(motion_wf, "outputnode.b1", aif_wf, "inputnode.b1")
    wf.connect(
        [
            (inputnode, aif_wf, [("raw_root", "inputnode.raw_root")]),
            (t1_wf, aif_wf, [("outputnode.t1", "inputnode.t1")]),
            (
                conc_wf,
                aif_wf,
                [
                    ("outputnode.conc", "inputnode.conc"),
                    ("outputnode.mask", "inputnode.mask"),
                    ("outputnode.acquisition", "inputnode.acquisition"),
                ],
            ),
        ]
    )

    stages = {"t1map": t1_wf, "concentration": conc_wf, "aif": aif_wf, "motion": motion_wf}
    for model in config.models:
        fit_wf = init_fit_wf(config=config, model=model)
        wf.connect(
            [
                (
                    conc_wf,
                    fit_wf,
                    [
                        ("outputnode.conc", "inputnode.conc"),
                        ("outputnode.mask", "inputnode.mask"),
                        ("outputnode.acquisition", "inputnode.acquisition"),
                    ],
                ),
                (
                    aif_wf,
                    fit_wf,
                    [("outputnode.tsv", "inputnode.aif_tsv"), ("outputnode.json", "inputnode.aif_json")],
                ),
            ]
        )
        stages[f"fit_{node_name(model)}"] = fit_wf
    nets = config.networks()
    if nets:
        nets_wf = init_nets_wf(config=config, nets=nets)
        wf.connect(
            [
                (
                    conc_wf,
                    nets_wf,
                    [
                        ("outputnode.conc", "inputnode.conc"),
                        ("outputnode.mask", "inputnode.mask"),
                        ("outputnode.acquisition", "inputnode.acquisition"),
                    ],
                ),
                (
                    aif_wf,
                    nets_wf,
                    [("outputnode.tsv", "inputnode.aif_tsv"), ("outputnode.json", "inputnode.aif_json")],
                ),
            ]
        )
        stages["nets"] = nets_wf
    if inputs.dose_low is not None:
        stages["dose"] = init_dose_wf(config=config, inputs=inputs)
    outputs_wf = init_session_outputs_wf(
        output_dir=config.output_dir,
        subject=inputs.subject,
        session=inputs.session,
        manifests=list(stages),
        t1_method=config.t1_method,
    )
    wf.connect(
        [(stage, outputs_wf, [("outputnode.manifest", f"inputnode.{key}")]) for key, stage in stages.items()]
        + [(outputs_wf, outputnode, [("outputnode.staged", "staged")])]
    )
    return wf
