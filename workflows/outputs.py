"""Outputs stage: stage a session's derivatives, commit a subject's, write its report."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface, Merge
from nipype.pipeline import engine as pe

from . import interfaces as ifc


def init_session_outputs_wf(*, output_dir, subject, session, manifests, t1_method, name="outputs_wf"):
    """Datasink of one session: every stage's derivative entries, staged in ``output_dir``.

    The datasink adds what the stages do not know (:func:`bidsapp.derivatives.stage_session`):
    names from the subject/session, ``bids::`` URIs of the derivatives a file came from, and
    run metadata (``T1Method``).

    Parameters
    ----------
    output_dir : path
        Derivative dataset root.
    subject, session : str
        Labels without prefixes (``session`` ``None`` when the input has none).
    manifests : list of str
        Names of the manifest inputs, one per stage that writes derivatives (in this order).
    t1_method : str
        ``--t1-method`` (run metadata of the fit sidecars).
    name : str
        Name of the workflow.

    Inputs
    ------
    <each name in manifests>
        A stage's manifest (JSON list of derivative entries).

    Outputs
    -------
    staged
        Staged files, relative to ``output_dir`` (committed once every session of the subject succeeded).
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=list(manifests)), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["staged"]), name="outputnode")
    merge = pe.Node(Merge(len(manifests)), name="collect_manifests")
    sink = pe.Node(
        ifc.DerivativesSink(
            output_dir=str(output_dir), subject=subject, session=session or "", t1_method=t1_method
        ),
        name="datasink",
        overwrite=True,
    )
    wf.connect(
        [
            (inputnode, merge, [(field, f"in{index}") for index, field in enumerate(manifests, start=1)]),
            (merge, sink, [("out", "manifests")]),
            (sink, outputnode, [("staged", "staged")]),
        ]
    )
    return wf


def init_subject_outputs_wf(*, output_dir, subject, n_sessions, name="outputs_wf"):
    """Commit a subject's staged derivatives (all sessions or none), then write its HTML report.

    Parameters
    ----------
    output_dir : path
        Derivative dataset root.
    subject : str
        Label without prefix.
    n_sessions : int
        Number of sessions whose staged files are committed together.
    name : str
        Name of the workflow.

    Inputs
    ------
    staged_1 … staged_<n_sessions>
        Each session's staged files (``outputnode.staged`` of :func:`init_session_outputs_wf`).

    Outputs
    -------
    out_files
        Files moved into ``output_dir``.
    out_report
        ``sub-<L>.html``.
    """
    wf = pe.Workflow(name=name)
    fields = [f"staged_{index}" for index in range(1, n_sessions + 1)]
    inputnode = pe.Node(IdentityInterface(fields=fields), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["out_files", "out_report"]), name="outputnode")
    merge = pe.Node(Merge(n_sessions, ravel_inputs=True), name="collect_outputs")
    commit = pe.Node(
        ifc.CommitSubject(output_dir=str(output_dir), subject=subject), name="commit", overwrite=True
    )
    report = pe.Node(
        ifc.SubjectReport(output_dir=str(output_dir), subject=subject), name="report", overwrite=True
    )
    wf.connect(
        [
            (inputnode, merge, [(field, f"in{index}") for index, field in enumerate(fields, start=1)]),
            (merge, commit, [("out", "staged")]),
            (commit, report, [("out_files", "written")]),
            (commit, outputnode, [("out_files", "out_files")]),
            (report, outputnode, [("out_report", "out_report")]),
        ]
    )
    return wf
