"""Benchmark: bolus arrival and the image-derived AIF area on simulated studies.

Targets (issue #10, item 2): the estimated arrival within one frame of the truth and the
image-derived plasma AIF area within 5 % of the true plasma AIF's area, at 0.5 s frames
(integer-quantised, noise-free: a DICOM digital reference object), 1.5 s and 5 s frames
(Rician noise, SNR 30). Phantom: 64×64×8 at 3.4×3.4×5 mm (arteries resolved, as in
tests/unit/test_aif_simulated.py), 180–200 s series, the Parker AIF, arrival jittered by 1 s.

Per study: T1 from the VFA set, the arrival and baseline by
:func:`bidsapp.bolus_arrival.estimate_bolus_arrival` on the DCE signal (mask as in the
participant workflow), the concentration with that baseline, and the AIF by
:func:`bidsapp.detect_aif` exactly as ``aif_step`` calls it (signal-domain pooling, Parker
area check and fallback, the estimated arrival). For comparison the same AIF with the
true baseline count, with the baseline of the rule this estimator replaced (first frame
10 % of the peak rise and 5 noise SDs of frames 0–2 above their median, minus one frame),
and with the estimated baseline but the true T1 map (separates the arrival from the VFA
T1 error, which the AIF's pooled blood T10 carries into its scale). The last two columns
are the pooled blood T10's error against the true T1 of the selected voxels and its
bootstrap standard error (``AIFResult.blood_t10``); the AIF area moves by about −2 × the
T10 error. After each protocol: the worst |area error| and the median area error over
the seeds, per column (figures and their discussion: docs/aif.md, "Measured accuracy").

Run: ``python tests/benchmarks/bench_arrival.py [--seeds N]``.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from bidsapp import compute_t1_map, detect_aif, signal_to_concentration  # noqa: E402
from bidsapp.bolus_arrival import estimate_bolus_arrival  # noqa: E402
from bidsapp.session_steps import FALLBACK_POPULATION_AIF, signal_mask  # noqa: E402
from bidsapp.simulate import Grid, Protocol, make_phantom, simulate_subject  # noqa: E402

GRID = Grid(matrix=(64, 64, 8), voxel_size=(3.4375, 3.4375, 5.0))
STUDIES = [  # label, temporal resolution (s), frames, nominal baseline frames, SNR, integer-quantised
    ("0.5 s, integer, no noise", 0.5, 360, 20, np.inf, True),
    ("1.5 s, SNR 30", 1.5, 120, 7, 30.0, False),
    ("5 s, SNR 30", 5.0, 40, 4, 30.0, False),
]


def previous_rule(signal, mask, top_fraction=0.01):
    """Baseline frames by the replaced rule (for comparison only)."""
    flat = signal.reshape(-1, signal.shape[-1])[mask.reshape(-1)]
    enhancement = flat.max(axis=1) - flat[:, 0]
    curve = flat[np.argsort(enhancement)[-max(1, int(round(top_fraction * flat.shape[0]))) :]].mean(axis=0)
    level, noise = np.median(curve[:3]), np.std(curve[:3])
    above = np.flatnonzero(curve > level + max(0.1 * (curve.max() - level), 5 * noise))
    return max(1, int(above[0]) - 1) if above.size else 1


def area(curve, t):
    return float(np.sum(np.diff(t) * (curve[1:] + curve[:-1]) / 2.0))


def image_aif(sim, signal, t10, t1_valid, n_base, arrival, vfa=None):
    """The :class:`bidsapp.AIFResult` the participant workflow would detect with T1 map ``t10``
    (s) and, as ``aif_step`` does, the VFA signals ``vfa`` it came from (blood T10 pooled)."""
    p = sim.protocol
    conc = signal_to_concentration(signal, t10, p.dce_tr, p.dce_flip_angle, sim.relaxivity, n_base)
    mask = t1_valid & signal_mask(signal) & conc.voxel_valid
    model = {"tr": p.dce_tr, "flip_angle": p.dce_flip_angle, "relaxivity": sim.relaxivity}
    result = detect_aif(
        conc.concentration,
        sim.t,
        t10=t10,
        mask=mask,
        hematocrit=p.hematocrit,
        fallback=FALLBACK_POPULATION_AIF,
        signal_model=model,
        population_check=FALLBACK_POPULATION_AIF,
        bolus_arrival=arrival,
        baseline_frames=n_base,
        vfa=None
        if vfa is None
        else {"signals": vfa, "flip_angles": np.asarray(p.vfa_flip_angles), "tr": p.vfa_tr},
    )
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    phantom = make_phantom(0, grid=GRID)
    print(
        f"{'study':26s} {'seed':>4s} {'true s':>7s} {'est s':>7s} {'err fr':>7s} {'base t/e/old':>12s} "
        f"{'source':>16s} {'area err %':>10s} {'true base %':>11s} {'old rule %':>10s} {'true T1 %':>9s} "
        f"{'T10 err %':>9s} {'T10 SE %':>8s}"
    )
    worst_frames, worst_area = 0.0, 0.0
    for label, dt, n_frames, n_base, snr, integer in STUDIES:
        protocol = Protocol(temporal_resolution=dt, n_frames=n_frames, baseline_frames=n_base, snr=snr)
        study_errors = []
        for seed in range(args.seeds):
            sim = simulate_subject(phantom, protocol, rng=seed)
            dce, vfa = (np.round(sim.dce), np.round(sim.vfa)) if integer else (sim.dce, sim.vfa)
            t1 = compute_t1_map(vfa, np.asarray(protocol.vfa_flip_angles), protocol.vfa_tr)
            t10 = np.where(t1.valid, t1.t1, 1.0)
            search = t1.valid & signal_mask(dce)
            estimate = estimate_bolus_arrival(dce, sim.t, search)
            truth = sim.session_input.bolus_arrival
            true_base = int(np.sum(sim.t < truth))
            old_base = previous_rule(dce, search)
            true_area = area(sim.aif_plasma, sim.t)
            result = image_aif(sim, dce, t10, t1.valid, estimate.baseline_frames, estimate.time, vfa)
            source, plasma = result.source, result.plasma
            plasma_true = image_aif(sim, dce, t10, t1.valid, true_base, estimate.time, vfa).plasma
            plasma_old = image_aif(sim, dce, t10, t1.valid, old_base, estimate.time, vfa).plasma
            head = phantom.t1 > 0
            plasma_t1 = image_aif(
                sim, dce, np.where(head, phantom.t1, 1.0), head, estimate.baseline_frames, estimate.time
            ).plasma
            if (
                result.blood_t10 is not None
            ):  # blood T10 error against the T1 of the selected voxels, and its SE
                true_t10 = float(np.mean(phantom.t1[result.mask]))
                t10_error = 100.0 * (result.blood_t10["value"] / true_t10 - 1.0)
                t10_se = 100.0 * result.blood_t10["standard_error"] / result.blood_t10["value"]
            else:
                t10_error = t10_se = float("nan")
            errors = [
                100.0 * (area(c, sim.t) / true_area - 1.0)
                for c in (plasma, plasma_true, plasma_old, plasma_t1)
            ]
            frames = (estimate.time - truth) / dt
            worst_frames, worst_area = max(worst_frames, abs(frames)), max(worst_area, abs(errors[0]))
            print(
                f"{label:26s} {seed:4d} {truth:7.2f} {estimate.time:7.2f} {frames:+7.2f} "
                f"{f'{true_base}/{estimate.baseline_frames}/{old_base}':>12s} {source:>16s} "
                f"{errors[0]:+10.1f} {errors[1]:+11.1f} {errors[2]:+10.1f} {errors[3]:+9.1f} "
                f"{t10_error:+9.1f} "
                f"{t10_se:8.1f}",
                flush=True,
            )
            study_errors.append(errors)
        study_errors = np.asarray(study_errors)
        print(
            f"{label}: AIF area error over seeds, worst |.| / median: "
            + ", ".join(
                f"{name} {np.abs(column).max():.1f} / {np.median(column):+.1f} %"
                for name, column in zip(
                    ("estimated", "true base", "old rule", "true T1"), study_errors.T, strict=True
                )
            ),
            flush=True,
        )
    print(
        f"worst |arrival error| {worst_frames:.2f} frames (target <= 1); "
        f"worst |AIF area error| {worst_area:.1f} % (target <= 5)"
    )


if __name__ == "__main__":
    main()
