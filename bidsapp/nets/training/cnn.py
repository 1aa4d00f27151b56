"""Train the direct kinetic-parameter CNN (Ulas et al. 2018) on simulated slices.

Loss: the normalised parameter error (:func:`loop.normalised_parameter_loss`) plus
``--physics-weight`` × the squared difference between the input concentration curves and
the extended Tofts curves of the predicted parameters (:func:`loop.physics_loss`, through
:func:`bidsapp.model_curve`). Validation loss: the parameter term alone.
"""

from __future__ import annotations

import numpy as np
import torch

from bidsapp.nets import contract
from bidsapp.nets.cnn import DirectCNN
from bidsapp.nets.weights import save_weights

from . import data, loop

NAME = "cnn"


def add_arguments(parser):
    """Options of ``dcequant-train cnn`` (defaults are the shipped recipe)."""
    loop.add_common_arguments(
        parser, epochs=40, steps=60, batch=8, pool=96, refresh=48, patience=12, lr=2e-3, validation=8
    )
    parser.add_argument(
        "--physics-weight", type=float, default=0.5, help="weight of the physics term (default 0.5)"
    )
    parser.add_argument(
        "--tissue-gain",
        type=float,
        default=10.0,
        help="factor on the concentration channels before the first layer (default 10)",
    )
    parser.add_argument(
        "--near-vessel-weight",
        type=float,
        default=4.0,
        help="loss weight of tissue voxels within 2 voxels of a vessel, others 1 (default 4)",
    )


def architecture(args=None):
    """Return constructor keywords of the CNN (``args.tissue_gain`` added when it is not 1)."""
    extra = {"tissue_gain": args.tissue_gain} if args is not None and args.tissue_gain != 1.0 else {}
    return {
        "n_times": int(contract.GRID.size),
        "temporal": 32,
        "spatial": 24,
        "head": 48,
        "scales": [data.SCALES[p] for p in data.PARAMS],
        **extra,
    }


def near_vessel_weighted(batch, factor):
    """``batch`` with its loss weights multiplied by ``factor`` at tissue voxels near a vessel."""
    if factor == 1.0:
        return batch
    emphasis = 1.0 + (factor - 1.0) * batch["near"][:, None]
    return {**batch, "weight": batch["weight"] * emphasis}


def evaluate(model, batches):
    """Return validation loss and tissue RMSE per parameter (units of the parameter).

    ``rmse_<p>`` over all tissue voxels, ``rmse_near_<p>`` over those near a vessel
    (:func:`data.near_vessel`); the loss is unweighted (every tissue voxel counts once).
    """
    losses, sums = [], {}
    for batch in batches:
        pred = model(batch["input"])
        losses.append(float(loop.normalised_parameter_loss(pred, batch)))
        near = {**batch, "weight": batch["weight"] * batch["near"][:, None]}
        for prefix, part in (("", batch), ("near_", near)):
            for name, (sse, n) in loop.parameter_errors(pred, part).items():
                prev = sums.get(prefix + name, (0.0, 0))
                sums[prefix + name] = (prev[0] + sse, prev[1] + n)
    return {
        "loss": float(np.mean(losses)),
        **{f"rmse_{k}": float(np.sqrt(s / max(n, 1))) for k, (s, n) in sums.items()},
    }


def train(args) -> int:
    """Train, then write ``cnn.pt`` and ``cnn.json`` to ``args.out``; return 0."""
    device = loop.setup(args)
    model = DirectCNN(**architecture(args)).to(device)

    def loss_fn(net, batch):
        pred = net(batch["input"])
        parameter = loop.normalised_parameter_loss(pred, near_vessel_weighted(batch, args.near_vessel_weight))
        physics = loop.physics_loss(pred, batch) if args.physics_weight else torch.zeros(())
        return parameter + args.physics_weight * physics, {}

    model, record = loop.fit(model, loss_fn, evaluate, args, device)
    card = {
        "architecture": {"class": "bidsapp.nets.cnn.DirectCNN", **architecture(args)},
        "input_contract": contract.describe(),
        "training": loop.training_record(
            args, device, record, ("physics_weight", "tissue_gain", "near_vessel_weight")
        ),
        "metrics": {"validation": record["curves"][record["best_epoch"] - 1]},
        "reference": "Ulas C et al. Front Neurol 2019;9:1147, doi:10.3389/fneur.2018.01147",
    }
    model = model.cpu()
    path = save_weights(NAME, model, card, args.out)
    print(f"wrote {path} (wall {record['wall_s']:.0f} s, CPU {record['cpu_s']:.0f} s)")
    return 0
