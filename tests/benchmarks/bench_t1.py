"""Benchmark: compute_t1_map on a 176×176×30 volume with 5 flip angles.

Target (issue): vfa-linear under 5 s on 2 CPU cores. Also prints vfa-nonlinear and
two-angle. Data: SPGR signals (TR 4 ms, 2/5/10/15/20°) from a T1 map of 0.3–4 s and M0 of
1000–3000 with 1 % Gaussian noise, plus a 20 % background of pure noise (which must come
out invalid). Run: ``python tests/benchmarks/bench_t1.py`` (best of 3 runs).
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from bidsapp import compute_t1_map, spgr_signal  # noqa: E402

SHAPE = (176, 176, 30)
ANGLES = np.array([2.0, 5.0, 10.0, 15.0, 20.0])
TR = 0.004


def make_volume(seed=0):
    rng = np.random.default_rng(seed)
    t1 = rng.uniform(0.3, 4.0, SHAPE)
    m0 = rng.uniform(1000.0, 3000.0, SHAPE)
    signals = spgr_signal(m0[..., None], 1.0 / t1[..., None], ANGLES, TR)
    signals += rng.normal(0.0, 0.01 * signals.mean(), signals.shape)
    background = np.zeros(SHAPE, dtype=bool)
    background[:, : SHAPE[1] // 5] = True
    signals[background] = np.abs(rng.normal(0.0, 5.0, (background.sum(), ANGLES.size)))
    return signals, t1, background


def main():
    signals, t1, background = make_volume()
    print(f"volume {SHAPE} x {ANGLES.size} flip angles, {os.cpu_count()} CPU(s) visible")
    for method in ("vfa-linear", "vfa-nonlinear", "two-angle"):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            result = compute_t1_map(signals, ANGLES, TR, method=method)
            times.append(time.perf_counter() - start)
        tissue = ~background
        error = np.nanmedian(np.abs(result.t1[tissue] - t1[tissue]) / t1[tissue])
        print(
            f"{method:14s} {min(times):6.2f} s  (valid: tissue {result.valid[tissue].mean():.3f}, "
            f"background {result.valid[background].mean():.3f}; median |dT1|/T1 {error:.3f})"
        )


if __name__ == "__main__":
    main()
