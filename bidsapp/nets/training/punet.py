"""Train the temporal + probabilistic U-Net (Lyoo et al. 2025) on simulated slices.

Loss per step, over weighted voxels with normalised errors e = (mean − truth)/scale:
mean(e²) + the Gaussian negative log-likelihood ½·(log σ² + e²/σ²) of the
heteroscedastic head, each voxel's weighted by sg(σ²)^β (β-NLL, Seitzer et al. ICLR
2022, ``--beta-nll``; sg = no gradient), with ``z`` drawn from the posterior, plus
``--kl-weight`` × KL(posterior ‖ prior). β = 0 is the plain NLL, whose gradient on the
mean, e/σ², grows without bound as σ shrinks; β = 0.5 (the default) turns it into e/σ,
β = 1 into e. With ``--faithful`` (the default) the NLL sees the error with the mean
detached, so the MSE alone trains the mean (voxels with a large predicted σ, e.g.
weakly identifiable vp, pull on it as much as easy ones) and the β-NLL only the
variance (Stirn et al., "Faithful heteroscedastic regression with neural networks",
AISTATS 2023). After training
the per-parameter temperature is fitted on ``--calibration`` slabs of the validation
stream (prior samples only): the 95th percentile of |error| / (1.96·SD), so that 95 % of
those voxels lie within ±1.96 calibrated SD.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.distributions import kl_divergence

from bidsapp.nets import contract
from bidsapp.nets.prob_unet import ProbUNet
from bidsapp.nets.weights import save_weights

from . import data, loop

NAME = "punet"
#: prior draws per slice at validation and inference
SAMPLES = 16
#: default gradient-norm clip (docs/networks.md)
CLIP_GRAD = 20.0
#: validation slabs drawn at a time while the temperatures are fitted (bounds memory)
CALIBRATION_CHUNK = 8
#: punet options recorded in the model card next to the common ones
EXTRA_HYPERPARAMETERS = ("kl_weight", "beta_nll", "faithful", "calibration", "tissue_gain", "feature_norm")


def add_arguments(parser):
    """Options of ``dcequant-train punet`` (defaults are the shipped recipe)."""
    loop.add_common_arguments(
        parser,
        epochs=60,
        steps=100,
        batch=6,
        pool=96,
        refresh=48,
        patience=40,
        lr=2e-3,
        validation=8,
        clip_grad=CLIP_GRAD,
    )
    parser.add_argument(
        "--calibration",
        type=int,
        default=96,
        help="validation-stream slabs the temperatures are fitted on, the first --validation of them "
        "the early-stopping split (default 96; docs/networks.md)",
    )
    parser.add_argument(
        "--beta-nll",
        type=float,
        default=0.5,
        help="β of the β-NLL weighting sg(σ²)^β of each voxel's NLL, 0 = plain NLL (default 0.5)",
    )
    parser.add_argument(
        "--faithful",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train the mean by the MSE only and the variance by the NLL of the detached error "
        "(Stirn et al. 2023; default on; docs/networks.md)",
    )
    parser.add_argument(
        "--kl-weight", type=float, default=0.01, help="weight of KL(posterior‖prior) (default 0.01)"
    )
    parser.add_argument(
        "--tissue-gain",
        type=float,
        default=20.0,
        help="factor on the tissue channel before the TCN (default 20; docs/networks.md)",
    )
    parser.add_argument(
        "--feature-norm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="batch-normalise the TCN features (default on; docs/networks.md)",
    )


def architecture(args=None):
    """Return constructor keywords of the network (the shipped recipe's without ``args``)."""
    return {
        "n_times": int(contract.GRID.size),
        "tcn_channels": 32,
        "features": 16,
        "channels": [16, 32, 48],
        "latent": 4,
        "head": 32,
        "scales": [data.SCALES[p] for p in data.PARAMS],
        "tissue_gain": 20.0 if args is None else float(args.tissue_gain),
        "feature_norm": True if args is None else bool(args.feature_norm),
    }


def _nll_terms(mean, log_var, batch, scales, beta=0.0, faithful=False):
    """Weighted normalised MSE and β-NLL (each a sum over parameters of a mean over voxels).

    ``faithful``: the NLL sees the error with the mean detached, so only the MSE trains
    the mean and the NLL trains only the variance (Stirn et al., AISTATS 2023).
    """
    e = (mean - batch["target"]) / scales
    w = batch["weight"]
    norm = w.sum(dim=(0, 2, 3)).clamp(min=1)
    mse = ((e**2 * w).sum(dim=(0, 2, 3)) / norm).sum()
    e_nll = e.detach() if faithful else e
    voxel_nll = 0.5 * (log_var + e_nll**2 / torch.exp(log_var))
    if beta:
        voxel_nll = voxel_nll * torch.exp(beta * log_var.detach())
    nll = ((voxel_nll * w).sum(dim=(0, 2, 3)) / norm).sum()
    return mse, nll


def predictions(model, batches, generator):
    """Prior-sampled mean and SD for each validation batch, drawn from ``generator`` (reproducible)."""
    return [model.sample(b["input"], SAMPLES, generator) for b in batches]


def calibration_data(model, seed, slabs, device):
    """Per parameter: |error| and uncalibrated SD over the tissue voxels of validation slabs 0 … ``slabs``−1.

    The slabs are drawn :data:`CALIBRATION_CHUNK` at a time and dropped once their voxels'
    errors are kept, so memory does not grow with ``slabs``.
    """
    temperature = model.temperature.clone()
    model.temperature.fill_(1.0)
    errors, sds = {p: [] for p in data.PARAMS}, {p: [] for p in data.PARAMS}
    generator = torch.Generator(device=device).manual_seed(seed)
    for start in range(0, slabs, CALIBRATION_CHUNK):
        batches = loop.validation_batches(seed, min(CALIBRATION_CHUNK, slabs - start), device, start=start)
        for batch, (mean, sd) in zip(batches, predictions(model, batches, generator), strict=True):
            for i, name in enumerate(data.PARAMS):
                w = batch["weight"][:, i] > 0
                errors[name].append((mean[:, i] - batch["target"][:, i]).abs()[w])
                sds[name].append(sd[:, i][w])
    model.temperature.copy_(temperature)
    return {p: (torch.cat(errors[p]), torch.cat(sds[p])) for p in data.PARAMS}


def fit_temperature(model, calibration):
    """Set ``model.temperature`` to the 95th percentile of |error| / (1.96 · SD) per parameter.

    ``calibration`` is :func:`calibration_data`'s result.
    """
    for i, (err, sd) in enumerate(calibration.values()):
        ratio = (err / (1.96 * sd.clamp(min=1e-12))).double().cpu().numpy()
        model.temperature[0, i] = float(np.quantile(ratio, 0.95))


def calibration_metrics(model, calibration):
    """RMSE and the fraction inside ±1.96 calibrated SD, per parameter, over the calibration voxels."""
    out = {}
    for i, (name, (err, sd)) in enumerate(calibration.items()):
        out[f"rmse_{name}"] = float(torch.sqrt((err.double() ** 2).mean()))
        inside = err <= 1.96 * sd * model.temperature[0, i, 0, 0]
        out[f"coverage95_{name}"] = float(inside.double().mean())
    return out


def evaluate(model, batches):
    """Return validation loss (posterior-free: prior-sampled mean's normalised MSE), RMSE and coverage."""
    losses, sums, cover = [], {}, {}
    scales = model.scales
    generator = torch.Generator(device=batches[0]["input"].device).manual_seed(0)
    for batch, (mean, sd) in zip(batches, predictions(model, batches, generator), strict=True):
        w = batch["weight"]
        e = (mean - batch["target"]) / scales
        losses.append(float(((e**2 * w).sum(dim=(0, 2, 3)) / w.sum(dim=(0, 2, 3)).clamp(min=1)).sum()))
        for i, name in enumerate(data.PARAMS):
            m = w[:, i] > 0
            err = (mean[:, i] - batch["target"][:, i])[m]
            s, n = sums.get(name, (0.0, 0))
            sums[name] = (s + float((err**2).sum()), n + int(m.sum()))
            c, _ = cover.get(name, (0, 0))
            cover[name] = (c + int((err.abs() <= 1.96 * sd[:, i][m]).sum()), 0)
    out = {"loss": float(np.mean(losses))}
    for name, (s, n) in sums.items():
        out[f"rmse_{name}"] = float(np.sqrt(s / max(n, 1)))
        out[f"coverage95_{name}"] = cover[name][0] / max(n, 1)
    return out


def train(args) -> int:
    """Train, calibrate, then write ``punet.pt`` and ``punet.json`` to ``args.out``; return 0."""
    device = loop.setup(args)
    model = ProbUNet(**architecture(args)).to(device)

    def loss_fn(net, batch):
        features, hidden = net.encode(batch["input"])
        mask = batch["weight"][:, :1]
        posterior = net.posterior_of(features, batch["target"], mask)
        prior = net.prior(features)
        mean, log_var = net.decode(hidden, posterior.rsample())
        mse, nll = _nll_terms(mean, log_var, batch, net.scales, args.beta_nll, args.faithful)
        kl = kl_divergence(posterior, prior).sum(dim=1).mean()
        return mse + nll + args.kl_weight * kl, {}

    model, record = loop.fit(model, loss_fn, evaluate, args, device)
    model.eval()
    validation = loop.validation_batches(args.seed, args.validation, device)
    with torch.no_grad():
        calibration = calibration_data(model, args.seed, args.calibration, device)
        fit_temperature(model, calibration)
        calibrated = evaluate(model, validation)
        on_calibration = calibration_metrics(model, calibration)
    card = {
        "architecture": {"class": "bidsapp.nets.prob_unet.ProbUNet", **architecture(args)},
        "input_contract": contract.describe(),
        "inference": {"prior_samples": SAMPLES, "sampling": "prior net only (never the posterior)"},
        "training": loop.training_record(args, device, record, EXTRA_HYPERPARAMETERS),
        "calibration": {
            "method": f"per-parameter temperature on {args.calibration} slabs of the validation stream "
            "(95th percentile of |error|/(1.96 SD))",
            "temperature": dict(zip(data.PARAMS, model.temperature.view(-1).tolist(), strict=True)),
        },
        "metrics": {"validation": calibrated, "calibration": on_calibration},
        "reference": "Lyoo Y et al. Eur Radiol 2025, doi:10.1007/s00330-025-11588-z; Kohl SAA et al. "
        "NeurIPS 2018",
    }
    path = save_weights(NAME, model.cpu(), card, args.out)
    print(f"wrote {path} (wall {record['wall_s']:.0f} s, CPU {record['cpu_s']:.0f} s)")
    return 0
