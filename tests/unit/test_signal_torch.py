"""The signal chain in torch: the same SPGR and concentration equations as numpy, differentiable."""

import numpy as np
import pytest
import torch

from bidsapp.concentration import concentration_from_signal, concentration_to_signal, signal_to_concentration
from bidsapp.spgr import spgr_r1, spgr_signal, spgr_signal_dr1

TR, FA, R1 = 0.005, 15.0, 4.5


def _maps(seed=0):
    rng = np.random.default_rng(seed)
    conc = rng.uniform(0.0, 3.0, (3, 4, 12))
    t10 = rng.uniform(0.5, 2.0, (3, 4))
    m0 = rng.uniform(500.0, 2000.0, (3, 4))
    b1 = rng.uniform(0.8, 1.2, (3, 4))
    return conc, t10, m0, b1


def test_spgr_signal_torch_matches_numpy():
    r1 = np.linspace(0.2, 5.0, 30)
    angles = np.array([2.0, 10.0, 25.0])[:, None]
    expected = spgr_signal(1000.0, r1, angles, TR, 1.1)
    got = spgr_signal(1000.0, torch.as_tensor(r1), torch.as_tensor(angles), TR, 1.1)
    assert isinstance(got, torch.Tensor) and isinstance(expected, np.ndarray)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13)


@pytest.mark.parametrize("as_torch", [False, True])
def test_dr1_is_the_derivative(as_torch):
    r1 = torch.linspace(0.2, 5.0, 30, dtype=torch.float64, requires_grad=True)
    spgr_signal(800.0, r1, FA, TR, 0.9).sum().backward()
    value = r1.detach() if as_torch else r1.detach().numpy()
    dr1 = spgr_signal_dr1(800.0, value, FA, TR, 0.9)
    np.testing.assert_allclose(np.asarray(dr1), r1.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("as_torch", [False, True])
def test_spgr_r1_inverts_the_signal(as_torch):
    r1 = np.linspace(0.2, 20.0, 50)
    signal = spgr_signal(1200.0, r1, FA, TR, 1.05)
    if as_torch:
        signal = torch.as_tensor(signal)
    np.testing.assert_allclose(np.asarray(spgr_r1(signal, 1200.0, FA, TR, 1.05)), r1, rtol=1e-9)


def test_concentration_to_signal_torch_matches_numpy_and_has_gradients():
    conc, t10, m0, b1 = _maps()
    expected = concentration_to_signal(conc, t10, m0, TR, FA, R1, b1)
    conc_t = torch.as_tensor(conc).requires_grad_(True)
    got = concentration_to_signal(
        conc_t, torch.as_tensor(t10), torch.as_tensor(m0), TR, FA, R1, torch.as_tensor(b1)
    )
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-12)
    got.sum().backward()  # dS/dC = r1 · ∂S/∂R1
    dr1 = spgr_signal_dr1(m0[..., None], 1.0 / t10[..., None] + R1 * conc, FA, TR, b1[..., None])
    np.testing.assert_allclose(conc_t.grad.numpy(), R1 * dr1, rtol=1e-10)


@pytest.mark.parametrize("as_torch", [False, True])
def test_concentration_round_trip(as_torch):
    conc, t10, m0, b1 = _maps(1)
    signal = concentration_to_signal(conc, t10, m0, TR, FA, R1, b1)
    args = [signal, t10[..., None], m0[..., None], b1[..., None]]
    if as_torch:
        args = [torch.as_tensor(a) for a in args]
    s, t, m, b = args
    back = concentration_from_signal(s, t, m, TR, FA, R1, b)
    assert isinstance(back, torch.Tensor) == as_torch
    np.testing.assert_allclose(np.asarray(back), conc, atol=1e-10)
    # the image inversion with M0 given gives the same numbers
    image = signal_to_concentration(signal, t10, TR, FA, R1, None, m0=m0, b1=b1).concentration
    np.testing.assert_allclose(image, np.asarray(back), rtol=1e-12, atol=1e-14)
