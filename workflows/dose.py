"""Dose-reduction stage: synthesised standard-dose T1w image from a low-dose acquisition."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits
from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from bidsapp.config import Config

from . import interfaces as ifc
from .outputs import init_session_outputs_wf


class DoseInputSpec(BaseInterfaceInputSpec):
    """Inputs of :class:`DoseSynthesis`."""

    pre_file = File(exists=True, mandatory=True, desc="pre-contrast T1w")
    low_file = File(exists=True, mandatory=True, desc="low-dose T1w (sidecar: DoseFraction, ...)")
    standard_file = File(exists=True, desc="acquired standard-dose T1w (comparison only)")
    dose_fraction = traits.Float(desc="--dose-fraction (overrides DoseFraction)")
    raw_root = traits.Str(mandatory=True)


class DoseOutputSpec(TraitedSpec):
    """Outputs of :class:`DoseSynthesis`."""

    synth = File(exists=True, desc="synthesised standard-dose image")
    ce = File(exists=True, desc="predicted standard-dose contrast enhancement")
    figure = File(exists=True)
    manifest = File(exists=True)


class DoseSynthesis(SimpleInterface):
    """Standard-dose synthesis (:func:`bidsapp.dose_step.dose_step`)."""

    input_spec = DoseInputSpec
    output_spec = DoseOutputSpec

    def _run_interface(self, runtime):
        from bidsapp.dose_step import dose_step

        i = self.inputs
        self._results.update(
            dose_step(
                i.pre_file, i.low_file, ifc._opt(i.standard_file), i.raw_root, ifc._opt(i.dose_fraction)
            )
        )
        return runtime


def init_dose_wf(*, config: Config, inputs, name="dose_wf"):
    """Synthesised standard-dose image and contrast enhancement from a low-dose T1w image.

    Parameters
    ----------
    config : Config
        ``bids_dir`` (provenance) and ``dose_fraction`` (overrides the sidecar's).
    inputs : bidsapp.bids_query.SessionInputs
        ``dose_pre``, ``dose_low`` and optionally ``dose_standard`` of the session.
    name : str
        Workflow name.

    Inputs
    ------
    (none: the raw files are set from ``inputs``)

    Outputs
    -------
    synth
        ``*_ce-<agent>_desc-synthSD_T1w.nii.gz`` (staged through the manifest).
    ce
        ``*_ce-<agent>_desc-ceSignal_T1w.nii.gz``.
    manifest
        Derivative entries (the two images and the report figure).
    """
    wf = pe.Workflow(name=name)
    wf.__desc__ = (
        "A standard-dose T1-weighted image was synthesised from the low-dose acquisition with a conditional "
        "3D U-Net after Pinetz et al. [@pinetz2024]: the pre-contrast image was registered rigidly to the "
        "low-dose image (Mattes mutual information, SimpleITK [@simpleitk]); the network, conditioned on "
        "field strength, dose, relaxivity, noise level and voxel size, predicted the standard-dose contrast "
        "enhancement from the low-dose subtraction, which was added to the registered pre-contrast image. "
        "The network was trained on simulated brains only."
    )
    wf.__refs__ = ["pinetz2024", "simpleitk"]
    outputnode = pe.Node(IdentityInterface(fields=["synth", "ce", "manifest"]), name="outputnode")
    node = pe.Node(
        DoseSynthesis(
            pre_file=str(inputs.dose_pre),
            low_file=str(inputs.dose_low),
            raw_root=str(Path(config.bids_dir).resolve()),
        ),
        name="synthesize",
    )
    if inputs.dose_standard is not None:
        node.inputs.standard_file = str(inputs.dose_standard)
    if config.dose_fraction is not None:
        node.inputs.dose_fraction = config.dose_fraction
    wf.connect(node, "synth", outputnode, "synth")
    wf.connect(node, "ce", outputnode, "ce")
    wf.connect(node, "manifest", outputnode, "manifest")
    return wf


def init_dose_session_wf(*, config: Config, inputs, name):
    """Build a session with low-dose T1w images and no DCE data: the dose stage and the datasink.

    Parameters
    ----------
    config : Config
        As :func:`init_dose_wf`, plus ``output_dir`` and ``t1_method`` (datasink).
    inputs : bidsapp.bids_query.SessionInputs
        The session's dose inputs.
    name : str
        Workflow name.

    Inputs
    ------
    (none: the raw files are set from ``inputs``)

    Outputs
    -------
    staged
        Staged derivative files (relative to the output folder), as the DCE session workflow.
    """
    wf = pe.Workflow(name=name)
    dose_wf = init_dose_wf(config=config, inputs=inputs)
    outputnode = pe.Node(IdentityInterface(fields=["staged"]), name="outputnode")
    outputs_wf = init_session_outputs_wf(
        output_dir=config.output_dir,
        subject=inputs.subject,
        session=inputs.session,
        manifests=["dose"],
        t1_method=config.t1_method,
    )
    wf.connect(
        [
            (dose_wf, outputs_wf, [("outputnode.manifest", "inputnode.dose")]),
            (outputs_wf, outputnode, [("outputnode.staged", "staged")]),
        ]
    )
    return wf
