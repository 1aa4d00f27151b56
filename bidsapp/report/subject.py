"""The per-subject HTML report (``<output_dir>/sub-<L>.html``), built from the derivatives.

Because it reads only the derivative dataset, ``--reports-only`` can rebuild it at any
time. Sections per session: T1 map, VFA fit residual, the count of poor VFA fits and the
T1 histogram, AIF with the selected voxels, head motion (traces from the confounds table,
before/after temporal SD), parameter maps of every model (lightbox with colourbar and
units), example voxel curves with their fits, R² and quality masks, standard-error maps,
network maps next to the fitted extended Tofts maps with their differences and SD maps,
warnings raised during the run; then the methods text of ``logs/CITATION.md``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from ..bids_raw import subject_dir
from ..derivatives import model_label, stderr_label
from ..io_utils import write_text_atomic
from ..nets.weights import shipped_networks
from ..registry.kinetic import MODEL_NAMES, MODELS, get_model
from ..session_steps import read_aif
from . import figures

#: R² quantiles (within the quality mask) of the voxels whose curves are shown
EXAMPLE_QUANTILES = (0.25, 0.5, 0.75, 0.95)
CMAPS = {
    "Ktrans": "magma",
    "kep": "magma",
    "Fp": "inferno",
    "PS": "plasma",
    "ve": "viridis",
    "vp": "cividis",
    "delay": "coolwarm",
}

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;\
margin:2em auto;max-width:1100px;color:#222}
h1{border-bottom:2px solid #4c72b0}h2{margin-top:2em;border-bottom:1px solid #ccc}
img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%}
.warn{background:#fff3cd;border-left:4px solid #e0a800;padding:4px 8px;margin:4px 0}
.methods{background:#f6f6f6;padding:1em}
"""


def _load(path):
    return np.asarray(nib.load(str(path)).dataobj, dtype=float)


def _sidecar(path):
    json_path = Path(str(path).replace(".nii.gz", ".json").replace(".tsv", ".json"))
    return json.loads(json_path.read_text()) if json_path.exists() else {}


def _img(b64, alt):
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"/>'


def _find(folder, pattern):
    found = sorted(folder.glob(pattern)) if folder.is_dir() else []
    return found[0] if found else None


def _session_dirs(output_dir, subject):
    root = subject_dir(output_dir, subject)
    sessions = sorted(p for p in root.glob("ses-*") if p.is_dir())
    return [(p.name[4:], p) for p in sessions] or [(None, root)]


def _models_in(perf):
    labels = {spec.label: name for name, spec in MODELS.items()}
    found = []
    for path in sorted(perf.glob("*_R2map.nii.gz")):
        desc = next((part[5:] for part in path.name.split("_") if part.startswith("desc-")), None)
        if desc in labels:
            found.append(labels[desc])
    return sorted(found, key=MODEL_NAMES.index)


def example_fit_curves(model, perf, conc, t, aif, aif_times, quality, r2):
    """Return measured and fitted curves of example voxels.

    Measured and fitted curves of voxels at R² quantiles among the voxels of the quality mask whose parameters
    are all estimated (finite).

    The fit curve is :func:`bidsapp.model_curve` of the written parameter maps with the
    written AIF on its own grid (``aif`` mM at ``aif_times`` s, None for the frames ``t``),
    i.e. exactly the curve the fit made. Returns ``[(label, measured, fitted)]`` (may be
    empty).
    """
    from .. import model_curve

    label = model_label(model)
    maps = {}
    spec = get_model(model)
    for name in spec.params + ("delay",):
        path = _find(perf, f"*_desc-{label}_{name}.nii.gz")
        if path is not None:
            maps[name] = _load(path).ravel()
    drawable = quality.ravel() & np.isfinite(r2.ravel())  # voxels whose every parameter was estimated
    for values in maps.values():
        drawable &= np.isfinite(values)
    idx = np.flatnonzero(drawable)
    if idx.size == 0:
        return []
    order = idx[np.argsort(r2.ravel()[idx], kind="stable")]
    picks = sorted({int(order[int(q * (order.size - 1))]) for q in EXAMPLE_QUANTILES})
    flat_conc = conc.reshape(-1, conc.shape[-1])
    examples = []
    for voxel in picks:
        params = {name: maps[name][voxel] for name in spec.params}
        delay = maps["delay"][voxel] if "delay" in maps else None
        fitted = np.asarray(model_curve(model, params, t, aif, delay=delay, aif_times=aif_times), float)
        coords = np.unravel_index(voxel, quality.shape)
        examples.append(
            (f"voxel {tuple(int(c) for c in coords)}, R²={r2.ravel()[voxel]:.2f}", flat_conc[voxel], fitted)
        )
    return examples


def _nan_note(rows):
    """One line: how many voxels of each map are NaN (not estimated)."""
    counts = [
        f"{html.escape(row['title'])} {int(np.count_nonzero(~np.isfinite(row['volume'])))}" for row in rows
    ]
    total = rows[0]["volume"].size if rows else 0
    return (
        (f"<p>Voxels not estimated (NaN, shown grey) of {total}: " + "; ".join(counts) + ".</p>")
        if rows
        else ""
    )


def _t1_quality(meta):
    """How many voxels have a T1 and how many of them are poor VFA fits (T1map sidecar)."""
    if "NumberOfPoorFitVoxels" not in meta:
        return ""
    n_t1, n_poor = meta["NumberOfT1Voxels"], meta["NumberOfPoorFitVoxels"]
    threshold = meta["PoorFitResidualThreshold"]
    if meta.get("PoorFitVoxelsKept", True):
        share = f" ({100 * n_poor / n_t1:.1f} %)" if n_t1 else ""
        return (
            f"<p>T1 validity rule: {html.escape(str(meta.get('T1Validity')))}. {n_t1} voxels have a T1; "
            f"{n_poor}{share} of them are flagged as poor fits (relative VFA residual &gt; {threshold:g}) "
            "and kept in the analysis (--t1-validity physical).</p>"
        )
    return (
        f"<p>T1 validity rule: {html.escape(str(meta.get('T1Validity')))}. {n_t1} voxels have a T1; "
        f"{n_poor} further voxels were poor fits (relative VFA residual &gt; {threshold:g}) and were "
        "dropped (--t1-validity strict).</p>"
    )


def _motion_section(folder, t):
    """Motion traces from the confounds table and the before/after figure, if present."""
    import base64

    confounds = _find(folder / "perf", "*_desc-confounds_timeseries.tsv")
    if confounds is None:
        return []
    meta = _sidecar(confounds)
    table = np.genfromtxt(confounds, delimiter="\t", names=True, missing_values="n/a", filling_values=np.nan)
    params = np.column_stack(
        [table[name] for name in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")]
    )
    fd = table["framewise_displacement"]
    threshold = float(meta.get("FramewiseDisplacementThreshold", 0.5))
    time = t if t is not None and len(t) == len(fd) else None
    parts = [
        "<h3>Head motion</h3>",
        f"<p>{meta.get('DegreesOfFreedom', 6)} degrees of freedom "
        f"({html.escape(str(meta.get('Axes', '')))}); "
        f"maximum framewise displacement {np.nanmax(fd) if np.isfinite(fd).any() else 0.0:.2f} mm; "
        f"{int((np.nan_to_num(fd) > threshold).sum())} frame(s) above {threshold:g} mm.</p>",
        _img(figures.motion_plot(params, fd, threshold, time), "motion traces"),
    ]
    before_after = _find(folder / "figures", "*_desc-hmc_dce.png")
    if before_after is not None:
        parts.append(
            _img(base64.b64encode(before_after.read_bytes()).decode("ascii"), "before/after correction")
        )
    return parts


def _dose_section(folder):
    """Dose reduction: conditions, comparison with an acquired standard dose, and the figure."""
    import base64

    parts = []
    anat = folder / "anat"
    for synth in sorted(anat.glob("*_desc-synthSD_T1w.nii.gz")) if anat.is_dir() else []:
        meta = _sidecar(synth)
        conditions = ", ".join(f"{k} {v:.4g}" for k, v in meta.get("Conditioning", {}).items())
        agent = html.escape(str(meta.get("ContrastBolusAgent")))
        source = html.escape(str(meta.get("DoseFractionSource")))
        sha = html.escape(str(meta.get("NetworkWeightsSHA256"))[:12])
        parts += [
            "<h3>Gadolinium dose reduction</h3>",
            f"<p>{html.escape(synth.name)}: {agent}, dose fraction {meta.get('DoseFraction')} "
            f"({source}); "
            f"conditioning: {html.escape(conditions)}; weights sha256 {sha}&hellip;</p>",
        ]
        c = meta.get("ComparisonWithStandardDose")
        if c:
            parts.append(
                f"<p>Against the acquired standard dose: PSNR {c['PSNR']:.2f} dB, "
                f"SSIM {c['SSIM']:.3f} (naive baseline: {c['NaiveBaselinePSNR']:.2f} dB, "
                f"{c['NaiveBaselineSSIM']:.3f}).</p>"
            )
        label = next((p for p in synth.name.split("_") if p.startswith("ce-")), "ce-")
        figure = _find(folder / "figures", f"*_{label}_desc-dose_T1w.png")
        if figure is not None:
            parts.append(_img(base64.b64encode(figure.read_bytes()).decode("ascii"), "dose reduction"))
    return parts


def _difference_row(volume, reference, title, units):
    """Return a map-grid row of ``volume - reference`` on a symmetric diverging scale."""
    difference = volume - reference
    low, high = figures.robust_limits(difference)
    bound = max(abs(low), abs(high), 1e-6)
    return dict(volume=difference, title=title, units=units, cmap="RdBu_r", limits=(-bound, bound))


def _nets_section(perf):
    """Return the network maps next to the fitted extended Tofts maps, differences and SD maps."""
    from ..nets_step import PARAMETERS, sd_label

    fitted_label = model_label("extended_tofts")
    parts = []
    for net in shipped_networks():
        maps = {name: _find(perf, f"*_desc-{net}_{name}.nii.gz") for name in PARAMETERS}
        if not any(maps.values()):
            continue
        meta = _sidecar(next(p for p in maps.values() if p is not None))
        parts.append(f"<h3>Network: {html.escape(net)}</h3>")
        parts.append(
            f"<p>{html.escape(str(meta.get('NetworkDescription', net)))}; weights sha256 "
            f"<code>{html.escape(str(meta.get('NetworkWeightsSHA256', ''))[:16])}…</code>; "
            f"envelope warnings: {html.escape('; '.join(meta.get('EnvelopeWarnings', [])) or 'none')}.</p>"
        )
        rows = []
        for name, path in maps.items():
            if path is None:
                continue
            units = _sidecar(path).get("Units", "")
            volume = _load(path)
            row = dict(volume=volume, title=f"{net} {name}", units=units, cmap=CMAPS.get(name, "viridis"))
            fitted_path = _find(perf, f"*_desc-{fitted_label}_{name}.nii.gz")
            if fitted_path is None:
                rows.append(row)
                continue
            fitted = _load(fitted_path)
            row["limits"] = figures.robust_limits(np.concatenate([volume.ravel(), fitted.ravel()]))
            rows += [
                row,
                dict(row, volume=fitted, title=f"fit {name}"),
                _difference_row(volume, fitted, f"{net} − fit {name}", units),
            ]
        title = f"{net}: network maps" + (", extended Tofts fit and difference" if len(rows) > 3 else "")
        parts.append(_img(figures.map_grid(rows, title), f"{net} maps"))
        parts.append(_nan_note(rows))
        sd_rows = [
            dict(
                volume=_load(path), title=f"SD {name}", units=_sidecar(path).get("Units", ""), cmap="cividis"
            )
            for name in PARAMETERS
            if (path := _find(perf, f"*_desc-{sd_label(net)}_{name}.nii.gz")) is not None
        ]
        if sd_rows:
            parts.append("<h4>Uncertainty (SD over the prior draws)</h4>")
            parts.append(_img(figures.map_grid(sd_rows, f"{net}: standard deviations"), f"{net} uncertainty"))
    return parts


def _session_section(session, folder):
    anat, perf = folder / "anat", folder / "perf"
    parts, warnings = [f"<h2>{'Session ' + html.escape(session) if session else 'Results'}</h2>"], []
    for sidecar_path in sorted(folder.glob("*/*.json")):
        for message in json.loads(sidecar_path.read_text()).get("Warnings", []):
            if message not in warnings:
                warnings.append(message)
    t1_path = _find(anat, "*_desc-vfa_T1map.nii.gz")
    if t1_path is not None:
        t1 = _load(t1_path)
        t1_row = dict(volume=t1, title="T1", units="s", cmap="gray")
        parts.append("<h3>Pre-contrast T1</h3>")
        parts.append(_t1_quality(_sidecar(t1_path)))
        rows = [t1_row]
        residual_path = _find(anat, "*_desc-vfa_T1residual.nii.gz")
        if residual_path is not None:
            rows.append(
                dict(volume=_load(residual_path), title="VFA residual", units="fraction", cmap="magma")
            )
        parts.append(_img(figures.map_grid(rows), "T1 map"))
        parts.append(_nan_note(rows))
        parts.append(_img(figures.histogram(t1, "T1 histogram", "T1 (s)"), "T1 histogram"))
    conc_path = _find(perf, "*_desc-conc_dce.nii.gz")
    aif_path = _find(perf, "*_desc-aif_timeseries.tsv")
    conc = _load(conc_path) if conc_path is not None else None
    t = np.asarray(_sidecar(conc_path)["VolumeTiming"], float) if conc_path is not None else None
    aif = aif_times = None
    if aif_path is not None:
        table = np.loadtxt(aif_path, skiprows=1, ndmin=2)
        if t is not None:  # the AIF exactly as the fit read it
            aif, aif_times = read_aif(aif_path, t)
        aif_meta = _sidecar(aif_path)
        parts.append("<h3>Arterial input function</h3>")
        parts.append(
            f"<p>Source: {html.escape(str(aif_meta.get('Source')))}; quality: "
            f"{aif_meta.get('Quality')}; haematocrit: {aif_meta.get('Hematocrit')}; "
            f"voxels: {aif_meta.get('NumberOfVoxels', 0)}</p>"
        )
        conc_meta = _sidecar(conc_path) if conc_path is not None else {}
        arrival = conc_meta.get("BolusArrivalTime")
        if "BaselineFrames" in conc_meta:
            parts.append(
                f"<p>Bolus arrival: {'not found' if arrival is None else f'{arrival:.2f} s'} "
                f"({html.escape(str(conc_meta.get('BolusArrivalMethod', 'unknown method')))}); "
                f"baseline frames: {conc_meta['BaselineFrames']} "
                f"({html.escape(str(conc_meta.get('BaselineFramesSource')))})</p>"
            )
        parts.append(
            _img(
                figures.aif_plot(table[:, 0], table[:, 1], table[:, 2], aif_meta.get("Source"), arrival),
                "AIF",
            )
        )
        aif_mask_path = _find(perf, "*_desc-aif_mask.nii.gz")
        if aif_mask_path is not None and conc is not None:
            parts.append(
                _img(
                    figures.map_grid(
                        [
                            dict(
                                volume=conc.max(axis=-1),
                                title="peak conc.",
                                units="mM",
                                cmap="gray",
                                overlay=_load(aif_mask_path) > 0,
                            )
                        ],
                        "AIF voxels (red) on the peak concentration",
                    ),
                    "AIF voxels",
                )
            )
    parts += _motion_section(folder, t)
    parts += _dose_section(folder)
    for model in _models_in(perf):
        label = model_label(model)
        parts.append(f"<h3>Model: {html.escape(model)}</h3>")
        quality_path = _find(perf, f"*_desc-{label}_mask.nii.gz")
        quality = _load(quality_path) > 0 if quality_path is not None else None
        r2 = _load(_find(perf, f"*_desc-{label}_R2map.nii.gz"))
        rows = []
        for path in sorted(perf.glob(f"*_desc-{label}_*.nii.gz")):
            name = path.name[: -len(".nii.gz")].rsplit("_", 1)[1]
            if name not in ("R2map", "mask"):
                rows.append(
                    dict(
                        volume=_load(path),
                        title=name,
                        units=_sidecar(path).get("Units", ""),
                        mask=quality,
                        cmap=CMAPS.get(name, "viridis"),
                    )
                )
        rows.append(dict(volume=r2, title="R²", units="R²", limits=(0.0, 1.0)))
        if quality is not None:
            parts.append(f"<p>Quality mask: {int(quality.sum())} of {quality.size} voxels.</p>")
            rows.append(
                dict(
                    volume=quality.astype(float),
                    title="quality",
                    units="in mask",
                    cmap="gray",
                    limits=(0.0, 1.0),
                )
            )
        parts.append(
            _img(figures.map_grid(rows, f"{model}: parameter maps, R² and quality mask"), f"{model} maps")
        )
        parts.append(_nan_note([row for row in rows if row["title"] != "quality"]))
        stderr_rows = [
            dict(
                volume=_load(path),
                title=f"SE {path.name[: -len('.nii.gz')].rsplit('_', 1)[1]}",
                units=_sidecar(path).get("Units", ""),
                mask=quality,
                cmap="cividis",
            )
            for path in sorted(perf.glob(f"*_desc-{stderr_label(model)}_*.nii.gz"))
        ]
        if stderr_rows:
            parts.append("<h4>Uncertainty (standard error)</h4>")
            parts.append(
                _img(figures.map_grid(stderr_rows, f"{model}: standard errors"), f"{model} uncertainty")
            )
        if conc is not None and aif is not None and quality is not None:
            examples = example_fit_curves(model, perf, conc, t, aif, aif_times, quality, r2)
            if examples:
                labels, measured, fitted = zip(*examples, strict=True)
                parts.append(
                    _img(
                        figures.curves_plot(t, measured, fitted, labels, f"{model}: example voxels"),
                        "example curves",
                    )
                )
    parts += _nets_section(perf)
    parts.append("<h3>Warnings</h3>")
    parts += [f'<div class="warn">{html.escape(w)}</div>' for w in warnings] or ["<p>None.</p>"]
    return "\n".join(parts)


def _methods_html(output_dir):
    path = Path(output_dir) / "logs" / "CITATION.md"
    if not path.exists():
        return "<p>No methods text (logs/CITATION.md missing).</p>"
    blocks = []
    for block in path.read_text().split("\n\n"):
        block = block.strip()
        if block.startswith("#"):
            level = min(len(block) - len(block.lstrip("#")) + 2, 4)
            blocks.append(f"<h{level}>{html.escape(block.lstrip('#').strip())}</h{level}>")
        elif block:
            blocks.append("<p>" + html.escape(block).replace("\n", "<br/>") + "</p>")
    return '<div class="methods">' + "\n".join(blocks) + "</div>"


def write_subject_report(output_dir, subject):
    """Write ``<output_dir>/sub-<subject>.html``; return its path."""
    from .. import __version__

    output_dir = Path(output_dir)
    body = [
        f"<h1>dcequant report: sub-{html.escape(subject)}</h1>",
        f"<p>dcequant {__version__}. Units: time s, T1 s, concentration mM, Ktrans/kep/PS 1/min, "
        "Fp ml/100ml/min, ve/vp fractions.</p>",
    ]
    for session, folder in _session_dirs(output_dir, subject):
        body.append(_session_section(session, folder))
    body += ["<h2>Methods</h2>", _methods_html(output_dir)]
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>sub-{html.escape(subject)}</title>"
        f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )
    path = output_dir / f"sub-{subject}.html"
    write_text_atomic(path, page)
    return path
