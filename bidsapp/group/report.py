"""Group report (``group_report.html``).

``group_report.html``: cohort, distributions per ROI, Bland–Altman plots, ROC curves, tables with CIs, site
effects, methods with references and the excluded subjects.

Figures come from :mod:`bidsapp.report.figures` (embedded PNG, one self-contained file).
Uncertainty and quality-control maps (``*Stderr``/``*Std`` descs, ``R2map``,
``T1residual``) are in the tables but not drawn.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..io_utils import write_text_atomic
from ..report import figures
from ..report.subject import CSS
from .tables import UNCERTAINTY_DESCS

QC_SUFFIXES = ("R2map", "T1residual")
METHODS = """<p>ROI statistics were computed over the voxels of each ROI where the map was estimated \
(NaN voxels
excluded); ROIs on another grid were resampled to the map grid by nearest neighbour. Each subject's value \
of a map in
an ROI is the ROI {statistic} (averaged over sessions for diagnostic performance and site effects).</p>
<p>Reliability: intraclass correlation coefficients ICC(2,1) (two-way random effects, absolute agreement), \
ICC(3,1)
(two-way mixed effects, consistency) and their average-measures forms ICC(2,k) and ICC(3,k), with 95 % \
confidence
intervals from the F distribution (Satterthwaite degrees of freedom for ICC(2,·)) [1, 2]; Bland–Altman bias \
and 95 %
limits of agreement for two measurements [6]; root-mean-square within-subject coefficient of variation.</p>
<p>Diagnostic performance: area under the ROC curve (Mann–Whitney; ties count one half) with DeLong 95 % \
confidence
intervals and paired DeLong tests between maps [3, 4]; the threshold maximising Youden's index [5]. Higher \
values
count as positive.</p>
<p>Site effects: Kruskal–Wallis test of the subject values across sites [7].</p>
<ol class="refs">
<li>Shrout PE, Fleiss JL. Intraclass correlations: uses in assessing rater reliability. Psychol Bull
1979;86:420-428.</li>
<li>McGraw KO, Wong SP. Forming inferences about some intraclass correlation coefficients. Psychol Methods
1996;1:30-46.</li>
<li>DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated \
receiver operating
characteristic curves: a nonparametric approach. Biometrics 1988;44:837-845.</li>
<li>Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under correlated receiver
operating characteristic curves. IEEE Signal Process Lett 2014;21:1389-1393.</li>
<li>Youden WJ. Index for rating diagnostic tests. Cancer 1950;3:32-35.</li>
<li>Bland JM, Altman DG. Statistical methods for assessing agreement between two methods of clinical \
measurement.
Lancet 1986;1:307-310.</li>
<li>Kruskal WH, Wallis WA. Use of ranks in one-criterion variance analysis. J Am Stat Assoc \
1952;47:583-621.</li>
</ol>"""


def report_maps(names: Iterable[str]) -> list[str]:
    """Return the maps drawn in the report: every map but uncertainty and QC maps."""
    keep = []
    for name in sorted(names):
        desc, _, suffix = name.rpartition("_")
        if not desc.endswith(UNCERTAINTY_DESCS) and suffix not in QC_SUFFIXES:
            keep.append(name)
    return keep


def _fmt(value):
    if isinstance(value, (float, np.floating)):
        return "n/a" if not np.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def _table(columns, rows):
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _img(b64, alt):
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"/>'


def _cohort(d):
    values = d["roistats"].groupby("participant_id")["session_id"].nunique()
    rows = [
        (
            pid,
            int(n),
            "positive" if d["labels"].get(pid) else ("negative" if pid in d["labels"] else "n/a"),
            d["sites"].get(pid, "n/a"),
        )
        for pid, n in values.items()
    ]
    return "<h2>Cohort</h2>" + _table(("participant_id", "sessions", "label", "site"), rows)


def _grouping(d, pid):
    if d["sites"]:
        return str(d["sites"].get(pid, "n/a"))
    if d["labels"]:
        return d["settings"].positive if d["labels"].get(pid) else "other"
    return "all"


def _distributions(d, maps):
    parts = [
        "<h2>Distributions per ROI</h2><p>One point per subject (ROI "
        + d["settings"].statistic
        + ", mean over sessions)"
        + (", grouped by site" if d["sites"] else "")
        + ".</p>"
    ]
    values = d["subject_values"]
    for name in maps:
        part = values[values["map"] == name]
        panels = []
        for roi, g in part.groupby("roi", sort=True):
            groups = {}
            for pid, v in zip(g["participant_id"], g["value"], strict=True):
                groups.setdefault(_grouping(d, pid), []).append(v)
            panels.append((roi, dict(sorted(groups.items()))))
        if panels:
            parts.append(
                _img(figures.group_boxes(panels, d["units"].get(name, ""), name), f"distribution {name}")
            )
    return "\n".join(parts)


def _agreement(d, maps):
    pairs = {key: wide for key, wide in d["agreement"].items() if wide.shape[1] == 2}
    if not pairs:
        return ""
    parts = ["<h2>Bland–Altman plots</h2>"]
    for name in sorted({m for m, _ in pairs}):
        if name not in maps and "/" not in name:
            continue
        panels = [(roi, w.iloc[:, 0], w.iloc[:, 1]) for (m, roi), w in sorted(pairs.items()) if m == name]
        units = d["units"].get(name.split("/")[0], "")
        first, second = (str(c) for c in pairs[(name, panels[0][0])].columns)
        parts.append(
            _img(
                figures.bland_altman_panels(panels, units, f"{name}: {second} minus {first}"),
                f"Bland-Altman {name}",
            )
        )
    return "\n".join(parts)


def _roc(d, maps):
    if not d["curves"]:
        return ""
    aucs = {(r[0], r[1]): r[5] for r in d["auroc"]}
    parts = ["<h2>ROC curves</h2>"]
    for name in maps:
        panels = [
            (roi, sens, spec, aucs[(m, roi)])
            for (m, roi), (_, sens, spec) in sorted(d["curves"].items())
            if m == name
        ]
        if panels:
            parts.append(
                _img(
                    figures.roc_panels(
                        panels, f"{name}: {d['settings'].label_column} = {d['settings'].positive}"
                    ),
                    f"ROC {name}",
                )
            )
    return "\n".join(parts)


def _ci(value, low, high):
    return f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"


def _tables(d):
    """Return the result tables, compact: estimates with their 95 % CI in one cell."""
    icc = [
        (m, r, t, _ci(v, lo, hi), n, k, _ci(b, bl, bh), _fmt(w))
        for m, r, _, t, v, lo, hi, n, k, b, bl, bh, w in d["icc"]
    ]
    auroc = [
        (m, r, _ci(a, lo, hi), f"{npos}/{nneg}", _fmt(th), _fmt(se), _fmt(sp))
        for m, r, _, _, _, a, lo, hi, npos, nneg, th, se, sp in d["auroc"]
    ]
    diff = [
        (a, b, r, _fmt(aa), _fmt(ab), _fmt(dl), _fmt(p)) for a, b, r, _, _, aa, ab, dl, p in d["aurocdiff"]
    ]
    site = [(m, r, ns, n, _fmt(h), _fmt(p)) for m, r, _, _, ns, n, h, p in d["site_effects"]]
    parts = []
    for title, columns, rows in (
        (
            "Reliability (ICC)",
            (
                "map",
                "roi",
                "type",
                "ICC [95 % CI]",
                "subjects",
                "k",
                "Bland–Altman bias [limits of agreement]",
                "wCV",
            ),
            icc,
        ),
        (
            "Diagnostic performance (AUROC)",
            (
                "map",
                "roi",
                "AUROC [95 % CI, DeLong]",
                "positive/negative",
                "Youden threshold",
                "sensitivity",
                "specificity",
            ),
            auroc,
        ),
        (
            "Paired AUROC comparisons (DeLong)",
            ("map a", "map b", "roi", "AUROC a", "AUROC b", "difference", "p"),
            diff,
        ),
        ("Site effects (Kruskal–Wallis)", ("map", "roi", "sites", "subjects", "H", "p"), site),
    ):
        parts.append(
            f"<h2>{title}</h2>"
            + (
                _table(columns, rows)
                if rows
                else "<p>Not computed (no repeated measurements, label, compare pairs or site column).</p>"
            )
        )
    return "\n".join(parts)


def _excluded(d):
    rows = sorted(d["exclusions"])
    return "<h2>Excluded subjects</h2>" + (
        _table(("participant_id", "analysis", "reason"), rows) if rows else "<p>None.</p>"
    )


def write_group_report(path: Path, d: dict) -> Path:
    """Write the group report from the analysis results ``d`` (see ``level.py``)."""
    maps = report_maps(d["roistats"]["map"].unique())
    files = ", ".join(html.escape(p.name) for p in d["files"])
    body = [
        "<h1>dcequant group report</h1>",
        f"<p>Configuration: {html.escape(d['settings'].source)}; statistic {d['settings'].statistic}; "
        f"reliability across {d['settings'].across}. Tables: {files}.</p>",
        _cohort(d),
        _distributions(d, maps),
        _agreement(d, maps),
        _roc(d, maps),
        _tables(d),
        _excluded(d),
        "<h2>Methods</h2><div class='methods'>"
        + METHODS.format(statistic=d["settings"].statistic)
        + "</div>",
    ]
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>dcequant group report</title>"
        f"<style>{CSS}.scroll{{overflow-x:auto}}td{{white-space:nowrap}}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    write_text_atomic(path, page)
    return path
