"""The dose-reduction network: architecture, shipped weights, synthesis on a held-out subject."""

import argparse
import io

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from bidsapp import synthesize_standard_dose
from bidsapp.nets.dose_infer import load_dose_network, run_network
from bidsapp.nets.dose_metrics import psnr
from bidsapp.nets.dose_unet import CONDITION_NAMES, INPUT_NAMES, DoseUNet, ResBlock
from bidsapp.nets.training.dose import ENHANCING_WEIGHT, _loss, add_arguments, prepare, train_step
from bidsapp.nets.weights import REQUIRED_CARD_FIELDS, read_card
from bidsapp.simulate.dose import DoseRanges, simulate_dose_sample


def test_unet_keeps_odd_sizes_and_uses_the_embedding_in_every_block():
    torch.manual_seed(0)
    model = DoseUNet(features=(4, 8, 8), embedding=8).eval()
    blocks = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert len(blocks) == 5 and all(b.project.in_features == 8 for b in blocks)
    x = torch.randn(2, len(INPUT_NAMES), 13, 10, 7)
    condition = torch.randn(2, len(CONDITION_NAMES))
    with torch.no_grad():
        out = model(x, condition)
        zeroed = model(x, condition, zero_embedding=True)
        other = model(x, condition + 1.0)
    assert out.shape == (2, 1, 13, 10, 7)
    assert not torch.allclose(out, zeroed) and not torch.allclose(out, other)
    # with the embedding zeroed the condition has no effect
    with torch.no_grad():
        assert torch.allclose(zeroed, model(x, condition + 1.0, zero_embedding=True))


def test_residual_output_adds_the_correction_to_the_dose_normalised_subtraction():
    torch.manual_seed(2)
    model = DoseUNet(features=(4, 8, 8), embedding=8, residual=True).eval()
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    x = torch.randn(1, len(INPUT_NAMES), 12, 12, 12)
    with torch.no_grad():  # a zero correction returns the naive standard-dose enhancement
        assert torch.equal(model(x, torch.zeros(1, len(CONDITION_NAMES))), x[:, :1])


def test_training_loss_penalises_a_biased_lesion_mean():
    target = torch.zeros(1, 1, 8, 8, 8)
    lesion = torch.zeros(1, 1, 8, 8, 8, dtype=torch.bool)
    lesion[0, 0, 3:5, 3:5, 3:5] = True
    target[lesion] = 1.0
    shrunk = target * 0.5
    voxels = (ENHANCING_WEIGHT * 0.25 * 8) / 512  # weighted squared error of the 8 lesion voxels
    assert float(_loss(shrunk, target, lesion)) == pytest.approx(voxels + 0.25)  # + (mean bias 0.5)²
    assert float(_loss(target, target, lesion)) == 0.0
    assert float(_loss(shrunk, target, torch.zeros_like(lesion))) == pytest.approx(voxels)


def test_tiled_inference_blends_to_the_single_pass_on_one_tile():
    torch.manual_seed(1)
    model = DoseUNet().eval()
    x = np.random.default_rng(0).random((3, 24, 24, 24), dtype=np.float32)
    condition = np.ones(len(CONDITION_NAMES), np.float32)
    with torch.no_grad():
        single = model(torch.from_numpy(x[None]), torch.from_numpy(condition[None]))[0, 0].numpy()
    np.testing.assert_allclose(run_network(model, x, condition), single, atol=1e-5)
    assert run_network(model, x[:, :10], condition).shape == (10, 24, 24)  # smaller than a tile: padded


def test_shipped_weights_and_model_card():
    card = read_card("dose")
    assert set(REQUIRED_CARD_FIELDS) <= set(card)
    assert card["training"]["command"] == "dcequant-train dose --out bidsapp/data/nets --threads 1"
    assert card["architecture"]["residual"] is True
    assert card["input_contract"]["condition"] == list(CONDITION_NAMES)
    assert card["training"]["time"]["total_cpu_s"] > 0 and card["training"]["curves"]
    model, shipped = load_dose_network()
    assert shipped.sha256 == card["sha256"]
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_synthesis_beats_the_naive_baseline_on_a_held_out_subject():
    sample = simulate_dose_sample(300_000, DoseRanges(voxel_mm=(3.5, 3.5)), fraction=0.1, snr=25.0)
    pair, sc, affine = sample.pair, sample.scenario, sample.grid.affine
    result = synthesize_standard_dose(
        pair.pre,
        pair.low,
        sc.fraction,
        sc.field_strength,
        sc.agent,
        sc.voxel_size,
        pre_affine=affine,
        low_affine=affine,
    )
    naive = result.pre_on_low + (pair.low - result.pre_on_low) / sc.fraction
    net = psnr(result.synthetic_standard_dose, pair.standard_clean, sample.head)
    assert net > psnr(naive, pair.standard_clean, sample.head) + 3.0
    assert result.synthetic_standard_dose.shape == pair.low.shape
    assert result.conditions["dose_fraction"] == pytest.approx(0.1)
    doubled = synthesize_standard_dose(
        result.pre_on_low,
        pair.low,
        sc.fraction,
        sc.field_strength,
        sc.agent,
        sc.voxel_size,
        register=False,
        dose_scale=2.0,
    )
    np.testing.assert_allclose(doubled.enhancement, 2.0 * result.enhancement, rtol=1e-5, atol=1e-3)


def test_bad_arguments_are_refused():
    volume = np.ones((8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="fraction"):
        synthesize_standard_dose(volume, volume, 1.5, 3.0, "gadobutrol", 1.0)
    with pytest.raises(ValueError, match="3-D"):
        synthesize_standard_dose(volume[0], volume, 0.2, 3.0, "gadobutrol", 1.0)
    with pytest.raises(ValueError, match="different grids"):
        synthesize_standard_dose(volume[:4], volume, 0.2, 3.0, "gadobutrol", 1.0, register=False)


def test_one_training_step_is_bit_reproducible():
    """Data preparation (registration included) and a training step give the same bytes twice.

    ITK runs with 4 threads by default here, as on a multi-core machine: the registration
    in ``prepare`` must not depend on it (it did, and made the training non-reproducible).
    """
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--patch", "16", "--batch", "2"])
    sample = simulate_dose_sample(0, DoseRanges(voxel_mm=(3.5, 3.5)))  # seed whose registration varied
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(4)
    try:
        runs = []
        for _ in range(2):
            prepared = prepare(sample)
            torch.manual_seed(0)
            model = DoseUNet(features=(4, 8, 8), embedding=8, residual=True)
            optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
            loss = train_step(model, optimiser, [prepared], np.random.default_rng(0), args, 0)
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)
            runs.append((prepared.x.tobytes(), prepared.target.tobytes(), loss, buffer.getvalue()))
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)
    assert runs[0] == runs[1]
