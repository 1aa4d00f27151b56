"""Group analyses on the ROI statistics table.

Group analyses on the ROI statistics table: reliability (ICC, Bland–Altman, wCV), diagnostic performance
(AUROC, DeLong) and site effects (Kruskal–Wallis).

Inputs are pandas tables (the long ROI table and ``participants.tsv``); the numbers
come from :mod:`.stats`. Every subject left out of an analysis is recorded in an
``Exclusions`` list with the reason (and logged).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from . import stats

LOGGER = logging.getLogger("dcequant")
ICC_COLUMNS = (
    "map",
    "roi",
    "statistic",
    "icc_type",
    "icc",
    "ci95_low",
    "ci95_high",
    "n_subjects",
    "n_measurements",
    "bias",
    "loa_low",
    "loa_high",
    "wcv",
)
AUROC_COLUMNS = (
    "map",
    "roi",
    "statistic",
    "label",
    "positive",
    "auroc",
    "ci95_low",
    "ci95_high",
    "n_positive",
    "n_negative",
    "threshold",
    "sensitivity",
    "specificity",
)
AUROCDIFF_COLUMNS = ("map_a", "map_b", "roi", "statistic", "label", "auroc_a", "auroc_b", "delta", "p_value")
SITE_COLUMNS = ("map", "roi", "statistic", "site_column", "n_sites", "n_subjects", "h", "p_value")


class Exclusions(list):
    """Records ``(participant_id, analysis, reason)``; each distinct record logged once."""

    def add(self, participant_id, analysis, reason):
        """Record that ``participant_id`` was left out of ``analysis`` for ``reason`` (logged once)."""
        record = (participant_id, analysis, reason)
        if record not in self:
            self.append(record)
            LOGGER.warning("group level: %s left out of %s: %s", participant_id, analysis, reason)


def subject_level(
    roistats: pd.DataFrame,
    statistic: str,
    exclusions: Exclusions,
    analysis: str,
) -> pd.DataFrame:
    """Average the ROI statistic over each subject's sessions.

    ``DataFrame[participant_id, map, roi, value]``: the mean over a subject's sessions of the ROI
    ``statistic``; sessions with NaN (no valid voxel) are ignored and a subject without any finite value for a
    map × ROI is left out of it (recorded).
    """
    df = roistats[["participant_id", "map", "roi", statistic]].rename(columns={statistic: "value"})
    out = df.groupby(["participant_id", "map", "roi"], sort=True)["value"].mean().reset_index()
    for row in out[~np.isfinite(out["value"])].itertuples():
        exclusions.add(
            row.participant_id, analysis, f"no valid voxel in any session ({row.map}, ROI {row.roi})"
        )
    return out[np.isfinite(out["value"])]


def _icc_rows(name, roi, statistic, wide):
    y = wide.to_numpy(float)
    iccs = stats.icc(y)
    bias, low, high = stats.bland_altman(y[:, 0], y[:, 1]) if y.shape[1] == 2 else (np.nan,) * 3
    wcv = stats.within_subject_cv(y)
    return [
        (
            name,
            roi,
            statistic,
            t,
            iccs[t].icc,
            iccs[t].ci95_low,
            iccs[t].ci95_high,
            y.shape[0],
            y.shape[1],
            bias,
            low,
            high,
            wcv,
        )
        for t in stats.ICC_TYPES
    ]


def _complete(wide, exclusions, analysis, what):
    """Rows of ``wide`` (participants × measurements) without a missing value; others recorded."""
    for pid, row in wide.iterrows():
        missing = [str(c) for c, v in row.items() if not np.isfinite(v)]
        if missing:
            exclusions.add(
                pid if isinstance(pid, str) else pid[0],
                analysis,
                f"no value for {', '.join(missing)} ({what})",
            )
    return wide.dropna()


def reliability_tables(
    measurements: dict[tuple[str, str], pd.DataFrame],
    statistic: str,
    exclusions: Exclusions,
) -> tuple[list[tuple], dict[tuple[str, str], pd.DataFrame]]:
    """ICC table rows and Bland–Altman data from ``measurements``.

    ``measurements`` is ``{(map name, roi): DataFrame}`` with one row per target
    (participant, or participant × session) and one column per repeated measurement
    (sessions, maps or derivative folders). Incomplete targets are dropped (recorded).
    Returns ``(rows, {(map, roi): complete wide table})`` for groups with at least two
    complete targets.
    """
    rows, used = [], {}
    for (name, roi), wide in sorted(measurements.items()):
        wide = _complete(wide, exclusions, "reliability", f"{name}, ROI {roi}")
        if len(wide) < 2 or wide.shape[1] < 2:
            LOGGER.info("reliability of %s in %s: fewer than 2 complete subjects; not computed", name, roi)
            continue
        rows += _icc_rows(name, roi, statistic, wide)
        used[(name, roi)] = wide
    return rows, used


def across_sessions(
    roistats: pd.DataFrame,
    statistic: str,
    exclusions: Exclusions,
) -> dict[tuple[str, str], pd.DataFrame]:
    """Tabulate the ROI statistic as participants × sessions for repeated-session studies.

    ``{(map, roi): participants × sessions}`` of the ROI statistic, for studies with repeated sessions (empty
    when every subject has one session). Every session label of the study is a measurement; a subject missing
    one is dropped (recorded).
    """
    df = roistats[roistats["session_id"] != "n/a"]
    if df.empty or df.groupby("participant_id")["session_id"].nunique().max() < 2:
        return {}
    labels = set(df["session_id"])
    for pid, part in df.groupby("participant_id"):
        missing = sorted(labels - set(part["session_id"]))
        if missing:
            exclusions.add(pid, "reliability", f"missing session(s) {', '.join(missing)}: subject dropped")
            df = df[df["participant_id"] != pid]
    wide = df.pivot_table(
        index="participant_id",
        columns=["map", "roi", "session_id"],
        values=statistic,
        aggfunc="first",
        dropna=False,
    )
    sessions = sorted(df["session_id"].unique())
    out = {}
    for (name, roi), _ in df.groupby(["map", "roi"]):
        out[(name, roi)] = wide[name][roi].reindex(columns=sessions)
    return out


def across_maps(
    roistats: pd.DataFrame,
    statistic: str,
    groups: Sequence[Sequence[str]],
) -> dict[tuple[str, str], pd.DataFrame]:
    """``{(a/b/..., roi): (participant, session) × maps}`` for each group of map names."""
    out = {}
    index = ["participant_id", "session_id"]
    for group in groups:
        df = roistats[roistats["map"].isin(group)]
        if df.empty:
            LOGGER.warning("reliability across maps %s: none of these maps was found", "/".join(group))
            continue
        wide = df.pivot_table(
            index=index, columns=["roi", "map"], values=statistic, aggfunc="first", dropna=False
        )
        for roi in sorted(df["roi"].unique()):
            out[("/".join(group), roi)] = wide[roi].reindex(columns=list(group))
    return out


def across_datasets(tables: dict[str, pd.DataFrame], statistic: str) -> dict[tuple[str, str], pd.DataFrame]:
    """``{(map, roi): (participant, session) × dataset}`` from ``{dataset name: ROI table}``."""
    stacked = pd.concat([t.assign(dataset=name) for name, t in tables.items()])
    wide = stacked.pivot_table(
        index=["participant_id", "session_id"],
        columns=["map", "roi", "dataset"],
        values=statistic,
        aggfunc="first",
        dropna=False,
    )
    names = list(tables)
    return {(m, r): wide[m][r].reindex(columns=names) for (m, r), _ in stacked.groupby(["map", "roi"])}


def labels_of(
    participants: pd.DataFrame,
    column: str,
    positive: str,
    subjects: Iterable[str],
    exclusions: Exclusions,
) -> dict[str, bool]:
    """``{participant_id: is positive}`` for ``subjects``; subjects without a label are recorded.

    Raises ``ValueError`` when the column is missing or one class is empty.
    """
    if column not in participants.columns:
        raise ValueError(f"participants.tsv: no column '{column}' (label.column of --group-config)")
    values = participants.set_index("participant_id")[column].astype(str)
    out = {}
    for pid in subjects:
        value = values.get(pid, "n/a")
        if value in ("n/a", "nan", ""):
            exclusions.add(pid, "AUROC", f"no value in participants.tsv column '{column}'")
        else:
            out[pid] = value == positive
    n_pos = sum(out.values())
    if n_pos == 0 or n_pos == len(out):
        found = sorted({values.get(p) for p in out})
        raise ValueError(
            f"participants.tsv: column '{column}' gives one class only ({found}) with positive "
            f"'{positive}'; AUROC needs positive and negative subjects"
        )
    return out


def auroc_tables(
    subject_values: pd.DataFrame,
    labels: dict[str, bool],
    column: str,
    positive: str,
    statistic: str,
    compare: Sequence[tuple[str, str]],
) -> tuple[list[tuple], list[tuple], dict]:
    """AUROC rows (every map × ROI) and paired DeLong rows (``compare`` pairs).

    ``subject_values`` is :func:`subject_level`'s table; ``labels`` ``{participant: bool}``.
    A map × ROI whose remaining subjects hold one class only is skipped (logged).
    """
    df = subject_values[subject_values["participant_id"].isin(labels)]
    wide = df.pivot_table(index="participant_id", columns=["map", "roi"], values="value", aggfunc="first")
    rows, diffs, curves = [], [], {}
    for name, roi in wide.columns:
        col = wide[(name, roi)].dropna()
        pos = np.array([labels[p] for p in col.index])
        try:
            r = stats.auroc(col.to_numpy(float), pos)
        except ValueError as exc:
            LOGGER.info("AUROC of %s in %s not computed: %s", name, roi, exc)
            continue
        rows.append(
            (
                name,
                roi,
                statistic,
                column,
                positive,
                r.auroc,
                r.ci95_low,
                r.ci95_high,
                r.n_positive,
                r.n_negative,
                r.threshold,
                r.sensitivity,
                r.specificity,
            )
        )
        curves[(name, roi)] = stats.roc_curve(col.to_numpy(float), pos)
    for a, b in compare:
        for roi in sorted({r for m, r in wide.columns if m == a} & {r for m, r in wide.columns if m == b}):
            pair = wide[[(a, roi), (b, roi)]].dropna()
            pos = np.array([labels[p] for p in pair.index])
            try:
                auc_a, auc_b, delta, p = stats.delong_test(pair.iloc[:, 0], pair.iloc[:, 1], pos)
            except ValueError as exc:
                LOGGER.info("DeLong test %s vs %s in %s not computed: %s", a, b, roi, exc)
                continue
            diffs.append((a, b, roi, statistic, column, auc_a, auc_b, delta, p))
    return rows, diffs, curves


def site_effects(
    subject_values: pd.DataFrame,
    sites: dict[str, str],
    site_column: str,
    statistic: str,
) -> list[tuple]:
    """Kruskal–Wallis rows of every map × ROI over the sites (``{participant: site}``)."""
    df = subject_values[subject_values["participant_id"].isin(sites)]
    rows = []
    for (name, roi), part in df.groupby(["map", "roi"]):
        groups = [g["value"].to_numpy(float) for _, g in part.groupby(part["participant_id"].map(sites))]
        h, p = stats.kruskal_wallis(groups)
        rows.append((name, roi, statistic, site_column, len(groups), len(part), h, p))
    return rows
