"""Inputs, conditioning and registration of the dose-reduction network."""

import numpy as np
import pytest

from bidsapp.nets.dose_inputs import (
    MASK_Z0,
    align_to_low,
    condition_vector,
    enhancement_mask,
    global_noise_sd,
    local_noise_sd,
    network_inputs,
    training_target,
)
from bidsapp.nets.dose_metrics import lesion_relative_errors, psnr, ssim
from bidsapp.nets.dose_unet import CONDITION_NAMES, CONDITION_SCALE
from bidsapp.simulate.acquisition import rigid_matrix
from bidsapp.simulate.dose import displace
from bidsapp.simulate.geometry import Grid


def _blob(shape=(40, 40, 40), radius=6.0, amplitude=10.0):
    i, j, k = np.indices(shape)
    centre = np.array(shape) / 2
    r = np.sqrt(((np.stack([i, j, k], -1) - centre) ** 2).sum(-1))
    return amplitude * (r < radius), r


def test_noise_estimates_recover_white_noise():
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 2.0, (40, 40, 40)).astype(np.float32)
    head = np.ones(noise.shape, bool)
    assert global_noise_sd(noise, head) == pytest.approx(2.0, rel=0.05)
    local = local_noise_sd(noise, head)
    assert np.median(local) == pytest.approx(2.0, rel=0.08)
    assert local.min() >= 1.0 - 1e-6  # floored at half the global value


def test_condition_vector_scales_the_physics():
    c = condition_vector(3.0, 0.25, 5.0, 0.05, (1.0, 1.0, 8.0))
    values = c * np.asarray(CONDITION_SCALE)
    expected = dict(zip(CONDITION_NAMES, values, strict=True))
    assert expected["field_strength_t"] == pytest.approx(3.0)
    assert expected["low_dose_mmol_per_kg"] == pytest.approx(0.025)
    assert expected["dose_fraction"] == pytest.approx(0.25)
    assert expected["relaxivity_per_mm_per_s"] == pytest.approx(5.0)
    assert expected["noise_level"] == pytest.approx(0.05)
    assert expected["voxel_size_mm"] == pytest.approx(2.0)  # geometric mean
    assert c.dtype == np.float32 and np.all(np.abs(c) < 3)


def test_network_inputs_normalise_by_pre_and_fraction():
    rng = np.random.default_rng(2)
    blob, _ = _blob(amplitude=50.0)
    pre = np.full(blob.shape, 200.0, np.float32)
    pre[:4] = 0.0  # background
    low = pre + 0.2 * blob + rng.normal(0, 1.0, blob.shape)
    x, s, noise_level, head = network_inputs(pre, low, 0.2)
    assert s == pytest.approx(200.0)
    inside = blob > 0
    assert x[0][inside].mean() == pytest.approx(50.0 / 200.0, rel=0.05)  # naive standard-dose enhancement / s
    assert x[1][inside].mean() == pytest.approx(210.0 / 200.0, rel=0.01)
    assert noise_level == pytest.approx(1.0 / 200.0, rel=0.15)
    assert not head[:4].any()
    with pytest.raises(ValueError, match="no positive signal"):
        network_inputs(np.zeros_like(pre), low, 0.2)


def test_enhancement_mask_is_the_sigmoid_of_the_local_z_score():
    sd = np.full((20, 20, 20), 2.0, np.float32)
    reduction = 0.1499  # noise-SD factor of the Gaussian local mean (SD 1 voxel)
    half = enhancement_mask(np.full(sd.shape, MASK_Z0 * 2.0 * reduction, np.float32), sd)
    assert half == pytest.approx(0.5, abs=2e-3)  # z = z0
    assert enhancement_mask(np.full(sd.shape, 10.0 * 2.0 * reduction, np.float32), sd).min() > 0.999
    assert enhancement_mask(np.full(sd.shape, -2.0, np.float32), sd).max() < 1e-3  # a decrease is masked


def test_training_target_keeps_the_enhancement_and_drops_the_noise():
    rng = np.random.default_rng(5)
    blob, _ = _blob(amplitude=4.0)  # 2 noise SDs per voxel: z ~ 13 for the local mean
    pre = np.full(blob.shape, 100.0, np.float32)
    standard = pre + blob + rng.normal(0, 2.0, blob.shape).astype(np.float32)
    head = np.ones(blob.shape, bool)
    target, mask = training_target(standard, pre, head, 100.0)
    inside, outside = blob > 0, _blob(radius=9.0)[0] == 0
    assert target[inside].mean() == pytest.approx(4.0 / 100.0, rel=0.05)  # enhancement kept (with its noise)
    assert np.sqrt(np.mean(target[outside] ** 2)) < 0.15 * 2.0 / 100.0  # < 15 % of the noise left outside
    assert mask[outside].mean() < 0.1 and np.median(mask[inside]) > 0.99


def test_registration_recovers_a_rigid_displacement():
    grid = Grid((48, 48, 40), (3.0, 3.0, 3.0))
    i, j, k = np.indices(grid.matrix)
    x, y, z = grid.coordinates(i, j, k)
    head = ((x / 55) ** 2 + (y / 65) ** 2 + (z / 50) ** 2 < 1).astype(np.float32)
    texture = 100 + 40 * np.sin(x / 9.0) * np.cos(y / 7.0) + 30 * (np.abs(z) < 15)
    low = (head * texture).astype(np.float32)
    params = (2.0, -1.5, 1.0, 1.5, -1.0, 2.0)
    pre = displace(low, grid, params).astype(np.float32)
    aligned, matrix = align_to_low(pre, grid.affine, low, grid.affine)
    # a low-dose point p shows in the displaced image at rigid_matrix(params) @ p
    points = np.array(
        [[sx * 40, sy * 50, sz * 35, 1.0] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    ).T
    error = np.linalg.norm((matrix @ points - rigid_matrix(params) @ points)[:3], axis=0)
    assert error.max() < 0.5  # mm, at the corners of a 80 x 100 x 70 mm box
    inner = head > 0
    assert np.abs(aligned - low)[inner].mean() < 0.5 * np.abs(pre - low)[inner].mean()


def test_image_metrics():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 100, (20, 20, 20))
    mask = np.ones(truth.shape, bool)
    assert psnr(truth + 1.0, truth, mask) == pytest.approx(20 * np.log10(truth.max()), rel=1e-6)
    assert ssim(truth, truth, mask) == pytest.approx(1.0)
    assert ssim(truth + rng.normal(0, 20, truth.shape), truth, mask) < 0.9
    labels = np.zeros(truth.shape, int)
    labels[:5], labels[10:12] = 1, 2
    errors = lesion_relative_errors(1.1 * truth, truth, labels)
    assert errors == {1: pytest.approx(0.1), 2: pytest.approx(0.1)}


def test_grids_too_small_to_register_are_resampled_in_scanner_coordinates():
    rng = np.random.default_rng(4)
    low = rng.uniform(50, 100, (12, 12, 3)).astype(np.float32)
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    aligned, matrix = align_to_low(low, affine, low, affine)
    np.testing.assert_array_equal(matrix, np.eye(4))
    np.testing.assert_allclose(aligned, low, rtol=1e-4)
