"""Exact convolution of a piecewise-linear input with an exponential (torch).

Every tracer-kinetic model in :mod:`bidsapp.models` is a sum of terms of the form

    B(t) = ∫_{t0}^{t} c(τ) · exp(−k (t − τ)) dτ,   k ≥ 0 (1/s),

with ``c`` the plasma concentration, taken as linear between its samples (k = 0 gives
the running integral). Over a linear piece of length δ the integral has a closed form,
so ``B`` is computed *exactly* at the frame times ``t_i`` by the recursion

    B_{i+1} = e^{−kΔ_i} B_i + I_i,
    I_i = Σ_j e^{−k(Δ_i − (j+1)δ_i)} δ_i [φ1(kδ_i) c_{i,j} + (φ0(kδ_i) − φ1(kδ_i)) c_{i,j+1}],
    φ_m(x) = ∫_0^1 v^m e^{−x v} dv  (:func:`_phis`),

where c_{i,j} = c(t_i + j·δ_i), δ_i = Δ_i / S: each frame interval is split into S equal
sub-steps (:func:`substep_times`). S = 1 uses the AIF at the frame times only; S > 1 uses an AIF known on a
finer grid (an analytic population AIF, or a finer AIF acquisition), which matters
when the first pass is shorter than a frame. The sub-step sums run over all intervals
at once, so S costs S vectorised operations, not S times more sequential steps. The
derivative with respect to k (for the fitting engine) follows from dφ_m/dx = −φ_{m+1}.
Rectangle-rule or FFT convolutions (osipy, many in-house codes) bias vp and Ktrans by
O(Ktrans·Δt/2); this one has no discretisation error for piecewise-linear input and
works for non-uniform frame times.

Delays shift the input per voxel: :func:`exp_conv_delayed` reads the undelayed
response at ``t − delay`` with one exact partial step, and the delay derivative follows
from the model's ODE.

Reference: Flouri D, Lesnic D, Sourbron SP. Fitting the two-compartment model in DCE-MRI
by linear inversion. MRM 2016;76:998-1006 (exact piecewise-linear convolution).
"""

from typing import NamedTuple

import torch

_SERIES_LIMIT = 0.1  # below this x = kδ the φ_m are evaluated by their Taylor series
_SERIES_TERMS = 10


def _phis(x, count):
    """[φ_0, …, φ_{count−1}] at x ≥ 0, with φ_m(x) = ∫_0^1 v^m e^{−x v} dv.

    Closed forms by the recurrence φ_m = (m·φ_{m−1} − e^{−x})/x (φ_0 = −expm1(−x)/x),
    and below x = 0.1, where the recurrence cancels, the Taylor series
    φ_m = Σ_j (−x)^j / (j!·(m + j + 1)) with shared powers (10 terms, error < 1e-13).
    """
    small = x < _SERIES_LIMIT
    xs = torch.where(small, torch.ones_like(x), x)
    e = torch.exp(-xs)
    closed = [-torch.expm1(-xs) / xs]
    for m in range(1, count):
        closed.append((m * closed[-1] - e) / xs)
    if not bool(small.any()):
        return closed
    if small.shape != x.shape:
        small = small.expand_as(x)
    nx = -x[small]  # the series only where it is needed
    term = torch.ones_like(nx)
    series = [torch.zeros_like(nx) for _ in range(count)]
    for j in range(_SERIES_TERMS):
        for m in range(count):
            series[m].add_(term, alpha=1.0 / (m + j + 1))
        term = term * nx / (j + 1)
    for cm, sm in zip(closed, series, strict=True):
        cm[small] = sm
    return closed


def substep_times(t, n_sub):
    """Frame times subdivided into ``n_sub`` equal sub-steps: ``[(T-1)·S + 1]`` times (s).

    Sub-point j of frame interval i is element ``i·S + j``; the frames are ``[::S]``.
    """
    frac = torch.arange(n_sub, dtype=t.dtype, device=t.device) / n_sub
    inner = t[:-1, None] + (t[1:] - t[:-1])[:, None] * frac[None, :]
    return torch.cat([inner.reshape(-1), t[-1:]])


def exp_conv_time_major(c, t, k, n_sub=1, with_grad=False):
    """Exact convolution of time-major input known at the sub-step times.

    Parameters
    ----------
    c : torch.Tensor ``[(T-1)·S + 1, n or 1, M]``
        Input at the sub-step times of :func:`substep_times` (``M`` inputs that share
        the rate of each voxel).
    t : torch.Tensor ``[T]``
        Frame times in s, strictly increasing.
    k : torch.Tensor ``[n]``
        Rates in 1/s, ≥ 0.
    n_sub : int
        Sub-steps per frame interval, S.
    with_grad : bool
        Also return ∂B/∂k of the first input.

    Returns
    -------
    B : torch.Tensor ``[T, n, M]`` with ``B[0] = 0`` (and ∂B/∂k ``[T, n, 1]`` of the
    first input, the only one the fitting engine differentiates by the rate).
    """
    n_int = t.shape[0] - 1
    point = lambda j: c[j : j + n_int * n_sub : n_sub]  # noqa: E731  sub-point j of every interval
    dt = t[1:] - t[:-1]
    if bool(torch.allclose(dt, dt[:1].expand_as(dt), rtol=1e-9, atol=0.0)):
        dt = dt[:1]
    d = (dt / n_sub)[:, None, None]  # sub-step length [T-1 or 1, 1, 1]
    x = d * k[None, :, None]  # [T-1 or 1, n, 1]
    es = torch.exp(-x)
    phis = _phis(x, 3 if with_grad else 2)
    p0, p1 = phis[0], phis[1]
    w0, w1 = d * p1, d * (p0 - p1)
    acc = (w0 * point(0)).addcmul_(w1, point(1))  # interval increments I_i [T-1, n, M]
    if with_grad:
        p2 = phis[2]
        dw0, dw1, des = -(d**2) * p2, -(d**2) * (p1 - p2), -d * es
        dacc = (dw0 * point(0)[..., :1]).addcmul_(dw1, point(1)[..., :1])
    for j in range(1, n_sub):
        if with_grad:
            dacc.mul_(es).addcmul_(des, acc[..., :1]).addcmul_(dw0, point(j)[..., :1])
            dacc.addcmul_(dw1, point(j + 1)[..., :1])
        acc.mul_(es).addcmul_(w0, point(j)).addcmul_(w1, point(j + 1))
    big_e = es**n_sub  # e^{−kΔ_i}
    acc = acc.contiguous()
    out = torch.empty((n_int + 1,) + acc.shape[1:], dtype=acc.dtype, device=acc.device)
    out[0] = 0.0
    last = big_e.shape[0] - 1
    for i in range(n_int):
        torch.addcmul(acc[i], big_e[min(i, last)], out[i], out=out[i + 1])
    if not with_grad:
        return out
    dacc = dacc.contiguous()
    dbig_e = -(d * n_sub) * big_e
    grad = torch.empty_like(out[..., :1])
    grad[0] = 0.0
    for i in range(n_int):
        j = min(i, last)
        torch.addcmul(torch.addcmul(dacc[i], dbig_e[j], out[i, ..., :1]), big_e[j], grad[i], out=grad[i + 1])
    return out, grad


def cumulative_integral(c, t):
    """Return the running trapezoid integral of piecewise-linear samples ``c[..., T]`` over ``t`` (exact)."""
    dt = t[1:] - t[:-1]
    inc = 0.5 * dt * (c[..., 1:] + c[..., :-1])
    return torch.cat([torch.zeros_like(c[..., :1]), torch.cumsum(inc, dim=-1)], dim=-1)


def sample_input(c, t, tq):
    """Value and slope of the piecewise-linear ``c(t)`` at times ``tq`` (0 before ``t[0]``).

    On a uniform grid the segment index is computed arithmetically (no binary search),
    with in-place arithmetic to keep memory traffic low.
    """
    n = t.shape[0]
    step = t[1:] - t[:-1]
    dc = c[1:] - c[:-1]
    if bool(torch.allclose(step, step[:1].expand_as(step), rtol=1e-9, atol=0.0)):
        pos = (tq - t[0]).div_(step[0])  # position in samples
        before, after = pos < 0, pos > n - 1
        seg = pos.clamp(0, n - 2).long()
        frac = pos.sub_(seg)
        seg_dc = torch.take(dc, seg)
        value = torch.take(c, seg).addcmul_(seg_dc, frac)
        slope = seg_dc.div_(step[0])
    else:
        seg = (torch.searchsorted(t, tq.contiguous(), right=True) - 1).clamp_(0, n - 2)
        slope = torch.take(dc / step, seg)
        value = torch.take(c, seg).addcmul_(slope, tq - torch.take(t, seg))
        before, after = tq < t[0], tq > t[-1]
    value.masked_fill_(before, 0.0).masked_fill_(after, c[-1])
    slope.masked_fill_(before | after, 0.0)
    return value, slope


class Located(NamedTuple):
    """A piecewise-linear input read at per-voxel times ``s = t − delay`` (:func:`locate_delayed`).

    ``c`` and ``g`` are the input and its grid, extended on the right by constant samples
    where some ``s`` runs past the last one (the same function: the input is constant
    after its last sample). ``h`` is ``offsets`` expanded to ``[T, n]`` by ``rows`` (or
    ``offsets`` itself, broadcasting, when every frame has the same offset).
    """

    c: torch.Tensor  # [G] input
    g: torch.Tensor  # [G] its grid (s)
    value: torch.Tensor  # [T, n] c(s)
    start: torch.Tensor  # [T, n] c at the start of the segment, c[j]
    slope: torch.Tensor  # [T, n] dc/ds
    j: torch.Tensor  # [T, n] segment of s (long; clamped to the grid)
    h: torch.Tensor  # [T or 1, n] s − g[j] ≥ 0
    before: torch.Tensor  # [T, n] s < g[0], where the input is 0
    offsets: torch.Tensor  # [U, n] the distinct rows of h
    rows: torch.Tensor  # [T] row of ``offsets`` for each frame, or None (h is offsets)


_PHASE_TOL = 1e-10  # frames whose phases on the input grid differ by less (in steps) share one


def locate_delayed(c, g, t, delay):
    """Locate the piecewise-linear input ``c`` (grid ``g``) at ``s = t − delay`` (:class:`Located`).

    On a uniform input grid of step Δ the offset of ``s`` within its segment is
    ``Δ·frac(φ_i − d/Δ)`` with ``φ_i`` the phase of frame ``i`` on the grid, so it takes
    only as many distinct values per voxel as there are distinct frame phases: one when
    the input is sampled at uniform frames, a few for a finer grid. Everything that
    depends on the offset alone (the exponentials and φ functions of
    :func:`exp_conv_delayed`) is then evaluated on ``[U, n]`` instead of ``[T, n]``.
    Segment and offset come from the same decomposition, so they are always consistent.

    Parameters: ``c [G]`` (0 before ``g[0]``, constant after ``g[-1]``), ``g [G]`` s,
    ``t [T]`` frame times (s), ``delay [n]`` s.
    """
    phases = frame_phases(g, t)
    if phases is not None:
        located = _locate_uniform(c, g, delay, phases)
        if located is not None:
            return located
    s = t[:, None] - delay[None, :]  # direct search (NaN delays give NaN values)
    j = (torch.searchsorted(g, s.contiguous(), right=True) - 1).clamp_(0, g.shape[0] - 1)
    h = (s - torch.take(g, j)).clamp_min_(0.0)
    return _read(c, g, j, h, s < g[0], h, None)


class FramePhases(NamedTuple):
    """Frame times on a uniform input grid of step ``delta`` (s): ``t_i = g_0 + (whole_i + phase_i)·Δ``.

    ``distinct [U]`` are the distinct phases in [0, 1), ascending, and ``rows [T]`` the
    one of each frame.
    """

    delta: torch.Tensor
    whole: torch.Tensor
    distinct: torch.Tensor
    rows: torch.Tensor


def frame_phases(g, t):
    """Return the :class:`FramePhases` of frame times ``t`` on the grid ``g`` (``None`` if not uniform)."""
    step = g[1:] - g[:-1]
    if not bool(torch.allclose(step, step[:1].expand_as(step), rtol=1e-9, atol=0.0)):
        return None
    delta = step[0]
    pos = (t - g[0]) / delta  # frame positions on the grid, in steps
    whole = torch.where((pos - pos.round()).abs() < _PHASE_TOL, pos.round(), pos.floor())
    phase = pos - whole  # [T] in [0, 1)
    order = torch.argsort(phase)
    ordered = phase[order]
    new = torch.cat([ordered.new_ones(1, dtype=torch.bool), (ordered[1:] - ordered[:-1]) > _PHASE_TOL])
    rows = torch.empty_like(order)
    rows[order] = torch.cumsum(new, 0) - 1
    return FramePhases(delta, whole, ordered[new], rows)


def _locate_uniform(c, g, delay, phases):
    """Run :func:`locate_delayed` on a uniform grid by frame phases.

    :func:`locate_delayed` on a uniform grid by frame phases; ``None`` for non-finite delays or read-outs so
    far past the grid that extending it would cost more than it saves.
    """
    if not bool(torch.isfinite(delay).all()):
        return None
    delta, whole, distinct, rows = phases
    q = delay / delta
    q_whole = q.floor()
    last = int((whole.max() - q_whole.min()).item())  # largest segment any voxel reads
    extra = last - (g.shape[0] - 1)
    if extra > g.shape[0]:
        return None
    if extra > 0:  # extend by constant samples: the same piecewise-linear input
        g = torch.cat([g, g[-1] + delta * torch.arange(1, extra + 1, dtype=g.dtype, device=g.device)])
        c = torch.cat([c, c[-1:].expand(extra)])
    q_frac = q - q_whole  # [n] in [0, 1)
    wrap = (distinct[:, None] < q_frac[None, :] - _PHASE_TOL).to(
        delay.dtype
    )  # [U, n]; equal phases: offset 0
    offsets = (distinct[:, None] - q_frac[None, :] + wrap).clamp_min_(0.0) * delta
    single = distinct.numel() == 1
    seg = (whole[:, None] - q_whole[None, :]).sub_(wrap if single else wrap[rows])
    before = seg < 0
    j = seg.clamp_(min=0).long()
    h = offsets if single else offsets.index_select(0, rows)
    return _read(c, g, j, h, before, offsets, None if single else rows)


def _read(c, g, j, h, before, offsets, rows):
    slope = torch.cat([(c[1:] - c[:-1]) / (g[1:] - g[:-1]), c.new_zeros(1)])  # constant after the last sample
    seg_slope = torch.take(slope, j)
    start = torch.take(c, j)
    value = torch.addcmul(start, seg_slope, h).masked_fill_(before, 0.0)
    return Located(c, g, value, start, seg_slope.masked_fill_(before, 0.0), j, h, before, offsets, rows)


def exp_conv_delayed(located, k, with_grad=False):
    """Exact convolution of a piecewise-linear input read at per-voxel times ``s = t − delay``.

    The convolution is time-invariant, so a delayed input gives the undelayed response
    read earlier: B_d(t) = B_0(t − d). ``B_0`` is computed once per voxel on the input's
    own grid ``g`` (:func:`exp_conv_time_major`), and at ``s`` one exact partial step
    over the linear piece that contains ``s`` is added:

        B_0(s) = e^{−kh}·B_0(g_j) + h·[φ1(kh)·c_j + (φ0(kh) − φ1(kh))·c(s)],  h = s − g_j.

    This is exact for any delay (the delayed input is the true shift of the
    piecewise-linear input, not a re-interpolation), and the delay derivative follows
    from the model's own ODE, dB_0/ds = c(s) − k·B_0(s), which is continuous in ``s``.

    Parameters
    ----------
    located : Located
        The input located at the read-out times (:func:`locate_delayed`).
    k : torch.Tensor ``[n]``
        Rates in 1/s, ≥ 0.

    Returns
    -------
    B : torch.Tensor ``[T, n]``, and with ``with_grad`` also ∂B/∂k and ∂B/∂s.
    """
    c, g, value, cj, _, j, h, before, offsets, rows = located
    full = exp_conv_time_major(c[:, None, None], g, k, 1, with_grad)
    b0, db0 = (full[0][..., 0], full[1][..., 0]) if with_grad else (full[..., 0], None)
    x = offsets * k  # [U, n]: the φ functions depend on the offset only
    factors = [torch.exp(-x), *_phis(x, 3 if with_grad else 2)]
    if rows is not None:
        factors = [f.index_select(0, rows) for f in factors]
    e, p0, p1 = factors[:3]
    b0_j = b0.gather(0, j)
    out = (p1 * cj).addcmul_(p0 - p1, value).mul_(h).addcmul_(e, b0_j)
    out.masked_fill_(before, 0.0)
    if not with_grad:
        return out
    p2 = factors[3]
    dk = (p2 * cj).addcmul_(p1 - p2, value).mul_(h * h).neg_().addcmul_(e, db0.gather(0, j).sub_(h * b0_j))
    dk.masked_fill_(before, 0.0)
    ds = (value - k * out).masked_fill_(before, 0.0)
    return out, dk, ds
