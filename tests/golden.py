"""Golden runs: the demo-sized simulated study through the whole app, and a snapshot of
every file it writes, to check that a restructuring leaves the derivatives identical.

Three cases cover the stages and option kinds of the participant level (and the group
level once):

``default``
    BIDS input, 16×16×2 voxels, 30 frames, default options (VFA T1, motion stage on a grid
    too small to register, automatic AIF falling back to the Parker population AIF,
    extended Tofts and Patlak), then the group level with the simulator's tissue ROIs.
``dicom``
    DICOM input converted inside the workflow, 16×16×4 voxels with 1 mm / 1° simulated
    motion (motion correction and VFA alignment run), ``--aif`` an ROI mask named
    with a ``{subject}`` placeholder, Tofts, 2CXM and 2CUM with a fitted delay, non-linear
    VFA T1, haematocrit 0.42.
``fixed_t10``
    BIDS input without VFA images: ``--t10``, an AIF table, ``--baseline-frames``,
    ``--relaxivity``, ``--no-motion-correction``, Patlak.

A snapshot (:func:`snapshot`) holds, per output file, its SHA-256 after replacing the run's
temporary folder by ``<ROOT>`` (NIfTI files: of the uncompressed header and data, since the
gzip stream is not part of the result), the parsed content of every JSON file (readable
differences), and every NIfTI header and data array (``arrays.npz``, compared voxel for
voxel). The test compares JSON files as JSON values (an object's key order carries no
meaning; since the datasink adds the fit sidecars' provenance, ``T1Method`` and ``Sources``
come last in them) and every other file byte for byte. ``logs/config-*`` (the per-run
record of the configuration, with a time stamp) and the output lock file are not part of
the result.

The reference in ``tests/data/golden/`` is written by ``tests/data/golden/regenerate.py``
(see its docstring). It was first generated with the code of commit 7d58f4d, before the
workflow stages were split into modules (the stage split reproduced it exactly), then
regenerated once after the model registry landed: only the corrected sidecar wording
(``Description``, ``ModelDescription``, the methods text, the ``.bidsignore`` line order)
changed, plus, in the ``dicom`` case (non-linear VFA T1), T1 by at most 2e-5 s from the
T1 fit now running on the shared Levenberg–Marquardt, carried into its concentration and
fits.
The ``dicom`` case was regenerated once more when the simulator began to move the head
before sampling it (its input data changed; the other cases do not move and stayed
identical).
It was regenerated a last time after the delay-fit speed work (blocked JᵀJ/Jᵀr
reductions): one voxel of the default case's vp map moved by 1e-7 relative and two
ill-conditioned 2CXM standard-error voxels by 1e-5; at the same time the snapshot began to
hash the reports without their embedded figures and to keep TSV cells, so that floats
can be compared to a relative 1e-4 (``tests/e2e/test_golden.py``).
All three cases were regenerated when the kinetic networks joined the default run (#14):
their series (145 s) are shorter than the networks' 300 s, so no network map is written,
but the methods text (``logs/CITATION.md``, and the report that embeds it) gained the
network stage.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
CASES = ("default", "dicom", "fixed_t10")
#: output files that are not results: the run's configuration record and the lock file
EXCLUDED = ("logs/config-", "logs/crash", ".dcequant.lock")
TEXT_SUFFIXES = (".json", ".tsv", ".md", ".txt", ".html", ".bidsignore", ".toml")


def _grid(matrix):
    from bidsapp.cli.demo import demo_grid

    return demo_grid(matrix)


def _aif_table(path, protocol):
    """A plasma AIF table (``time`` s, ``plasma`` mM): the Parker AIF arriving at 10 s."""
    from bidsapp import population_aif

    t = np.linspace(0.0, float(protocol.frame_times[-1]), 4 * protocol.n_frames)
    plasma = population_aif("parker", t, bolus_arrival=10.0, hematocrit=0.45)
    rows = ["time\tplasma"] + [f"{a!r}\t{b!r}" for a, b in zip(t.tolist(), plasma.tolist(), strict=True)]
    Path(path).write_text("\n".join(rows) + "\n")


def _vascular_mask(bids, subject, path):
    """An ROI mask of the most vascular voxels (truth vp in its top 2 %) on the DCE grid (at
    16×16 voxels no pure artery voxel exists; this only feeds the ROI-mask AIF path)."""
    vp = nib.load(
        bids / "derivatives" / "truth" / f"sub-{subject}" / "perf" / f"sub-{subject}_desc-truth_vp.nii.gz"
    )
    values = np.asarray(vp.dataobj, float)
    mask = (values >= np.percentile(values, 98)) & (values > 0)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), vp.affine), path)


def run_case(case, root):
    """Simulate the study of ``case`` under ``root`` and run dcequant on it; return the output folder."""
    from bidsapp.cli.run import main
    from bidsapp.simulate import Protocol, simulate_study

    root = Path(root)
    bids, out, work = root / "bids", root / "out", root / "work"
    argv = [str(bids), str(out), "participant", "-w", str(work), "--skip-bids-validation"]
    if case == "default":
        simulate_study(bids, n_subjects=1, grid=_grid((16, 16, 2)), protocol=Protocol(n_frames=30), seed=0)
    elif case == "dicom":
        simulate_study(
            bids,
            n_subjects=1,
            fmt="dicom",
            grid=_grid((16, 16, 4)),
            protocol=Protocol(n_frames=30, motion=1.0),
            seed=0,
        )
        _vascular_mask(bids, "01", root / "sub-01_aifmask.nii.gz")
        argv += [
            "--models",
            "tofts",
            "2cxm",
            "2cum",
            "--fit-delay",
            "--t1-method",
            "vfa-nonlinear",
            "--hematocrit",
            "0.42",
            "--aif",
            str(root / "sub-{subject}_aifmask.nii.gz"),
        ]
    elif case == "fixed_t10":
        protocol = Protocol(n_frames=30)
        simulate_study(bids, n_subjects=1, grid=_grid((16, 16, 2)), protocol=protocol, seed=1)
        for vfa in (bids / "sub-01" / "anat").glob("*_VFA.*"):
            vfa.unlink()
        _aif_table(root / "aif.tsv", protocol)
        argv += [
            "--t10",
            "1.4",
            "--aif",
            str(root / "aif.tsv"),
            "--baseline-frames",
            "4",
            "--relaxivity",
            "4.5",
            "--no-motion-correction",
            "--models",
            "patlak",
        ]
    else:
        raise ValueError(f"unknown golden case {case!r}; choose from {CASES}")
    if main(argv) != 0:
        raise RuntimeError(f"golden case {case}: dcequant participant failed")
    if (
        case == "default"
        and main([str(bids), str(out), "group", "--roi", str(bids / "derivatives" / "truth")]) != 0
    ):
        raise RuntimeError("golden case default: dcequant group failed")
    return out


def _normalised(path, root):
    data = path.read_bytes()
    if path.name.endswith(TEXT_SUFFIXES):
        for prefix in {str(root.resolve()), str(root)}:
            data = data.replace(prefix.encode(), b"<ROOT>")
    return data


#: embedded report figures (``data:image/png;base64,…``): drawn from the NIfTI maps, which
#: are compared voxel for voxel, so the snapshot hashes the report text without them
_EMBEDDED_IMAGE = re.compile(rb"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")


def snapshot(out, root):
    """``(files, arrays)`` of an output folder.

    Per relative path its SHA-256 (HTML: without the embedded figures), the parsed JSON
    of a JSON file and the cells of a TSV file; per NIfTI file its data array and header
    bytes.
    """
    out, root = Path(out), Path(root)
    files, arrays = {}, {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel.startswith(EXCLUDED):
            continue
        if rel.endswith((".nii", ".nii.gz")):
            raw = gzip.decompress(path.read_bytes()) if rel.endswith(".gz") else path.read_bytes()
            img = nib.load(path)
            arrays[rel] = np.asarray(img.dataobj)
            arrays[rel + "::header"] = np.frombuffer(img.header.binaryblock, np.uint8)
            files[rel] = {"sha256": hashlib.sha256(raw).hexdigest()}
            continue
        data = _normalised(path, root)
        if rel.endswith(".html"):
            data = _EMBEDDED_IMAGE.sub(b"<FIGURE>", data)
        files[rel] = {"sha256": hashlib.sha256(data).hexdigest()}
        if rel.endswith(".json"):
            files[rel]["json"] = json.loads(data)
        if rel.endswith(".tsv"):
            files[rel]["table"] = [line.split("\t") for line in data.decode().splitlines()]
    return files, arrays


def write_reference(case, out, root, golden=GOLDEN):
    """Store the snapshot of ``out`` as the reference of ``case``."""
    files, arrays = snapshot(out, root)
    target = Path(golden) / case
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / "files.json").write_text(json.dumps(files, indent=1, sort_keys=True) + "\n")
    np.savez_compressed(target / "arrays.npz", **arrays)


def read_reference(case, golden=GOLDEN):
    """``(files, arrays)`` stored for ``case``."""
    target = Path(golden) / case
    files = json.loads((target / "files.json").read_text())
    with np.load(target / "arrays.npz") as stored:
        arrays = {key: stored[key] for key in stored.files}
    return files, arrays
