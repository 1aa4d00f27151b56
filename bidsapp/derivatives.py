"""The dcequant derivative dataset: names, sidecars, dataset_description, safe commits.

Names are built from entities (never hard-coded paths) with
:func:`bidsapp.bids_raw.raw_path`; model names become BIDS labels without underscores
(``extended_tofts`` -> ``desc-extendedtofts``), standard errors use
``desc-<label>Stderr``. Layout (``ses-`` parts only where the input has sessions)::

    sub-<L>/ses-<S>/anat/sub-<L>_ses-<S>_desc-vfa_T1map.nii.gz        T1 (s)
    sub-<L>/ses-<S>/anat/sub-<L>_ses-<S>_desc-vfa_M0map.nii.gz        M0 (a.u.)
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-conc_dce.nii.gz         concentration (mM)
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-aif_timeseries.tsv      AIF (s, mM) + .json
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-aif_mask.nii.gz         AIF voxels
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-<model>_<param>.nii.gz  Ktrans, ve, vp, kep, Fp, PS, delay
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-<model>Stderr_<param>.nii.gz
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-<model>_R2map.nii.gz
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-<model>_mask.nii.gz     quality mask

Every NIfTI/TSV has a JSON sidecar. Files of a session are first written into a
hidden staging folder inside ``output_dir`` and then moved into place one by one with
``os.replace`` (atomic on one filesystem); if any move fails, the files moved so far
are removed again, so a failed session leaves no partial set of new files.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .bids_raw import BIDS_VERSION, ensure_bidsignore, raw_path
from .io_utils import _json_default, write_json_atomic, write_text_atomic

CODE_URL = "https://github.com/dcequant/dcequant"
STAGING_DIR = ".dcequant-staging"
#: derivative names outside the BIDS schema (``_dce`` and the model parameter suffixes)
BIDSIGNORE = ("*_dce.*", "*_Ktrans.*", "*_ve.*", "*_vp.*", "*_kep.*", "*_Fp.*", "*_PS.*", "*_delay.*",
              "*_R2map.*", "*_timeseries.*", "**/perf/*_mask.*", "*.html", "logs/", "group/")

README = """# dcequant derivatives

DCE-MRI maps computed by dcequant {version} from the BIDS dataset at {bids_dir}.
Per subject: `sub-<label>.html` (report); methods and references in `logs/CITATION.md`.
Units are given in every JSON sidecar.
"""


def model_label(model):
    """BIDS ``desc`` label of a model name (``extended_tofts`` -> ``extendedtofts``)."""
    return model.replace("_", "").replace("-", "")


def stderr_label(model):
    """``desc`` label of a model's standard-error maps."""
    return f"{model_label(model)}Stderr"


@dataclass
class Entry:
    """One derivative file of a session, described by its entities.

    ``source`` is the file produced by a workflow node; ``sidecar`` the JSON content.
    """

    source: str
    datatype: str
    suffix: str
    desc: str | None = None
    extension: str = ".nii.gz"
    sidecar: dict = field(default_factory=dict)

    def target(self, output_dir, subject, session):
        return raw_path(output_dir, subject, session, self.datatype, self.suffix, self.extension, desc=self.desc)

    def to_dict(self):
        return dict(self.__dict__)


def derivative_path(output_dir, subject, session, datatype, suffix, desc=None, extension=".nii.gz"):
    """Path of a derivative file by entities."""
    return raw_path(output_dir, subject, session, datatype, suffix, extension, desc=desc)


def write_manifest(path, entries):
    """Save a node's list of :class:`Entry` as JSON (the datasink reads it)."""
    write_json_atomic(path, [e.to_dict() for e in entries])


def read_manifest(path):
    return [Entry(**d) for d in json.loads(Path(path).read_text())]


def software_info():
    """``{"Name", "Version", "CodeURL"}`` of this software."""
    return {"Name": "dcequant", "Version": __version__, "CodeURL": CODE_URL}


def container_info():
    """``GeneratedBy.Container`` when running inside Docker/Apptainer, else ``None``."""
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        return {"Type": "apptainer", "URI": os.environ.get("APPTAINER_NAME") or os.environ.get("SINGULARITY_NAME")}
    if Path("/.dockerenv").exists():
        return {"Type": "docker", "Tag": os.environ.get("DCEQUANT_IMAGE", f"dcequant:{__version__}")}
    return None


def write_dataset_description(output_dir, bids_dir):
    """Write the derivative ``dataset_description.json`` and ``.bidsignore``."""
    output_dir = Path(output_dir)
    generated = software_info()
    container = container_info()
    if container:
        generated["Container"] = container
    source = {"URL": Path(bids_dir).resolve().as_uri()}
    raw_desc = Path(bids_dir) / "dataset_description.json"
    if raw_desc.exists():
        doi = json.loads(raw_desc.read_text()).get("DatasetDOI")
        if doi:
            source["DOI"] = doi
    desc = {
        "Name": "dcequant derivatives",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [source],
        "DatasetLinks": {"raw": Path(bids_dir).resolve().as_uri()},
    }
    write_json_atomic(output_dir / "dataset_description.json", desc)
    readme = output_dir / "README.md"
    if not readme.exists():
        write_text_atomic(readme, README.format(version=__version__, bids_dir=Path(bids_dir).resolve()))
    ensure_bidsignore(output_dir, BIDSIGNORE)
    return desc


def commit_session(output_dir, subject, session, entries):
    """Write all ``entries`` of one session into ``output_dir``; all or nothing.

    Returns the list of written paths. Each file (and its JSON sidecar) is copied into
    a staging folder, then moved into place; on error the moved files are removed.
    """
    output_dir = Path(output_dir)
    tag = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    staging = output_dir / STAGING_DIR / tag
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    plan = []
    try:
        for entry in entries:
            target = entry.target(output_dir, subject, session)
            staged = staging / target.name
            shutil.copyfile(entry.source, staged)
            plan.append((staged, target))
            if entry.extension.startswith(".nii"):
                entry.sidecar.setdefault("SkullStripped", False)
            if entry.sidecar:
                json_target = target.with_name(target.name[: -len(entry.extension)] + ".json")
                json_staged = staging / json_target.name
                json_staged.write_text(json.dumps(entry.sidecar, indent=2, default=_json_default) + "\n")
                plan.append((json_staged, json_target))
        moved = []
        try:
            for staged, target in plan:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
                moved.append(target)
        except BaseException:
            for target in moved:
                target.unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            (output_dir / STAGING_DIR).rmdir()
        except OSError:
            pass
    return [target for _, target in plan]

