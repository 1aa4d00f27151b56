"""Fitting the simulated noise-free concentration with ``bidsapp.fit_model`` recovers the truth."""

import numpy as np
import pytest

from bidsapp.simulate import Grid, Protocol, make_phantom, simulate_subject
from bidsapp.simulate.tissues import CLASS_INDEX

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted():
    from bidsapp import fit_model

    grid = Grid(matrix=(40, 40, 4), voxel_size=(5.0, 5.0, 5.0))
    phantom = make_phantom(21, grid)
    sim = simulate_subject(phantom, Protocol(n_frames=180, temporal_resolution=1.5, baseline_frames=8), rng=1)
    leaky = (phantom.ktrans > 0) & (phantom.delay == 0) & (phantom.ve > 0)
    result = fit_model("extended_tofts", sim.concentration, sim.t, sim.aif_plasma, mask=leaky, device="cpu")
    return phantom, leaky, result


def test_enhancing_tumour_parameters_are_recovered(fitted):
    phantom, leaky, result = fitted
    rim = leaky & (phantom.ktrans > 0.01) & (phantom.dseg == CLASS_INDEX["tumour_rim"])
    assert rim.sum() > 20
    assert result.valid[rim].all()
    for name in ("Ktrans", "ve", "kep"):
        truth = phantom.truth_maps()[name][rim]
        np.testing.assert_allclose(result.params[name][rim], truth, rtol=0.01, err_msg=name)
    np.testing.assert_allclose(result.params["vp"][rim], phantom.vp[rim], rtol=0.01)


def test_normal_brain_has_intact_barrier_and_its_plasma_volume(fitted):
    phantom, leaky, result = fitted
    brain = leaky & np.isin(phantom.dseg, [CLASS_INDEX["white_matter"], CLASS_INDEX["grey_matter"]]) & (phantom.purity() > 0.99)
    assert brain.sum() > 100
    np.testing.assert_allclose(result.params["vp"][brain], phantom.vp[brain], rtol=0.01)
    assert np.abs(result.params["Ktrans"][brain] - phantom.ktrans[brain]).max() < 1e-3
