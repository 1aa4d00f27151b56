"""Exact convolution of a sampled, piecewise-linear input with an exponential (torch).

Every tracer-kinetic model in :mod:`bidsapp.models` is a sum of terms of the form

    B(t) = ∫_{t0}^{t} c(τ) · exp(−k (t − τ)) dτ,   k ≥ 0 (1/s),

where ``c`` is the plasma concentration known at the sample times ``t_i`` and taken as
linear between them (k = 0 gives the running integral of ``c``). Over one interval the
integral has a closed form, so ``B`` is computed *exactly* by the recursion

    B_{i+1} = e^{−kΔ_i} B_i + Δ_i [ φ1(kΔ_i) c_i + (φ0(kΔ_i) − φ1(kΔ_i)) c_{i+1} ],
    φ_m(x) = ∫_0^1 v^m e^{−x v} dv,

which works for non-uniform sampling. Rectangle-rule or FFT convolutions (osipy,
many in-house codes) bias vp and Ktrans by O(Ktrans·Δt/2); this one has no
discretisation error for piecewise-linear input. The derivative with respect to k,
needed by the fitting engine, follows from dφ_m/dx = −φ_{m+1}:

    ∂B_{i+1}/∂k = e^{−kΔ_i} (∂B_i/∂k − Δ_i B_i) − Δ_i² [ φ2 c_i + (φ1 − φ2) c_{i+1} ].

The AIF can be delayed per voxel: :func:`shift_input` resamples the piecewise-linear
input at ``t − delay`` (zero before the first sample) and returns its slope, from
which the delay derivative of every term follows by linearity.

Reference: Flouri D, Lesnic D, Sourbron SP. Fitting the two-compartment model in DCE-MRI
by linear inversion. MRM 2016;76:998-1006 (exact piecewise-linear convolution).
"""

import math

import torch

_SERIES_LIMIT = 0.1  # below this x = kΔ the φ_m are evaluated by their Taylor series
_SERIES_TERMS = 10


def _phi(x, m):
    """φ_m(x) = ∫_0^1 v^m e^{−x v} dv for m = 0, 1, 2 and x ≥ 0, accurate for all x."""
    small = x < _SERIES_LIMIT
    xs = torch.where(small, torch.ones_like(x), x)
    e = torch.exp(-xs)
    if m == 0:
        closed = -torch.expm1(-xs) / xs
    elif m == 1:
        closed = (1.0 - e * (1.0 + xs)) / xs**2
    else:
        closed = (2.0 - e * (2.0 + xs * (2.0 + xs))) / xs**3
    return torch.where(small, _phi_series(x, m), closed)


def _phi_series(x, m):
    """Horner evaluation of Σ_{j<n} (−x)^j / (j! (m + j + 1)) (n = 10 terms)."""
    out = torch.full_like(x, 1.0 / (math.factorial(_SERIES_TERMS - 1) * (m + _SERIES_TERMS)))
    for j in reversed(range(_SERIES_TERMS - 1)):
        out = out * (-x) + 1.0 / (math.factorial(j) * (m + j + 1))
    return out


def exp_conv(c, t, k, with_grad=False):
    """Exact convolution of piecewise-linear inputs with exp(−k t), and ∂/∂k.

    Parameters
    ----------
    c : torch.Tensor
        Input samples ``[..., m, T]`` (``m`` inputs sharing one rate per voxel); the
        leading shape must broadcast against ``k``.
    t : torch.Tensor
        Sample times ``[T]`` in s, strictly increasing.
    k : torch.Tensor
        Rate constants ``[...]`` in 1/s, ≥ 0 (0 gives the running integral).
    with_grad : bool
        Also return ∂B/∂k.

    Returns
    -------
    B : torch.Tensor ``[..., m, T]`` (and ``dB/dk`` of the same shape if requested);
        ``B[..., 0] = 0`` (the integral starts at ``t[0]``).
    """
    dt = t[1:] - t[:-1]
    uniform = bool(torch.allclose(dt, dt[:1].expand_as(dt), rtol=1e-9, atol=0.0))
    if uniform:
        dt = dt[:1]
    k = k[..., None, None]  # broadcast over inputs and intervals
    x = k * dt
    e = torch.exp(-x)
    p0, p1 = _phi(x, 0), _phi(x, 1)
    c0, c1 = c[..., :-1], c[..., 1:]
    inc = dt * (p1 * c0 + (p0 - p1) * c1)
    shape = torch.broadcast_shapes(inc.shape, c.shape[:-1] + (c.shape[-1] - 1,))
    inc = inc.expand(shape)
    e = e.expand(shape[:-1] + (e.shape[-1],))
    out = torch.zeros(shape[:-1] + (shape[-1] + 1,), dtype=inc.dtype, device=inc.device)
    col = lambda a, i: a[..., 0] if a.shape[-1] == 1 else a[..., i]  # noqa: E731
    for i in range(shape[-1]):
        torch.addcmul(inc[..., i], col(e, i), out[..., i], out=out[..., i + 1])
    if not with_grad:
        return out
    p2 = _phi(x, 2)
    dinc = -(dt**2) * (p2 * c0 + (p1 - p2) * c1)
    dinc = dinc.expand(shape)
    de = -dt * e  # ∂e^{−kΔ}/∂k
    de = de.expand(e.shape)
    grad = torch.zeros_like(out)
    for i in range(shape[-1]):
        g = dinc[..., i] + col(de, i) * out[..., i]
        torch.addcmul(g, col(e, i), grad[..., i], out=grad[..., i + 1])
    return out, grad


def cumulative_integral(c, t):
    """Running trapezoid integral of piecewise-linear samples ``c[..., T]`` over ``t`` (exact)."""
    dt = t[1:] - t[:-1]
    inc = 0.5 * dt * (c[..., 1:] + c[..., :-1])
    return torch.cat([torch.zeros_like(c[..., :1]), torch.cumsum(inc, dim=-1)], dim=-1)


def shift_input(c, t, delay):
    """Resample a piecewise-linear input at ``t − delay`` and return it with its slope.

    Parameters
    ----------
    c : torch.Tensor ``[T]``
        Input (e.g. the plasma AIF) at times ``t``.
    t : torch.Tensor ``[T]``
        Sample times in s.
    delay : torch.Tensor ``[...]``
        Delay in s (positive: the input arrives later). The input is taken as 0 before
        ``t[0]`` and constant after ``t[-1]``.

    Returns
    -------
    shifted, slope : torch.Tensor ``[..., T]``
        ``c(t − delay)`` and ``dc/dt`` at ``t − delay`` (so ∂shifted/∂delay = −slope).
    """
    tq = t - delay[..., None]
    seg_slope = (c[1:] - c[:-1]) / (t[1:] - t[:-1])
    idx = torch.searchsorted(t, tq.contiguous(), right=True) - 1  # segment index
    before = idx < 0
    after = idx >= t.shape[0] - 1
    seg = idx.clamp(0, t.shape[0] - 2)
    slope = seg_slope[seg]
    shifted = c[seg] + slope * (tq - t[seg])
    # before the first sample: linear ramp from 0 at t0 − Δ0 is not assumed; input is 0
    shifted = torch.where(before, torch.zeros_like(shifted), shifted)
    slope = torch.where(before, torch.zeros_like(slope), slope)
    shifted = torch.where(after, c[-1].expand_as(shifted), shifted)
    slope = torch.where(after, torch.zeros_like(slope), slope)
    return shifted, slope
