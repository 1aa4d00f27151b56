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


def to_base64(fig):
    """PNG of ``fig`` as a base64 string (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
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


def lightbox(volume, title, units, mask=None, cmap="viridis", limits=None, overlay=None):
    """Axial slices of a 3-D map side by side with one colourbar labelled in ``units``."""
    volume = np.asarray(volume, float)
    slices = _slices(volume)
    vmin, vmax = limits or robust_limits(volume, mask)
    fig, axes = plt.subplots(1, len(slices), figsize=(1.8 * len(slices) + 1.0, 2.2), squeeze=False)
    image = None
    for ax, z in zip(axes[0], slices):
        shown = volume[:, :, z].T
        if mask is not None:
            shown = np.ma.masked_where(~np.asarray(mask, bool)[:, :, z].T, shown)
        image = ax.imshow(shown, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if overlay is not None and np.asarray(overlay)[:, :, z].any():
            ys, xs = np.nonzero(np.asarray(overlay, bool)[:, :, z].T)
            ax.scatter(xs, ys, s=12, facecolors="none", edgecolors="red", linewidths=1.0)
        ax.set_title(f"z={z}", fontsize=8)
        ax.axis("off")
    bar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, pad=0.02)
    bar.set_label(units)
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
    return to_base64(fig)


def aif_plot(t, plasma, blood, source):
    """Plasma and blood AIF against time (s)."""
    fig, ax = plt.subplots(figsize=(4.5, 2.6))
    ax.plot(t, plasma, "-o", ms=2.5, label="plasma")
    ax.plot(t, blood, "--", label="blood")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("concentration (mM)")
    ax.set_title(f"AIF ({source})", fontsize=10)
    ax.legend(fontsize=8)
    return to_base64(fig)


def curves_plot(t, curves, fits, labels, title):
    """Measured concentration curves (points) with their model fits (lines)."""
    fig, ax = plt.subplots(figsize=(5.0, 2.8))
    for measured, fitted, label in zip(curves, fits, labels):
        line = ax.plot(t, fitted, "-", lw=1.5, label=label)[0]
        ax.plot(t, measured, "o", ms=2.5, color=line.get_color())
    ax.set_xlabel("time (s)")
    ax.set_ylabel("concentration (mM)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return to_base64(fig)
