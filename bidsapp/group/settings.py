"""The ``--group-config`` JSON of the group level, parsed once into :class:`GroupSettings`.

Example (every key optional)::

    {"label": {"column": "grade", "positive": "high"},
     "reliability": {"across": "session"},
     "compare": [["cnn_Ktrans", "extendedtofts_Ktrans"]],
     "statistic": "mean",
     "site": "site", "by_site": false,
     "exclude_uncertain": {"threshold": 0.5, "relative": true}}

``reliability.across`` is ``session`` (the default: repeated sessions of a subject),
``map`` (``"maps": [[map, map, ...], ...]``, different maps of one quantity in the same
session, e.g. network vs fitted Ktrans or repeated network samples) or ``derivatives``
(``"derivatives": [folder, ...]``: the same maps in other dcequant output folders, e.g.
computed with another AIF; relative paths are relative to the config file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io_utils import read_option_file

ACROSS = ("session", "map", "derivatives")
STATISTICS = ("mean", "median")
_KEYS = {"label", "reliability", "compare", "statistic", "site", "by_site", "exclude_uncertain"}


@dataclass(frozen=True)
class GroupSettings:
    """Typed group-level options (see the module docstring)."""

    label_column: str | None = None
    positive: str | None = None
    across: str = "session"
    reliability_maps: tuple = ()
    derivatives: tuple = ()
    compare: tuple = ()
    statistic: str = "mean"
    site_column: str = "site"
    by_site: bool = False
    uncertainty: tuple | None = None  # (threshold, relative)
    source: str = "defaults"


def _pairs(value, where):
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) >= 2 and all(isinstance(m, str) for m in p) for p in value
    ):
        raise ValueError(f"{where}: a list of lists of at least two map names is required")
    return tuple(tuple(p) for p in value)


def load_group_settings(path: str | Path | None = None) -> GroupSettings:
    """Read ``--group-config``; defaults when ``path`` is None.

    One-line ``ValueError`` naming the file and the key on bad input.
    """
    if path is None:
        return GroupSettings()
    path = Path(path)
    data = read_option_file(path, "--group-config")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(f"--group-config {path}: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    opts = {"source": str(path)}
    label = data.get("label")
    if label is not None:
        if not isinstance(label, dict) or not isinstance(label.get("column"), str) or "positive" not in label:
            raise ValueError(f"--group-config {path}: 'label' needs 'column' (text) and 'positive'")
        opts.update(label_column=label["column"], positive=str(label["positive"]))
    rel = data.get("reliability", {})
    if not isinstance(rel, dict) or rel.get("across", "session") not in ACROSS:
        raise ValueError(f"--group-config {path}: 'reliability.across' must be one of {ACROSS}")
    opts["across"] = rel.get("across", "session")
    if opts["across"] == "map":
        opts["reliability_maps"] = _pairs(rel.get("maps"), f"--group-config {path}: 'reliability.maps'")
    if opts["across"] == "derivatives":
        folders = rel.get("derivatives")
        if not isinstance(folders, list) or not folders or not all(isinstance(f, str) for f in folders):
            raise ValueError(f"--group-config {path}: 'reliability.derivatives' must list output folders")
        opts["derivatives"] = tuple((path.parent / f).resolve() for f in folders)
        missing = [str(f) for f in opts["derivatives"] if not f.is_dir()]
        if missing:
            raise ValueError(f"--group-config {path}: 'reliability.derivatives': no such folder {missing[0]}")
    if "compare" in data:
        opts["compare"] = _pairs(data["compare"], f"--group-config {path}: 'compare'")
        if any(len(p) != 2 for p in opts["compare"]):
            raise ValueError(f"--group-config {path}: 'compare' pairs must name exactly two maps")
    if data.get("statistic", "mean") not in STATISTICS:
        raise ValueError(f"--group-config {path}: 'statistic' must be one of {STATISTICS}")
    opts["statistic"] = data.get("statistic", "mean")
    if not isinstance(data.get("site", "site"), str) or not isinstance(data.get("by_site", False), bool):
        raise ValueError(f"--group-config {path}: 'site' must be a column name and 'by_site' true/false")
    opts.update(site_column=data.get("site", "site"), by_site=data.get("by_site", False))
    unc = data.get("exclude_uncertain")
    if unc is not None:
        threshold = unc.get("threshold") if isinstance(unc, dict) else None
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not threshold > 0:
            raise ValueError(f"--group-config {path}: 'exclude_uncertain.threshold' must be a number > 0")
        opts["uncertainty"] = (float(threshold), bool(unc.get("relative", False)))
    return GroupSettings(**opts)
