"""Benchmark: the shipped networks against voxel-wise extended Tofts fitting (issue #14).

Held-out simulated subjects (:func:`bidsapp.nets.training.data.slab_case` on seed
stream 2, never used in training; the validation split draws its slabs the same way on
stream 1): a 64×64×4 head slab at 3.4×3.4×5 mm with wide kinetics, a random protocol
inside the training envelope, Rician noise at SNR 10, 15 and 20 on the baseline,
concentration from the noisy signal with a T10 map carrying 5 % global and 3 % voxel
errors, and the **image AIF** (:func:`bidsapp.nets.training.data.image_aif`:
:func:`bidsapp.aif_from_mask` over the artery voxels that are at least 80 % artery).
Networks (:func:`bidsapp.infer_parameters`) and the fit (:func:`bidsapp.fit_model`,
extended Tofts with a fitted delay) get the same concentration and AIF. Figures inside
tissue (dominant class white/grey matter, tumour rim or necrosis, lesion):

* Ktrans, vp (and ve) RMSE and median |error| against truth; NRMSE = ‖estimate − truth‖ / ‖truth‖; SSIM
  (Wang et al. IEEE TIP 2004;13:600, Gaussian window σ = 1.5 voxels per slice,
  C1 = (0.01 L)², C2 = (0.03 L)², L the truth's range; NaN counted as 0), averaged over
  tissue voxels;
* calibration of the punet SD: fraction with |error| ≤ 1.96 SD and Spearman ρ(SD, |error|),
  pooled, and the fraction's range over subjects (a subject's errors are correlated: its
  image AIF, protocol and kinetics, so two or three subjects cannot measure coverage);
* out of distribution: the guard (too short a series is refused; 12 s frames warn) and
  the punet SD at SNR 2.5 and at 12 s frames relative to in-distribution;
* test–retest: one subject, two sessions (new noise, new AIF amplitude and arrival):
  between-session RMS difference and ICC(3,1) of the maps, nets vs fits;
* speed: a 176×176×30 volume with 65 frames on CPU (2 threads).

Run: ``python tests/benchmarks/bench_nets.py [--subjects N] [--skip-speed] [--fit-cache DIR]
[--weights DIR]`` (64 subjects by default: the figures of 2 subjects moved with the draw, and
the first 26 hold 14 Fritz-Hansen AIFs against the recipe's one in four).
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import torch

from bidsapp import fit_model, infer_parameters
from bidsapp.nets.contract import EnvelopeError
from bidsapp.nets.training import data
from bidsapp.simulate.kinetics import SessionInput
from bidsapp.simulate.tissues import CLASS_INDEX

SNRS = data.EVAL_SNRS
METHODS = ("fit", "cnn", "punet")
PARAMS = ("Ktrans", "vp", "ve")
WEIGHTS = {"weights_dir": None}  # --weights: another directory than the shipped weights
FIT_CACHE = {"dir": None}  # --fit-cache: reuse fits of earlier runs (same deterministic data)


def subject(i, seed=0):
    """Held-out subject ``i``: (phantom, protocol, clean session, rng for its noise)."""
    return data.slab_case(seed, data.BENCHMARK, i)


def image_aif(conc, phantom, t):
    """Plasma AIF measured in the image (:func:`bidsapp.nets.training.data.image_aif`, as in validation)."""
    return data.image_aif(conc, phantom.fractions[..., CLASS_INDEX["artery"]], t, phantom.hematocrit)


def acquisition(protocol):
    return {
        "flip_angle": protocol.dce_flip_angle,
        "repetition_time": protocol.dce_tr,
        "field_strength": protocol.field_strength,
        "baseline_length": protocol.nominal_arrival,
    }


def estimate(method, conc, t, aif, mask, protocol, key=None):
    """Maps ``{param: array}`` and SDs (punet) of one method; fits cached under ``key`` with --fit-cache."""
    if method == "fit":
        path = Path(FIT_CACHE["dir"]) / f"fit_{key}.npz" if FIT_CACHE["dir"] and key else None
        if path is not None and path.is_file():
            cached = np.load(path)
            return {p: cached[p] for p in ("Ktrans", "ve", "vp")}, {}
        result = fit_model("extended_tofts", conc, t, aif, mask=mask, fit_delay=True, device="cpu")
        if path is not None:
            np.savez(path, **{p: result.params[p] for p in ("Ktrans", "ve", "vp")})
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = infer_parameters(
                conc,
                t,
                aif,
                mask=mask,
                net=method,
                device="cpu",
                acquisition=acquisition(protocol),
                **WEIGHTS,
            )
    return result.params, result.stderr


def ssim(estimate_map, truth, mask):
    """Mean SSIM over ``mask`` voxels (per-slice Gaussian windows, σ = 1.5 voxels); NaN if none."""
    if not mask.any():  # e.g. ve of a subject whose tissue Ktrans is below 0.01 /min everywhere
        return np.nan
    x = np.where(mask, np.nan_to_num(estimate_map, nan=0.0), 0.0)
    y = np.where(mask, truth, 0.0)
    span = float(truth[mask].max() - truth[mask].min()) or 1.0
    c1, c2 = (0.01 * span) ** 2, (0.03 * span) ** 2

    def f(a):
        return gaussian_filter(a, (1.5, 1.5, 0.0))

    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s[mask].mean())


def accuracy(subjects):
    """RMSE, NRMSE, SSIM per method/parameter pooled over subjects × SNR; calibration of punet."""
    errors = {(m, p): [] for m in METHODS for p in PARAMS}
    truths = {(m, p): [] for m in METHODS for p in PARAMS}
    ssims = {(m, p): [] for m in METHODS for p in PARAMS}
    calib = {p: ([], []) for p in PARAMS}
    per_subject = {p: [] for p in PARAMS}  # coverage per subject: errors correlate within a subject
    subject_rmse = {(m, p): [] for m in METHODS for p in PARAMS}
    shapes = []  # AIF shape of each subject
    nan_count = {m: 0 for m in METHODS}
    seconds = {m: 0.0 for m in METHODS}
    for i in range(subjects):
        phantom, protocol, clean, rng = subject(i)
        shapes.append(protocol.aif)
        tissue = data.tissue_mask(phantom)
        truth = dict(zip(("Ktrans", "ve", "vp"), clean.truth, strict=True))
        for snr in SNRS:
            conc = data.noisy_concentration(clean, rng, snr)
            aif = image_aif(conc, phantom, clean.t)
            for method in METHODS:
                start = time.perf_counter()
                params, sd = estimate(method, conc, clean.t, aif, tissue, protocol, f"{i}_{snr:g}")
                seconds[method] += time.perf_counter() - start
                nan_count[method] += int((~np.isfinite(params["Ktrans"][tissue])).sum())
                for p in PARAMS:
                    sel = tissue & (truth["Ktrans"] > data.VE_MIN_KTRANS) if p == "ve" else tissue
                    value = params[p][sel]
                    ok = np.isfinite(value)
                    errors[method, p].append((value - truth[p][sel])[ok])
                    truths[method, p].append(truth[p][sel][ok])
                    ssims[method, p].append(ssim(params[p], truth[p], sel))
                    if method == "punet":
                        calib[p][0].append(np.abs(value - truth[p][sel])[ok])
                        calib[p][1].append(sd[p][sel][ok])
            print(f"  subject {i} SNR {snr:g}: done", flush=True)
        for p in PARAMS:
            err, sd = (np.concatenate(part[-len(SNRS) :]) for part in calib[p])
            if err.size:  # a subject may have no ve voxels (tissue Ktrans < 0.01 /min)
                per_subject[p].append(np.mean(err <= 1.96 * sd))
            for method in METHODS:
                e = np.concatenate(errors[method, p][-len(SNRS) :])
                subject_rmse[method, p].append(np.sqrt(np.mean(e**2)) if e.size else np.nan)
    print(
        "\nAccuracy inside tissue (subjects × SNR 10/15/20 pooled; image AIF; fit = extended Tofts + delay)"
    )
    print(f"{'method':8s} {'param':7s} {'RMSE':>9s} {'median|e|':>9s} {'NRMSE':>7s} {'SSIM':>6s} {'n':>7s}")
    for p in PARAMS:
        for method in METHODS:
            e, t = np.concatenate(errors[method, p]), np.concatenate(truths[method, p])
            nrmse, mean_ssim = np.linalg.norm(e) / np.linalg.norm(t), np.nanmean(ssims[method, p])
            print(
                f"{method:8s} {p:7s} {np.sqrt(np.mean(e**2)):9.5f} {np.median(np.abs(e)):9.5f} "
                f"{nrmse:7.3f} {mean_ssim:6.3f} {e.size:7d}"
            )
    for p in PARAMS:
        fit = np.array(subject_rmse["fit", p])
        wins = ", ".join(f"{m} {int(np.sum(np.array(subject_rmse[m, p]) < fit))}" for m in METHODS[1:])
        print(f"subjects whose {p} RMSE is below the fit's (of {int(np.isfinite(fit).sum())}): {wins}")
    print("RMSE by population AIF shape of the subject (Ktrans / vp / ve):")
    for shape in sorted(set(shapes)):
        rows = [k for k, name in enumerate(shapes) if name == shape]
        cells = []
        for method in METHODS:
            n = len(SNRS)  # errors hold one entry per subject and SNR
            parts = {p: [errors[method, p][n * k + j] for k in rows for j in range(n)] for p in PARAMS}
            rmse = [np.sqrt(np.mean(np.concatenate(parts[p]) ** 2)) for p in PARAMS]
            cells.append(f"{method} {rmse[0]:.4f} / {rmse[1]:.4f} / {rmse[2]:.3f}")
        print(f"  {shape:13s} ({len(rows):2d} subjects): " + "   ".join(cells))
    print("non-finite Ktrans in tissue: " + ", ".join(f"{m} {n}" for m, n in nan_count.items()))
    print(
        "wall time per method, all subjects and SNRs (shared CPU): "
        + ", ".join(f"{m} {s:.1f} s" for m, s in seconds.items())
    )
    print(f"\nCalibration of the punet SD (held-out tissue voxels, {subjects} subjects × SNR 10/15/20)")
    for p in PARAMS:
        err, sd = np.concatenate(calib[p][0]), np.concatenate(calib[p][1])
        rho = spearmanr(sd, err).statistic
        low, mid, high = np.percentile(per_subject[p], [0, 50, 100])
        print(
            f"  {p:7s} fraction |error| <= 1.96 SD: {np.mean(err <= 1.96 * sd):.3f}   Spearman rho(SD, "
            f"|error|): {rho:.3f}   per subject min {low:.3f} median {mid:.3f} max {high:.3f}"
        )


def out_of_distribution():
    """Guard messages and punet SD growth outside the training envelope."""
    phantom, protocol, clean, rng = subject(0)
    tissue = data.tissue_mask(phantom)
    print("\nOut of distribution (subject 0; punet median Ktrans SD in tissue, RMSE Ktrans)")

    def run(clean_case, snr, label):
        conc = data.noisy_concentration(clean_case, rng, snr)
        aif = image_aif(conc, phantom, clean_case.t)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = infer_parameters(
                conc,
                clean_case.t,
                aif,
                mask=tissue,
                net="punet",
                device="cpu",
                acquisition=acquisition(clean_case.protocol),
                **WEIGHTS,
            )
        sd = np.nanmedian(result.stderr["Ktrans"][tissue])
        rmse = np.sqrt(np.nanmean((result.params["Ktrans"] - clean_case.truth[0])[tissue] ** 2))
        print(
            f"  {label:32s} median SD {sd:.5f}  RMSE {rmse:.5f}  guard: "
            f"{[str(w.message) for w in caught] or 'silent'}"
        )
        return sd

    base = run(clean, 15.0, "in distribution (SNR 15)")
    low = run(clean, 2.5, "SNR 2.5 (training 5-40)")
    slow_protocol = protocol.replace(
        temporal_resolution=12.0, n_frames=27, baseline_frames=max(1, int(protocol.nominal_arrival // 12.0))
    )
    slow = data.simulate_clean(phantom, slow_protocol, SessionInput(protocol.nominal_arrival, 1.0))
    coarse = run(slow, 15.0, "12 s frames (training 1-8 s)")
    print(f"  SD growth: SNR 2.5 x{low / base:.2f}; 12 s frames x{coarse / base:.2f}")
    short = clean.t[clean.t <= 200.0]
    try:
        infer_parameters(np.zeros((4, 4, short.size)), short, np.ones(short.size), net="punet", **WEIGHTS)
        print("  200 s series: NOT refused")
    except EnvelopeError as error:
        print(f"  200 s series refused: {error}")


def icc31(a, b):
    """ICC(3,1) (two-way mixed, consistency) of two sessions' values."""
    x = np.stack([a, b], axis=1)
    n, k = x.shape
    grand = x.mean()
    ms_rows = k * ((x.mean(1) - grand) ** 2).sum() / (n - 1)
    resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + grand
    ms_err = (resid**2).sum() / ((n - 1) * (k - 1))
    return (ms_rows - ms_err) / (ms_rows + (k - 1) * ms_err)


def test_retest():
    """Same subject, two sessions with new noise, AIF amplitude and arrival (SNR 15)."""
    phantom, protocol, _, rng = subject(1)
    protocol = protocol.replace(arrival_jitter=3.0, aif_amplitude_cv=0.25)
    tissue = data.tissue_mask(phantom)
    maps = {m: [] for m in METHODS}
    for session in range(2):
        clean = data.simulate_clean(phantom, protocol, SessionInput.draw(rng, protocol))
        conc = data.noisy_concentration(clean, rng, 15.0)
        aif = image_aif(conc, phantom, clean.t)
        for method in METHODS:
            maps[method].append(estimate(method, conc, clean.t, aif, tissue, protocol, f"retest{session}")[0])
    print(
        "\nTest-retest (subject 1, two sessions, SNR 15): between-session RMS difference and ICC(3,1) in "
        "tissue"
    )
    for p in ("Ktrans", "vp"):
        for method in METHODS:
            a, b = maps[method][0][p][tissue], maps[method][1][p][tissue]
            ok = np.isfinite(a) & np.isfinite(b)
            print(
                f"  {p:7s} {method:6s} RMS diff {np.sqrt(np.mean((a[ok] - b[ok]) ** 2)):.5f}  ICC "
                f"{icc31(a[ok], b[ok]):.3f}  n {ok.sum()}"
            )


def speed():
    """176×176×30 volume, 65 frames (5 s), CPU with 2 threads: wall and CPU time per network."""
    phantom, _, clean, rng = subject(2)
    t = np.arange(65) * 5.0
    conc = data.noisy_concentration(clean, rng, 15.0)
    aif = image_aif(conc, phantom, clean.t)

    conc65 = np.stack([np.interp(t, clean.t, c) for c in conc.reshape(-1, clean.t.size)]).reshape(
        conc.shape[:3] + (65,)
    )
    target = (176, 176, 30)
    pads = [((n - m) // 2, n - m - (n - m) // 2) for n, m in zip(target, conc65.shape[:3], strict=True)]
    volume = np.pad(np.nan_to_num(conc65), pads + [(0, 0)], mode="wrap").astype(np.float32)
    aif65 = np.interp(t, clean.t, aif)
    torch.set_num_threads(2)
    print(f"\nSpeed: volume {volume.shape[:3]} × {volume.shape[3]} frames, CPU, 2 threads")
    for net in ("cnn", "punet"):
        infer_parameters(
            volume[:, :, :1], t, aif65, net=net, device="cpu", **WEIGHTS
        )  # load weights, warm up
        wall, cpu = time.perf_counter(), time.process_time()
        infer_parameters(volume, t, aif65, net=net, device="cpu", **WEIGHTS)
        print(f"  {net:6s} wall {time.perf_counter() - wall:6.1f} s   CPU {time.process_time() - cpu:6.1f} s")
    if torch.cuda.is_available():
        for net in ("cnn", "punet"):
            infer_parameters(volume[:, :, :1], t, aif65, net=net, device="cuda", **WEIGHTS)
            torch.cuda.synchronize()
            wall = time.perf_counter()
            infer_parameters(volume, t, aif65, net=net, device="cuda", **WEIGHTS)
            torch.cuda.synchronize()
            print(f"  {net:6s} CUDA wall {time.perf_counter() - wall:6.2f} s")
    else:
        print("  CUDA: no GPU on this machine, not measured")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=64)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--weights", help="directory of cnn/punet weights (default: the shipped ones)")
    parser.add_argument(
        "--fit-cache", help="directory to keep and reuse the fits (the data are deterministic)"
    )
    args = parser.parse_args()
    WEIGHTS["weights_dir"] = args.weights
    FIT_CACHE["dir"] = args.fit_cache
    if args.fit_cache:
        Path(args.fit_cache).mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    accuracy(args.subjects)
    out_of_distribution()
    test_retest()
    if not args.skip_speed:
        speed()


if __name__ == "__main__":
    main()
