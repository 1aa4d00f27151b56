"""The validation split is drawn with the benchmark's recipe (image AIF, SNR 10-20, tissue);
the near-vessel map travels with every example."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import torch

from bidsapp.nets import contract
from bidsapp.nets.training import data
from bidsapp.nets.training.loop import draw_batch
from bidsapp.simulate.tissues import CLASS_INDEX, TISSUE_CLASSES


def test_validation_split_uses_the_benchmark_recipe_on_its_own_stream():
    examples = data.validation_examples(0, 1)
    assert len(examples) == len(data.EVAL_SNRS) * data.SLAB_MATRIX[2]
    assert sorted({e["snr"] for e in examples}) == list(data.EVAL_SNRS)
    again = data.validation_examples(0, 1)
    assert all(np.array_equal(a["input"], b["input"]) for a, b in zip(examples, again, strict=True))
    # drawn in parts (as the punet's calibration does), the stream is the same slabs
    second = data.validation_examples(0, 1, start=1)
    both = data.validation_examples(0, 2)
    assert all(
        np.array_equal(a["input"], b["input"]) for a, b in zip(second, both[len(examples) :], strict=True)
    )
    assert not np.array_equal(second[0]["target"], examples[0]["target"])

    phantom, _, clean, rng = data.slab_case(0, data.VALIDATION, 0)
    benchmark = data.slab_case(0, data.BENCHMARK, 0)[2]
    assert not np.array_equal(clean.truth, benchmark.truth)  # a different subject than the benchmark's
    tissue = data.tissue_mask(phantom)
    first = examples[0]
    assert np.array_equal(first["weight"][0], tissue[..., 0].astype(np.float32))
    assert np.array_equal(first["target"], clean.truth[..., 0])
    assert np.array_equal(first["near"], data.near_vessel(phantom)[..., 0].astype(np.float32))
    assert 0 < first["near"].sum() < first["weight"][0].sum()
    # the AIF channel is the image AIF (partial volume, noise, T10 error), not the true plasma AIF
    conc = data.noisy_concentration(clean, rng, data.EVAL_SNRS[0])
    artery = phantom.fractions[..., CLASS_INDEX["artery"]]
    measured = data.image_aif(conc, artery, clean.t, phantom.hematocrit)
    grid = contract.resample(measured, clean.t)
    np.testing.assert_allclose(first["aif"], grid / grid.max(), rtol=1e-5, atol=1e-6)
    true_grid = contract.resample(clean.aif, clean.t)
    assert np.abs(first["aif"] - true_grid / true_grid.max()).max() > 0.01


def _phantom(shape, vessel_voxels=(), vessel_class="artery", fraction=1.0):
    """White matter everywhere, with ``fraction`` of ``vessel_class`` at ``vessel_voxels``."""
    fractions = np.zeros((*shape, len(TISSUE_CLASSES)), np.float32)
    fractions[..., CLASS_INDEX["white_matter"]] = 1.0
    for voxel in vessel_voxels:
        fractions[voxel + (CLASS_INDEX["white_matter"],)] = 1.0 - fraction
        fractions[voxel + (CLASS_INDEX[vessel_class],)] = fraction
    return SimpleNamespace(fractions=fractions, dseg=fractions.argmax(-1))


def test_near_vessel_is_tissue_within_two_voxels_in_plane_of_a_vessel():
    # slice 0: a pure artery voxel; slice 1: a 3 % sinus voxel that stays white matter; slice 2: none
    phantom = _phantom((9, 9, 3), [(4, 4, 0)])
    partial = _phantom((9, 9, 3), [(1, 1, 1)], "sagittal_sinus", 0.03)
    phantom.fractions[:, :, 1] = partial.fractions[:, :, 1]
    phantom.dseg = phantom.fractions.argmax(-1)
    near = data.near_vessel(phantom)
    ring = np.zeros((9, 9), bool)
    ring[3:6, 3:6] = True
    ring[4, 4] = False  # the artery itself is not tissue
    assert np.array_equal(near[..., 0], ring)  # distances 1 and 1.41, not 2
    expected = np.zeros((9, 9), bool)
    expected[0:3, 0:3] = True  # the partial-volume voxel (distance 0) and its neighbours
    assert np.array_equal(near[..., 1], expected)
    assert not near[..., 2].any() and np.isinf(data.vessel_distance(phantom)[..., 2]).all()
    below = _phantom((9, 9, 1), [(4, 4, 0)], "sagittal_sinus", 0.01)  # under VESSEL_FRACTION
    assert not data.near_vessel(below).any()


def test_near_vessel_map_is_cropped_and_flipped_with_the_slice():
    clean = data.clean_slice(0, data.TRAIN, 0)
    assert clean.near_vessel.shape == clean.head.shape and clean.near_vessel.any()
    whole = data.noisy_example(clean, np.random.default_rng(0), crop=None)
    assert np.array_equal(whole["near"], clean.near_vessel.astype(np.float32))
    # a near map that is a known function of the truth must stay that function after crop and flips
    marked = replace(clean, near_vessel=clean.truth[2] > np.median(clean.truth[2]))
    batch = draw_batch(SimpleNamespace(slices=[marked]), np.random.default_rng(1), 6, torch.device("cpu"))
    assert batch["near"].shape == batch["weight"][:, 0].shape == (6, data.CROP, data.CROP)
    target_vp = batch["target"][:, 2].numpy()
    assert np.array_equal(batch["near"].numpy() > 0, target_vp > np.median(clean.truth[2]))
