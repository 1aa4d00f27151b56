"""Short punet runs that show the effect of the TCN input scale on learning Ktrans (issue #14).

Trains the probabilistic U-Net (:mod:`bidsapp.nets.prob_unet`) from scratch for a few
optimiser steps on a fixed pool of 16 simulated training slices (stream 0, seed 0;
batch 4, Adam lr 0.002 without decay, the trainer's loss) and prints, every 15 steps,
the validation loss and RMSE per parameter (Ktrans 1/min, ve, vp) on 8 validation
slices (stream 1), for three variants: the shipped architecture, ``tissue_gain=20``, and
``tissue_gain=20`` with ``feature_norm`` (:class:`bidsapp.nets.tcn.TemporalConvNet`).
It also prints the SD over head voxels of the initial TCN features and the truth's SD
(the RMSE of a constant prediction). Figures: ``docs/networks.md``.

Run: ``python tests/benchmarks/bench_punet_scale.py [--steps 45]`` (about 3 min per
variant on 2 CPU threads).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.distributions import kl_divergence

from bidsapp.nets.prob_unet import ProbUNet
from bidsapp.nets.training import data, loop, punet

VARIANTS = {
    "shipped": {},
    "tissue_gain 20": {"tissue_gain": 20.0},
    "tissue_gain 20 + feature_norm": {"tissue_gain": 20.0, "feature_norm": True},
}


def run(name, options, pool, validation, steps):
    """Train one variant for ``steps`` steps, printing validation figures every 15 steps."""
    torch.manual_seed(0)
    model = ProbUNet(**punet.architecture(), **options)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    rng = np.random.default_rng([0, data.TRAIN, 2**31])
    start = time.perf_counter()
    for step in range(1, steps + 1):
        batch = loop.draw_batch(pool, rng, 4, torch.device("cpu"))
        features, unet = model.encode(batch["input"])
        posterior = model.posterior_of(features, batch["target"], batch["weight"][:, :1])
        mean, log_var = model.decode(features, unet, posterior.rsample())
        mse, nll = punet._nll_terms(mean, log_var, batch, model.scales)
        kl = kl_divergence(posterior, model.prior(features)).sum(dim=1).mean()
        loss = mse + nll + 0.01 * kl
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 15 == 0:
            model.eval()
            with torch.no_grad():
                r = punet.evaluate(model, validation)
            model.train()
            print(
                f"{name:30s} step {step:3d} ({time.perf_counter() - start:4.0f} s) "
                f"val. loss {r['loss']:.3f}  RMSE Ktrans {r['rmse_Ktrans']:.4f} "
                f"ve {r['rmse_ve']:.4f} vp {r['rmse_vp']:.4f}",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=45)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True, warn_only=True)
    pool = loop.SlicePool(0, 16)
    validation = loop.validation_batches(0, 8, torch.device("cpu"))
    first = validation[0]
    for i, name in enumerate(data.PARAMS):
        truth = first["target"][:, i][first["weight"][:, i] > 0]
        print(f"truth {name}: SD {float(truth.std()):.4f} (RMSE of a constant), first batch")
    head = first["weight"][:, 0] > 0
    for name, options in VARIANTS.items():
        torch.manual_seed(0)
        with torch.no_grad():
            features = ProbUNet(**punet.architecture(), **options).eval().tcn(first["input"])
        per_voxel = features.permute(1, 0, 2, 3)[:, head]
        print(
            f"{name:30s} initial TCN features: SD over head voxels {float(per_voxel.std(dim=1).mean()):.4f}, "
            f"mean |feature| {float(per_voxel.abs().mean()):.4f}"
        )
    for name, options in VARIANTS.items():
        run(name, options, pool, validation, args.steps)


if __name__ == "__main__":
    main()
