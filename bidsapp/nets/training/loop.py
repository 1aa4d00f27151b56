"""Shared training loop: slice pool, batches, early stopping, logging, timing, determinism.

Used by every parameter-network trainer. The pool holds ``pool`` noise-free training
slices (:func:`bidsapp.nets.training.data.clean_slice`); after every epoch the oldest
``refresh`` are replaced by new draws, so over a run the network sees
``pool + epochs × refresh`` distinct simulated slices, each time with new noise, SNR,
crop and flips. The validation split is a fixed set of whole slabs from a separate
seed stream, drawn as the benchmark draws its subjects (image AIF, SNR 10–20, tissue
voxels; :func:`data.validation_examples`). The best validation state is kept; training stops when
the validation loss has not improved for ``patience`` epochs.
"""

from __future__ import annotations

import copy
import sys
import time

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import data


def add_common_arguments(
    parser, epochs, steps, batch, pool, refresh, patience, lr, validation=4, clip_grad=0.0, ema=0.0
):
    """Options every parameter-network trainer shares (defaults are the shipped recipe)."""
    parser.add_argument("--epochs", type=int, default=epochs, help=f"maximum epochs (default {epochs})")
    parser.add_argument(
        "--steps", type=int, default=steps, help=f"optimiser steps per epoch (default {steps})"
    )
    parser.add_argument("--batch", type=int, default=batch, help=f"slices per step (default {batch})")
    parser.add_argument(
        "--pool", type=int, default=pool, help=f"noise-free training slices held (default {pool})"
    )
    parser.add_argument(
        "--refresh", type=int, default=refresh, help=f"pool slices redrawn per epoch (default {refresh})"
    )
    parser.add_argument(
        "--validation",
        type=int,
        default=validation,
        help=f"validation slabs, each 4 slices at SNR 10, 15, 20 with the image AIF (default {validation})",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=patience,
        help=f"early-stopping patience in epochs (default {patience})",
    )
    parser.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default {lr})")
    parser.add_argument(
        "--clip-grad",
        type=float,
        default=clip_grad,
        help=f"clip the gradient's global L2 norm to this before each step, 0 = off (default {clip_grad})",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=ema,
        help="decay per step of an exponential moving average of the weights (and normalisation "
        f"statistics) that is validated and kept instead of the raw weights, 0 = off (default {ema})",
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


#: hyper-parameters of :func:`add_common_arguments`, recorded in every model card
COMMON_HYPERPARAMETERS = (
    "epochs",
    "steps",
    "batch",
    "pool",
    "refresh",
    "validation",
    "patience",
    "lr",
    "clip_grad",
    "ema",
)


def training_record(args, device, record, extra_hyperparameters=()):
    """Return the model card's ``training`` entry.

    It holds the command that reproduces the weights, the seed, device and threads, the
    data recipe, the hyper-parameters (the common ones and ``extra_hyperparameters``) and
    the fit ``record`` of :func:`fit` (curves, best epoch, wall and CPU time).
    """
    names = (*COMMON_HYPERPARAMETERS, *extra_hyperparameters)
    return {
        "command": args.command,
        "seed": args.seed,
        "device": str(device),
        "threads": args.threads,
        "recipe": "bidsapp.nets.training.data (simulated slices; docs/networks.md)",
        "hyperparameters": {name: getattr(args, name) for name in names},
        **record,
    }


def setup(args) -> torch.device:
    """Seed everything, make kernels deterministic, set threads; return the device."""
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(args.threads)
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


class SlicePool:
    """Ring buffer of noise-free training slices, refreshed every epoch (deterministic)."""

    def __init__(self, seed, size):
        self.seed, self.next_index = seed, size
        self.slices = [data.clean_slice(seed, data.TRAIN, i) for i in range(size)]

    def refresh(self, count):
        """Replace the ``count`` oldest slices of the pool by fresh simulated ones."""
        for _ in range(count):
            self.slices[self.next_index % len(self.slices)] = data.clean_slice(
                self.seed, data.TRAIN, self.next_index
            )
            self.next_index += 1


def stack(examples, device):
    """Collate example dicts into tensors on ``device``."""
    out = {}
    for key in (*data.MAP_KEYS, "aif"):
        out[key] = torch.as_tensor(np.stack([e[key] for e in examples]), device=device)
    out["snr"] = torch.as_tensor([e["snr"] for e in examples], device=device)
    return out


def draw_batch(pool, rng, batch, device):
    """``batch`` examples from random pool slices with fresh noise, crops and flips."""
    examples = []
    for _ in range(batch):
        example = data.noisy_example(pool.slices[int(rng.integers(len(pool.slices)))], rng)
        for axis in (-2, -1):  # rows, columns of every map
            if rng.uniform() < 0.5:
                example = {
                    k: (np.flip(v, axis).copy() if k in data.MAP_KEYS else v) for k, v in example.items()
                }
        examples.append(example)
    return stack(examples, device)


def validation_batches(seed, count, device, size=8, start=0):
    """Return ``count`` validation slabs from slab ``start`` (:func:`data.validation_examples`) in batches."""
    examples = data.validation_examples(seed, count, start)
    return [stack(examples[i : i + size], device) for i in range(0, len(examples), size)]


def _progress(epoch, step, steps, loss, quiet):
    if not quiet:
        print(
            f"\repoch {epoch:3d} [{'#' * (20 * step // steps):<20}] {step}/{steps} loss {loss:.4g}",
            end="",
            file=sys.stderr,
            flush=True,
        )


def fit(model, loss_fn, evaluate, args, device):
    """Train ``model`` with Adam; return ``(model at best validation, record)``.

    ``loss_fn(model, batch) -> (loss, {name: float})``; ``evaluate(model, batches) ->
    {name: float}`` with a ``"loss"`` entry used for early stopping. With
    ``args.clip_grad > 0`` the gradient's global L2 norm is clipped to it before every
    step. With ``args.ema > 0`` an exponential moving average of the weights and buffers
    (decay ``args.ema`` per step; torch's ``AveragedModel``, as in Polyak averaging) is
    what is validated and returned. The record holds the per-epoch curves (with the
    median and largest gradient norm before clipping), the stopping epoch and wall/CPU
    times (s).
    """
    wall0, cpu0 = time.perf_counter(), time.process_time()
    rng = np.random.default_rng([args.seed, data.TRAIN, 2**31])
    pool = SlicePool(args.seed, args.pool)
    validation = validation_batches(args.seed, args.validation, device)
    data_time = (time.perf_counter() - wall0, time.process_time() - cpu0)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=args.epochs * args.steps)
    best, best_state, best_epoch, curves = np.inf, None, 0, []
    # max_norm inf only measures: the gradients are multiplied by exactly 1
    clip = args.clip_grad if args.clip_grad > 0 else float("inf")
    averaged = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
        if args.ema > 0
        else None
    )
    validated = averaged.module if averaged is not None else model
    for epoch in range(1, args.epochs + 1):
        model.train()
        running, norms = [], []
        for step in range(1, args.steps + 1):
            loss, _ = loss_fn(model, draw_batch(pool, rng, args.batch, device))
            optimiser.zero_grad()
            loss.backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
            optimiser.step()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(model)
            running.append(float(loss.detach()))
            _progress(epoch, step, args.steps, float(np.mean(running[-20:])), args.quiet)
        validated.eval()
        with torch.no_grad():
            metrics = evaluate(validated, validation)
        curves.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(running)),
                "grad_norm_median": float(np.median(norms)),
                "grad_norm_max": float(np.max(norms)),
                **metrics,
                "wall_s": time.perf_counter() - wall0,
                "cpu_s": time.process_time() - cpu0,
            }
        )
        if not args.quiet:
            print(
                f"\repoch {epoch:3d} train {curves[-1]['train_loss']:.4g} "
                + " ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
                file=sys.stderr,
                flush=True,
            )
        if metrics["loss"] < best:
            best, best_state, best_epoch = metrics["loss"], copy.deepcopy(validated.state_dict()), epoch
        elif epoch - best_epoch >= args.patience:
            break
        pool.refresh(args.refresh)
    model.load_state_dict(best_state)
    record = {
        "curves": curves,
        "best_epoch": best_epoch,
        "stopped_epoch": curves[-1]["epoch"],
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": time.process_time() - cpu0,
        "data_setup_wall_s": data_time[0],
        "data_setup_cpu_s": data_time[1],
        "slices_seen": args.pool + (curves[-1]["epoch"] - 1) * args.refresh,
    }
    return model, record


def parameter_errors(pred, batch):
    """Return sums for tissue RMSE: ``{name: (sum of squared error, count)}`` over voxels with weight."""
    out = {}
    for i, name in enumerate(data.PARAMS):
        w = batch["weight"][:, i] > 0
        err = (pred[:, i] - batch["target"][:, i])[w]
        out[name] = (float((err**2).sum()), int(w.sum()))
    return out


def normalised_parameter_loss(pred, batch):
    """Mean over weighted voxels of ((prediction − truth) / scale)², summed over parameters."""
    scales = torch.as_tensor([data.SCALES[p] for p in data.PARAMS], device=pred.device).view(1, -1, 1, 1)
    sq = ((pred - batch["target"]) / scales) ** 2 * batch["weight"]
    return (sq.sum(dim=(0, 2, 3)) / batch["weight"].sum(dim=(0, 2, 3)).clamp(min=1)).sum()


class _ExtendedToftsCurve(torch.autograd.Function):
    """Extended Tofts curves ``[n, T]`` of ``theta [n, 3]`` (Ktrans, ve, vp).

    The backward pass is the fitting engine's analytic Jacobian
    (:class:`bidsapp.fitting.problem.KineticProblem`).
    """

    @staticmethod
    def forward(ctx, theta, problem):
        pred, jac = problem.predict(theta.detach(), None)  # [T, n], [P, T, n]
        ctx.save_for_backward(jac)
        return pred.T

    @staticmethod
    def backward(ctx, grad_out):
        (jac,) = ctx.saved_tensors
        return torch.einsum("nt,ptn->np", grad_out, jac), None


def physics_loss(pred, batch, voxels=256):
    """Mean squared difference of the input curves and the extended Tofts curves of ``pred``.

    Evaluated on about ``voxels`` evenly strided head voxels per slice (the term is a
    regulariser; all voxels would double the cost of a training step). Curves are in
    AIF-peak units on the input grid; the model curves and their
    derivatives come from the project's kinetic model (:mod:`bidsapp.models` through
    :class:`bidsapp.fitting.problem.KineticProblem`, float64) with the slice's input AIF.
    """
    from bidsapp.fitting.problem import KineticProblem
    from bidsapp.models import PlasmaInput, get_model, prepare_inputs
    from bidsapp.nets import contract

    spec = get_model("extended_tofts")
    total, count = 0.0, 0
    for b in range(pred.shape[0]):
        head = torch.zeros_like(batch["weight"][b, 0], dtype=torch.bool).view(-1)
        inside = torch.nonzero(batch["weight"][b, 0].view(-1) > 0)[:, 0]
        head[inside[:: max(1, -(-inside.numel() // voxels))]] = True
        head = head.view(batch["weight"].shape[2:])
        p = pred[b][:, head].double().T
        theta = torch.stack([p[:, 0], p[:, 1].clamp(min=1e-3), p[:, 2]], dim=1)
        t, aif, _ = prepare_inputs(contract.GRID, batch["aif"][b].detach().cpu().double(), theta.device)
        curve = _ExtendedToftsCurve.apply(theta, KineticProblem(spec, PlasmaInput(t, aif)))
        measured = batch["conc"][b][:, head].T.double()
        total = total + ((curve - measured) ** 2).sum()
        count += measured.numel()
    return (total / max(count, 1)).float()
