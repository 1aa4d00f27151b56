"""Simulated 3D dose samples (pre / low / standard dose) for the dose-reduction network."""

import numpy as np
import pytest

from bidsapp import relaxivity_for
from bidsapp.simulate import Grid, make_phantom
from bidsapp.simulate.dose import (
    DoseRanges,
    DoseScenario,
    add_enhancing_lesions,
    displace,
    simulate_dose_sample,
)
from bidsapp.simulate.tissues import CLASS_INDEX

#: coarse voxels keep a whole head small (30 x 36 x 24) and the test fast
COARSE = DoseRanges(voxel_mm=(6.0, 6.0), lesion_radius_mm=(6.0, 9.0))


def test_sample_is_deterministic_and_within_the_ranges():
    a = simulate_dose_sample(3, COARSE)
    b = simulate_dose_sample(3, COARSE)
    for name in ("pre", "low", "standard", "enhancement"):
        np.testing.assert_array_equal(getattr(a.pair, name), getattr(b.pair, name))
    sc = a.scenario
    assert sc.field_strength in COARSE.field_strengths_t and sc.agent in COARSE.agents
    assert COARSE.fraction[0] <= sc.fraction <= COARSE.fraction[1]
    assert sc.relaxivity == relaxivity_for(sc.agent, sc.field_strength)
    assert sc.low_dose == pytest.approx(0.1 * sc.fraction)
    assert np.abs(a.pre_motion).max() <= sc.misregistration
    assert a.grid.voxel_size == (6.0, 6.0, 6.0)
    other = simulate_dose_sample(4, COARSE)
    assert not np.array_equal(other.pair.pre, a.pair.pre)


def test_fixed_conditions_and_enhancing_lesions():
    sample = simulate_dose_sample(
        11, COARSE, fraction=0.1, field_strength=1.5, agent="gadoterate", snr=1e6, misregistration=0.0
    )
    assert (sample.scenario.fraction, sample.scenario.field_strength) == (0.1, 1.5)
    assert sample.scenario.relaxivity == relaxivity_for("gadoterate", 1.5)
    labels = sample.lesion_labels
    assert labels.max() >= 3  # tumour rim + at least two added lesions
    for label in np.unique(labels[labels > 1]):
        inside = labels == label
        enhancement = sample.pair.enhancement[inside].mean()
        low = sample.pair.low_enhancement[inside].mean()
        assert enhancement > 0
        # SPGR saturation: the low dose gives more than its share of the enhancement, never all of it
        assert 0.1 <= low / enhancement < 0.5


def test_lesions_mix_partial_volume_like_the_phantom():
    phantom = make_phantom(2, Grid((30, 36, 24), (6.0, 6.0, 6.0)), supersample=2)
    painted, labels = add_enhancing_lesions(phantom, np.random.default_rng(0), COARSE)
    changed = painted.ktrans != phantom.ktrans
    assert changed.any() and labels.max() >= 3
    # lesions lie inside white or grey matter only, and every labelled lesion voxel changed
    assert np.isin(phantom.dseg[changed], [CLASS_INDEX["white_matter"], CLASS_INDEX["grey_matter"]]).all()
    assert changed[labels > 1].all()
    assert np.all(painted.t1[phantom.t1 > 0] > 0)
    ve = painted.ve > 0
    np.testing.assert_allclose(painted.kep[ve], painted.ktrans[ve] / painted.ve[ve], rtol=1e-5)


def test_misregistration_moves_only_the_pre_contrast_volume():
    still = simulate_dose_sample(8, COARSE, snr=1e7, misregistration=0.0)
    moved = simulate_dose_sample(8, COARSE, snr=1e7, misregistration=2.0)
    assert np.all(still.pre_motion == 0) and 0 < np.abs(moved.pre_motion).max() <= 2.0
    np.testing.assert_array_equal(moved.pair.standard_clean, still.pair.standard_clean)
    np.testing.assert_array_equal(moved.pair.enhancement, still.pair.enhancement)
    np.testing.assert_allclose(
        still.pair.pre_clean, still.pair.standard_clean - still.pair.enhancement, atol=1e-3
    )
    assert np.abs(moved.pair.pre_clean - still.pair.pre_clean).max() > 0.05 * still.pair.pre_clean.max()


def test_displace_moves_the_object_by_the_rigid_parameters():
    grid = Grid((40, 40, 40), (2.0, 2.0, 2.0))
    volume = np.zeros(grid.matrix, np.float32)
    volume[20, 20, 20] = 1.0
    shifted = displace(
        volume, grid, (4.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    )  # +4 mm along x (R) = 2 voxels to lower i
    assert np.unravel_index(shifted.argmax(), grid.matrix) == (18, 20, 20)


def test_scenario_draw_respects_fixed_values():
    scenario = DoseScenario.draw(
        np.random.default_rng(0), COARSE, fraction=0.2, agent="gadobutrol", field_strength=3.0
    )
    assert scenario.relaxivity == relaxivity_for("gadobutrol", 3.0) and scenario.fraction == 0.2
