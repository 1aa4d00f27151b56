"""Matplotlib figures of the subject report, returned as base64 PNG strings.

Everything is drawn with the non-interactive Agg backend and embedded in the HTML, so
a report is one self-contained file.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_SLICES = 8
#: colour of NaN (not estimated) voxels and of voxels outside a row's mask
NOT_ESTIMATED = "#c8c8c8"


def to_base64(fig):
    """PNG of ``fig`` as a base64 string (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _slices(volume):
    n = volume.shape[2]
    if n <= MAX_SLICES:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, MAX_SLICES)})


def robust_limits(values, mask=None):
    """1st and 99th percentiles of the finite (masked) values; ``(0, 1)`` when empty."""
    values = np.asarray(values, float)
    if mask is not None:
        values = values[np.asarray(mask, bool)]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1, 99])
    return float(low), float(high if high > low else low + 1e-6)


def _montage(volume, slices):
    """Axial slices side by side (transposed for display), separated by a blank column."""
    gap = np.full((volume.shape[1], 1), np.nan)
    tiles = []
    for z in slices:
        tiles += [volume[:, :, z].T, gap]
    return np.concatenate(tiles[:-1], axis=1)


def map_grid(rows, title=None):
    """Draw several 3-D maps in one figure.

    Several 3-D maps in one figure: one row per map showing its axial slices side by side (left to right:
    increasing z), each row with a colourbar labelled in its units.

    ``rows`` is a list of dicts with ``volume``, ``title``, ``units`` and optionally
    ``mask`` (voxels outside are blank), ``cmap``, ``limits`` (vmin, vmax; default the
    1st-99th percentiles) and ``overlay`` (voxels circled in red).
    """
    first = np.asarray(rows[0]["volume"])
    slices = _slices(first)
    nx, ny = first.shape[:2]
    map_width = min(9.0, 1.8 * len(slices))
    row_height = map_width * ny / (len(slices) * (nx + 1)) + 0.3
    height = row_height * len(rows) + 0.6
    fig, axes = plt.subplots(len(rows), 1, figsize=(map_width + 1.6, height), squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.95, top=1 - 0.45 / height, bottom=0.2 / height, hspace=0.35)
    for ax, row in zip(axes[:, 0], rows, strict=True):
        volume = np.asarray(row["volume"], float)
        mask = None if row.get("mask") is None else np.asarray(row["mask"], bool)
        vmin, vmax = row.get("limits") or robust_limits(volume, mask)
        shown = volume if mask is None else np.where(mask, volume, np.nan)
        cmap = plt.get_cmap(row.get("cmap", "viridis")).with_extremes(bad=NOT_ESTIMATED)
        image = ax.imshow(
            _montage(shown, slices), origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
        )
        overlay = row.get("overlay")
        if overlay is not None:
            ys, xs = np.nonzero(np.nan_to_num(_montage(np.asarray(overlay, float), slices)) > 0)
            ax.scatter(xs, ys, s=10, facecolors="none", edgecolors="red", linewidths=0.8)
        ax.set_xticks(
            [(i + 0.5) * (nx + 1) - 1 for i in range(len(slices))], [f"z={z}" for z in slices], fontsize=6
        )
        ax.set_yticks([])
        ax.set_ylabel(row["title"], fontsize=8)
        bar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02, fraction=0.05)
        bar.set_label(row["units"], fontsize=7)
        bar.ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    return to_base64(fig)


def histogram(values, title, units, mask=None):
    """Histogram of the (masked) values between robust limits."""
    values = np.asarray(values, float)
    if mask is not None:
        values = values[np.asarray(mask, bool)]
    values = values[np.isfinite(values)]
    fig, ax = plt.subplots(figsize=(4.0, 2.4))
    if values.size:
        low, high = robust_limits(values)
        ax.hist(values, bins=50, range=(low, high), color="#4c72b0")
    ax.set_xlabel(units)
    ax.set_ylabel("voxels")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return to_base64(fig)


def aif_plot(t, plasma, blood, source, arrival=None):
    """Draw the plasma and blood AIF against time (s), with the bolus arrival (s) as a dotted line."""
    fig, ax = plt.subplots(figsize=(4.5, 2.6))
    ax.plot(t, plasma, "-o", ms=2.5, label="plasma")
    ax.plot(t, blood, "--", label="blood")
    if arrival is not None:
        ax.axvline(arrival, color="0.4", ls=":", lw=1, label=f"bolus arrival {arrival:.1f} s")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("concentration (mM)")
    ax.set_title(f"AIF ({source})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return to_base64(fig)


def curves_plot(t, curves, fits, labels, title):
    """Draw measured concentration curves with their model fits.

    Measured concentration curves (points) with their model fits (lines), one panel per voxel so that tissue
    curves are not dwarfed by vessels.
    """
    fig, axes = plt.subplots(1, len(curves), figsize=(2.6 * len(curves), 2.4), squeeze=False)
    for ax, measured, fitted, label in zip(axes[0], curves, fits, labels, strict=True):
        ax.plot(t, measured, "o", ms=2.5, color="#4c72b0", label="measured")
        ax.plot(t, fitted, "-", lw=1.5, color="#dd8452", label="fit")
        ax.set_title(label, fontsize=7)
        ax.set_xlabel("time (s)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].set_ylabel("concentration (mM)", fontsize=7)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return to_base64(fig)


def _panel_grid(n_panels, width=2.6, height=2.2, columns=4):
    ncols = min(columns, max(1, n_panels))
    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows + 0.5), squeeze=False)
    # fixed margins (inches) instead of tight_layout, which costs ~1 s per figure
    fig.subplots_adjust(
        left=0.6 / (width * ncols),
        right=1 - 0.15 / (width * ncols),
        wspace=0.55,
        hspace=0.75,
        bottom=0.55 / (height * nrows + 0.5),
        top=1 - 0.6 / (height * nrows + 0.5),
    )
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n_panels]


def group_boxes(panels, units, title):
    """Draw box plots with the points, one panel per ROI.

    Box plots with the points, one panel per ROI: ``panels`` is ``[(roi, {group name: values})]`` (values in
    ``units``, one per subject).
    """
    fig, axes = _panel_grid(len(panels))
    for ax, (roi, groups) in zip(axes, panels, strict=False):
        names = list(groups)
        data = [np.asarray(groups[g], float) for g in names]
        ax.boxplot(data, showfliers=False, widths=0.6)
        for i, values in enumerate(data, start=1):
            jitter = np.linspace(-0.15, 0.15, values.size) if values.size > 1 else np.zeros(values.size)
            ax.plot(i + jitter, values, "o", ms=2.5, color="#4c72b0", alpha=0.7)
        ax.set_xticks(range(1, len(names) + 1), names, fontsize=6, rotation=30 if len(names) > 3 else 0)
        ax.set_title(roi, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_ylabel(units, fontsize=7)
    fig.suptitle(title, fontsize=10)
    return to_base64(fig)


def bland_altman_panels(panels, units, title):
    """Draw Bland–Altman plots, one panel per ROI.

    Bland–Altman plots, one panel per ROI: ``panels`` is ``[(roi, first, second)]``; difference (second -
    first) against the mean, with the bias and 95 % limits.
    """
    fig, axes = _panel_grid(len(panels))
    for ax, (roi, first, second) in zip(axes, panels, strict=False):
        first, second = np.asarray(first, float), np.asarray(second, float)
        mean, diff = (first + second) / 2, second - first
        ax.plot(mean, diff, "o", ms=3, color="#4c72b0")
        if diff.size > 1:
            bias, sd = diff.mean(), diff.std(ddof=1)
            for y, style in ((bias, "-"), (bias - 1.96 * sd, "--"), (bias + 1.96 * sd, "--")):
                ax.axhline(y, ls=style, lw=1, color="#dd8452")
        ax.set_title(roi, fontsize=8)
        ax.set_xlabel(f"mean ({units})", fontsize=7)
        ax.set_ylabel(f"difference ({units})", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=10)
    return to_base64(fig)


def roc_panels(panels, title):
    """ROC curves, one panel per ROI: ``panels`` is ``[(roi, sensitivity, specificity, auroc)]``."""
    fig, axes = _panel_grid(len(panels), width=2.4, height=2.4)
    for ax, (roi, sens, spec, auc) in zip(axes, panels, strict=False):
        order = np.lexsort((np.asarray(sens), 1 - np.asarray(spec)))
        ax.plot((1 - np.asarray(spec))[order], np.asarray(sens)[order], "-", color="#4c72b0")
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
        ax.set_title(f"{roi} (AUROC {auc:.2f})", fontsize=8)
        ax.set_xlabel("1 - specificity", fontsize=7)
        ax.set_ylabel("sensitivity", fontsize=7)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=10)
    return to_base64(fig)


def motion_plot(params, fd, threshold, time=None):
    """Draw the motion traces of the DCE series.

    Motion traces of the DCE series: translations (mm), rotations (degrees) and framewise displacement (mm)
    with the flagging threshold; columns that were not estimated (NaN, in-plane model) are left out.
    ``params`` ``[n, 6]`` in mm and rad.
    """
    params, fd = np.asarray(params, float), np.asarray(fd, float)
    x = np.arange(len(fd)) if time is None else np.asarray(time, float)
    fig, axes = plt.subplots(3, 1, figsize=(6.5, 5.0), sharex=True)
    for ax, columns, scale, units in (
        (axes[0], range(3), 1.0, "mm"),
        (axes[1], range(3, 6), 180 / np.pi, "deg"),
    ):
        for c, axis in zip(columns, "xyz", strict=True):
            if np.isfinite(params[:, c]).any():
                ax.plot(x, params[:, c] * scale, label=axis)
        ax.set_ylabel(f"{'translation' if units == 'mm' else 'rotation'} ({units})", fontsize=8)
        ax.legend(fontsize=7, ncol=3, loc="upper left")
    axes[2].plot(x, fd, "-o", ms=2.5, color="#4c72b0")
    axes[2].axhline(threshold, color="#c44e52", ls="--", lw=1, label=f"threshold {threshold:g} mm")
    flagged = np.nan_to_num(fd) > threshold
    axes[2].plot(x[flagged], fd[flagged], "o", color="#c44e52", ms=4)
    axes[2].set_ylabel("FD (mm)", fontsize=8)
    axes[2].set_xlabel("time (s)" if time is not None else "frame", fontsize=8)
    axes[2].legend(fontsize=7, loc="upper left")
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.suptitle("Head motion relative to the reference (mean of the baseline frames)", fontsize=9)
    fig.tight_layout()
    return to_base64(fig)
