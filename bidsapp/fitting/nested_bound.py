"""A lower bound on the delay-0 (nested) sum of squares of the Tofts models, without a fit.

A delay fit keeps its delay where an F-test finds it significant against the fit with
the delay held at 0 (:func:`bidsapp.fitting.api._choose_nested`). That test needs the
nested sum of squares SSE₀ only to know whether it exceeds a threshold set by the
delayed fit's SSE; a *lower bound* on SSE₀ above the threshold decides the test the
same way, and the nested fit is not needed.

The bound is a convex relaxation. At delay 0 the extended Tofts model is
vp·Cp + Ktrans·E_k with E_k = Cp ⊗ e^{−k t} and k = kep (Tofts: without the Cp term),
both coefficients non-negative and k within [Ktrans_lo/ve_hi, Ktrans_hi/ve_lo] (the
fit's bounds). On a grid of rates k_0 < … < k_K (ratio :data:`RATIO`, intervals halved
until their error is below :data:`TARGET_EPS`) every E_k with k in [k_i, k_{i+1}] lies
within ε·‖E_k‖ of the cone spanned by E_{k_i} and E_{k_{i+1}} (ε measured at
:data:`SAMPLES` rates inside every interval, doubled; at least :data:`EPS_FLOOR`, which
also covers rounding; where the triple (Cp, E_{k_i}, E_{k_{i+1}}) is nearly degenerate —
at high rates E_k tends to Cp/k — the cones of Cp with either end instead). So every
model curve m lies within ε·‖m‖ of the union of the cones {Cp, E_{k_i}, E_{k_{i+1}}}
(‖Ktrans·E_k‖ ≤ ‖m‖ because ⟨Cp, E_k⟩ ≥ 0), and with d the distance of the data y to
that union — non-negative least squares on each cone, in closed form by enumerating
the subsets of its ≤ 3 generators (the best feasible subset is the NNLS solution) —

    ‖y − m‖ ≥ (d − ε‖y‖) / (1 + ε)  for every model curve m,

whose square bounds SSE₀ from below (it bounds the global minimum, so also any local
one a fit reaches). The bases are those of the delayed model read at delay 0 (the
grid start's bases, :func:`bidsapp.fitting.start.grid_start`), i.e. the model whose
SSE at the nested solution the F-test uses. On ``tests/benchmarks/bench_fit.py``'s
curves the bound is within a few per cent of SSE₀.
"""

import numpy as np
import torch

from ..models import PER_MIN
from .start import NonNegLS

RATIO = 2.0  # ratio of neighbouring rates of the relaxation's first grid
TARGET_EPS = 1e-3  # intervals are halved until twice their measured error is below this
MAX_REFINE = 8
SAMPLES = 8  # rates inside each interval at which the interpolation error is measured
EPS_FLOOR = 1e-4  # smallest relative error used (rounding of the 3 × 3 solves included)
BLOCK = 1024  # voxels per block (keeps the [block, K] temporaries in cache)


def nested_bound(spec, plasma, lower, upper):
    """Return a :class:`NestedBound` for ``spec`` at delay 0 within the parameter bounds, or ``None``.

    ``lower``/``upper`` are the fit's bounds (model parameters first, in ``spec.params``
    order; a delay bound after them is ignored). ``None`` for models without the registry's
    ``nested_bound`` flag (all but Tofts and extended Tofts), for bounds that allow negative coefficients,
    and for an AIF whose
    bases are not mutually non-negative (then the relaxation above does not hold).
    """
    if not spec.nested_bound:
        return None
    bound = dict(zip(spec.params, zip(lower.tolist(), upper.tolist(), strict=True), strict=False))
    (k_lo, k_hi), (ve_lo, ve_hi) = bound["Ktrans"], bound["ve"]
    if k_lo < 0.0 or ve_lo <= 0.0 or bound.get("vp", (0.0, 0.0))[0] < 0.0:
        return None
    t = plasma.t
    span = float(t[-1] - t[0])
    rate_lo, rate_hi = k_lo * PER_MIN / ve_hi, k_hi * PER_MIN / ve_lo
    first = max(rate_lo, 1e-3 / span)  # e^{−k t} within 0.1 % of 1 over the acquisition below it
    if not rate_hi > first:  # rates too small to matter: no bound
        return None
    rates = np.geomspace(first, rate_hi, max(int(np.ceil(np.log(rate_hi / first) / np.log(RATIO))), 1) + 1)
    if rate_lo < first:
        rates = np.concatenate([[rate_lo], rates])
    rates = torch.as_tensor(rates, dtype=t.dtype, device=t.device)
    fixed = plasma.locate(t.new_zeros(1)).value[:, 0] if "vp" in spec.params else None
    for refine in range(MAX_REFINE + 1):
        err = _interpolation_error(plasma, rates, fixed)
        if err is None:
            return None
        coarse = err > 0.5 * TARGET_EPS
        if refine == MAX_REFINE or not bool(coarse.any()):
            break
        left, right = rates[:-1][coarse], rates[1:][coarse]
        middle = torch.where(left > 0, (left * right).sqrt(), 0.5 * right)
        rates = torch.sort(torch.cat([rates, middle])).values
    eps = 2.0 * float(err.max())
    return NestedBound(fixed, _conv(plasma, rates), max(eps, EPS_FLOOR))


def _interpolation_error(plasma, rates, fixed):
    """Return the largest relative distance ``[K]`` of E_k to the searched cones.

    E_k has k inside each interval of ``rates``; the cones that :class:`NestedBound` searches for that
    interval (at :data:`SAMPLES` rates):
    the cone of E at the interval's ends, or — where the triple (Cp, E_i, E_{i+1}) is too
    ill-conditioned to be searched — the cones of Cp with either end. ``None`` where the
    relaxation does not hold (some ⟨Cp, E_k⟩ < 0, or a pair too ill-conditioned).
    """
    t = plasma.t
    points = _conv(plasma, rates)  # [K + 1, T]
    frac = torch.arange(1, SAMPLES + 1, dtype=t.dtype, device=t.device) / (SAMPLES + 1)
    left, right = rates[:-1, None], rates[1:, None]
    inside = torch.where(left > 0, left * (right / left.clamp_min(1e-300)) ** frac, right * frac)  # [K, S]
    samples = _conv(plasma, inside.reshape(-1)).reshape(rates.numel() - 1, SAMPLES, -1)
    if fixed is not None and bool(((points @ fixed) < 0).any() | ((samples @ fixed) < 0).any()):
        return None
    bound = NestedBound(fixed, points, EPS_FLOOR)
    if not bound.usable:
        return None
    norm2 = (samples * samples).sum(-1)  # [K, S]
    err2 = norm2 - _cone_decrease(samples, torch.stack([points[:-1], points[1:]], dim=1))
    if fixed is not None:
        dropped = ~bound.triple_ok
        if bool(dropped.any()):
            with_fixed = [
                torch.stack([fixed.expand_as(end), end], dim=1) for end in (points[:-1], points[1:])
            ]
            near = torch.minimum(*(norm2 - _cone_decrease(samples, pair) for pair in with_fixed))
            err2 = torch.where(dropped[:, None], near, err2)
    return (err2.clamp_min(0.0) / norm2.clamp_min(1e-300)).sqrt().amax(1)


def _cone_decrease(samples, pair):
    """NNLS decrease ``[K, S]`` of the curves ``samples [K, S, T]`` on the cones of ``pair [K, 2, T]``."""
    nnls = NonNegLS(pair @ pair.transpose(1, 2))
    return nnls.decrease(torch.einsum("kst,kmt->skm", samples, pair)).T


def _conv(plasma, rates):
    """E_k = Cp ⊗ e^{−k t} at the frames, read as the delayed model reads it at delay 0: ``[K, T]``."""
    return plasma.delayed_convolve(rates, plasma.locate(torch.zeros_like(rates))).T.contiguous()


MAX_CONDITION = 1e5  # largest condition number of a searched subset of bases (see NestedBound)


class NestedBound:
    """Lower bound on the delay-0 sum of squares, ``bound(y [n, T]) -> [n]`` (see the module docstring).

    ``fixed [T]`` is the plasma basis (``None`` for Tofts), ``points [K + 1, T]`` the
    convolution bases on the rate grid, ``eps`` their relative interpolation error.
    The NNLS decrease ``yᵀy − SSE`` of every cone is the largest over the subsets of its
    generators whose least-squares coefficients are all non-negative: the single bases,
    the pairs (Cp, E_i) and (E_i, E_{i+1}) and the triples (Cp, E_i, E_{i+1}). Each subset
    is solved in the orthonormal coordinates z = L⁻¹Bᵀy of its Gram matrix's Cholesky
    factor L (decrease ‖z‖², coefficients L⁻ᵀz), whose rounding error grows with the
    condition number only linearly; subsets whose bases have a condition number above
    :data:`MAX_CONDITION` are not searched (``usable`` is False if that is a pair; a
    triple is then covered by its pairs with Cp, see :func:`_interpolation_error`).
    """

    def __init__(self, fixed, points, eps):
        self.eps = eps
        self.has_fixed = fixed is not None
        self.design = (
            torch.cat([fixed[None], points]) if self.has_fixed else points
        ).T.contiguous()  # [T, B]
        gram = self.design.T @ self.design
        f = 1 if self.has_fixed else 0
        ge = torch.diagonal(gram)[f:]
        self.ee = _Cholesky(ge[:-1], gram[f:, f:].diagonal(1), ge[1:])  # (E_i, E_{i+1})
        self.norm_e = ge.clamp_min(1e-300).sqrt()
        self.usable = bool(self.ee.condition.le(MAX_CONDITION).all())
        self.fe = self.triple_ok = None
        if self.has_fixed:
            self.fe = _Cholesky(gram[0, 0].expand_as(ge), gram[0, f:], ge)  # (Cp, E_i)
            self.usable &= bool(self.fe.condition.le(MAX_CONDITION).all())
            # the triple (Cp, E_i, E_{i+1}): third column of its Cholesky factor
            l20, l21 = (
                self.fe.l10[1:],
                (gram[f:, f:].diagonal(1) - self.fe.l10[:-1] * self.fe.l10[1:]) / self.fe.l11[:-1],
            )
            l22 = (ge[1:] - l20 * l20 - l21 * l21).clamp_min(0.0).sqrt()
            trip = torch.stack(
                [
                    torch.zeros_like(ge[1:], dtype=torch.long),
                    torch.arange(1, ge.numel(), device=ge.device),
                    torch.arange(2, ge.numel() + 1, device=ge.device),
                ],
                dim=1,
            )
            cond = torch.linalg.cond(self.design[:, trip].permute(1, 0, 2))
            self.triple_ok = torch.isfinite(cond) & (cond <= MAX_CONDITION) & (l22 > 0)
            self.l20, self.l21, self.l22 = l20, l21, torch.where(self.triple_ok, l22, torch.ones_like(l22))

    def __call__(self, y):
        """Return the lower bound ``[n]`` (mM²) on the delay-0 SSE of the curves ``y`` ``[n, T]``."""
        out = torch.empty(y.shape[0], dtype=y.dtype, device=y.device)
        for first in range(0, y.shape[0], BLOCK):
            out[first : first + BLOCK] = self._block(y[first : first + BLOCK])
        return out

    def _block(self, y):
        h = y @ self.design  # [n, B]
        h_e = h[:, 1:] if self.has_fixed else h
        z_e = h_e / self.norm_e
        best = z_e.clamp_min(0.0).square_()  # single E_k
        best[:, :-1] = torch.maximum(best[:, :-1], self.ee.decrease(z_e[:, :-1], h_e[:, 1:]))
        if self.has_fixed:
            z0 = h[:, :1] / self.fe.l00[0]
            best = torch.maximum(best, z0.clamp_min(0.0).square())  # Cp alone
            z1 = (h_e - self.fe.l10 * z0) / self.fe.l11
            best = torch.maximum(best, self.fe.decrease(z0, h_e, z1))
            z1a = z1[:, :-1]
            z2 = (h_e[:, 1:] - self.l20 * z0).addcmul_(z1a, self.l21, value=-1.0).div_(self.l22)
            c2 = z2 / self.l22
            c1 = (z1a - self.l21 * c2) / self.fe.l11[:-1]
            c0 = (z0 - self.fe.l10[:-1] * c1 - self.l20 * c2) / self.fe.l00[0]
            feasible = (c0 >= 0) & (c1 >= 0) & (c2 >= 0) & self.triple_ok
            gain = torch.addcmul(z0 * z0, z1a, z1a).addcmul_(z2, z2).mul_(feasible)
            best[:, :-1] = torch.maximum(best[:, :-1], gain)
        yy = (y * y).sum(-1)
        dist = (yy - best.amax(-1)).clamp_min(0.0).sqrt()
        return ((dist - self.eps * yy.sqrt()) / (1.0 + self.eps)).clamp_min(0.0).square()


class _Cholesky:
    """Pairs of bases with Gram entries ``g00, g01, g11 [J]``.

    Holds the Cholesky factor
    [[l00, 0], [l10, l11]] and the least-squares decrease where both coefficients are
    non-negative (else 0; single bases are counted separately).
    """

    def __init__(self, g00, g01, g11):
        self.l00 = g00.clamp_min(1e-300).sqrt()
        self.l10 = g01 / self.l00
        self.l11 = (g11 - self.l10 * self.l10).clamp_min(1e-300).sqrt()
        self.condition = _condition_2x2(g00, g01, g11)

    def decrease(self, z0, h1, z1=None):
        """Decrease for first coordinates ``z0`` (h0/l00) and second projections ``h1``."""
        if z1 is None:
            z1 = (h1 - self.l10 * z0) / self.l11
        c1 = z1 / self.l11
        feasible = (c1 >= 0) & (z0 >= self.l10 * c1)  # c0 = (z0 − l10·c1)/l00 ≥ 0
        return torch.addcmul(z0 * z0, z1, z1).mul_(feasible)


def _condition_2x2(g00, g01, g11):
    """Condition number of the bases of a pair (square root of that of its Gram matrix)."""
    mean, det = 0.5 * (g00 + g11), g00 * g11 - g01 * g01
    root = (mean * mean - det).clamp_min(0.0).sqrt()
    small = (mean - root).clamp_min(0.0)
    return torch.where(
        small > 0, ((mean + root) / small.clamp_min(1e-300)).sqrt(), torch.full_like(mean, float("inf"))
    )
