"""Write simulated sessions as BIDS raw data plus a ``derivatives/truth`` dataset.

Raw names come from :mod:`bidsapp.bids_raw` (VFA file collection, ``perf/*_dce``,
``fmap/*_TB1map``, ``anat/*_T1w``). The post-contrast T1-weighted volumes of a dose
pair are ``anat/*_acq-lowdose_ce-<agent>_T1w`` (sidecar ``DoseFraction``, the input of the
dose-reduction branch) and ``anat/*_acq-fulldose_ce-<agent>_T1w``
next to the pre-contrast ``anat/*_T1w``. Truth files are listed in ``docs/simulate.md``.
Every file is written atomically.
"""

import csv
import io

import nibabel as nib
import numpy as np

from .. import bids_raw
from .._version import __version__
from ..io_utils import save_nifti_atomic, write_json_atomic, write_text_atomic
from ..registry.kinetic import get_model
from .kinetics import TRUTH_MODEL
from .subject import RECEIVER_GAIN
from .tissues import TISSUE_CLASSES

MANUFACTURER = "dcequant simulator"
DOSE_PAIR_ACQ = {"low": "lowdose", "standard": "fulldose"}


def save_volume(path, data, grid, dt=None, dtype=np.float32):
    """Save ``data`` on ``grid`` as NIfTI (mm, s units; sform/qform = scanner)."""
    img = nib.Nifti1Image(np.asarray(data, dtype=dtype), grid.affine)
    img.set_sform(grid.affine, code=1)
    img.set_qform(grid.affine, code=1)
    zooms = tuple(grid.voxel_size) + ((float(dt),) if dt is not None and np.ndim(data) == 4 else ())
    img.header.set_zooms(zooms[: np.ndim(data)])
    img.header.set_xyzt_units("mm", "sec")
    save_nifti_atomic(img, path)


def _common_sidecar(protocol):
    return {
        "MagneticFieldStrength": protocol.field_strength,
        "Manufacturer": MANUFACTURER,
        "ManufacturersModelName": "digital reference object",
        "SoftwareVersions": __version__,
        "InstitutionName": "dcequant simulation",
        "StationName": "SIMMR01",
        "ScanningSequence": "GR",
        "SequenceVariant": "SP",
        "SequenceName": "spgr3d",
        "MRAcquisitionType": "3D",
        "EchoTime": protocol.echo_time,
    }


def contrast_fields(protocol, dose_fraction=1.0):
    """Contrast-agent sidecar fields (total dose in ml, dose in mmol/kg)."""
    return {
        "ContrastBolusIngredient": "GADOLINIUM",
        "ContrastBolusAgent": protocol.agent,
        "ContrastBolusTotalDose": round(protocol.injected_volume_ml(dose_fraction), 4),
        "ContrastBolusDose": dose_fraction * protocol.dose,
        "ContrastBolusDoseUnits": "mmol/kg",
    }


#: the two BIDS forms of a 4-D series' frame timing (mutually exclusive in a sidecar)
TIMING_FIELDS = ("VolumeTiming", "RepetitionTime")


def dce_timing(protocol, times, timing_field="VolumeTiming"):
    """Return the timing fields of the DCE sidecar in one of the two BIDS forms.

    ``VolumeTiming`` (s, every frame's onset) with ``AcquisitionDuration``, or
    ``RepetitionTime`` (s, the frame interval of regular sampling; BIDS then forbids
    ``AcquisitionDuration``). The SPGR TR is ``RepetitionTimeExcitation`` in both.
    """
    if timing_field == "VolumeTiming":
        return {
            "VolumeTiming": [round(float(t), 6) for t in times],
            "AcquisitionDuration": protocol.temporal_resolution,
        }
    if timing_field == "RepetitionTime":
        return {"RepetitionTime": protocol.temporal_resolution}
    raise ValueError(f"timing_field {timing_field!r} is not one of {', '.join(TIMING_FIELDS)}")


def write_raw_session(root, subject, session, sim, dose_pair=None, timing_field="VolumeTiming"):
    """Write VFA, DCE, optional TB1map and dose-pair T1w of one session; return paths.

    ``timing_field`` chooses the BIDS form of the DCE frame timing (:func:`dce_timing`).
    """
    protocol, grid = sim.protocol, sim.phantom.grid
    written = []
    for index, angle in enumerate(protocol.vfa_flip_angles, start=1):
        path = bids_raw.vfa_path(root, subject, session, index)
        save_volume(path, sim.vfa[..., index - 1], sim.vfa_grid or grid)
        sidecar = {
            "FlipAngle": angle,
            "RepetitionTimeExcitation": protocol.vfa_tr,
            "PulseSequenceType": "SPGR",
            **_common_sidecar(protocol),
        }
        write_json_atomic(bids_raw.vfa_path(root, subject, session, index, ".json"), sidecar)
        written.append(path)
    path = bids_raw.dce_path(root, subject, session)
    save_volume(path, sim.dce, grid, dt=protocol.temporal_resolution)
    sidecar = {
        "FlipAngle": protocol.dce_flip_angle,
        "RepetitionTimeExcitation": protocol.dce_tr,
        "PulseSequenceType": "SPGR",
        **_common_sidecar(protocol),
        **dce_timing(protocol, sim.t, timing_field),
        **contrast_fields(protocol),
    }
    write_json_atomic(bids_raw.dce_path(root, subject, session, ".json"), sidecar)
    written.append(path)
    if protocol.b1_amplitude > 0:
        path = bids_raw.b1_path(root, subject, session)
        save_volume(path, 100.0 * sim.b1, grid)
        write_json_atomic(
            bids_raw.b1_path(root, subject, session, ".json"),
            {"Units": "percent", **_common_sidecar(protocol)},
        )
        written.append(path)
    if dose_pair is not None:
        written += _write_dose_pair(root, subject, session, dose_pair, protocol, grid)
    return written


def _write_dose_pair(root, subject, session, pair, protocol, grid):
    written = []
    volumes = {None: pair.pre, "low": pair.low, "standard": pair.standard}
    for dose, data in volumes.items():
        entities = {} if dose is None else {"acq": DOSE_PAIR_ACQ[dose], "ce": protocol.agent}
        path = bids_raw.raw_path(root, subject, session, "anat", "T1w", **entities)
        save_volume(path, data, grid)
        sidecar = {
            "FlipAngle": pair.flip_angle,
            "RepetitionTimeExcitation": pair.tr,
            "PulseSequenceType": "SPGR",
            **_common_sidecar(protocol),
        }
        if dose is not None:
            fraction = pair.low_dose_fraction if dose == "low" else 1.0
            sidecar.update(contrast_fields(protocol, fraction))
            sidecar["DoseFraction"] = fraction
        write_json_atomic(path.with_name(path.name.replace(".nii.gz", ".json")), sidecar)
        written.append(path)
    return written


def write_truth_session(root, subject, session, sim, dose_pair=None):
    """Write the truth of one session under the derivative dataset ``root``."""
    phantom, protocol, grid = sim.phantom, sim.protocol, sim.phantom.grid

    def truth(datatype, suffix, extension=".nii.gz", **entities):
        return bids_raw.raw_path(
            root, subject, session, datatype, suffix, extension, **entities, desc="truth"
        )

    def volume(datatype, suffix, data, sidecar, dtype=np.float32, dt=None, **entities):
        save_volume(truth(datatype, suffix, **entities), data, grid, dt=dt, dtype=dtype)
        if datatype in ("anat", "fmap"):
            sidecar = {"SkullStripped": False, **sidecar}
        write_json_atomic(truth(datatype, suffix, ".json", **entities), sidecar)

    volume("anat", "T1map", phantom.t1, {"Units": "s"})
    volume(
        "anat",
        "M0map",
        phantom.m0 * RECEIVER_GAIN,
        {
            "Units": "arbitrary",
            "Description": "receiver gain × relative proton density; the M0 of the SPGR equation",
        },
    )
    volume(
        "anat",
        "dseg",
        phantom.dseg,
        {"Description": "dominant tissue class; labels in dseg.tsv"},
        dtype=np.int16,
    )
    units = get_model(TRUTH_MODEL).units
    for name, data in phantom.truth_maps().items():
        volume("perf", name, data, {"Units": units[name], "Model": TRUTH_MODEL})
    volume(
        "perf",
        "delay",
        phantom.delay,
        {"Units": "s", "Description": "bolus delay relative to the arterial input"},
    )
    volume(
        "perf",
        "dce",
        sim.concentration,
        {
            "Units": "mM",
            "Description": "noise-free tissue concentration",
            "VolumeTiming": [float(t) for t in sim.t],
        },
        dt=protocol.temporal_resolution,
    )
    if protocol.b1_amplitude > 0:
        volume("fmap", "TB1map", 100.0 * sim.b1, {"Units": "percent"})
    _write_table(
        truth("perf", "timeseries", ".tsv"), {"time": sim.t, "plasma": sim.aif_plasma, "blood": sim.aif_blood}
    )
    write_json_atomic(truth("perf", "timeseries", ".json"), _aif_sidecar(sim))
    if sim.motion is not None:
        names = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
        motion = bids_raw.raw_path(root, subject, session, "perf", "timeseries", ".tsv", desc="truthmotion")
        _write_table(motion, dict(zip(names, sim.motion.T, strict=True)))
        doc = {n: {"Units": "mm" if n.startswith("trans") else "degrees"} for n in names}
        doc["Description"] = "rigid motion of every DCE frame (rotation about the slab centre)"
        doc["VFAMotion"] = dict(zip(names, sim.vfa_motion, strict=True))
        write_json_atomic(motion.with_suffix(".json"), doc)
    if dose_pair is not None:
        for dose, data in (("low", dose_pair.low_enhancement), ("standard", dose_pair.enhancement)):
            fraction = dose_pair.low_dose_fraction if dose == "low" else 1.0
            sidecar = {
                "Description": "noise-free post-contrast minus pre-contrast T1w signal",
                "DoseFraction": fraction,
                "PostContrastTime": dose_pair.time,
            }
            volume("anat", "enhancement", data, sidecar, acq=DOSE_PAIR_ACQ[dose])


def _aif_sidecar(sim):
    protocol, phantom = sim.protocol, sim.phantom
    return {
        "time": {"Units": "s"},
        "plasma": {"Description": "arterial plasma concentration", "Units": "mM"},
        "blood": {"Description": "arterial whole-blood concentration", "Units": "mM"},
        "PopulationAIF": protocol.aif,
        "BolusArrivalTime": sim.session_input.bolus_arrival,
        "AIFAmplitudeFactor": sim.session_input.amplitude,
        "Hematocrit": protocol.hematocrit,
        "ContrastBolusAgent": protocol.agent,
        "ContrastBolusDose": protocol.dose,
        "ContrastBolusDoseUnits": "mmol/kg",
        "Relaxivity": sim.relaxivity,
        "RelaxivityUnits": "1/mM/s",
        "SinusDelay": phantom.sinus_delay,
        "NoiseSigma": sim.noise_sigma,
        "SNR": protocol.snr,
        "Model": TRUTH_MODEL,
    }


def _write_table(path, columns):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values(), strict=True):
        writer.writerow([f"{float(v):.6g}" for v in row])
    write_text_atomic(path, buffer.getvalue())


def subject_truth_row(subject, phantom, group_column):
    """One ``participants.tsv`` row of the truth dataset: group and subject-level values."""
    row = {
        "participant_id": subject,
        group_column: phantom.group or "n/a",
        "sinus_delay": round(phantom.sinus_delay, 6),
    }
    for tissue, values in phantom.subject_values.items():
        for parameter, value in values.items():
            row[f"{tissue}_{parameter}"] = f"{value:.6g}"
    return row


def subject_truth_columns(row, group_column):
    """``participants.json`` entries documenting the columns of :func:`subject_truth_row`."""
    units = {"T1": "s", "M0": "relative to CSF", "Ktrans": "1/min", "ve": "fraction", "vp": "fraction"}
    doc = {
        group_column: {"Description": "group label; the second level shifts tumour-rim Ktrans and vp"},
        "sinus_delay": {"Description": "bolus delay of the sagittal sinus", "Units": "s"},
    }
    for column in row:
        tissue, _, parameter = column.rpartition("_")
        if parameter in units:
            doc[column] = {
                "Description": f"subject-level {parameter} of {tissue} (before spatial variation)",
                "Units": units[parameter],
            }
    return doc


#: truth files outside the BIDS derivatives specification (listed in the truth .bidsignore)
TRUTH_IGNORE_PATTERNS = (
    "*_desc-truth_Ktrans.*",
    "*_desc-truth_ve.*",
    "*_desc-truth_vp.*",
    "*_desc-truth_kep.*",
    "*_desc-truth_delay.*",
    "*_desc-truth_dce.*",
    "*_desc-truth_timeseries.*",
    "*_desc-truthmotion_timeseries.*",
    "*_desc-truth_enhancement.*",
)


def write_truth_dataset_files(root, participants, group_column):
    """Write the dataset-level files of the truth dataset.

    ``dataset_description.json`` (derivative), ``dseg.tsv``, ``.bidsignore`` and ``participants.tsv``
    (subject-level truth) of the truth dataset.
    """
    bids_raw.ensure_dataset_description(
        root,
        "dcequant simulation ground truth",
        dataset_type="derivative",
        GeneratedBy=[{"Name": "dcequant-simulate", "Version": __version__}],
    )
    lines = ["index\tname\tabbreviation"] + [
        f"{i}\t{name}\t{abbr}" for i, (name, abbr) in TISSUE_CLASSES.items()
    ]
    write_text_atomic(root / "dseg.tsv", "\n".join(lines) + "\n")
    bids_raw.ensure_bidsignore(root, TRUTH_IGNORE_PATTERNS)
    if participants:
        bids_raw.update_participants(
            root, participants, columns_doc=subject_truth_columns(participants[0], group_column)
        )


def write_raw_dataset_files(root, participants, group_column, group_labels, readme):
    """Raw dataset files: description, ``.bidsignore``, README and participants."""
    bids_raw.ensure_dataset_description(
        root,
        "dcequant simulated DCE-MRI study",
        Authors=["dcequant-simulate"],
        License="CC0",
        GeneratedBy=[{"Name": "dcequant-simulate", "Version": __version__}],
    )
    bids_raw.ensure_bidsignore(root)
    write_text_atomic(root / "README", readme)
    doc = {
        group_column: {
            "Description": "binary group label; the second level shifts tumour Ktrans and vp",
            "Levels": {label: f"group {label}" for label in group_labels},
        }
    }
    bids_raw.update_participants(root, participants, columns_doc=doc)
