"""Participant-level Nipype workflow of dcequant.

Graph per subject/session (``init_single_session_wf``)::

    [convert DICOM] -> motion (correction, VFA onto the DCE grid) -> T1 map (VFA, B1)
        -> concentration -> AIF -> fit <model> ... -> datasink (staging)
    and per subject: all session datasinks -> commit (move into output_dir) -> HTML report.

Every ``init_*_wf`` factory sets ``workflow.__desc__`` (and ``__refs__``), the methods
paragraph that :mod:`bidsapp.boilerplate` assembles into ``logs/CITATION.md``.
Node outputs are deterministic, so re-running with the same work folder resumes from
the cached nodes and reproduces the derivatives exactly.
"""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from nipype.interfaces.utility import IdentityInterface, Merge
from nipype.pipeline import engine as pe

from bidsapp.config import Config
from bidsapp.registry import POPULATION_AIF_SPECS, get_model, get_population_aif
from bidsapp.session_steps import FALLBACK_POPULATION_AIF

from . import interfaces as ifc
from .motion import init_motion_wf

def _cite_keys(keys):
    """Pandoc-style citation of registry keys: ``[@tofts1999]``, ``[@weinmann1984; @tofts1991]``."""
    return "[" + "; ".join(f"@{key}" for key in keys) + "]"


def _node_name(text):
    return "".join(c if c.isalnum() else "_" for c in text)


def init_participant_wf(config: Config, sessions, work_dir):
    """Top workflow: one ``init_subject_wf`` per subject.

    Subjects and sessions are independent branches, so the MultiProc plugin runs them
    in parallel (``--nprocs``).
    """
    wf = pe.Workflow(name="dcequant_wf", base_dir=str(work_dir))
    wf.__desc__ = (
        f"Results were generated with *dcequant* {__import__('bidsapp').__version__}, "
        "a BIDS App built on Nipype [@nipype1] with inputs queried by PyBIDS [@pybids]."
    )
    wf.__refs__ = ["nipype1", "pybids"]
    for subject, group in groupby(sessions, key=lambda s: s.subject):
        wf.add_nodes([init_subject_wf(config, subject, list(group), work_dir)])
    return wf


def init_subject_wf(config: Config, subject, sessions, work_dir):
    """All sessions of one subject, then the subject's HTML report."""
    wf = pe.Workflow(name=f"sub_{_node_name(subject)}_wf")
    merge = pe.Node(Merge(len(sessions), ravel_inputs=True), name="collect_outputs")
    commit = pe.Node(ifc.CommitSubject(output_dir=str(config.output_dir), subject=subject),
                     name="commit", overwrite=True)
    report = pe.Node(ifc.SubjectReport(output_dir=str(config.output_dir), subject=subject),
                     name="report", overwrite=True)
    for index, inputs in enumerate(sessions, start=1):
        session_wf = init_single_session_wf(config, inputs, work_dir)
        wf.connect(session_wf, "outputnode.staged", merge, f"in{index}")
    wf.connect([(merge, commit, [("out", "staged")]), (commit, report, [("out_files", "written")])])
    return wf


def init_single_session_wf(config: Config, inputs, work_dir):
    """One subject/session: inputs (or DICOM conversion), motion, T1, concentration, AIF, fits, sink."""
    name = _node_name(f"ses_{inputs.session}_wf" if inputs.session else "single_session_wf")
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["dce", "vfa", "b1", "raw_root"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["staged"]), name="outputnode")
    has_vfa = bool(inputs.vfa) or (inputs.from_dicom and config.t10 is None)
    if not has_vfa and config.t10 is None:
        raise ValueError(f"{inputs.name}: no VFA data for T1 mapping; give --t10 (s)")

    if inputs.from_dicom:
        convert_wf = init_dicom_wf(inputs, config.bids_dir, work_dir)
        for field in ("dce", "vfa", "b1", "raw_root"):
            wf.connect(convert_wf, f"outputnode.{field}", inputnode, field)
    else:
        inputnode.inputs.dce = str(inputs.dce)
        inputnode.inputs.vfa = [str(p) for p in inputs.vfa]
        inputnode.inputs.raw_root = str(Path(config.bids_dir).resolve())
        if inputs.b1:
            inputnode.inputs.b1 = str(inputs.b1)

    use_b1 = config.b1_correction and (inputs.b1 is not None or inputs.from_dicom)
    motion_wf = init_motion_wf(config, use_vfa=has_vfa, use_b1=use_b1)
    fields = ["dce", "raw_root"] + (["vfa"] if has_vfa else []) + (["b1"] if use_b1 else [])
    wf.connect([(inputnode, motion_wf, [(f, f"inputnode.{f}") for f in fields])])
    t1_wf = init_t1map_wf(config, use_vfa=has_vfa, use_b1=use_b1)
    wf.connect([(motion_wf, t1_wf, [("outputnode.dce", "inputnode.dce"),
                                    ("outputnode.raw_root", "inputnode.raw_root")])])
    if has_vfa:
        wf.connect(motion_wf, "outputnode.vfa", t1_wf, "inputnode.vfa")
    if use_b1:
        wf.connect(motion_wf, "outputnode.b1", t1_wf, "inputnode.b1")
    conc_wf = init_concentration_wf(config, t1_source="vfa" if has_vfa else f"fixed T10 = {config.t10} s",
                                    use_b1=use_b1)
    wf.connect([(motion_wf, conc_wf, [("outputnode.dce", "inputnode.dce"),
                                      ("outputnode.raw_root", "inputnode.raw_root")]),
                (t1_wf, conc_wf, [("outputnode.t1", "inputnode.t1"), ("outputnode.mask", "inputnode.t1_mask")])])
    if use_b1:
        wf.connect(motion_wf, "outputnode.b1", conc_wf, "inputnode.b1")
    aif_spec = config.aif
    if "{" in aif_spec:
        from bidsapp.session_steps import resolve_aif_spec

        aif_spec = resolve_aif_spec(aif_spec, inputs.subject, inputs.session)
    aif_wf = init_aif_wf(config, aif_spec)
    if has_vfa:  # the blood T10 of an image AIF is fitted to the pooled arterial VFA signal
        wf.connect(motion_wf, "outputnode.vfa", aif_wf, "inputnode.vfa")
    if use_b1:
        wf.connect(motion_wf, "outputnode.b1", aif_wf, "inputnode.b1")
    wf.connect([(inputnode, aif_wf, [("raw_root", "inputnode.raw_root")]),
                (t1_wf, aif_wf, [("outputnode.t1", "inputnode.t1")]),
                (conc_wf, aif_wf, [("outputnode.conc", "inputnode.conc"), ("outputnode.mask", "inputnode.mask"),
                                   ("outputnode.acquisition", "inputnode.acquisition")])])

    manifests = pe.Node(Merge(4 + len(config.models)), name="collect_manifests")
    wf.connect([(t1_wf, manifests, [("outputnode.manifest", "in1")]),
                (conc_wf, manifests, [("outputnode.manifest", "in2")]),
                (aif_wf, manifests, [("outputnode.manifest", "in3")]),
                (motion_wf, manifests, [("outputnode.manifest", "in4")])])
    for index, model in enumerate(config.models, start=5):
        fit_wf = init_fit_wf(config, model, inputs.subject, inputs.session)
        wf.connect([(conc_wf, fit_wf, [("outputnode.conc", "inputnode.conc"), ("outputnode.mask", "inputnode.mask"),
                                       ("outputnode.acquisition", "inputnode.acquisition")]),
                    (aif_wf, fit_wf, [("outputnode.tsv", "inputnode.aif_tsv"),
                                      ("outputnode.json", "inputnode.aif_json")]),
                    (fit_wf, manifests, [("outputnode.manifest", f"in{index}")])])
    sink = pe.Node(ifc.DerivativesSink(output_dir=str(config.output_dir), subject=inputs.subject,
                                       session=inputs.session or ""), name="datasink", overwrite=True)
    wf.connect([(manifests, sink, [("out", "manifests")]), (sink, outputnode, [("staged", "staged")])])
    return wf


def init_dicom_wf(inputs, bids_dir, work_dir):
    """Convert the session's DICOM into raw BIDS files first (as ``dcequant-convert`` does)."""
    wf = pe.Workflow(name="dicom_wf")
    wf.__desc__ = ("The DICOM series were converted to BIDS with dcequant's converter (pixel data and "
                   "geometry read with pydicom; anatomical series converted with dcm2niix [@dcm2niix]).")
    wf.__refs__ = ["dcm2niix"]
    node = pe.Node(ifc.ConvertDICOM(dicom_dir=str(inputs.dicom_dir), bids_dir=str(Path(bids_dir).resolve()),
                                    fallback_dir=str(Path(work_dir).resolve() / "bids_from_dicom"),
                                    subject=inputs.subject, session=inputs.session or ""),
                   name="convert")
    outputnode = pe.Node(IdentityInterface(fields=["dce", "vfa", "b1", "raw_root"]), name="outputnode")
    wf.connect([(node, outputnode, [("dce", "dce"), ("vfa", "vfa"), ("b1", "b1"), ("raw_root", "raw_root")])])
    return wf


def init_t1map_wf(config: Config, use_vfa=True, use_b1=False):
    """Pre-contrast T1 (T10) map: VFA fit, or the fixed ``--t10``."""
    wf = pe.Workflow(name="t1map_wf")
    inputnode = pe.Node(IdentityInterface(fields=["vfa", "dce", "b1", "raw_root"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["t1", "mask", "manifest"]), name="outputnode")
    if use_vfa:
        method = {"vfa-linear": "the linearised (DESPOT1) variable-flip-angle fit",
                  "vfa-nonlinear": "a non-linear least-squares fit of the SPGR equation",
                  "two-angle": "the closed-form two-flip-angle solution"}[config.t1_method]
        validity = ("Every physically valid fit (0 < exp(-TR/T1) < 1, T1 within 1 ms-10 s, M0 > 0) kept its "
                    "T1; fits with a relative residual above 0.1 were flagged as poor fits but kept."
                    if config.t1_validity == "physical" else
                    "Voxels whose fit was not physically valid or had a relative residual above 0.1 were "
                    "excluded.")
        wf.__desc__ = (f"Pre-contrast T1 (T10) and M0 maps were estimated from the variable-flip-angle "
                       f"spoiled gradient-echo images with {method} [@deoni2003]"
                       + (", with the actual flip angles corrected by the measured B1 map. " if use_b1 else ". ")
                       + validity)
        wf.__refs__ = ["deoni2003"]
        node = pe.Node(ifc.T1Map(method=config.t1_method, validity=config.t1_validity), name="vfa_t1")
        wf.connect([(inputnode, node, [("vfa", "vfa_files"), ("raw_root", "raw_root")])])
        if use_b1:
            wf.connect(inputnode, "b1", node, "b1_file")
    else:
        wf.__desc__ = f"No T1 mapping data were available; a fixed pre-contrast T1 of {config.t10} s was assumed."
        wf.__refs__ = []
        node = pe.Node(ifc.FixedT1(t10=config.t10), name="fixed_t1")
        wf.connect(inputnode, "dce", node, "dce_file")
    wf.connect([(node, outputnode, [("t1", "t1"), ("mask", "mask"), ("manifest", "manifest")])])
    return wf


def init_concentration_wf(config: Config, t1_source, use_b1=False):
    """Signal to gadolinium concentration (mM)."""
    wf = pe.Workflow(name="concentration_wf")
    relax = (f"a relaxivity of {config.relaxivity} /mM/s" if config.relaxivity else
             "the relaxivity of the contrast agent named in the DCE sidecar at its field strength "
             "(gadobutrol when not stated)")
    base = (f"the first {config.baseline_frames} frames" if config.baseline_frames else
            "the frames before the bolus arrival, detected in the most strongly enhancing voxels")
    wf.__desc__ = (f"The dynamic signal was converted to contrast agent concentration by inverting the "
                   f"spoiled gradient-echo signal equation under fast water exchange, with {relax}, "
                   f"the pre-contrast signal taken from {base} [@schabel2008].")
    wf.__refs__ = ["schabel2008"]
    inputnode = pe.Node(IdentityInterface(fields=["dce", "t1", "t1_mask", "b1", "raw_root"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["conc", "mask", "acquisition", "manifest"]), name="outputnode")
    node = pe.Node(ifc.Concentration(t1_source=t1_source), name="concentration")
    if config.relaxivity is not None:
        node.inputs.relaxivity = config.relaxivity
    if config.baseline_frames is not None:
        node.inputs.baseline_frames = config.baseline_frames
    wf.connect([(inputnode, node, [("dce", "dce_file"), ("t1", "t1_file"), ("t1_mask", "t1_mask"),
                                   ("raw_root", "raw_root")]),
                (node, outputnode, [("conc", "conc"), ("mask", "mask"), ("acquisition", "acquisition"),
                                    ("manifest", "manifest")])])
    if use_b1:
        wf.connect(inputnode, "b1", node, "b1_file")
    return wf


def init_aif_wf(config: Config, aif_spec):
    """Arterial input function (``--aif``)."""
    wf = pe.Workflow(name="aif_wf")
    refs = []
    if aif_spec == "auto":
        fallback = get_population_aif(FALLBACK_POPULATION_AIF)
        refs = list(fallback.citations)
        text = (f"detected automatically in the concentration images (the {fallback.human} {_cite_keys(refs)} "
                "was used instead where detection failed)")
    elif aif_spec.endswith((".nii", ".nii.gz")):
        text = "averaged over a user-supplied arterial mask"
    elif aif_spec.endswith((".tsv", ".csv")):
        text = "read from a user-supplied table"
    elif aif_spec in POPULATION_AIF_SPECS:
        population = POPULATION_AIF_SPECS[aif_spec]
        refs = list(population.citations)
        text = f"the {population.human} {_cite_keys(refs)}, shifted to the detected bolus arrival"
    else:  # not a valid --aif: the AIF step names the problem
        text = f"given by --aif {aif_spec}"
    wf.__desc__ = (f"The arterial input function was {text}; blood concentrations were converted to plasma "
                   f"with a haematocrit of {config.hematocrit}.")
    wf.__refs__ = refs
    inputnode = pe.Node(IdentityInterface(fields=["conc", "mask", "acquisition", "t1", "raw_root", "vfa", "b1"]),
                        name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["tsv", "json", "manifest"]), name="outputnode")
    node = pe.Node(ifc.AIF(spec=aif_spec, hematocrit=config.hematocrit), name="aif")
    wf.connect([(inputnode, node, [("conc", "conc"), ("mask", "mask"), ("acquisition", "acquisition"),
                                   ("t1", "t1_file"), ("raw_root", "raw_root"), ("vfa", "vfa"), ("b1", "b1")]),
                (node, outputnode, [("tsv", "tsv"), ("json", "json"), ("manifest", "manifest")])])
    return wf


def init_fit_wf(config: Config, model, subject, session):
    """Voxel-wise fit of one kinetic model, with standard errors, R² and a quality mask."""
    wf = pe.Workflow(name=f"fit_{_node_name(model)}_wf")
    spec = get_model(model)
    delay = " and a bolus-arrival delay" if config.fit_delay else ""
    wf.__desc__ = (f"Concentration curves were fitted voxel-wise with {spec.methods}{delay} by non-linear least "
                   "squares; standard errors come from the Jacobian at the optimum and a quality mask keeps "
                   f"converged fits within the parameter bounds {_cite_keys(spec.citations)}.")
    wf.__refs__ = list(spec.citations)
    inputnode = pe.Node(IdentityInterface(fields=["conc", "mask", "acquisition", "aif_tsv", "aif_json"]),
                        name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["manifest", "r2", "quality"]), name="outputnode")
    node = pe.Node(ifc.FitModel(model=model, fit_delay=config.fit_delay, device=config.device,
                                seed=config.random_seed, threads=config.omp_nthreads, t1_method=config.t1_method,
                                subject=subject, session=session or ""),
                   name="fit", n_procs=config.omp_nthreads)
    wf.connect([(inputnode, node, [("conc", "conc"), ("mask", "mask"), ("acquisition", "acquisition"),
                                   ("aif_tsv", "aif_tsv"), ("aif_json", "aif_json")]),
                (node, outputnode, [("manifest", "manifest"), ("r2", "r2"), ("quality", "quality")])])
    return wf
