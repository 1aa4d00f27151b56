"""The validation split is drawn with the benchmark's recipe (image AIF, SNR 10-20, tissue)."""

import numpy as np

from bidsapp.nets import contract
from bidsapp.nets.training import data
from bidsapp.simulate.tissues import CLASS_INDEX


def test_validation_split_uses_the_benchmark_recipe_on_its_own_stream():
    examples = data.validation_examples(0, 1)
    assert len(examples) == len(data.EVAL_SNRS) * data.SLAB_MATRIX[2]
    assert sorted({e["snr"] for e in examples}) == list(data.EVAL_SNRS)
    again = data.validation_examples(0, 1)
    assert all(np.array_equal(a["input"], b["input"]) for a, b in zip(examples, again, strict=True))

    phantom, _, clean, rng = data.slab_case(0, data.VALIDATION, 0)
    benchmark = data.slab_case(0, data.BENCHMARK, 0)[2]
    assert not np.array_equal(clean.truth, benchmark.truth)  # a different subject than the benchmark's
    tissue = data.tissue_mask(phantom)
    first = examples[0]
    assert np.array_equal(first["weight"][0], tissue[..., 0].astype(np.float32))
    assert np.array_equal(first["target"], clean.truth[..., 0])
    # the AIF channel is the image AIF (partial volume, noise, T10 error), not the true plasma AIF
    conc = data.noisy_concentration(clean, rng, data.EVAL_SNRS[0])
    artery = phantom.fractions[..., CLASS_INDEX["artery"]]
    measured = data.image_aif(conc, artery, clean.t, phantom.hematocrit)
    grid = contract.resample(measured, clean.t)
    np.testing.assert_allclose(first["aif"], grid / grid.max(), rtol=1e-5, atol=1e-6)
    true_grid = contract.resample(clean.aif, clean.t)
    assert np.abs(first["aif"] - true_grid / true_grid.max()).max() > 0.01
