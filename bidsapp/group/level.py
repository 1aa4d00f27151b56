"""Group level runner (``dcequant bids_dir output_dir group``).

``dcequant bids_dir output_dir group``: ROI statistics, reliability, AUROC, site effects and the group report,
written at the root of ``output_dir``.

Files (each TSV with a JSON sidecar describing its columns with units):
``group_desc-roistats_stats.tsv``, ``group_desc-icc_stats.tsv`` (when there are repeated
measurements), ``group_desc-auroc_stats.tsv`` and ``group_desc-aurocdiff_stats.tsv`` (when a
label is configured), ``group_desc-siteeffect_stats.tsv`` (when a site column exists),
``group_site-<S>_desc-{icc,auroc}_stats.tsv`` (``"by_site": true``), ``group_report.html``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..bids_raw import strip_prefix
from ..derivatives import software_info
from ..io_utils import write_json_atomic, write_text_atomic
from . import analyses, sidecars
from .report import write_group_report
from .settings import load_group_settings
from .tables import ROISTATS_COLUMNS, find_maps, find_roi_files, session_folders, session_rows

if TYPE_CHECKING:
    from ..config import Config

LOGGER = logging.getLogger("dcequant")


def _cell(value):
    if isinstance(value, (float, np.floating)):
        return "n/a" if not np.isfinite(value) else format(float(value), ".10g")
    return str(value)


def write_table(path: Path, columns: Sequence[str], rows: Iterable[Sequence], sidecar: dict) -> Path:
    """Write a BIDS TSV (NaN as ``n/a``) and its JSON sidecar, atomically."""
    lines = ["\t".join(columns)] + ["\t".join(_cell(v) for v in row) for row in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")
    write_json_atomic(
        path.with_name(path.name[: -len(".tsv")] + ".json"), {**sidecar, "Software": software_info()}
    )
    return path


def roi_table(
    root: Path,
    participants: Sequence[str],
    sessions: Sequence[str],
    roi_specs: Sequence[str | Path],
    uncertainty: tuple[float, bool] | None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """``(ROI statistics DataFrame, {map: units})`` of one derivative folder."""
    rows, units = [], {}
    for subject, session, folder in session_folders(root, participants, sessions):
        maps = find_maps(folder)
        for name, path in maps.items():
            if name not in units:
                sidecar = Path(str(path).split(".nii")[0] + ".json")
                units[name] = json.loads(sidecar.read_text()).get("Units", "") if sidecar.is_file() else ""
        rois = find_roi_files(roi_specs, subject, session)
        if not rois:
            where = f"sub-{subject}" + (f" ses-{session}" if session else "")
            LOGGER.warning("group level: %s has no ROI file; skipped", where)
            continue
        rows += session_rows(
            f"sub-{subject}", f"ses-{session}" if session else "n/a", maps, rois, uncertainty
        )
    return pd.DataFrame(rows, columns=ROISTATS_COLUMNS), units


def read_participants(*roots) -> pd.DataFrame:
    """``participants.tsv`` of the first root that has one (text values), else empty."""
    for root in roots:
        path = Path(root) / "participants.tsv"
        if path.is_file():
            table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
            if "participant_id" not in table.columns:
                raise ValueError(f"{path}: column 'participant_id' is missing")
            table["participant_id"] = ["sub-" + strip_prefix(p, "sub") for p in table["participant_id"]]
            return table
    return pd.DataFrame({"participant_id": []})


def _reliability(settings, roistats, exclusions, config_args):
    statistic = settings.statistic
    if settings.across == "map":
        measurements = analyses.across_maps(roistats, statistic, settings.reliability_maps)
    elif settings.across == "derivatives":
        tables = {"output_dir": roistats}
        for folder in settings.derivatives:
            tables[str(folder)] = roi_table(folder, *config_args)[0]
        measurements = analyses.across_datasets(tables, statistic)
    else:
        measurements = analyses.across_sessions(roistats, statistic, exclusions)
    return analyses.reliability_tables(measurements, statistic, exclusions)


def _diagnostic(settings, participants, subject_values, exclusions):
    labels = analyses.labels_of(
        participants,
        settings.label_column,
        settings.positive,
        sorted(subject_values["participant_id"].unique()),
        exclusions,
    )
    return labels, analyses.auroc_tables(
        subject_values, labels, settings.label_column, settings.positive, settings.statistic, settings.compare
    )


def _sites(settings, participants, subjects):
    if settings.site_column not in participants.columns:
        if settings.by_site:
            raise ValueError(f"participants.tsv: no site column '{settings.site_column}' (by_site is true)")
        return {}
    sites = participants.set_index("participant_id")[settings.site_column]
    return {p: sites[p] for p in subjects if p in sites.index and sites[p] not in ("", "n/a")}


def _by_site(settings, roistats, sites, participants, exclusions, args):
    """Per-site ICC and AUROC tables: ``[(file name, columns, rows, sidecar)]``."""
    tables = []
    for site in sorted(set(sites.values())):
        members = [p for p, s in sites.items() if s == site]
        part = roistats[roistats["participant_id"].isin(members)]
        site_args = ([strip_prefix(p, "sub") for p in members],) + tuple(args[1:])
        rows, _ = _reliability(settings, part, exclusions, site_args)
        if rows:
            tables.append(
                (
                    f"group_site-{site}_desc-icc_stats.tsv",
                    analyses.ICC_COLUMNS,
                    rows,
                    sidecars.icc(settings, site),
                )
            )
        if settings.label_column:
            values = analyses.subject_level(part, settings.statistic, exclusions, "AUROC")
            try:
                _, (auc, _, _) = _diagnostic(settings, participants, values, exclusions)
            except ValueError as exc:
                LOGGER.warning("site %s: AUROC not computed: %s", site, exc)
                continue
            tables.append(
                (
                    f"group_site-{site}_desc-auroc_stats.tsv",
                    analyses.AUROC_COLUMNS,
                    auc,
                    sidecars.auroc(settings, site),
                )
            )
    return tables


def _write_all(out, tables):
    """Write every group table and remove stale ones.

    Write every table, then remove group tables of earlier runs that this run did not produce (e.g. an AUROC
    table after the label was removed from the config).
    """
    files = [write_table(out / name, columns, rows, sidecar) for name, columns, rows, sidecar in tables]
    keep = {p.name for p in files} | {p.name[: -len(".tsv")] + ".json" for p in files}
    for stale in sorted(out.glob("group_*_stats.*")):
        if stale.suffix in (".tsv", ".json") and stale.name not in keep:
            LOGGER.info("group level: removing %s of an earlier run", stale.name)
            stale.unlink()
    return files


def run_group_level(config: Config) -> Path:
    """Run the group level.

    Run the group level for ``config`` (:class:`bidsapp.config.Config`); return the path of
    ``group_report.html``. ``LookupError`` when no map is found; ``ValueError`` on bad input. Nothing is
    written before every table is computed.
    """
    out = Path(config.output_dir)
    settings = load_group_settings(getattr(config, "group_config", None))
    participants = read_participants(config.bids_dir, out)
    labels = [strip_prefix(p, "sub") for p in config.participant_label]
    args = (labels, list(config.session_label), list(config.roi) or [out], settings.uncertainty)
    roistats, units = roi_table(out, *args)
    if roistats.empty:
        raise LookupError(f"no parameter maps with ROIs found in {out}; run the participant level first")
    exclusions = analyses.Exclusions()
    tables = [
        (
            "group_desc-roistats_stats.tsv",
            ROISTATS_COLUMNS,
            list(roistats.itertuples(index=False)),
            sidecars.roistats(units, settings),
        )
    ]
    icc_rows, agreement = _reliability(settings, roistats, exclusions, args)
    if icc_rows:
        tables.append(("group_desc-icc_stats.tsv", analyses.ICC_COLUMNS, icc_rows, sidecars.icc(settings)))
    else:
        LOGGER.info(
            "group level: no repeated measurements (reliability across %s); no ICC table", settings.across
        )
    subject_values = analyses.subject_level(
        roistats, settings.statistic, exclusions, "AUROC and site effects"
    )
    auroc_rows, diff_rows, curves, labelled = [], [], {}, {}
    if settings.label_column:
        labelled, (auroc_rows, diff_rows, curves) = _diagnostic(
            settings, participants, subject_values, exclusions
        )
        tables.append(
            ("group_desc-auroc_stats.tsv", analyses.AUROC_COLUMNS, auroc_rows, sidecars.auroc(settings))
        )
        if settings.compare:
            tables.append(
                (
                    "group_desc-aurocdiff_stats.tsv",
                    analyses.AUROCDIFF_COLUMNS,
                    diff_rows,
                    sidecars.aurocdiff(settings),
                )
            )
    sites = _sites(settings, participants, sorted(subject_values["participant_id"].unique()))
    site_rows = []
    if sites:
        site_rows = analyses.site_effects(subject_values, sites, settings.site_column, settings.statistic)
        tables.append(
            (
                "group_desc-siteeffect_stats.tsv",
                analyses.SITE_COLUMNS,
                site_rows,
                sidecars.siteeffect(settings),
            )
        )
        if settings.by_site:
            tables += _by_site(settings, roistats, sites, participants, exclusions, args)
    files = _write_all(out, tables)
    report = write_group_report(
        out / "group_report.html",
        dict(
            settings=settings,
            roistats=roistats,
            units=units,
            subject_values=subject_values,
            icc=icc_rows,
            agreement=agreement,
            auroc=auroc_rows,
            aurocdiff=diff_rows,
            curves=curves,
            labels=labelled,
            sites=sites,
            site_effects=site_rows,
            exclusions=exclusions,
            files=files,
        ),
    )
    LOGGER.info("group level: %s", ", ".join(p.name for p in files + [report]))
    return report
