"""Exact convolution of a piecewise-linear input with an exponential (torch).

Every tracer-kinetic model in :mod:`bidsapp.models` is a sum of terms of the form

    B(t) = ∫_{t0}^{t} c(τ) · exp(−k (t − τ)) dτ,   k ≥ 0 (1/s),

with ``c`` the plasma concentration, taken as linear between its samples (k = 0 gives
the running integral). Over a linear piece of length δ the integral has a closed form,
so ``B`` is computed *exactly* at the frame times ``t_i`` by the recursion

    B_{i+1} = e^{−kΔ_i} B_i + I_i,
    I_i = Σ_j e^{−k(Δ_i − (j+1)δ_i)} δ_i [φ1(kδ_i) c_{i,j} + (φ0(kδ_i) − φ1(kδ_i)) c_{i,j+1}],
    φ_m(x) = ∫_0^1 v^m e^{−x v} dv,

where c_{i,j} = c(t_i + j·δ_i), δ_i = Δ_i / S: each frame interval is split into S equal
sub-steps. S = 1 uses the AIF at the frame times only; S > 1 uses an AIF known on a
finer grid (an analytic population AIF, or a finer AIF acquisition), which matters
when the first pass is shorter than a frame. The sub-step sums run over all intervals
at once, so S costs S vectorised operations, not S times more sequential steps. The
derivative with respect to k (for the fitting engine) follows from dφ_m/dx = −φ_{m+1}.
Rectangle-rule or FFT convolutions (osipy, many in-house codes) bias vp and Ktrans by
O(Ktrans·Δt/2); this one has no discretisation error for piecewise-linear input and
works for non-uniform frame times.

Delays shift the input per voxel: :func:`sample_input` evaluates the piecewise-linear
AIF at ``t − delay`` (0 before its first sample) together with its slope, from which
the delay derivative of every term follows by linearity.

Reference: Flouri D, Lesnic D, Sourbron SP. Fitting the two-compartment model in DCE-MRI
by linear inversion. MRM 2016;76:998-1006 (exact piecewise-linear convolution).
"""

import math

import torch

_SERIES_LIMIT = 0.1  # below this x = kδ the φ_m are evaluated by their Taylor series
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


def subdivision_times(t, n_sub):
    """Times ``[T-1, S+1]``: ``t_i + j·(t_{i+1} − t_i)/S`` for j = 0…S."""
    frac = torch.arange(n_sub + 1, dtype=t.dtype, device=t.device) / n_sub
    return t[:-1, None] + (t[1:] - t[:-1])[:, None] * frac[None, :]


def frames_from_subdivided(c):
    """Values at the frame times ``[T, ...]`` from a subdivided input ``[T-1, S+1, ...]``."""
    return torch.cat([c[:, 0], c[-1:, -1]], dim=0)


def exp_conv_time_major(c, t, k, with_grad=False):
    """Exact convolution on time-major, subdivided input (∂/∂k for the first input only).

    Parameters
    ----------
    c : torch.Tensor ``[T-1, S+1, n or 1, M]``
        Input at S+1 equally spaced points of every frame interval (``M`` inputs that
        share the rate of each voxel).
    t : torch.Tensor ``[T]``
        Frame times in s, strictly increasing.
    k : torch.Tensor ``[n]``
        Rates in 1/s, ≥ 0.
    with_grad : bool
        Also return ∂B/∂k.

    Returns
    -------
    B : torch.Tensor ``[T, n, M]`` with ``B[0] = 0`` (and ∂B/∂k ``[T, n, 1]`` of the
    first input, the only one the fitting engine differentiates by the rate).
    """
    n_sub = c.shape[1] - 1
    dt = t[1:] - t[:-1]
    if bool(torch.allclose(dt, dt[:1].expand_as(dt), rtol=1e-9, atol=0.0)):
        dt = dt[:1]
    d = (dt / n_sub)[:, None, None]  # sub-step length [T-1 or 1, 1, 1]
    x = d * k[None, :, None]  # [T-1 or 1, n, 1]
    es = torch.exp(-x)
    p0, p1 = _phi(x, 0), _phi(x, 1)
    w0, w1 = d * p1, d * (p0 - p1)
    acc = w0 * c[:, 0] + w1 * c[:, 1]  # interval increments I_i [T-1, n, M]
    if with_grad:
        p2 = _phi(x, 2)
        dw0, dw1, des = -(d**2) * p2, -(d**2) * (p1 - p2), -d * es
        dacc = dw0 * c[:, 0, :, :1] + dw1 * c[:, 1, :, :1]
    for j in range(1, n_sub):
        if with_grad:
            dacc = es * dacc + des * acc[..., :1] + dw0 * c[:, j, :, :1] + dw1 * c[:, j + 1, :, :1]
        acc = es * acc + w0 * c[:, j] + w1 * c[:, j + 1]
    big_e = es**n_sub  # e^{−kΔ_i}
    acc = acc.contiguous()
    n_steps = acc.shape[0]
    out = torch.empty((n_steps + 1,) + acc.shape[1:], dtype=acc.dtype, device=acc.device)
    out[0] = 0.0
    last = big_e.shape[0] - 1
    for i in range(n_steps):
        torch.addcmul(acc[i], big_e[min(i, last)], out[i], out=out[i + 1])
    if not with_grad:
        return out
    dacc = dacc.contiguous()
    dbig_e = -(d * n_sub) * big_e
    grad = torch.empty_like(out[..., :1])
    grad[0] = 0.0
    for i in range(n_steps):
        j = min(i, last)
        torch.addcmul(torch.addcmul(dacc[i], dbig_e[j], out[i, ..., :1]), big_e[j], grad[i], out=grad[i + 1])
    return out, grad


def exp_conv(c, t, k, with_grad=False):
    """Exact convolution of inputs sampled at the frame times, batch-last layout.

    ``c [..., m, T]`` (m inputs sharing one rate), ``t [T]`` s, ``k [...]`` 1/s.
    Returns ``B [..., m, T]`` (and ∂B/∂k of the first input, ``[..., 1, T]``). See
    :func:`exp_conv_time_major`.
    """
    lead = torch.broadcast_shapes(c.shape[:-2], k.shape)
    ct = c.expand(lead + c.shape[-2:]).reshape(-1, c.shape[-2], c.shape[-1]).permute(2, 0, 1)
    sub = torch.stack([ct[:-1], ct[1:]], dim=1)  # [T-1, 2, n, m]
    out = exp_conv_time_major(sub, t, k.expand(lead).reshape(-1), with_grad)
    back = lambda a: a.permute(1, 2, 0).reshape(lead + a.shape[-1:] + c.shape[-1:])  # noqa: E731
    return (back(out[0]), back(out[1])) if with_grad else back(out)


def cumulative_integral(c, t):
    """Running trapezoid integral of piecewise-linear samples ``c[..., T]`` over ``t`` (exact)."""
    dt = t[1:] - t[:-1]
    inc = 0.5 * dt * (c[..., 1:] + c[..., :-1])
    return torch.cat([torch.zeros_like(c[..., :1]), torch.cumsum(inc, dim=-1)], dim=-1)


def shift_input(c, t, delay):
    """Resample a piecewise-linear input at ``t − delay`` and return it with its slope.

    ``c``, ``t`` ``[T]`` (s), ``delay [...]`` in s (positive: the input arrives later).
    Returns ``c(t − delay)`` and ``dc/dt`` there, both ``[..., T]`` (so
    ∂shifted/∂delay = −slope). The input is 0 before ``t[0]``, constant after ``t[-1]``.
    """
    return sample_input(c, t, t - delay[..., None])


def sample_input(c, t, tq):
    """Value and slope of the piecewise-linear ``c(t)`` at times ``tq`` (0 before ``t[0]``).

    On a uniform grid the segment index is computed arithmetically (no binary search).
    """
    n = t.shape[0]
    step = t[1:] - t[:-1]
    dc = c[1:] - c[:-1]
    if bool(torch.allclose(step, step[:1].expand_as(step), rtol=1e-9, atol=0.0)):
        u = (tq - t[0]) / step[0]
        seg = u.floor().clamp_(0, n - 2)
        frac = u - seg
        seg = seg.long()
        seg_dc = dc[seg]
        value = c[seg] + seg_dc * frac
        slope = seg_dc / step[0]
        before, after = u < 0, u > n - 1
    else:
        seg = (torch.searchsorted(t, tq.contiguous(), right=True) - 1).clamp_(0, n - 2)
        slope = (dc / step)[seg]
        value = c[seg] + slope * (tq - t[seg])
        before, after = tq < t[0], tq > t[-1]
    value = value.masked_fill(before, 0.0)
    value = torch.where(after, c[-1], value)
    slope = slope.masked_fill(before | after, 0.0)
    return value, slope
