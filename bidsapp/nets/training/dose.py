"""Dose-reduction network: conditional 3D U-Net trained on simulated pre/low/standard-dose brains.

Recipe (every figure is a default of :func:`add_arguments`; ``docs/dose.md`` has the
rationale and the measured time):

* data: ``--train-subjects`` and ``--val-subjects`` whole-head samples from
  :func:`bidsapp.simulate.dose.simulate_dose_sample` (seeds ``seed + i`` for training,
  ``seed + 100000 + i`` for validation; the benchmark uses ``200000 + i``), each
  registered, normalised and turned into inputs exactly as at inference
  (:mod:`bidsapp.nets.dose_inputs`); targets are the standard-dose subtractions
  (standard − registered pre-contrast) / s through the soft enhancement mask of
  :func:`bidsapp.nets.dose_inputs.training_target` (a sigmoid of the local z-score, as
  Pinetz et al. do); the simulator's noise-free enhancement is used for evaluation only;
* patches of ``--patch``³ voxels centred in turn on a lesion voxel, anywhere in the
  head, an enhancing voxel (target > 0.25 of the reference intensity) and anywhere in
  the head; random flips along each axis;
* Adam; loss: mean squared error weighted 5× on enhancing and lesion voxels, plus the
  squared error of the mean enhancement over each patch's lesion voxels (:func:`_loss`);
  ``--steps-per-epoch`` batches of ``--batch`` patches per epoch; the learning rate
  decays from ``--lr`` to
  ``--lr``/20 along a cosine over
  ``--epochs`` epochs; validation loss on a fixed set of 16 validation patches after
  every epoch; training stops after ``--patience`` epochs without a 0.5 %
  improvement or after ``--epochs``; the best validation state is kept;
* ``--threads`` CPU threads; all draws from ``--seed``; deterministic torch kernels and
  single-threaded ITK registration, so two runs of the same command with the same
  ``--threads`` write the same ``dose.pt`` byte for byte (``docs/dose.md``,
  "Reproducibility").

Writes ``dose.pt`` and ``dose.json`` (model card with the recipe, the command, the
learning curves, wall and CPU time, and whole-volume validation PSNR/SSIM against the
naive baseline) into ``--out``.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass

import numpy as np

from ...simulate.dose import TRAINING_RANGES, simulate_dose_sample
from ..dose_inputs import (
    MASK_SMOOTHING,
    MASK_WIDTH,
    MASK_Z0,
    align_to_low,
    condition_vector,
    network_inputs,
    training_target,
)
from ..dose_metrics import psnr, ssim
from ..dose_unet import CONDITION_NAMES, CONDITION_SCALE, INPUT_NAMES, DoseUNet

VALIDATION_SEED_OFFSET = 100_000
#: target (over the reference intensity) above which a voxel counts as enhancing (patch centres, loss)
ENHANCING = 0.25
#: loss weight of enhancing voxels relative to the others (counters shrinkage of noisy enhancement to 0)
ENHANCING_WEIGHT = 5.0


def add_arguments(parser):
    """Options of ``dcequant-train dose``."""
    parser.add_argument("--train-subjects", type=int, default=32)
    parser.add_argument("--val-subjects", type=int, default=3)
    parser.add_argument("--patch", type=int, default=24, help="patch edge (voxels)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps-per-epoch", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=90)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3, help="initial learning rate (cosine decay to 1/20)")
    parser.add_argument("--features", type=int, nargs=3, default=(8, 16, 32))
    parser.add_argument("--embedding", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of torch")


@dataclass
class Prepared:
    """One subject as the network sees it: inputs, target, condition and patch centres."""

    x: np.ndarray
    target: np.ndarray
    condition: np.ndarray
    head_voxels: np.ndarray
    enhancing_voxels: np.ndarray
    lesion_voxels: np.ndarray
    lesion: np.ndarray


def prepare(sample):
    """Return inputs, masked standard-dose target, condition and lesion mask of a simulated dose sample."""
    pair, scenario, affine = sample.pair, sample.scenario, sample.grid.affine
    pre_on_low, _ = align_to_low(pair.pre, affine, pair.low, affine)
    x, s, noise_level, head = network_inputs(pre_on_low, pair.low, scenario.fraction)
    target, _ = training_target(pair.standard, pre_on_low, head, s)
    condition = condition_vector(
        scenario.field_strength, scenario.fraction, scenario.relaxivity, noise_level, scenario.voxel_size
    )
    enhancing = np.argwhere((target > ENHANCING) & head)
    enhancing = enhancing if len(enhancing) else np.argwhere(head)
    lesion = sample.lesion_labels > 0
    lesions = np.argwhere(lesion) if lesion.any() else enhancing
    return Prepared(x, target[None], condition, np.argwhere(head), enhancing, lesions, lesion[None])


#: patch centres in turn: a lesion voxel, anywhere in the head, an enhancing voxel, anywhere in the head
CENTRES = ("lesion_voxels", "head_voxels", "enhancing_voxels", "head_voxels")


def _patch(prepared, rng, size, centres):
    centres = getattr(prepared, centres)
    centre = centres[rng.integers(len(centres))]
    shape = np.array(prepared.x.shape[1:])
    start = np.clip(centre - size // 2, 0, shape - size)
    region = (slice(None),) + tuple(slice(a, a + size) for a in start)
    return prepared.x[region], prepared.target[region], prepared.lesion[region]


def _batch(subjects, rng, size, n, augment=True):
    xs, ys, ls, cs = [], [], [], []
    for k in range(n):
        subject = subjects[rng.integers(len(subjects))]
        x, y, lesion = _patch(subject, rng, size, CENTRES[k % len(CENTRES)])
        if augment:
            flips = tuple(axis + 1 for axis in range(3) if rng.uniform() < 0.5)
            x, y, lesion = np.flip(x, flips), np.flip(y, flips), np.flip(lesion, flips)
        xs.append(x)
        ys.append(y)
        ls.append(lesion)
        cs.append(subject.condition)
    return np.stack(xs), np.stack(ys), np.stack(ls), np.stack(cs)


def _loss(predicted, target, lesion):
    """Weighted mean squared error plus the squared error of the mean lesion enhancement of each patch.

    Voxels where the target enhances or that lie in a lesion weigh :data:`ENHANCING_WEIGHT`;
    the second term is the mean over patches of ``(mean over lesion voxels of (predicted −
    target))²`` (0 for a patch without lesion voxels).
    """
    weight = 1.0 + (ENHANCING_WEIGHT - 1.0) * ((target > ENHANCING) | lesion).float()
    voxels = (weight * (predicted - target) ** 2).mean()
    inside = lesion.float()
    count = inside.sum(dim=(1, 2, 3, 4))
    bias = ((predicted - target) * inside).sum(dim=(1, 2, 3, 4)) / count.clamp(min=1.0)
    return voxels + (bias**2).mean()


def _learning_rate(args, step):
    """Cosine decay from ``args.lr`` to ``args.lr / 20`` over ``epochs × steps_per_epoch`` steps."""
    total = max(args.epochs * args.steps_per_epoch - 1, 1)
    return args.lr * (0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * min(step / total, 1.0))))


def train_step(model, optimiser, subjects, rng, args, step):
    """One optimiser step (0-based ``step``) on a batch of ``subjects`` drawn with ``rng``; its loss."""
    import torch

    for group in optimiser.param_groups:
        group["lr"] = _learning_rate(args, step)
    x, y, lesion, c = (
        torch.from_numpy(np.ascontiguousarray(a)) for a in _batch(subjects, rng, args.patch, args.batch)
    )
    loss = _loss(model(x, c), y, lesion)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def _progress(epoch, epochs, step, steps, loss, started):
    width = 30
    done = int(width * step / steps)
    elapsed = time.time() - started
    sys.stderr.write(
        f"\repoch {epoch:3d}/{epochs} [{'#' * done}{'.' * (width - done)}] "
        f"step {step:3d}/{steps} loss {loss:.5f} {elapsed / 60:5.1f} min"
    )
    sys.stderr.flush()


def _simulate(seeds, label):
    prepared, started = [], time.time()
    for n, seed in enumerate(seeds, start=1):
        prepared.append(prepare(simulate_dose_sample(int(seed))))
        sys.stderr.write(f"\r{label}: {n}/{len(seeds)} subjects simulated ({time.time() - started:.0f} s)")
        sys.stderr.flush()
    sys.stderr.write("\n")
    return prepared


def validation_metrics(model, seeds):
    """Whole-volume PSNR/SSIM of the network and the naive baseline on validation subjects."""
    import torch

    from ..dose_infer import run_network

    rows = []
    model.eval()
    for seed in seeds:
        sample = simulate_dose_sample(int(seed))
        pair, affine = sample.pair, sample.grid.affine
        pre_on_low, _ = align_to_low(pair.pre, affine, pair.low, affine)
        sc = sample.scenario
        x, s, noise_level, _ = network_inputs(pre_on_low, pair.low, sc.fraction)
        condition = condition_vector(
            sc.field_strength, sc.fraction, sc.relaxivity, noise_level, sc.voxel_size
        )
        with torch.no_grad():
            synth = pre_on_low + run_network(model, x, condition) * s
        naive = pre_on_low + (pair.low - pre_on_low) / sc.fraction
        truth = pair.standard_clean
        rows.append(
            {
                "seed": int(seed),
                "fraction": sc.fraction,
                "psnr_net": psnr(synth, truth, sample.head),
                "psnr_naive": psnr(naive, truth, sample.head),
                "ssim_net": ssim(synth, truth, sample.head),
                "ssim_naive": ssim(naive, truth, sample.head),
            }
        )
    return rows


def train(args) -> int:
    """Simulate, train, validate and write ``dose.pt``/``dose.json`` into ``args.out``."""
    import torch

    from ..weights import save_weights

    torch.set_num_threads(int(args.threads))
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    wall0, cpu0 = time.time(), time.process_time()
    train_seeds = args.seed + np.arange(args.train_subjects)
    val_seeds = args.seed + VALIDATION_SEED_OFFSET + np.arange(args.val_subjects)
    subjects = _simulate(train_seeds, "training")
    validation = _simulate(val_seeds, "validation")
    simulated = {"wall_s": time.time() - wall0, "cpu_s": time.process_time() - cpu0}
    rng = np.random.default_rng(args.seed)
    val_x, val_y, val_l, val_c = (
        torch.from_numpy(np.ascontiguousarray(a))
        for a in _batch(validation, np.random.default_rng(args.seed + 1), args.patch, 16, False)
    )

    model = DoseUNet(features=tuple(args.features), embedding=args.embedding, residual=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    best, best_state, stale, curves = np.inf, None, 0, []
    wall1, cpu1 = time.time(), time.process_time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = []
        for step in range(1, args.steps_per_epoch + 1):
            losses.append(
                train_step(
                    model, optimiser, subjects, rng, args, (epoch - 1) * args.steps_per_epoch + step - 1
                )
            )
            _progress(epoch, args.epochs, step, args.steps_per_epoch, float(np.mean(losses)), wall1)
        model.eval()
        with torch.no_grad():
            val = float(_loss(model(val_x, val_c), val_y, val_l))
        lr = optimiser.param_groups[0]["lr"]
        curves.append(
            {
                "epoch": epoch,
                "train_mse": float(np.mean(losses)),
                "val_mse": val,
                "lr": lr,
                "wall_s": round(time.time() - wall1, 1),
                "cpu_s": round(time.process_time() - cpu1, 1),
            }
        )
        sys.stderr.write(f"  val {val:.5f} lr {lr:.1e}\n")
        if val < best * 0.995:
            best, best_state, stale = val, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= args.patience:
                break
    trained = {"wall_s": time.time() - wall1, "cpu_s": time.process_time() - cpu1}
    model.load_state_dict(best_state)
    metrics = validation_metrics(model, val_seeds)
    card = _card(args, curves, simulated, trained, metrics, best, wall0, cpu0)
    path = save_weights("dose", model, card, args.out)
    print(
        f"wrote {path} (validation MSE {best:.5f}; "
        f"wall {card['training']['time']['total_wall_s'] / 60:.1f} min, "
        f"CPU {card['training']['time']['total_cpu_s'] / 60:.1f} min)"
    )
    return 0


def _card(args, curves, simulated, trained, metrics, best, wall0, cpu0):
    """Return the model card of the trained network."""
    mean = {
        key: float(np.mean([row[key] for row in metrics]))
        for key in ("psnr_net", "psnr_naive", "ssim_net", "ssim_naive")
    }
    return {
        "architecture": {
            "features": list(args.features),
            "embedding": int(args.embedding),
            "residual": True,
        },
        "input_contract": {
            "channels": list(INPUT_NAMES),
            "normalisation": "output and low-dose channel divided by s, the median registered "
            "pre-contrast signal in the head; subtraction and noise channels by s x dose fraction",
            "condition": list(CONDITION_NAMES),
            "condition_scale": list(CONDITION_SCALE),
            "output": "standard-dose contrast-enhancement signal / reference intensity: the "
            "dose-normalised subtraction (first channel) plus the network's correction",
            "target": "masked standard-dose subtraction m * (standard - registered pre) / s, "
            "m = sigmoid((z - z0) / width), z = Gaussian local mean of the subtraction over its noise SD",
            "target_mask": {"smoothing_voxels": MASK_SMOOTHING, "z0": MASK_Z0, "width": MASK_WIDTH},
        },
        "training": {
            "command": args.command,
            "data": "bidsapp.simulate.dose.simulate_dose_sample, ranges " + repr(TRAINING_RANGES),
            "train_seeds": [int(args.seed), int(args.seed + args.train_subjects - 1)],
            "validation_seeds": [
                int(args.seed + VALIDATION_SEED_OFFSET),
                int(args.seed + VALIDATION_SEED_OFFSET + args.val_subjects - 1),
            ],
            "recipe": {
                k: getattr(args, k)
                for k in ("patch", "batch", "steps_per_epoch", "epochs", "patience", "lr", "threads", "seed")
            },
            "epochs_run": len(curves),
            "curves": curves,
            "time": {
                "simulation_wall_s": round(simulated["wall_s"], 1),
                "simulation_cpu_s": round(simulated["cpu_s"], 1),
                "training_wall_s": round(trained["wall_s"], 1),
                "training_cpu_s": round(trained["cpu_s"], 1),
                "total_wall_s": round(time.time() - wall0, 1),
                "total_cpu_s": round(time.process_time() - cpu0, 1),
            },
        },
        "metrics": {
            "best_val_mse": best,
            "validation_mean": mean,
            "validation_subjects": metrics,
            "reference": "noise-free simulated standard-dose image, head mask",
        },
    }
