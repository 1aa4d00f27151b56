"""Starting values for the kinetic fits.

Every model is linear in its term coefficients once its rate constants (and the delay)
are fixed. The *grid* start therefore scans the model's grid of rates × delays (its
recipe ``ModelSpec.grid``, :mod:`bidsapp.registry.kinetic`), solves the (non-negative)
linear least-squares problem for the coefficients of every grid point at once — one
matrix product for all voxels — keeps the best grid point per voxel and maps
coefficients and rates back to the model parameters (variable projection; Golub &
Pereyra, SIAM J Numer Anal 1973;10:413-432). Patlak has no rates: its grid start is the
exact non-negative least-squares solution.

For the Tofts models (``ModelSpec.linear_start``) the *linear* start is Murase's
linearisation (Murase K. MRM 2004;51:858-862): C(t) = (Ktrans + kep·vp)·∫Cp − kep·∫C +
vp·Cp, solved per voxel by least squares.
"""

import numpy as np
import torch

from ..convolution import cumulative_integral
from ..registry.kinetic import PER_MIN


def delay_grid(t, bounds):
    """Coarse delay grid (s) within ``bounds``, one point per sampling interval (≥ 1 s).

    The points sit half-way between multiples of the step: the sum of squares is
    piecewise quadratic in the delay with kinks where delayed samples cross the AIF's
    sample times, and a start exactly on a kink has a one-sided derivative. 0 s is
    added when it lies within ``bounds``: it is the delay-0 (nested) model, the answer
    for tissue that follows the AIF, and without it such tissue starts half a step away
    (see docs/fitting.md, "Delay fits").
    """
    step = max(float(np.median(np.diff(t))), 1.0)
    lo, hi = bounds
    grid = np.arange(np.floor(lo / step) * step + 0.5 * step, hi, step)
    grid = grid[(grid > lo) & (grid < hi)]
    if lo < 0.0 < hi:
        grid = np.sort(np.append(grid, 0.0))
    return grid if grid.size else np.array([0.5 * (lo + hi)])


def _bases(spec, plasma, delays, combos):
    """Basis curves ``[D, C, m, T]`` for delays ``D`` (s; ``None`` = undelayed) and rate combinations ``C``.

    The bases of ``spec.grid`` (:class:`bidsapp.registry.GridStart`), each evaluated by
    :meth:`bidsapp.models.PlasmaInput.basis` like the model's own terms, so every grid
    SSE is exact.
    """
    n_c, n_t = combos.shape[0], plasma.t.numel()
    rate_of = {"cp": None, "int": combos.new_zeros(1)}
    rate_of.update({f"k{i + 1}": combos[:, i] for i in range(combos.shape[1])})
    out = []
    if delays is None:
        for name in spec.grid.bases:
            out.append(plasma.basis(rate_of[name]).T[None].expand(1, n_c, n_t))
        return torch.stack(out, dim=2)
    for name in spec.grid.bases:
        rate = rate_of[name]
        per_delay = []
        for d in delays:
            located = plasma.locate(d.reshape(1) if rate is None else d.expand(rate.numel()))
            per_delay.append(plasma.basis(rate, located).T.expand(n_c, n_t))
        out.append(torch.stack(per_delay))
    return torch.stack(out, dim=2)


class NonNegLS:
    """Non-negative least squares for m ≤ 2 bases at every grid point, all voxels at once.

    With the Gram matrix ``G`` of each grid point's bases fixed, a voxel's best
    coefficients follow from its projections ``h = Bᵀy``: both coefficients of the
    unconstrained solution when they are non-negative, otherwise the better single basis
    (or none). Only the *decrease* of the sum of squares, ``yᵀy − SSE``, is needed to pick
    the best grid point; the coefficients are then solved for that point alone.
    """

    def __init__(self, gram):
        self.m = gram.shape[-1]
        self.g00 = gram[:, 0, 0].clamp_min(1e-300)  # an all-zero basis (delayed past the end) has h = 0
        if self.m == 2:
            self.g01, self.g11 = gram[:, 0, 1], gram[:, 1, 1].clamp_min(1e-300)
            det = self.g00 * self.g11 - self.g01 * self.g01
            self.pair_ok = det > 1e-12 * self.g00 * self.g11  # both bases independent
            self.inv_det = torch.where(self.pair_ok, 1.0 / det, torch.zeros_like(det))

    def decrease(self, h):
        """``yᵀy − SSE`` ``[n, G]`` of the NNLS solution at each grid point (``h [n, G, m]``)."""
        h0 = h[..., 0]
        if self.m == 1:
            return h0.clamp_min(0.0).square_().div_(self.g00)
        h1 = h[..., 1]
        n0 = (h0 * self.g11).addcmul_(h1, self.g01, value=-1.0)  # numerators of the 2×2 solution
        n1 = (h1 * self.g00).addcmul_(h0, self.g01, value=-1.0)
        both = (n0 * h0).addcmul_(n1, h1).mul_(self.inv_det)
        single = torch.maximum(
            h0.clamp_min(0.0).square_().div_(self.g00), h1.clamp_min(0.0).square_().div_(self.g11)
        )
        use_both = (n0 >= 0) & (n1 >= 0) & self.pair_ok
        return torch.where(use_both, both, single)

    def solve(self, h, k):
        """Coefficients ``[n, m]`` at grid point ``k [n]`` for projections ``h [n, m]``."""
        g00 = self.g00[k]
        if self.m == 1:
            return (h[:, :1] / g00[:, None]).clamp_min(0.0)
        g01, g11, inv_det, pair_ok = self.g01[k], self.g11[k], self.inv_det[k], self.pair_ok[k]
        h0, h1 = h[:, 0], h[:, 1]
        c0, c1 = (g11 * h0 - g01 * h1) * inv_det, (g00 * h1 - g01 * h0) * inv_det
        a0, a1 = (h0 / g00).clamp_min(0.0), (h1 / g11).clamp_min(0.0)
        first = a0 * h0 >= a1 * h1
        use_both = (c0 >= 0) & (c1 >= 0) & pair_ok
        c0 = torch.where(use_both, c0, torch.where(first, a0, torch.zeros_like(a0)))
        c1 = torch.where(use_both, c1, torch.where(first, torch.zeros_like(a1), a1))
        return torch.stack([c0, c1], dim=-1)


EXHAUSTIVE_POINTS = 320  # delay × rate pairs searched in one pass (the Tofts models at ~10 delays)


def grid_start(spec, plasma, y, delays=None, at=None):
    """Best grid point per voxel: ``(params dict, delay [N] or None, sse [N])``.

    ``delays`` is a 1-D tensor of candidate delays (s) or ``None`` (no delay). Delays ×
    rates are searched exhaustively when there are at most :data:`EXHAUSTIVE_POINTS`
    pairs (one matrix product and one NNLS pass for all voxels); larger grids (2CXM's
    rate pairs, fine frame intervals) are searched in two stages: the delay is chosen
    with a coarse rate grid, then the full rate grid is searched at that delay and its
    two neighbours.

    ``at`` (an index into ``delays``) also returns the best grid point with the delay
    held at ``delays[at]`` as a second ``(params dict, sse [N])``: read from the same
    NNLS pass when the search is exhaustive, otherwise a search of the full rate grid at
    that delay.
    """
    t = plasma.t
    combos = torch.as_tensor(spec.grid.rate_combos(), dtype=t.dtype, device=t.device)
    n_combos = max(combos.shape[0], 1)
    rates_of = lambda coef, k: combos[k % n_combos] if combos.numel() else coef[:, :0]  # noqa: E731
    if delays is None or delays.numel() * n_combos <= EXHAUSTIVE_POINTS:
        coef, best, sse, held = _grid_search(spec, plasma, y, delays, combos, at=at)
        params = spec.grid.to_params(coef, rates_of(coef, best))
        delay = None if delays is None else delays[best // n_combos]
        if at is None:
            return params, delay, sse
        coef_at, best_at, sse_at = held
        return params, delay, sse, (spec.grid.to_params(coef_at, rates_of(coef_at, best_at)), sse_at)
    stride = max(1, combos.shape[0] // 8)
    _, best, _, _ = _grid_search(spec, plasma, y, delays, combos[::stride] if combos.numel() else combos)
    n_coarse = max(combos[::stride].shape[0], 1)
    delay_idx = best // n_coarse
    coef = torch.empty(y.shape[0], len(spec.grid.bases), dtype=y.dtype, device=y.device)
    combo = torch.zeros(y.shape[0], dtype=torch.long, device=y.device)
    sse = torch.full((y.shape[0],), float("inf"), dtype=y.dtype, device=y.device)
    chosen = delay_idx.clone()
    for offset in (0, -1, 1):  # the coarse stage's delay and its two neighbours
        candidate = (delay_idx + offset).clamp(0, delays.numel() - 1)
        for j in torch.unique(candidate).tolist():
            sel = torch.nonzero(candidate == j).flatten()
            c, k, e, _ = _grid_search(spec, plasma, y[sel], delays[j : j + 1], combos)
            better = e < sse[sel]
            sel = sel[better]
            coef[sel], combo[sel], sse[sel], chosen[sel] = c[better], k[better], e[better], j
    rates = combos[combo] if combos.numel() else coef[:, :0]
    params = spec.grid.to_params(coef, rates)
    if at is None:
        return params, delays[chosen], sse
    coef_at, best_at, sse_at, _ = _grid_search(spec, plasma, y, delays[at : at + 1], combos)
    return params, delays[chosen], sse, (spec.grid.to_params(coef_at, rates_of(coef_at, best_at)), sse_at)


GRID_BLOCK_ELEMENTS = 2**20  # projections per block: the NNLS passes stay in cache (2.7× faster than 2**23)


def _grid_search(spec, plasma, y, delay_vals, combos, max_elements=GRID_BLOCK_ELEMENTS, at=None):
    """Search delays × rate combinations exhaustively by NNLS.

    Returns coef, flat index, sse per voxel and, for a delay index ``at``, the same three
    for the best rate at that delay (else ``None``).
    """
    if not combos.numel():
        combos = torch.zeros(1, 0, dtype=plasma.t.dtype, device=plasma.t.device)
    bases = _bases(spec, plasma, delay_vals, combos)
    n_d, n_c, m, n_t = bases.shape
    flat = bases.reshape(n_d * n_c, m, n_t)
    nnls = NonNegLS(flat @ flat.transpose(1, 2))
    design = flat.reshape(-1, n_t).T
    block = max(1, max_elements // (n_d * n_c * m))
    outs = [[] for _ in range(6)]
    for start in range(0, y.shape[0], block):
        yb = y[start : start + block]
        h = (yb @ design).reshape(yb.shape[0], n_d * n_c, m)
        all_decrease = nnls.decrease(h)
        rows = torch.arange(yb.shape[0], device=y.device)
        yy = (yb * yb).sum(-1)
        decrease, best = all_decrease.max(dim=1)
        parts = [nnls.solve(h[rows, best], best), best, yy - decrease]
        if at is not None:
            decrease, best = all_decrease[:, at * n_c : (at + 1) * n_c].max(dim=1)
            best = best + at * n_c
            parts += [nnls.solve(h[rows, best], best), best, yy - decrease]
        for out, part in zip(outs, parts, strict=False):
            out.append(part)
    found = [torch.cat(out) for out in outs[:3]]
    return (*found, None if at is None else tuple(torch.cat(out) for out in outs[3:]))


def murase_start(spec, plasma, y):
    """Murase linearisation for ``tofts`` / ``extended_tofts`` (no delay); ``y [N, T]``."""
    cp = plasma.at_frames()[:, 0]
    icp = plasma.convolve(plasma.sampled()[..., None], y.new_zeros(1))[:, 0, 0]
    ic = cumulative_integral(y, plasma.t)
    cols = [icp.expand_as(y), -ic] + ([cp.expand_as(y)] if "vp" in spec.params else [])
    x = torch.stack(cols, dim=-1)  # [N, T, m]
    sol, info = torch.linalg.solve_ex(x.transpose(1, 2) @ x, (x.transpose(1, 2) @ y[..., None])[..., 0])
    kep = sol[:, 1].clamp_min(1e-6 * PER_MIN)
    vp = sol[:, 2] if "vp" in spec.params else torch.zeros_like(kep)
    ktrans = sol[:, 0] - kep * vp
    params = {"Ktrans": ktrans / PER_MIN, "ve": ktrans / kep}
    if "vp" in spec.params:
        params["vp"] = vp
    bad = (info != 0) | ~torch.isfinite(sol).all(-1)
    return {k: torch.where(bad, torch.full_like(v, float("nan")), v) for k, v in params.items()}
