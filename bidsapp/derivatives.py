"""The dcequant derivative dataset: names, sidecars, dataset_description, safe commits.

Names are built from entities (never hard-coded paths) with
:func:`bidsapp.bids_raw.raw_path`; a model's maps carry its registry label
(:mod:`bidsapp.registry.kinetic`, ``extended_tofts`` -> ``desc-extendedtofts``), standard errors use
``desc-<label>Stderr``. Layout (``ses-`` parts only where the input has sessions)::

    sub-<L>/ses-<S>/anat/sub-<L>_ses-<S>_desc-vfa_T1map.nii.gz        T1 (s)
    sub-<L>/ses-<S>/anat/sub-<L>_ses-<S>_desc-vfa_M0map.nii.gz        M0 (a.u.)
    sub-<L>/ses-<S>/anat/sub-<L>_ses-<S>_desc-vfa_T1residual.nii.gz   VFA fit residual (fraction, QC)
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-conc_dce.nii.gz         concentration (mM)
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-aif_timeseries.tsv      AIF (s, mM) + .json
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-aif_mask.nii.gz         AIF voxels
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-<model>_<param>.nii.gz  Ktrans, ve, vp, kep, Fp, PS, delay
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-<model>Stderr_<param>.nii.gz
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-<model>_R2map.nii.gz
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-<model>_mask.nii.gz     quality mask
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-<net>_<param>.nii.gz    network (cnn, punet) Ktrans, vp, ve
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-punetStd_<param>.nii.gz punet SD over its prior draws
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_desc-confounds_timeseries.tsv motion parameters (mm, rad), FD
    sub-<L>/ses-<S>/perf/sub-<L>_ses-<S>_from-orig_to-dceref_mode-image_desc-hmc_xfm.txt
                                                                      frame transforms (ITK)
    sub-<L>/ses-<S>/anat/sub-<L>_ses-<S>_from-VFA_to-dceref_mode-image_xfm.txt
                                                                      VFA transforms (ITK)
    sub-<L>/ses-<S>/figures/sub-<L>_ses-<S>_desc-hmc_dce.png           before/after motion correction

Every NIfTI/TSV has a JSON sidecar. Each session's datasink stages its files in a
hidden folder inside ``output_dir`` (:func:`stage_session`); once every session of the
subject has succeeded, :func:`commit_subject` moves them into place one by one with
``os.replace`` (atomic on one filesystem) and removes the files moved so far if one
move fails. A subject whose processing fails therefore gets no new files.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .bids_raw import BIDS_VERSION, ensure_bidsignore, raw_path, subject_dir
from .io_utils import _json_default, dataset_lock, write_json_atomic, write_text_atomic
from .registry.kinetic import MODELS, get_model

CODE_URL = "https://github.com/dcequant/dcequant"
STAGING_DIR = ".dcequant-staging"
#: suffixes of the parameter maps of every registered model (fitted, derived, delay)
PARAMETER_SUFFIXES = tuple(
    dict.fromkeys(name for spec in MODELS.values() for name in spec.outputs if name != "delay")
) + ("delay",)
#: derivative names outside the BIDS schema (``_dce`` and the model parameter suffixes)
BIDSIGNORE = (
    "*_dce.*",
    *(f"*_{name}.*" for name in PARAMETER_SUFFIXES),
    "*_R2map.*",
    "*_T1residual.*",
    "*_timeseries.*",
    "**/perf/*_mask.*",
    "*.html",
    "logs/",
    "group/",
    "*_xfm.*",
    "**/figures",
)

README = """# dcequant derivatives

DCE-MRI maps computed by dcequant {version} from the BIDS dataset at {bids_dir}.
Per subject: `sub-<label>.html` (report); methods and references in `logs/CITATION.md`.
Units are given in every JSON sidecar.
"""


def model_label(model):
    """BIDS ``desc`` label of a model (``extended_tofts`` -> ``extendedtofts``; the registry's ``label``)."""
    return get_model(model).label


def stderr_label(model):
    """``desc`` label of a model's standard-error maps."""
    return f"{model_label(model)}Stderr"


@dataclass
class Entry:
    """One derivative file of a session, described by its entities.

    ``source`` is the file produced by a workflow node; ``sidecar`` the JSON content;
    ``entities`` further entities written before ``desc`` (e.g. ``{"from": "orig",
    "to": "dceref", "mode": "image"}`` for a transform).

    Provenance that depends on the subject, the session or the run is not known to the
    node and is added by the datasink (:func:`stage_session`): ``links`` maps a sidecar
    key (``"Sources"``, or a dotted key into a nested object such as ``"AIF.File"``) to a
    :func:`ref` of another derivative of the same session, or a list of them, written as
    ``bids::`` URIs; ``run_metadata`` names sidecar keys whose values come from the run
    (e.g. ``"T1Method"``). Run metadata is written first, then the links, after the
    node's own keys.
    """

    source: str
    datatype: str
    suffix: str
    desc: str | None = None
    extension: str = ".nii.gz"
    sidecar: dict = field(default_factory=dict)
    entities: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    run_metadata: list = field(default_factory=list)

    def target(self, output_dir, subject, session):
        """Return the path of this entry in the derivative dataset ``output_dir``."""
        return raw_path(
            output_dir,
            subject,
            session,
            self.datatype,
            self.suffix,
            self.extension,
            **self.entities,
            desc=self.desc,
        )

    def to_dict(self):
        """Return the entry as a JSON-serialisable dict (the inverse of ``Entry(**d)``)."""
        return dict(self.__dict__)


def derivative_path(output_dir, subject, session, datatype, suffix, desc=None, extension=".nii.gz"):
    """Path of a derivative file by entities."""
    return raw_path(output_dir, subject, session, datatype, suffix, extension, desc=desc)


def ref(datatype, suffix, desc=None, extension=".nii.gz"):
    """Return a reference to a derivative of the session being written (see :func:`derivative_uri`)."""
    return {"datatype": datatype, "suffix": suffix, "desc": desc, "extension": extension}


def derivative_uri(subject, session, reference):
    """``bids::<path>`` URI of the file of this derivative dataset named by ``reference`` (:func:`ref`)."""
    return "bids::" + derivative_path("", subject, session, **reference).as_posix()


def resolve_provenance(entry, subject, session, metadata=None):
    """Return the sidecar of ``entry`` with its provenance filled in.

    Its run metadata (from ``metadata``) and its links (as ``bids::`` URIs of this subject/session) filled
    in; raises ``KeyError`` naming a run
    metadata key that ``metadata`` lacks.
    """
    sidecar = dict(entry.sidecar)
    for key in entry.run_metadata:
        if metadata is None or key not in metadata:
            raise KeyError(f"{entry.source}: run metadata {key!r} was not given to the datasink")
        sidecar[key] = metadata[key]
    for key, target in entry.links.items():
        uri = (
            [derivative_uri(subject, session, r) for r in target]
            if isinstance(target, list)
            else derivative_uri(subject, session, target)
        )
        *parents, name = key.split(".")
        node = sidecar
        for parent in parents:
            node[parent] = node = dict(node[parent])
        node[name] = uri
    return sidecar


def write_manifest(path, entries):
    """Save a node's list of :class:`Entry` as JSON (the datasink reads it)."""
    write_json_atomic(path, [e.to_dict() for e in entries])


def read_manifest(path):
    """Read the :class:`Entry` list of a manifest JSON written by a session step."""
    return [Entry(**d) for d in json.loads(Path(path).read_text())]


def software_info():
    """``{"Name", "Version", "CodeURL"}`` of this software."""
    return {"Name": "dcequant", "Version": __version__, "CodeURL": CODE_URL}


def container_info():
    """``GeneratedBy.Container`` when running inside Docker/Apptainer, else ``None``."""
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        return {
            "Type": "apptainer",
            "URI": os.environ.get("APPTAINER_NAME") or os.environ.get("SINGULARITY_NAME"),
        }
    if Path("/.dockerenv").exists():
        return {"Type": "docker", "Tag": os.environ.get("DCEQUANT_IMAGE", f"dcequant:{__version__}")}
    return None


def write_dataset_description(output_dir, bids_dir):
    """Write the dataset-level files of the derivative dataset.

    Write the derivative ``dataset_description.json``, ``README.md`` and ``.bidsignore`` (under
    :func:`~bidsapp.io_utils.dataset_lock`: concurrent runs may share ``output_dir``).
    """
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
    with dataset_lock(output_dir):
        write_json_atomic(output_dir / "dataset_description.json", desc)
        readme = output_dir / "README.md"
        if not readme.exists():
            write_text_atomic(readme, README.format(version=__version__, bids_dir=Path(bids_dir).resolve()))
        ensure_bidsignore(output_dir, BIDSIGNORE)
    return desc


def _staging_root(output_dir, subject):
    return Path(output_dir) / STAGING_DIR / f"sub-{subject}"


def stage_session(output_dir, subject, session, entries, metadata=None):
    """Stage the outputs of one session in the subject's hidden staging folder.

    Copy the ``entries`` of one session (and their JSON sidecars, with the provenance of
    :func:`resolve_provenance`, run metadata from ``metadata``) into the subject's hidden
    staging folder, laid out as they will be in ``output_dir``.

    Earlier staged files of the same session are removed first. Returns the staged
    files as paths relative to ``output_dir`` (the input of :func:`commit_subject`).
    """
    output_dir = Path(output_dir)
    staging = _staging_root(output_dir, subject)
    session_root = subject_dir(staging.parent, subject, session)
    if session:
        shutil.rmtree(session_root, ignore_errors=True)
    else:
        shutil.rmtree(staging, ignore_errors=True)
    with dataset_lock(output_dir):  # another subject's commit may be removing the shared staging parent
        staging.mkdir(parents=True, exist_ok=True)
    staged = []
    for entry in entries:
        target = entry.target(output_dir, subject, session)
        relative = target.relative_to(output_dir)
        (staging.parent / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry.source, staging.parent / relative)
        staged.append(relative.as_posix())
        sidecar = resolve_provenance(entry, subject, session, metadata)
        if entry.extension.startswith(".nii"):
            sidecar.setdefault("SkullStripped", False)
        if sidecar:
            json_relative = relative.with_name(relative.name[: -len(entry.extension)] + ".json")
            (staging.parent / json_relative).write_text(
                json.dumps(sidecar, indent=2, default=_json_default) + "\n"
            )
            staged.append(json_relative.as_posix())
    return staged


def commit_subject(output_dir, subject, staged):
    """Move the ``staged`` files of one subject (all its sessions) into ``output_dir``.

    Runs only after every session of the subject succeeded (it depends on all their
    datasinks), so a subject whose processing fails gets no new files. Each move is an
    atomic ``os.replace``; if one fails, the files moved so far are removed again.
    Returns the written paths.
    """
    output_dir = Path(output_dir)
    staging_parent = output_dir / STAGING_DIR
    moved = []
    try:
        for relative in staged:
            target = output_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging_parent / relative, target)
            moved.append(target)
    except BaseException:
        for target in moved:
            target.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(_staging_root(output_dir, subject), ignore_errors=True)
        with dataset_lock(output_dir):  # not while another subject is creating its staging folder
            try:
                staging_parent.rmdir()
            except OSError:
                pass
    return moved
