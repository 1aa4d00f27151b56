"""Delay fits on a simulated brain at the osipy walkthrough protocol (issue #10, item 6).

Data: one simulated subject (:mod:`bidsapp.simulate`, seed 3) on a 220 × 220 × 150 mm
field of view (default matrix 176 × 176 × 30), 65 frames of 4.7 s, VFA flip angles
3/6/10/20/30°, SNR 30. Processed as the participant level does: VFA T1 (``vfa-linear``),
SPGR signal → concentration with the first 5 frames as baseline, the AIF detected in the
image by :func:`bidsapp.detect_aif` (signal-domain pooling and the Parker area check),
given to the fit at the frame times, then extended Tofts with ``fit_delay=True`` and,
for comparison, the delay-0 fit (``fit_delay=False``) on every voxel of the head mask.

Printed: median Ktrans of pure (≥ 99 %) white and grey matter against the truth, % valid
(all fitted voxels and pure WM/GM), the tumour rim's median |relative Ktrans error|
against each voxel's own (partial-volume) truth where that exceeds 0.01 /min, the
number of voxels whose delay-fit SSE exceeds the delay-0 fit's, and voxels/s of both fits.
Targets (issue #10): WM/GM median Ktrans within 0.002 /min of the truth, ≥ 95 % of pure
WM/GM valid, rim within 10 %, zero voxels above the delay-0 fit.

Usage: ``python tests/benchmarks/bench_walkthrough.py [--matrix 176,176,30] [--device cpu|cuda|auto]``
"""

import argparse
import sys
import time

import numpy as np

import bidsapp
from bidsapp.simulate import Grid, Protocol, make_phantom, simulate_subject
from bidsapp.simulate.tissues import CLASS_INDEX

FOV_MM = (220.0, 220.0, 150.0)
PROTOCOL = Protocol(n_frames=65, temporal_resolution=4.7, vfa_flip_angles=(3, 6, 10, 20, 30))
PURE = 0.99  # white / grey matter: voxels at least this pure
RIM_MIN_KTRANS = (
    0.01  # tumour rim: voxels of the rim class whose true (partial-volume) Ktrans exceeds this (/min)
)


def prepare(matrix, seed=3):
    """Return the phantom, frame times, concentration, fit mask and image AIF of a participant run."""
    grid = Grid(matrix=matrix, voxel_size=tuple(f / n for f, n in zip(FOV_MM, matrix, strict=True)))
    phantom = make_phantom(seed, grid)
    sim = simulate_subject(phantom, PROTOCOL, rng=1)
    t1 = bidsapp.compute_t1_map(
        sim.vfa, np.array(PROTOCOL.vfa_flip_angles), PROTOCOL.vfa_tr, method="vfa-linear"
    )
    mask = np.asarray(t1.valid, bool) & (phantom.t1 > 0)
    t10 = np.where(mask, t1.t1, 1.0)
    conc = bidsapp.signal_to_concentration(
        sim.dce, t10, PROTOCOL.dce_tr, PROTOCOL.dce_flip_angle, sim.relaxivity, PROTOCOL.baseline_frames
    )
    mask &= np.asarray(conc.voxel_valid, bool)
    signal_model = {
        "tr": PROTOCOL.dce_tr,
        "flip_angle": PROTOCOL.dce_flip_angle,
        "relaxivity": sim.relaxivity,
    }
    aif = bidsapp.detect_aif(
        conc.concentration,
        sim.t,
        t10=t10,
        mask=mask,
        hematocrit=PROTOCOL.hematocrit,
        fallback="parker",
        signal_model=signal_model,
        population_check="parker",
    )
    return phantom, sim.t, np.asarray(conc.concentration), mask, aif


def timed_fit(conc, t, aif, mask, fit_delay, device):
    start = time.perf_counter()
    fit = bidsapp.fit_model("extended_tofts", conc, t, aif, mask=mask, fit_delay=fit_delay, device=device)
    return fit, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--matrix", default="176,176,30", help="nx,ny,nz over a 220×220×150 mm field of view")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    matrix = tuple(int(v) for v in args.matrix.split(","))

    import torch

    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}; matrix {matrix}"
    )
    start = time.perf_counter()
    phantom, t, conc, mask, aif = prepare(matrix)
    print(
        f"simulation + T1 + concentration + AIF: {time.perf_counter() - start:.1f} s; AIF {aif.source} "
        f"(quality {aif.quality:.2f}); {int(mask.sum()):,} voxels fitted"
    )
    bidsapp.fit_model(
        "extended_tofts", conc[mask][:64], t, aif.plasma, fit_delay=True, device=args.device
    )  # warm-up
    delayed, secs_d = timed_fit(conc, t, aif.plasma, mask, True, args.device)
    nested, secs_0 = timed_fit(conc, t, aif.plasma, mask, False, args.device)
    n = int(mask.sum())
    print(
        f"delay fit: {n / secs_d:,.0f} vox/s ({secs_d:.1f} s); delay-0 fit: {n / secs_0:,.0f} vox/s "
        f"({secs_0:.1f} s)"
    )

    pure = phantom.purity() >= PURE
    rows = []
    for label, cls in (("WM", "white_matter"), ("GM", "grey_matter")):
        sel = mask & pure & (phantom.dseg == CLASS_INDEX[cls])
        truth = float(np.median(phantom.ktrans[sel]))
        for name, fit in (("delay", delayed), ("delay-0", nested)):
            kt = float(np.nanmedian(fit.params["Ktrans"][sel]))
            kep = (
                np.nanmedian(fit.params["kep"][sel]) if np.isfinite(fit.params["kep"][sel]).any() else np.nan
            )
            print(
                f"{label} ({int(sel.sum()):,} pure voxels), {name:7} fit: median Ktrans {kt:.4f} /min "
                f"(truth {truth:.4f}), valid {100 * fit.valid[sel].mean():.1f}%, median kep {kep:.3g} /min"
            )
        rows.append(
            (
                label,
                abs(float(np.nanmedian(delayed.params["Ktrans"][sel])) - truth),
                delayed.valid[sel].mean(),
            )
        )
    rim = mask & (phantom.dseg == CLASS_INDEX["tumour_rim"]) & (phantom.ktrans > RIM_MIN_KTRANS)
    rim_err = {}
    for name, fit in (("delay", delayed), ("delay-0", nested)):
        rim_err[name] = float(np.nanmedian(np.abs(fit.params["Ktrans"][rim] / phantom.ktrans[rim] - 1.0)))
        print(
            f"tumour rim ({int(rim.sum()):,} voxels), {name:7} fit: median |Ktrans error| "
            f"{100 * rim_err[name]:.1f}% (median Ktrans {np.nanmedian(fit.params['Ktrans'][rim]):.4f}, "
            f"truth {np.median(phantom.ktrans[rim]):.4f}), valid {100 * fit.valid[rim].mean():.1f}%"
        )
    above = int((delayed.sse[mask] > nested.sse[mask] * (1 + 1e-9) + 1e-15).sum())
    valid, valid0 = float(delayed.valid[mask].mean()), float(nested.valid[mask].mean())
    kept = float((delayed.params["delay"][mask] != 0).mean())
    print(
        f"all fitted voxels (CSF, vessels, lesion and partial volume included): valid {100 * valid:.1f}% "
        f"(delay-0 fit {100 * valid0:.1f}%); delay kept (F-test) in {100 * kept:.1f}%; "
        f"{above} voxels with SSE above the delay-0 fit"
    )

    checks = [
        (f"{label} median Ktrans within 0.002 /min of truth", err <= 0.002, f"{err:.4f}")
        for label, err, _ in rows
    ]
    checks += [(f"{label} ≥ 95 % valid", v >= 0.95, f"{100 * v:.1f}%") for label, _, v in rows]
    checks += [
        ("tumour rim Ktrans within 10 %", rim_err["delay"] <= 0.10, f"{100 * rim_err['delay']:.1f}%"),
        ("no voxel above the delay-0 fit", above == 0, str(above)),
    ]
    print("targets:")
    for label, ok, value in checks:
        print(f"    {label}: {value} {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
