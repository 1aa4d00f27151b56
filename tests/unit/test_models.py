import numpy as np
import pytest
import torch
from osipi_data import array_cell, read_csv

from bidsapp import MODELS, model_curve
from bidsapp.convolution import exp_conv_time_major, locate_delayed

T = np.linspace(0, 300, 65)


def parker_like(t):
    return 6.0 * np.exp(-0.5 * ((t - 40) / 5) ** 2) + 1.2 * np.exp(-0.002 * (t - 30)) / (
        1 + np.exp(-0.5 * (t - 40))
    )


def fine_reference(model, params, t, aif_fn, n=400):
    """Brute-force reference: ODE-free convolution on a fine grid (trapezoid)."""
    tf = np.linspace(t[0], t[-1], (len(t) - 1) * n + 1)
    return model_curve(model, params, tf, aif_fn(tf))[..., ::n]


@pytest.mark.parametrize(
    "model,params",
    [
        ("tofts", {"Ktrans": 0.2, "ve": 0.3}),
        ("extended_tofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.05}),
        ("patlak", {"Ktrans": 0.05, "vp": 0.05}),
        ("2cxm", {"Fp": 40.0, "PS": 0.15, "ve": 0.2, "vp": 0.05}),
        ("2cum", {"Fp": 40.0, "PS": 0.1, "vp": 0.05}),
    ],
)
def test_piecewise_linear_aif_is_convolved_exactly(model, params):
    aif = parker_like(T)
    fine = fine_reference(model, params, T, lambda tf: np.interp(tf, T, aif))
    coarse = model_curve(model, params, T, aif)
    np.testing.assert_allclose(coarse, fine, rtol=1e-9, atol=1e-12)


def test_extended_tofts_reduces_to_tofts_and_vp_term():
    aif = parker_like(T)
    et = model_curve("extended_tofts", {"Ktrans": 0.1, "ve": 0.2, "vp": 0.04}, T, aif)
    tofts = model_curve("tofts", {"Ktrans": 0.1, "ve": 0.2}, T, aif)
    np.testing.assert_allclose(et, tofts + 0.04 * aif, rtol=1e-12)


def test_2cxm_with_tiny_exchange_tends_to_patlak_and_2cum_limit():
    aif = parker_like(T)
    # 2CXM with huge ve behaves like 2CUM
    cxm = model_curve("2cxm", {"Fp": 30.0, "PS": 0.1, "ve": 1e6, "vp": 0.05}, T, aif)
    cum = model_curve("2cum", {"Fp": 30.0, "PS": 0.1, "vp": 0.05}, T, aif)
    np.testing.assert_allclose(cxm, cum, rtol=1e-5, atol=1e-9)


def test_vectorised_parameters_and_delay_broadcast():
    aif = parker_like(T)
    kt = np.array([[0.1, 0.2], [0.3, 0.0]])
    out = model_curve(
        "extended_tofts", {"Ktrans": kt, "ve": 0.3, "vp": 0.02}, T, aif, delay=np.array([0.0, 5.0])
    )
    assert out.shape == (2, 2, 65)
    single = model_curve("extended_tofts", {"Ktrans": 0.2, "ve": 0.3, "vp": 0.02}, T, aif, delay=5.0)
    np.testing.assert_allclose(out[0, 1], single)


def test_delay_shifts_curve_for_whole_samples():
    t = np.arange(0, 200, 1.0)
    aif = parker_like(t)
    shifted = model_curve("tofts", {"Ktrans": 0.2, "ve": 0.3}, t, aif, delay=5.0)
    base = model_curve("tofts", {"Ktrans": 0.2, "ve": 0.3}, t, aif)
    np.testing.assert_allclose(shifted[5:], base[:-5], rtol=1e-9, atol=1e-10)


def test_exp_conv_gradient_matches_finite_difference():
    t = torch.tensor(np.concatenate([np.linspace(0, 60, 30), np.linspace(62, 300, 40)]))
    c = torch.tensor(parker_like(t.numpy()))[:, None, None]  # time-major [T, 1, 1]
    k = torch.tensor([0.0, 1e-3, 0.03, 0.4], dtype=torch.float64)
    _, grad = exp_conv_time_major(c, t, k, with_grad=True)
    h = 1e-7
    fd = (exp_conv_time_major(c, t, k + h) - exp_conv_time_major(c, t, (k - h).clamp(min=0))) / torch.where(
        k > 0, 2 * h, h
    )[None, :, None]
    torch.testing.assert_close(grad, fd, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("grid", ["uniform", "non-uniform"])
def test_delayed_input_zero_before_and_slope(grid):
    t = torch.linspace(0, 10, 11, dtype=torch.float64)
    g = t if grid == "uniform" else torch.cat([t[:3], t[3:] + 0.25 * torch.arange(8)])
    c = g.clone()
    located = locate_delayed(c, g, t, torch.tensor([2.5], dtype=torch.float64))
    shifted, slope = located.value[:, 0], located.slope[:, 0]
    np.testing.assert_allclose(shifted.numpy(), np.maximum(t.numpy() - 2.5, 0) * (t.numpy() >= 2.5))
    assert slope[0] == 0 and slope[5] == 1


@pytest.mark.parametrize(
    "frames,grid",
    [
        (np.arange(40) * 3.0, None),  # AIF at uniform frames: one offset per voxel
        (np.arange(40) * 3.0, np.arange(0, 117.01, 0.7)),  # finer, incommensurate grid: a few offsets
        (np.cumsum(np.r_[0, np.full(15, 1.5), np.full(24, 4.0)]), None),  # non-uniform frames
    ],
)
def test_located_offsets_match_direct_search(frames, grid):
    """The phase decomposition of the read-out times gives the segment and offset of a direct search."""
    t = torch.tensor(frames)
    g = t if grid is None else torch.tensor(grid)
    c = torch.tensor(parker_like(g.numpy()))
    delay = torch.tensor(np.r_[np.linspace(-12, 35, 301), [0.0, 3.0, -3.0, 0.7 * 5]])
    located = locate_delayed(c, g, t, delay)
    s = t[:, None] - delay[None, :]
    inside = s >= g[0]
    assert torch.equal(located.before, ~inside)
    g_ext, h = located.g, located.h.expand_as(s)
    seg_start = torch.take(g_ext, located.j)
    torch.testing.assert_close(torch.where(inside, seg_start + h, s), s, rtol=0, atol=1e-9)
    if np.allclose(np.diff(g.numpy()), float(g[1] - g[0])):  # uniform input grid: offsets within one step
        assert bool(((h >= 0) & (h < (g_ext[1] - g_ext[0]) - 1e-9))[inside].all())
    expected = torch.as_tensor(np.interp(s.numpy(), g.numpy(), c.numpy())) * inside
    torch.testing.assert_close(located.value, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "path,model",
    [
        ("DCEmodels/historical_noisefree/2cxm_sd_0_delay_0.csv", "2cxm"),
        ("DCEmodels/historical_noisefree/2cum_sd_0_delay_0.csv", "2cum"),
    ],
)
def test_forward_models_reproduce_osipi_noise_free_curves(path, model):
    df = read_csv(path)
    names = {"fp": "Fp", "ps": "PS", "ve": "ve", "vp": "vp"}
    for _, row in df.iterrows():
        params = {names[k]: row[k] for k in names if k in row and names[k] in MODELS[model].params}
        pred = model_curve(model, params, array_cell(row.t), array_cell(row.cp_aif))
        # the OSIPI generator integrated on its own grid: agreement to 0.1 % of the peak
        assert np.abs(pred - array_cell(row.C_t)).max() < 1e-3 * array_cell(row.C_t).max()


def test_bad_inputs():
    aif = parker_like(T)
    with pytest.raises(ValueError, match="model"):
        model_curve("gamma", {}, T, aif)
    with pytest.raises(ValueError, match="aif"):
        model_curve("tofts", {"Ktrans": 0.1, "ve": 0.2}, T, aif[:-1])
    with pytest.raises(ValueError, match="t:"):
        model_curve("tofts", {"Ktrans": 0.1, "ve": 0.2}, T[::-1], aif)
    with pytest.raises(ValueError, match="needs ve"):
        model_curve("tofts", {"Ktrans": 0.1}, T, aif)


def test_delay_extremes_and_nan():
    """Non-finite delays give NaN curves for those voxels only; delays far outside the
    acquisition give the constant tail or zero, without extending the AIF grid far."""
    t = np.arange(30) * 2.0
    aif = parker_like(t)
    params = {"Ktrans": np.full(4, 0.2), "ve": np.full(4, 0.3), "vp": np.full(4, 0.05)}
    delay = np.array([np.nan, 3.0, -1e6, 1e6])
    out = model_curve("extended_tofts", params, t, aif, delay=delay)
    assert np.isnan(out[0]).all()
    one = model_curve("extended_tofts", {k: v[1] for k, v in params.items()}, t, aif, delay=3.0)
    np.testing.assert_allclose(out[1], one, rtol=1e-12)
    # read 1e6 s after the AIF ends: constant input at steady state, C = vp·c + Ktrans·c/kep = (vp + ve)·c
    np.testing.assert_allclose(out[2], (0.05 + 0.3) * aif[-1], rtol=1e-9)
    assert (out[3] == 0).all()
