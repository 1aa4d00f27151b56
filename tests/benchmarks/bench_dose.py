"""Benchmark: the shipped dose-reduction network on held-out simulated subjects.

For every low-dose fraction (10, 25, 33 %) ``--subjects`` held-out subjects (seeds
``200000 + i``, never used in training or validation) are simulated with
:func:`bidsapp.simulate.dose.simulate_dose_sample` (other conditions drawn from the
training ranges) and passed through :func:`bidsapp.synthesize_standard_dose`
(registration included). Printed per fraction, mean ± SD over subjects:

* PSNR and SSIM (head mask) of the synthesised standard-dose image and of the naive
  baseline (registered pre-contrast + low-dose subtraction / fraction) against the
  noise-free simulated standard-dose image;
* the mean relative error of the contrast-enhancement signal inside lesions
  (:func:`bidsapp.nets.dose_metrics.lesion_relative_errors`: per lesion,
  then averaged over all lesions of all subjects; also over lesions of at least 20
  voxels alone).

Conditioning ablation: subjects at 2.0 T (outside the training field strengths 1.5 and
3 T) and 25 % dose, with the embedding as trained and zeroed.

Targets (issue #16): network ≥ 3 dB PSNR above the baseline at 10 %; lesion error
≤ 15 % at 25 %. Run: ``python tests/benchmarks/bench_dose.py [--subjects 3]``.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from bidsapp import synthesize_standard_dose  # noqa: E402
from bidsapp.nets.dose_metrics import lesion_relative_errors, psnr, ssim  # noqa: E402
from bidsapp.simulate.dose import simulate_dose_sample  # noqa: E402

HELD_OUT_SEED = 200_000
FRACTIONS = (0.10, 0.25, 0.33)
OOD_FIELD = 2.0
#: lesions of at least this many voxels are also summarised apart (smaller ones are 1-2 voxels at 3 mm)
LARGE_LESION = 20


def _figures(synth, enhancement, naive_ce, pre_on_low, pair, sample):
    truth, head = pair.standard_clean, sample.head
    return {
        "psnr_net": psnr(synth, truth, head),
        "psnr_naive": psnr(pre_on_low + naive_ce, truth, head),
        "ssim_net": ssim(synth, truth, head),
        "ssim_naive": ssim(pre_on_low + naive_ce, truth, head),
        "lesion_net": list(
            lesion_relative_errors(enhancement, pair.enhancement, sample.lesion_labels).values()
        ),
        "lesion_naive": list(
            lesion_relative_errors(naive_ce, pair.enhancement, sample.lesion_labels).values()
        ),
        "lesion_size": [
            int((sample.lesion_labels == label).sum()) for label in np.unique(sample.lesion_labels)[1:]
        ],
    }


def evaluate(seed, ablation=False, **fixed):
    """Figures of one held-out subject; with ``ablation`` also those with the embedding zeroed."""
    sample = simulate_dose_sample(seed, **fixed)
    pair, sc, affine = sample.pair, sample.scenario, sample.grid.affine
    args = (sc.fraction, sc.field_strength, sc.agent, sc.voxel_size)
    result = synthesize_standard_dose(pair.pre, pair.low, *args, pre_affine=affine, low_affine=affine)
    naive_ce = (pair.low - result.pre_on_low) / sc.fraction
    rows = [
        _figures(
            result.synthetic_standard_dose, result.enhancement, naive_ce, result.pre_on_low, pair, sample
        )
    ]
    if ablation:  # same registration, embedding zeroed
        zeroed = synthesize_standard_dose(
            result.pre_on_low, pair.low, *args, register=False, zero_embedding=True
        )
        rows.append(
            _figures(
                zeroed.synthetic_standard_dose, zeroed.enhancement, naive_ce, result.pre_on_low, pair, sample
            )
        )
    return rows


def summarise(rows, label):
    def stat(key):
        values = np.array([row[key] for row in rows])
        return f"{values.mean():6.2f} ± {values.std():4.2f}"

    lesion_net = 100 * np.mean(np.concatenate([row["lesion_net"] for row in rows]))
    lesion_naive = 100 * np.mean(np.concatenate([row["lesion_naive"] for row in rows]))
    large = np.concatenate([row["lesion_size"] for row in rows]) >= LARGE_LESION
    large_net = 100 * np.mean(np.concatenate([row["lesion_net"] for row in rows])[large])
    gain = np.mean([row["psnr_net"] - row["psnr_naive"] for row in rows])
    print(
        f"{label:<22} PSNR net {stat('psnr_net')} naive {stat('psnr_naive')} (gain {gain:+.2f} dB) | "
        f"SSIM net {stat('ssim_net')} naive {stat('ssim_naive')} | lesion error net {lesion_net:5.1f} % "
        f"naive {lesion_naive:5.1f} % ({large.sum()} of {large.size} lesions >= {LARGE_LESION} voxels: net "
        f"{large_net:5.1f} %)",
        flush=True,
    )
    return gain, lesion_net


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3, help="held-out subjects per condition")
    args = parser.parse_args()
    started, cpu = time.time(), time.process_time()
    seeds = HELD_OUT_SEED + np.arange(args.subjects)
    results = {}
    for fraction in FRACTIONS:
        rows = [evaluate(int(seed), fraction=fraction)[0] for seed in seeds]
        results[fraction] = summarise(rows, f"dose {fraction:.0%}")
    ood_seeds = seeds + 1000
    conditioned, zeroed = zip(
        *(evaluate(int(seed), ablation=True, fraction=0.25, field_strength=OOD_FIELD) for seed in ood_seeds),
        strict=True,
    )
    summarise(conditioned, f"{OOD_FIELD} T, conditioned")
    summarise(zeroed, f"{OOD_FIELD} T, embedding 0")
    gain10, lesion25 = results[0.10][0], results[0.25][1]
    print(f"target PSNR gain at 10 % >= 3 dB: {gain10:+.2f} dB {'PASS' if gain10 >= 3 else 'FAIL'}")
    print(f"target lesion error at 25 % <= 15 %: {lesion25:.1f} % {'PASS' if lesion25 <= 15 else 'FAIL'}")
    print(
        f"{args.subjects} subjects per condition; "
        f"wall {time.time() - started:.0f} s, CPU {time.process_time() - cpu:.0f} s"
    )


if __name__ == "__main__":
    main()
