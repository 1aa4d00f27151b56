"""Checks of a finished dcequant derivative folder, shared by the container smoke test, the SLURM
test and the concurrency test: every file complete and readable, not just present.

Also a script: ``python tests/derivative_checks.py OUTPUT_DIR SUBJECT [SUBJECT ...]`` exits 1 with
the first problem found.
"""

import csv
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.group.tables import ROISTATS_COLUMNS

#: parameters of the default models (``extended_tofts patlak``) and their BIDS ``desc`` labels
DEFAULT_MAPS = {"extendedtofts": ("Ktrans", "ve", "vp", "kep"), "patlak": ("Ktrans", "vp")}


def _json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise AssertionError(f"{path}: not readable JSON ({exc})") from None


def _finite_volume(path):
    """Load a NIfTI fully (a truncated file fails here) and return its finite values."""
    try:
        data = np.asanyarray(nib.load(str(path)).dataobj, dtype=float)
    except Exception as exc:  # noqa: BLE001 - any reader error means a corrupt file
        raise AssertionError(f"{path}: not a readable NIfTI ({exc})") from None
    return data[np.isfinite(data)]


def check_dataset(out):
    """``dataset_description.json``, ``.bidsignore``, ``README.md`` and ``logs/CITATION.md``."""
    out = Path(out)
    desc = _json(out / "dataset_description.json")
    assert desc.get("DatasetType") == "derivative", (
        f"{out}/dataset_description.json: DatasetType {desc.get('DatasetType')!r}"
    )
    assert desc["GeneratedBy"][0]["Name"] == "dcequant", (
        f"{out}/dataset_description.json: GeneratedBy {desc['GeneratedBy']}"
    )
    ignore = (out / ".bidsignore").read_text().splitlines()
    for pattern in ("*_Ktrans.*", "logs/", "group/"):
        assert ignore.count(pattern) == 1, (
            f"{out}/.bidsignore: {pattern!r} appears {ignore.count(pattern)} times"
        )
    assert (out / "README.md").read_text().startswith("# dcequant derivatives"), (
        f"{out}/README.md is incomplete"
    )
    citation = (out / "logs" / "CITATION.md").read_text()
    assert citation.startswith("# Methods") and "## References" in citation, (
        f"{out}/logs/CITATION.md is incomplete"
    )
    assert not (out / ".dcequant-staging").exists(), f"{out}/.dcequant-staging was left behind"
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob(".*.nii.gz")), (
        f"{out}: temporary files left behind"
    )


def check_subject(out, subject, maps=DEFAULT_MAPS):
    """Every session of ``subject``: T1 map, concentration, AIF table and every model map of
    ``maps`` (``desc`` label -> parameters), each a readable NIfTI with finite values and a JSON
    sidecar; and the HTML report."""
    out = Path(out)
    folder = out / f"sub-{subject}"
    t1maps = sorted(folder.rglob(f"sub-{subject}*_desc-vfa_T1map.nii.gz"))
    assert t1maps, f"{folder}: no T1 map"
    for t1map in t1maps:
        prefix = t1map.name.split("_desc-")[0]
        perf = t1map.parent.parent / "perf"
        files = [t1map, perf / f"{prefix}_desc-conc_dce.nii.gz"]
        files += [
            perf / f"{prefix}_desc-{label}_{p}.nii.gz" for label, params in maps.items() for p in params
        ]
        for path in files:
            values = _finite_volume(path)
            assert values.size > 0, f"{path}: no finite value"
            _json(str(path).replace(".nii.gz", ".json"))
        t1 = _finite_volume(t1map)
        assert 0.1 < np.median(t1[t1 > 0]) < 10, f"{t1map}: implausible T1 (s) {np.median(t1[t1 > 0])}"
        aif = perf / f"{prefix}_desc-aif_timeseries.tsv"
        rows = list(csv.reader(aif.open(), delimiter="\t"))
        assert len(rows) > 5 and all(len(r) == len(rows[0]) for r in rows), f"{aif}: incomplete table"
    for path in folder.rglob("*.json"):
        _json(path)
    report = (out / f"sub-{subject}.html").read_text()
    assert f"dcequant report: sub-{subject}" in report and report.rstrip().endswith("</html>"), (
        f"{out}/sub-{subject}.html is incomplete"
    )


def check_group(out, subjects):
    """``group_desc-roistats_stats.tsv``: the full header and rows for every subject, statistics
    that parse (``n/a`` only where the ROI holds no finite value); and the group report."""
    path = Path(out) / "group_desc-roistats_stats.tsv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert rows and tuple(rows[0]) == ROISTATS_COLUMNS, f"{path}: header {tuple(rows[0]) if rows else None}"
    found = {r["participant_id"].removeprefix("sub-") for r in rows}
    assert found == set(subjects), f"{path}: subjects {sorted(found)}, expected {sorted(subjects)}"
    for row in rows:
        if int(row["n_valid"]) or row["mean"] != "n/a":
            float(row["mean"]), float(row["median"]), float(row["sd"])
    assert any(int(row["n_valid"]) > 0 for row in rows), f"{path}: no ROI with a finite value"
    _json(path.with_suffix(".json"))
    report = (Path(out) / "group_report.html").read_text()
    assert report.rstrip().endswith("</html>"), f"{out}/group_report.html is incomplete"


def check_all(out, subjects, group=True):
    check_dataset(out)
    for subject in subjects:
        check_subject(out, subject)
    if group:
        check_group(out, subjects)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: derivative_checks.py OUTPUT_DIR SUBJECT [SUBJECT ...]", file=sys.stderr)
        return 2
    try:
        check_all(argv[0], argv[1:])
    except (AssertionError, OSError, KeyError, ValueError) as exc:
        print(f"derivative check failed: {exc}", file=sys.stderr)
        return 1
    print(f"derivative check: {argv[0]} complete for sub-{', sub-'.join(argv[1:])} and the group tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
