"""Phantom: tissue classes, partial volume, documented parameter ranges, determinism."""

import numpy as np
import pytest

from bidsapp.simulate import Cohort, Grid, make_phantom
from bidsapp.simulate.tissues import CLASS_INDEX, TISSUE_CLASSES, draw_subject_parameters, parameter_ranges


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(7)


def test_every_tissue_class_is_present(phantom):
    counts = np.bincount(phantom.dseg.ravel(), minlength=len(TISSUE_CLASSES))
    assert all(counts > 0), dict(zip([n for n, _ in TISSUE_CLASSES.values()], counts, strict=True))
    # the large feeding artery has voxels of (almost) pure blood for AIF selection
    assert (phantom.fractions[..., CLASS_INDEX["artery"]] > 0.9).sum() >= 4


def test_lesion_is_optional():
    p = make_phantom(7, lesion=False)
    assert not (p.dseg == CLASS_INDEX["non_enhancing_lesion"]).any()


def test_partial_volume_fractions(phantom):
    np.testing.assert_allclose(phantom.fractions.sum(-1), 1.0, atol=1e-6)
    purity = phantom.purity()
    assert ((purity > 0.1) & (purity < 0.9)).sum() > 500  # edges are mixed
    # edge voxels of the head mix tissue with air: lower M0, kinetic fractions scaled
    edge = phantom.head_mask & (phantom.fractions[..., 0] > 0.4)
    assert phantom.m0[edge].max() < 0.7


def test_pure_voxels_lie_in_documented_ranges(phantom):
    ranges = parameter_ranges(phantom.field_strength, phantom.hematocrit)
    maps = {"T1": phantom.t1, "M0": phantom.m0, "Ktrans": phantom.ktrans, "ve": phantom.ve, "vp": phantom.vp}
    pure = phantom.purity() > 0.999
    for index, (tissue, _) in TISSUE_CLASSES.items():
        sel = pure & (phantom.dseg == index)
        if index == 0 or not sel.any():
            continue
        for name, data in maps.items():
            lo, hi = ranges[tissue][name]
            values = data[sel]
            assert values.min() >= lo * (1 - 1e-5) - 1e-7 and values.max() <= hi * (1 + 1e-5) + 1e-7, (
                tissue,
                name,
                values.min(),
                values.max(),
            )


def test_vessels_are_whole_blood_and_kep_is_derived(phantom):
    artery = phantom.fractions[..., CLASS_INDEX["artery"]] == 1.0
    np.testing.assert_allclose(phantom.vp[artery], 1 - phantom.hematocrit, rtol=1e-6)
    assert (phantom.ktrans[artery] == 0).all()
    sel = phantom.ve > 0
    np.testing.assert_allclose(phantom.kep[sel], phantom.ktrans[sel] / phantom.ve[sel], rtol=1e-5)
    sinus = phantom.dseg == CLASS_INDEX["sagittal_sinus"]
    assert (phantom.delay[sinus] == phantom.sinus_delay).all() and (phantom.delay[~sinus] == 0).all()


def test_tumour_rim_enhances_more_than_normal_brain(phantom):
    rim = phantom.ktrans[phantom.dseg == CLASS_INDEX["tumour_rim"]]
    wm = phantom.ktrans[phantom.dseg == CLASS_INDEX["white_matter"]]
    assert np.median(rim) > 10 * np.median(wm)


def test_smooth_variation_inside_a_class(phantom):
    wm = (phantom.dseg == CLASS_INDEX["white_matter"]) & (phantom.purity() == 1)
    t1 = phantom.t1[wm]
    assert 0.01 < t1.std() / t1.mean() < 0.1


def test_same_seed_same_phantom_other_seed_differs():
    grid = Grid(matrix=(24, 24, 3), voxel_size=(8.0, 8.0, 8.0))
    a, b, c = make_phantom(3, grid), make_phantom(3, grid), make_phantom(4, grid)
    for name in ("t1", "m0", "ktrans", "ve", "vp", "fractions"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.ktrans, c.ktrans)


def test_field_strength_selects_t1_priors():
    r15, r3 = parameter_ranges(1.5), parameter_ranges(3.0)
    assert r15["white_matter"]["T1"][1] < r3["white_matter"]["T1"][1]
    with pytest.raises(ValueError, match="field_strength"):
        parameter_ranges(7.0)


@pytest.mark.parametrize("effect", [0.0, 1.0, 2.0])
def test_group_effect_shifts_subject_level_log_values_by_d(effect):
    cohort = Cohort(n_subjects=2, effect_size=effect)
    rng = np.random.default_rng(11)
    draws = {
        label: [draw_subject_parameters(rng, shifts=cohort.shifts(label)) for _ in range(600)]
        for label in cohort.group_labels
    }

    def cohen_d(tissue, parameter):
        low, high = (np.log([d[tissue][parameter] for d in draws[label]]) for label in cohort.group_labels)
        pooled = np.sqrt((low.var(ddof=1) + high.var(ddof=1)) / 2)
        return (high.mean() - low.mean()) / pooled

    for tissue, parameter in (("tumour_rim", "Ktrans"), ("tumour_rim", "vp")):
        assert cohen_d(tissue, parameter) == pytest.approx(effect, abs=0.2)
    assert cohen_d("tumour_rim", "ve") == pytest.approx(0.0, abs=0.2)
    assert cohen_d("white_matter", "Ktrans") == pytest.approx(0.0, abs=0.2)


def test_cohort_groups_are_balanced_and_reproducible():
    cohort = Cohort(n_subjects=7, seed=3)
    groups = cohort.groups()
    assert groups == Cohort(n_subjects=7, seed=3).groups()
    counts = [list(groups.values()).count(label) for label in cohort.group_labels]
    assert sorted(counts) == [3, 4]
    assert cohort.shifts("low") == {} and set(cohort.shifts("high").values()) == {1.0}
    assert Cohort(effect_size=0).expected_auroc() == pytest.approx(0.5)
    assert Cohort(effect_size=1).expected_auroc() == pytest.approx(0.7602, abs=1e-4)
    with pytest.raises(ValueError, match="n_subjects"):
        Cohort(n_subjects=0)
