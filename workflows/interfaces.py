"""Thin Nipype interfaces around :mod:`bidsapp.session_steps` and the derivative writer.

Each ``_run_interface`` runs in the node's working folder and calls one step function,
by keyword; arrays travel between nodes as NIfTI/TSV/JSON files there.
"""

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from bidsapp import session_steps
from bidsapp.config import AIF_KINDS, AIFChoice


def _opt(value):
    return value if isdefined(value) else None


class _Manifest(TraitedSpec):
    manifest = File(exists=True, desc="JSON list of derivative entries")


class ConvertDICOMInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`ConvertDICOM`."""

    dicom_dir = traits.Str(mandatory=True, desc="sourcedata/dicom/sub-<L>[/ses-<S>]")
    bids_dir = traits.Str(mandatory=True, desc="raw BIDS root (written if writable)")
    fallback_dir = traits.Str(mandatory=True, desc="raw BIDS root in the work folder")
    subject = traits.Str(mandatory=True)
    session = traits.Str("", usedefault=True)


class ConvertDICOMOutputSpec(TraitedSpec):
    """Outputs of :class:`ConvertDICOM`."""

    dce = File(exists=True)
    vfa = traits.List(File(exists=True))
    b1 = File(exists=True)
    raw_root = traits.Str()


class ConvertDICOM(SimpleInterface):
    """DICOM to raw BIDS for one session (:func:`bidsapp.conversion.convert_dicom_study`)."""

    input_spec = ConvertDICOMInputSpec
    output_spec = ConvertDICOMOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        out = session_steps.convert_dicom_step(
            dicom_dir=i.dicom_dir,
            bids_dir=i.bids_dir,
            fallback_dir=i.fallback_dir,
            subject=i.subject,
            session=i.session or None,
        )
        self._results.update({k: v for k, v in out.items() if v is not None})
        return runtime


class T1MapInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`T1Map`."""

    vfa_files = InputMultiObject(File(exists=True), mandatory=True, desc="VFA volumes, ascending flip")
    b1_file = File(exists=True, desc="TB1map in percent")
    method = traits.Str("vfa-linear", usedefault=True)
    validity = traits.Enum("physical", "strict", usedefault=True, desc="T1 validity rule")
    raw_root = traits.Str(mandatory=True, desc="root of the raw dataset (for provenance)")
    threads = traits.Int(1, usedefault=True, desc="torch threads of the node's process (non-linear fit)")


class T1MapOutputSpec(_Manifest):
    """Outputs of :class:`T1Map`."""

    t1 = File(exists=True, desc="T1 map (s)")
    m0 = File(exists=True)
    residual = File(exists=True, desc="relative residual of the VFA fit")
    mask = File(exists=True, desc="valid T1 voxels")


class T1Map(SimpleInterface):
    """Variable-flip-angle T1 mapping (:func:`bidsapp.compute_t1_map`).

    For the non-linear fit it sets its process's torch threads first
    (:func:`bidsapp.runtime.configure_process`): the
    non-linear fit runs on the shared torch Levenberg–Marquardt, and under MultiProc the
    node runs in a worker process that the command did not configure.
    """

    input_spec = T1MapInputSpec
    output_spec = T1MapOutputSpec

    def _run_interface(self, runtime):
        from bidsapp.runtime import configure_process

        i = self.inputs
        if i.method == "vfa-nonlinear":  # the linear fit is numpy only: no torch import
            configure_process(threads=i.threads)
        self._results.update(
            session_steps.t1_step(
                vfa_files=list(i.vfa_files),
                b1_file=_opt(i.b1_file),
                method=i.method,
                raw_root=i.raw_root,
                validity=i.validity,
            )
        )
        return runtime


class FixedT1InputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`FixedT1`."""

    dce_file = File(exists=True, mandatory=True)
    t10 = traits.Float(mandatory=True, desc="T1 in s")


class FixedT1OutputSpec(_Manifest):
    """Outputs of :class:`FixedT1`."""

    t1 = File(exists=True)
    mask = File(exists=True)


class FixedT1(SimpleInterface):
    """Constant pre-contrast T1 (``--t10``) on the DCE grid."""

    input_spec = FixedT1InputSpec
    output_spec = FixedT1OutputSpec

    def _run_interface(self, runtime):
        self._results.update(session_steps.fixed_t1_step(dce_file=self.inputs.dce_file, t10=self.inputs.t10))
        return runtime


class ConcentrationInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`Concentration`."""

    dce_file = File(exists=True, mandatory=True)
    t1_file = File(exists=True, mandatory=True)
    t1_mask = File(exists=True, mandatory=True)
    b1_file = File(exists=True)
    relaxivity = traits.Float(desc="r1 /mM/s; default from the sidecar")
    baseline_frames = traits.Int(desc="default: detected")
    t1_source = traits.Str(mandatory=True)
    raw_root = traits.Str(mandatory=True)


class ConcentrationOutputSpec(_Manifest):
    """Outputs of :class:`Concentration`."""

    conc = File(exists=True, desc="concentration (mM)")
    mask = File(exists=True)
    acquisition = File(exists=True, desc="JSON with timing, relaxivity, baseline")


class Concentration(SimpleInterface):
    """Signal to concentration (:func:`bidsapp.signal_to_concentration`)."""

    input_spec = ConcentrationInputSpec
    output_spec = ConcentrationOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        self._results.update(
            session_steps.concentration_step(
                dce_file=i.dce_file,
                t1_file=i.t1_file,
                t1_mask_file=i.t1_mask,
                b1_file=_opt(i.b1_file),
                relaxivity=_opt(i.relaxivity),
                baseline_frames=_opt(i.baseline_frames),
                t1_source=i.t1_source,
                raw_root=i.raw_root,
            )
        )
        return runtime


class AIFInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`AIF`."""

    conc = File(exists=True, mandatory=True)
    mask = File(exists=True, mandatory=True)
    acquisition = File(exists=True, mandatory=True)
    t1_file = File(exists=True, mandatory=True)
    aif_kind = traits.Enum(*AIF_KINDS, usedefault=True, desc="kind of --aif (bidsapp.config.AIFChoice)")
    aif_value = traits.Str("", usedefault=True, desc="population name or absolute file path")
    hematocrit = traits.Float(0.45, usedefault=True)
    raw_root = traits.Str(mandatory=True)
    vfa = InputMultiObject(File(exists=True), desc="VFA volumes on the DCE grid (blood T10 pooling)")
    b1 = File(exists=True, desc="relative B1 map (percent) on the DCE grid")


class AIFOutputSpec(_Manifest):
    """Outputs of :class:`AIF`."""

    tsv = File(exists=True)
    json = File(exists=True)
    aif_mask = File(exists=True)


class AIF(SimpleInterface):
    """Arterial input function (detected, population, table or ROI)."""

    input_spec = AIFInputSpec
    output_spec = AIFOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        self._results.update(
            session_steps.aif_step(
                conc_file=i.conc,
                mask_file=i.mask,
                acquisition_file=i.acquisition,
                t1_file=i.t1_file,
                aif=AIFChoice(i.aif_kind, i.aif_value),
                hematocrit=i.hematocrit,
                raw_root=i.raw_root,
                vfa_files=_opt(i.vfa),
                b1_file=_opt(i.b1),
            )
        )
        return runtime


class FitInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`FitModel`."""

    model = traits.Str(mandatory=True)
    conc = File(exists=True, mandatory=True)
    mask = File(exists=True, mandatory=True)
    acquisition = File(exists=True, mandatory=True)
    aif_tsv = File(exists=True, mandatory=True)
    aif_json = File(exists=True, mandatory=True)
    fit_delay = traits.Bool(False, usedefault=True)
    device = traits.Str("auto", usedefault=True)
    seed = traits.Int(0, usedefault=True, desc="random seed of the node's process")
    threads = traits.Int(1, usedefault=True, desc="torch threads of the node's process")


class FitOutputSpec(_Manifest):
    """Outputs of :class:`FitModel`."""

    r2 = File(exists=True)
    quality = File(exists=True)


class FitModel(SimpleInterface):
    """Voxel-wise kinetic model fit (:func:`bidsapp.fit_model`).

    Sets up its process first (:func:`bidsapp.runtime.configure_process`): under MultiProc
    the node runs in a worker process that the command did not configure.
    """

    input_spec = FitInputSpec
    output_spec = FitOutputSpec

    def _run_interface(self, runtime):
        from bidsapp.runtime import configure_process

        i = self.inputs
        configure_process(threads=i.threads, seed=i.seed)
        self._results.update(
            session_steps.fit_step(
                model=i.model,
                conc_file=i.conc,
                mask_file=i.mask,
                acquisition_file=i.acquisition,
                aif_tsv=i.aif_tsv,
                aif_json=i.aif_json,
                fit_delay=i.fit_delay,
                device=i.device,
            )
        )
        return runtime


class DerivativesSinkInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`DerivativesSink`."""

    manifests = InputMultiObject(File(exists=True), mandatory=True)
    output_dir = traits.Str(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str("", usedefault=True)
    t1_method = traits.Str(mandatory=True, desc="--t1-method (run metadata of the fit sidecars)")


class DerivativesSinkOutputSpec(TraitedSpec):
    """Outputs of :class:`DerivativesSink`."""

    staged = traits.List(traits.Str, desc="staged files, relative to output_dir")


class DerivativesSink(SimpleInterface):
    """Stage the derivatives of a session with provenance (:func:`bidsapp.derivatives.stage_session`)."""

    input_spec = DerivativesSinkInputSpec
    output_spec = DerivativesSinkOutputSpec

    def _run_interface(self, runtime):
        from bidsapp.derivatives import read_manifest, stage_session

        i = self.inputs
        entries = [e for m in i.manifests for e in read_manifest(m)]
        self._results["staged"] = stage_session(
            output_dir=i.output_dir,
            subject=i.subject,
            session=i.session or None,
            entries=entries,
            metadata={"T1Method": i.t1_method},
        )
        return runtime


class CommitSubjectInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`CommitSubject`."""

    staged = traits.List(traits.Str, mandatory=True)
    output_dir = traits.Str(mandatory=True)
    subject = traits.Str(mandatory=True)


class CommitSubjectOutputSpec(TraitedSpec):
    """Outputs of :class:`CommitSubject`."""

    out_files = traits.List(traits.Str)


class CommitSubject(SimpleInterface):
    """Move a subject's staged derivatives into place (:func:`bidsapp.derivatives.commit_subject`)."""

    input_spec = CommitSubjectInputSpec
    output_spec = CommitSubjectOutputSpec

    def _run_interface(self, runtime):
        from bidsapp.derivatives import commit_subject

        i = self.inputs
        self._results["out_files"] = [
            str(p) for p in commit_subject(output_dir=i.output_dir, subject=i.subject, staged=i.staged)
        ]
        return runtime


class ReportInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`SubjectReport`."""

    output_dir = traits.Str(mandatory=True)
    subject = traits.Str(mandatory=True)
    written = traits.List(traits.Str, desc="files written by the sinks (orders the report after them)")


class ReportOutputSpec(TraitedSpec):
    """Outputs of :class:`SubjectReport`."""

    out_report = File(exists=True)


class SubjectReport(SimpleInterface):
    """Self-contained HTML report of one subject (``sub-<L>.html``)."""

    input_spec = ReportInputSpec
    output_spec = ReportOutputSpec

    def _run_interface(self, runtime):
        from bidsapp.report import write_subject_report

        i = self.inputs
        self._results["out_report"] = str(write_subject_report(output_dir=i.output_dir, subject=i.subject))
        return runtime


class MotionInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`Motion`."""

    dce_file = File(exists=True, mandatory=True)
    vfa_files = InputMultiObject(File(exists=True), desc="VFA volumes, ascending flip")
    b1_file = File(exists=True, desc="TB1map in percent")
    baseline_frames = traits.Int(desc="frames averaged into the reference; default: detected")
    correct = traits.Bool(True, usedefault=True, desc="False: --no-motion-correction (resampling only)")
    fd_threshold = traits.Float(
        0.5, usedefault=True, desc="framewise displacement (mm) flagged as large motion"
    )
    threads = traits.Int(1, usedefault=True)
    raw_root = traits.Str(mandatory=True)


class MotionOutputSpec(_Manifest):
    """Outputs of :class:`Motion`."""

    dce = File(exists=True, desc="motion-corrected DCE series (with its sidecar)")
    vfa = traits.List(File(exists=True), desc="VFA volumes on the DCE grid")
    b1 = File(exists=True, desc="TB1map on the DCE grid")
    raw_root = traits.Str(desc="root of the files handed on, laid out as the raw dataset")


class Motion(SimpleInterface):
    """Motion correction and VFA alignment (:func:`bidsapp.motion_step.motion_step`)."""

    input_spec = MotionInputSpec
    output_spec = MotionOutputSpec

    def _run_interface(self, runtime):
        from bidsapp.motion_step import motion_step

        i = self.inputs
        out = motion_step(
            dce_file=i.dce_file,
            vfa_files=list(i.vfa_files) if isdefined(i.vfa_files) else [],
            b1_file=_opt(i.b1_file),
            baseline_frames=_opt(i.baseline_frames),
            correct=i.correct,
            fd_threshold=i.fd_threshold,
            threads=i.threads,
            raw_root=i.raw_root,
        )
        self._results.update({k: v for k, v in out.items() if v is not None})
        return runtime


class NetsInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`InferParameters`."""

    nets = traits.List(traits.Str, mandatory=True, desc="shipped kinetic networks to run")
    conc = File(exists=True, mandatory=True)
    mask = File(exists=True, mandatory=True)
    acquisition = File(exists=True, mandatory=True)
    aif_tsv = File(exists=True, mandatory=True)
    aif_json = File(exists=True, mandatory=True)
    device = traits.Str("auto", usedefault=True)
    seed = traits.Int(0, usedefault=True, desc="seed of the prior draws and of the node's process")
    threads = traits.Int(1, usedefault=True, desc="torch threads of the node's process")


class NetsOutputSpec(_Manifest):
    """Outputs of :class:`InferParameters`."""

    refused = traits.Str(desc="the envelope guard's message when the networks did not run ('' if they ran)")


class InferParameters(SimpleInterface):
    """Kinetic-parameter maps from the shipped networks (:func:`bidsapp.nets_step.nets_step`)."""

    input_spec = NetsInputSpec
    output_spec = NetsOutputSpec

    def _run_interface(self, runtime):
        from bidsapp.nets_step import nets_step
        from bidsapp.runtime import configure_process

        i = self.inputs
        configure_process(threads=i.threads, seed=i.seed)
        self._results.update(
            nets_step(i.nets, i.conc, i.mask, i.acquisition, i.aif_tsv, i.aif_json, i.device, i.seed)
        )
        return runtime
