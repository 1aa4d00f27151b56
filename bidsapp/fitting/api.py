"""Public fitting API: :func:`fit_model` and :func:`patlak_linear`.

Method (written out in ``docs/fitting.md``):

1. Voxels with a non-finite sample or outside ``mask`` are not fitted (NaN parameters,
   ``valid`` False); an all-zero AIF, mismatched lengths or non-monotonic times are
   the caller's errors (``ValueError``).
2. Voxels are processed in chunks (bounded memory for whole volumes, same code on CPU
   and CUDA, float64 throughout).
3. Starting values: a rate × delay grid with non-negative linear least squares for the
   coefficients (variable projection); for Tofts / extended Tofts without delay also
   Murase's linearisation — the start with the lower exact sum of squares wins.
4. Batched bounded Levenberg–Marquardt with analytic Jacobians of the exact model
   (:mod:`bidsapp.fitting.problem`, :mod:`bidsapp.fitting.lm`).
5. Standard errors from the Jacobian at the solution, scaled by the residual variance:
   cov = σ²·(JᵀJ)⁻¹ over the free parameters (a parameter on a bound has none), σ² =
   SSE/(T − P); derived kep by the delta method.
6. ve and kep are reported as NaN where the data cannot determine them
   (:func:`_not_estimable`): transfer not significantly above zero, or ve on its upper
   bound (no washout within the acquisition).
7. Validity rule (``FitResult.valid``): converged, R² finite and ≥ ``min_r2`` (default
   0: no worse than a constant), every determined parameter finite with a finite
   standard error unless on a bound, no determined parameter at its *upper* bound (the
   box was too small: the value is not an estimate), the delay (if fitted) not at
   either bound, and ve + vp ≤ 1 where ve is determined.
8. Delay fits: the delay grid contains 0 s; the delay-0 (nested) fit starts from the
   same grid search; voxels whose grid start and nested solution sit at a minimum on
   0 s get no delayed fit, and for the others the nested fit runs only where a lower
   bound on its SSE (:mod:`bidsapp.fitting.nested_bound`) does not already decide the
   F-test below (:func:`_fit_with_nested`); voxels whose delay converges
   onto a kink of the piecewise-linear AIF are finished with the delay held there
   (:func:`_finish_on_kinks`); the delay is kept only where an F-test finds it
   significant against the nested fit, which is reported elsewhere — never
   a fit above the nested one (:func:`_choose_nested`).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.special import fdtri

from ..convolution import frame_phases
from ..models import PlasmaInput, evaluate, get_model, prepare_inputs
from ..results import METHOD_LINEAR, FitResult
from .device import resolve_device
from .lm import LMResult, levenberg_marquardt, normal_matrix
from .nested_bound import nested_bound
from .problem import KineticProblem
from .start import delay_grid, grid_start, murase_start

LOGGER = logging.getLogger("dcequant.fitting")


@dataclass
class FitOptions:
    """Options of :func:`fit_model` (passed as keyword arguments).

    bounds : dict name -> (lower, upper) overriding :data:`bidsapp.MODELS` bounds.
    delay : fixed bolus delay in s (scalar or leading-shape array) when not fitted.
    delay_bounds : (lower, upper) in s for ``fit_delay=True``.
    init : ``"auto"`` (grid, plus Murase for Tofts models), ``"grid"`` or ``"linear"``.
    max_iter, ftol, xtol : Levenberg–Marquardt stopping rules.
    min_r2 : smallest R² for a valid voxel.
    aif_times : time grid (s) of ``aif`` when it is not sampled at the frame times
        ``t`` — e.g. an analytic population AIF on a 0.5 s grid; the convolution then
        resolves the first pass between frames (see :class:`bidsapp.models.PlasmaInput`).
    substeps : sub-steps per frame interval in the undelayed convolution (default:
        enough to resolve ``aif_times``, else 1). Delayed models read the exact
        undelayed response on the AIF's own grid at t − delay and need none.
    delay_significance : with ``fit_delay``, the significance level of the F-test that
        keeps a fitted delay over the delay-0 (nested) fit (default 0.05; 1 keeps every
        fitted delay whose fit is below the nested one). See :func:`_choose_nested`.
    chunk_size : voxels per chunk (default 32768 on CPU, 131072 on CUDA).
    progress : callable ``progress(done, total)`` called after each chunk.
    """

    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    delay: float | ArrayLike | None = None
    delay_bounds: tuple[float, float] = (-10.0, 30.0)
    init: str = "auto"
    max_iter: int = 100
    ftol: float = 1e-6
    xtol: float = 1e-6
    min_r2: float = 0.0
    aif_times: ArrayLike | None = None
    substeps: int | None = None
    delay_significance: float = 0.05
    chunk_size: int | None = None
    progress: Callable[[int, int], None] | None = None

    @classmethod
    def from_kwargs(cls, kwargs: dict) -> "FitOptions":
        """Build and check the options from ``fit_model``'s keywords.

        Raises ``ValueError`` naming the keyword for an unknown option, an unknown ``init``,
        empty ``delay_bounds`` or a ``delay_significance`` outside (0, 1].
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(
                f"fit_model: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        opts = cls(**kwargs)
        if opts.init not in ("auto", "grid", "linear"):
            raise ValueError(f"init: expected 'auto', 'grid' or 'linear', got {opts.init!r}")
        lo, hi = opts.delay_bounds
        if not lo < hi:
            raise ValueError(f"delay_bounds: lower {lo} must be below upper {hi}")
        if not 0.0 < opts.delay_significance <= 1.0:
            raise ValueError(f"delay_significance: expected a level in (0, 1], got {opts.delay_significance}")
        return opts


def _bounds(spec, opts, fit_delay, device):
    bounds = {**spec.bounds, **opts.bounds}
    unknown = sorted(set(opts.bounds) - set(spec.params))
    if unknown:
        raise ValueError(f"bounds: {', '.join(unknown)} not parameters of {spec.name!r}")
    pairs = [bounds[n] for n in spec.params] + ([tuple(opts.delay_bounds)] if fit_delay else [])
    for name, (lo, hi) in zip(spec.params, pairs, strict=False):
        if not lo < hi:
            raise ValueError(f"bounds: {name} lower {lo} must be below upper {hi}")
    lo = torch.tensor([p[0] for p in pairs], dtype=torch.float64, device=device)
    hi = torch.tensor([p[1] for p in pairs], dtype=torch.float64, device=device)
    return lo, hi


def _as_voxels(concentration, n_t, mask):
    conc = np.asarray(concentration)
    if conc.ndim < 1 or conc.shape[-1] != n_t:
        raise ValueError(
            f"concentration: last axis has {conc.shape[-1] if conc.ndim else 0} frames but t has {n_t}"
        )
    lead = conc.shape[:-1]
    flat = conc.reshape(-1, n_t)
    use = np.isfinite(flat).all(-1)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != lead:
            raise ValueError(
                f"mask: shape {mask.shape} does not match the concentration's voxel shape {lead}"
            )
        use &= mask.reshape(-1).astype(bool)
    return flat, lead, use


def _starting_values(spec, opts, fit_delay, fixed_delay, plasma, y, lo, hi):
    """Return the starting θ ``[n, P]``: grid (all models), Murase (Tofts models), or the better of both."""
    if opts.init == "linear" and spec.linear_start and not fit_delay and fixed_delay is None:
        lin = murase_start(spec, plasma, y)
        return torch.nan_to_num(torch.stack([lin[n] for n in spec.params], dim=1), nan=0.0)
    if fit_delay:
        delays = _delays(opts, plasma)
    elif fixed_delay is not None:  # one representative delay is enough for a start
        delays = fixed_delay.median().reshape(1)
    else:
        delays = None
    params, delay, sse_grid = grid_start(spec, plasma, y, delays)
    if fit_delay or fixed_delay is not None:
        theta = torch.stack([params[n] for n in spec.params] + ([delay] if fit_delay else []), dim=1)
        return _clamp(theta, lo, hi)
    return _undelayed_start(spec, opts, plasma, y, params, sse_grid, lo, hi)


def _delays(opts, plasma):
    """Return the delay grid (s) of the start of a delay fit (:func:`bidsapp.fitting.start.delay_grid`)."""
    t = plasma.t
    return torch.as_tensor(delay_grid(t.cpu().numpy(), opts.delay_bounds), dtype=t.dtype, device=t.device)


def _clamp(theta, lo, hi):
    return torch.maximum(torch.minimum(torch.nan_to_num(theta, nan=0.0), hi), lo)


def _undelayed_start(spec, opts, plasma, y, params, sse_grid, lo, hi):
    """Return the start of an undelayed fit.

    Start of an undelayed fit from the grid's best ``params`` (SSE ``sse_grid``); with ``init="auto"`` for the
    Tofts models, the better of it and Murase's linearisation.
    """
    theta = torch.stack([params[n] for n in spec.params], dim=1)
    clamped = _clamp(theta, lo, hi)
    if opts.init != "auto" or not spec.linear_start:
        return clamped
    # the grid's NNLS residual is the exact SSE of its start unless the bounds clipped it
    p = {n: clamped[:, i] for i, n in enumerate(spec.params)}
    moved = (clamped != theta).any(-1)
    if moved.any():
        sse_grid = torch.where(moved, ((y - evaluate(spec, p, plasma)) ** 2).sum(-1), sse_grid)
    lin = murase_start(spec, plasma, y)
    theta_lin = torch.stack([lin[n] for n in spec.params], dim=1)
    finite = torch.isfinite(theta_lin).all(-1)
    theta_lin = _clamp(theta_lin, lo, hi)
    p = {n: theta_lin[:, i] for i, n in enumerate(spec.params)}
    sse_lin = ((y - evaluate(spec, p, plasma)) ** 2).sum(-1)
    return torch.where((finite & (sse_lin < sse_grid))[:, None], theta_lin, clamped)


def _delay_starts(spec, opts, plasma, y, lo, hi):
    """Return the starts of a delay fit and of its delay-0 (nested) fit from one grid search.

    Returns the delayed start θ ``[n, P]`` (delay last) and the grid's best point at
    delay 0 (the delay grid contains 0 s) as parameters ``[n, P − 1]`` with its SSE
    ``[n]``; :func:`_undelayed_start` turns the latter into the nested fit's start.
    """
    delays = _delays(opts, plasma)
    zero = int(torch.nonzero(delays == 0.0).flatten()[0])
    params, delay, _, (params0, sse0) = grid_start(spec, plasma, y, delays, at=zero)
    theta = _clamp(torch.stack([params[n] for n in spec.params] + [delay], dim=1), lo, hi)
    return theta, torch.stack([params0[n] for n in spec.params], dim=1), sse0


def _standard_errors(jtj, sse, theta, lower, upper, n_t):
    """Return the standard errors and covariance of the free parameters: σ²·(JᵀJ)⁻¹, σ² = SSE/(T − P).

    A parameter on a bound is held there by the fit, so it has no standard error (NaN)
    and is left out of the inverse; the others' covariance is that of the fit with it
    fixed (as lmfit and MINPACK-based codes report).
    """
    tol = 1e-9 * torch.clamp(upper.abs(), min=1.0)
    free = (theta > lower + tol) & (theta < upper - tol)
    f = free.to(jtj.dtype)
    reduced = jtj * (f[:, :, None] * f[:, None, :]) + torch.diag_embed(1.0 - f)
    inv, info = torch.linalg.inv_ex(reduced)
    n_free = free.sum(-1).clamp_min(1)
    sigma2 = sse / (n_t - n_free).clamp_min(1)
    cov = inv * (f[:, :, None] * f[:, None, :]) * sigma2[:, None, None]
    var = torch.diagonal(cov, dim1=1, dim2=2)
    ok = (info == 0)[:, None] & free & (var >= 0)
    nan = torch.full_like(var, float("nan"))
    cov = torch.where((info == 0)[:, None, None], cov, torch.full_like(cov, float("nan")))
    return torch.where(ok, var.clamp_min(0).sqrt(), nan), cov


FIRST_PASS_ITERATIONS = 15


class _Outputs:
    """Per-voxel result arrays of one fit (filled chunk by chunk)."""

    def __init__(self, n_vox, n_p):
        self.theta = np.full((n_vox, n_p), np.nan)
        self.se = np.full((n_vox, n_p), np.nan)
        self.cov = np.full((n_vox, n_p, n_p), np.nan)
        self.sse = np.full(n_vox, np.nan)
        self.r2 = np.full(n_vox, np.nan)
        self.converged = np.zeros(n_vox, dtype=bool)

    def store(self, sel, y, res, n_t, lower, upper):
        if sel.size == 0:
            return
        se, cov = _standard_errors(res.jtj, res.sse, res.theta, lower, upper, n_t)
        sst = ((y - y.mean(-1, keepdim=True)) ** 2).sum(-1)
        r2 = torch.where(
            sst > 0,
            1.0 - res.sse / sst.clamp_min(1e-300),
            torch.where(res.sse <= 1e-300, torch.ones_like(sst), torch.zeros_like(sst)),
        )
        self.theta[sel] = res.theta.cpu().numpy()
        self.se[sel] = se.cpu().numpy()
        self.cov[sel] = cov.cpu().numpy()
        self.sse[sel] = res.sse.cpu().numpy()
        self.r2[sel] = r2.cpu().numpy()
        self.converged[sel] = res.converged.cpu().numpy()


def _take(res, keep):
    """Return the part of an :class:`LMResult` for the voxels in ``keep``."""
    keep = torch.as_tensor(keep, device=res.theta.device)
    return type(res)(res.theta[keep], res.sse[keep], res.jtj[keep], res.converged[keep], res.n_iter[keep])


def _voxels(flat, sel, dev):
    """Curves ``[len(sel), T]`` of the voxels ``sel`` as float64 on ``dev``."""
    return torch.as_tensor(np.asarray(flat[sel], dtype=np.float64), device=dev)


def _chunk_problem(spec, plasma, flat, fixed, sel, fit_delay, dev):
    y = _voxels(flat, sel, dev)
    delay = None if fixed is None else torch.as_tensor(fixed[sel], dtype=torch.float64, device=dev)
    return y, KineticProblem(spec, plasma, delay=delay, fit_delay=fit_delay)


def _fit_chunks(
    spec, opts, plasma, flat, todo, fixed, fit_delay, dev, lo, hi, chunk, start_fn, progress, out=None
):
    """Run Levenberg–Marquardt for the voxels ``todo`` in chunks.

    Returns the :class:`_Outputs` (``out`` if given, with the voxels ``todo`` filled in).

    ``start_fn(y, problem, sel)`` gives the starting θ of a chunk. Each chunk runs
    :data:`FIRST_PASS_ITERATIONS`; voxels still moving then continue together, so the
    slow tail of every chunk costs one batch instead of one batch per chunk.
    """
    n_t = plasma.t.numel()
    out = _Outputs(flat.shape[0], lo.numel()) if out is None else out
    first_pass = min(FIRST_PASS_ITERATIONS, opts.max_iter)
    pending_idx, pending_theta = [], []
    for start in range(0, todo.size, chunk):
        sel = todo[start : start + chunk]
        y, problem = _chunk_problem(spec, plasma, flat, fixed, sel, fit_delay, dev)
        theta0 = start_fn(y, problem, sel)
        res = levenberg_marquardt(
            problem.predict, y.T.contiguous(), theta0, lo, hi, first_pass, opts.ftol, opts.xtol
        )
        unfinished = (
            (~res.converged).cpu().numpy() if opts.max_iter > first_pass else np.zeros(sel.size, bool)
        )
        out.store(sel[~unfinished], y[~unfinished], _take(res, ~unfinished), n_t, lo, hi)
        pending_idx.append(sel[unfinished])
        pending_theta.append(res.theta[unfinished])
        LOGGER.debug("first pass: %d/%d voxels (%s)", start + sel.size, todo.size, spec.name)
        progress(start + sel.size, todo.size)
    pending = np.concatenate(pending_idx) if pending_idx else np.zeros(0, dtype=int)
    if pending.size:
        theta_rest = torch.cat(pending_theta)
        if fit_delay:
            pending, theta_rest = _finish_on_kinks(
                spec, opts, plasma, flat, pending, theta_rest, dev, lo, hi, opts.max_iter - first_pass, out
            )
        for start in range(0, pending.size, chunk):
            sel = pending[start : start + chunk]
            y, problem = _chunk_problem(spec, plasma, flat, fixed, sel, fit_delay, dev)
            res = levenberg_marquardt(
                problem.predict,
                y.T.contiguous(),
                theta_rest[start : start + chunk],
                lo,
                hi,
                opts.max_iter - first_pass,
                opts.ftol,
                opts.xtol,
            )
            out.store(sel, y, res, n_t, lo, hi)
    return out


KINK_TOLERANCE = 0.01  # a delay this close to a kink (in AIF grid steps) after the first pass sits on it
KINK_PROBE = 1e-4  # the kink is a minimum along the delay if the SSE rises this far (in steps) on both sides


def _finish_on_kinks(spec, opts, plasma, flat, pending, theta, dev, lo, hi, max_iter, out):
    """Finish the voxels whose delay converges onto a kink with the delay held there.

    With a piecewise-linear AIF on a uniform grid of step δ the sum of squares has kinks
    where delayed read-outs cross AIF samples, at delays (p + m)·δ for the frame phases p
    on the grid (:func:`bidsapp.convolution.frame_phases`). A minimum on a kink has
    one-sided derivatives, and Levenberg–Marquardt zig-zags onto it with many small steps:
    these voxels made most of the slow tail. A voxel still moving after the first pass
    whose delay lies within :data:`KINK_TOLERANCE` steps of a kink has its delay put on
    the kink and its other parameters finished with the delay held. If the sum of squares
    then rises both :data:`KINK_PROBE` steps before and after the kink, the kink is the
    minimum along the delay and the voxel is stored (its standard errors from the
    one-sided Jacobian, as before); otherwise it continues with the delay free from the
    lower side of the kink, where the derivative points the way down.
    Returns the voxels and starting θ that continue with the delay free.
    """
    phases = frame_phases(plasma.aif_times, plasma.t)
    if phases is None:
        return pending, theta
    step = phases.delta
    delay = theta[:, -1]
    units = delay[:, None] / step - phases.distinct[None, :]  # [n, U]
    nearest = (units.round() + phases.distinct[None, :]) * step
    dist = (delay[:, None] - nearest).abs()
    kink = nearest.gather(1, dist.argmin(1, keepdim=True))[:, 0]
    on = (dist.min(1).values <= KINK_TOLERANCE * step) & (kink > lo[-1]) & (kink < hi[-1])
    if not bool(on.any()):
        return pending, theta
    sel = pending[on.cpu().numpy()]
    fixed = np.zeros(flat.shape[0])
    fixed[sel] = kink[on].cpu().numpy()
    y, problem = _chunk_problem(spec, plasma, flat, fixed, sel, False, dev)
    res = levenberg_marquardt(
        problem.predict, y.T.contiguous(), theta[on, :-1], lo[:-1], hi[:-1], max_iter, opts.ftol, opts.xtol
    )
    theta_k = torch.cat([res.theta, kink[on, None]], dim=1)
    probe = KINK_PROBE * step
    shift = torch.zeros_like(theta_k)
    sse_at = []
    for h in (-probe, probe):
        shift[:, -1] = h
        sse_at.append(_sse(spec, plasma, theta_k + shift, y))
    minimum = (sse_at[0] >= res.sse) & (sse_at[1] >= res.sse)
    full = KineticProblem(spec, plasma, fit_delay=True)
    keep = minimum.cpu().numpy()
    if keep.any():
        pred, jac = full.predict(theta_k[minimum], None)
        resid = y[minimum].T - pred
        done = LMResult(
            theta_k[minimum],
            (resid * resid).sum(0),
            normal_matrix(jac),
            res.converged[minimum],
            res.n_iter[minimum],
        )
        out.store(sel[keep], y[minimum], done, plasma.t.numel(), lo, hi)
    go_on = torch.ones(pending.size, dtype=torch.bool, device=theta.device)
    go_on[torch.nonzero(on).flatten()[minimum]] = False
    theta = theta.clone()
    theta_k[:, -1] += torch.where(sse_at[1] < sse_at[0], probe, -probe)  # off the kink, on its lower side
    theta[on] = theta_k
    mask = go_on.cpu().numpy()
    return pending[mask], theta[go_on]


def _nested_applies(opts):
    """Whether a delay fit is checked against its delay-0 (nested) fit: 0 s lies inside ``delay_bounds``."""
    lo, hi = opts.delay_bounds
    return lo < 0.0 < hi


def _fit_with_nested(spec, opts, plasma, flat, todo, dev, lo, hi, chunk, progress):
    """Fit with a delay and check it against its delay-0 (nested) fit.

    A delay fit checked against its delay-0 (nested) fit; returns its :class:`_Outputs` and the voxels (bool
    ``[n_vox]``) that report the nested fit.

    One grid search gives the starts of both fits (:func:`_delay_starts`): the nested
    fit starts from the grid's best point at delay 0 (or Murase's), not from a second
    grid search. Voxels whose grid start is at delay 0 — no other delay of the grid fits
    better — get the nested fit first; where its solution is a minimum along the delay
    (:func:`_minimum_at_zero`) the delayed fit is not run, and the voxel reports the
    nested fit. The others get the delayed fit from their grid start. Where a lower
    bound on the nested sum of squares (:mod:`bidsapp.fitting.nested_bound`) already
    makes the delayed fit significant, the nested fit cannot change the outcome and is
    not run; the remaining voxels get it, and :func:`_choose_nested` decides per voxel.
    """
    n_vox, n_p = flat.shape[0], lo.numel()
    grid_theta = np.full((n_vox, n_p), np.nan)
    zero_params = np.full((n_vox, n_p - 1), np.nan)
    zero_sse = np.full(n_vox, np.nan)
    for first in range(0, todo.size, chunk):
        sel = todo[first : first + chunk]
        theta, params0, sse_grid = _delay_starts(spec, opts, plasma, _voxels(flat, sel, dev), lo, hi)
        grid_theta[sel], zero_params[sel], zero_sse[sel] = (
            a.cpu().numpy() for a in (theta, params0, sse_grid)
        )

    def nested_start(y, problem, sel):
        params0 = {n: torch.as_tensor(zero_params[sel, i], device=dev) for i, n in enumerate(spec.params)}
        return _undelayed_start(
            spec, opts, plasma, y, params0, torch.as_tensor(zero_sse[sel], device=dev), lo[:-1], hi[:-1]
        )

    nested = _Outputs(n_vox, n_p - 1)
    theta0, sse0 = np.full((n_vox, n_p), np.nan), np.full(n_vox, np.nan)

    def fit_nested(sel):
        _fit_chunks(
            spec,
            opts,
            plasma,
            flat,
            sel,
            None,
            False,
            dev,
            lo[:-1],
            hi[:-1],
            chunk,
            nested_start,
            lambda done, total: None,
            out=nested,
        )
        theta0[sel] = np.concatenate([nested.theta[sel], np.zeros((sel.size, 1))], axis=1)
        sse0[sel] = _delayed_sse(spec, opts, plasma, flat, sel, theta0, nested.sse, dev, chunk)

    at_zero = todo[grid_theta[todo, -1] == 0.0]
    fit_nested(at_zero)
    settled = at_zero[_minimum_at_zero(spec, plasma, flat, at_zero, theta0, sse0, dev, chunk)]
    fitted = np.setdiff1d(todo, settled, assume_unique=True)
    LOGGER.debug("delay fit: %d/%d voxels settled at delay 0 by the nested fit", settled.size, todo.size)
    out = _fit_chunks(
        spec,
        opts,
        plasma,
        flat,
        fitted,
        None,
        True,
        dev,
        lo,
        hi,
        chunk,
        lambda y, problem, sel: torch.as_tensor(grid_theta[sel], device=dev),
        lambda done, total: progress(settled.size + done, todo.size),
    )
    rest = np.setdiff1d(fitted, at_zero, assume_unique=True)
    certified = _certified(spec, opts, plasma, flat, rest, out.sse, lo, hi, dev, chunk)
    LOGGER.debug(
        "delay fit: %d/%d voxels significant by the bound on the delay-0 fit", certified.size, todo.size
    )
    fit_nested(np.setdiff1d(rest, certified, assume_unique=True))
    compared = np.setdiff1d(todo, certified, assume_unique=True)
    return out, _choose_nested(opts, flat, compared, lo, out, nested, theta0, sse0)


def _delayed_sse(spec, opts, plasma, flat, sel, theta0, sse, dev, chunk):
    """Return the sum of squares ``[len(sel)]`` of the delayed model at the nested solutions.

    The solutions are ``theta0[sel]`` (delay 0 appended): the nested fit's own ``sse[sel]`` unless the
    undelayed model
    sub-steps the AIF (``aif_times``), where the two differ slightly.
    """
    if opts.aif_times is None:
        return sse[sel]
    out = np.empty(sel.size)
    for first in range(0, sel.size, chunk):
        part = sel[first : first + chunk]
        out[first : first + part.size] = (
            _sse(spec, plasma, torch.as_tensor(theta0[part], device=dev), _voxels(flat, part, dev))
            .cpu()
            .numpy()
        )
    return out


def _certified(spec, opts, plasma, flat, sel, sse_d, lo, hi, dev, chunk):
    """Return the voxels of ``sel`` whose delayed fit wins against any delay-0 fit.

    These are the voxels whose delayed fit (SSE ``sse_d[sel]``) the F-test of
    :func:`_choose_nested` keeps against any delay-0 fit: significant already against
    the lower bound of :func:`bidsapp.fitting.nested_bound.nested_bound` on its sum of
    squares (none where the model has no such bound).
    """
    bound = nested_bound(spec, plasma, lo, hi) if sel.size else None
    if bound is None:
        return sel[:0]
    dof, critical = _f_test(opts, flat.shape[1], lo.numel())
    keep = np.zeros(sel.size, dtype=bool)
    for first in range(0, sel.size, chunk):
        part = sel[first : first + chunk]
        low = bound(_voxels(flat, part, dev)).cpu().numpy()
        keep[first : first + part.size] = _significant(low, sse_d[part], dof, critical)
    return sel[keep]


def _f_test(opts, n_t, n_p):
    """Residual degrees of freedom of the delayed model and the F₁,T−P(1 − α) quantile."""
    dof = max(n_t - n_p, 1)
    return dof, fdtri(1, dof, 1.0 - opts.delay_significance)


def _significant(sse0, sse_d, dof, critical):
    """Return whether a delayed fit (SSE ``sse_d``) improves significantly on a delay-0 fit (SSE ``sse0``).

    F = (SSE₀ − SSE)·(T − P)/SSE above ``critical``, and SSE finite and below SSE₀.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        significant = (sse0 - sse_d) * dof > critical * sse_d
    return significant & np.isfinite(sse_d) & (sse_d < sse0)


def _minimum_at_zero(spec, plasma, flat, sel, theta0, sse0, dev, chunk):
    """Return whether the nested solutions ``theta0[sel]`` (delay 0 appended) are minima along the delay.

    Bool ``[len(sel)]``.

    0 s is a kink of the sum of squares along the delay (see :func:`_finish_on_kinks`).
    The nested fit minimises over the other parameters with the delay held there; if
    the sum of squares ``sse0`` rises :data:`KINK_PROBE` AIF grid steps before and after
    0 s, the point is a minimum of the delayed fit too (the rule of
    :func:`_finish_on_kinks`). All False when the AIF grid is not uniform (no kink rule).
    """
    minimum = np.zeros(sel.size, dtype=bool)
    phases = frame_phases(plasma.aif_times, plasma.t)
    if phases is None:
        return minimum
    probe = KINK_PROBE * phases.delta
    for first in range(0, sel.size, chunk):
        part = sel[first : first + chunk]
        y = _voxels(flat, part, dev)
        theta = torch.as_tensor(theta0[part], device=dev)
        ref = torch.as_tensor(sse0[part], device=dev)
        ok = torch.ones(part.size, dtype=torch.bool, device=dev)
        for h in (probe, -probe):  # later delays first: a curve that is late falls there; probe the rest
            theta[:, -1] = h
            if bool(ok.any()):
                ok[ok.clone()] = _sse(spec, plasma, theta[ok], y[ok]) >= ref[ok]
        minimum[first : first + part.size] = ok.cpu().numpy()
    return minimum


def _choose_nested(opts, flat, todo, lo, out, nested, theta0, sse0):
    """Keep a fitted delay only where it improves on the delay-0 (nested) fit significantly.

    The model with the delay held at 0 is nested in the delayed one. The nested fit
    (``nested``, :class:`_Outputs` of the undelayed fit; ``theta0`` its parameters with
    delay 0 appended, ``sse0`` the delayed model's sum of squares there) is the one
    ``fit_delay=False`` gives up to its start; the delayed fit ``out`` is
    kept where the F-test for one added parameter rejects the nested model at
    level α = ``opts.delay_significance``, F = (SSE₀ − SSE)·(T − P)/SSE > F₁,T−P(1 − α), and the nested
    fit (delay 0, not fitted) is reported elsewhere. A delayed fit that ended above the
    nested one (a worse basin) is never kept, so the reported sum of
    squares is never above the nested fit's. ``out`` is updated in place; returns the
    voxels (bool ``[n_vox]``) that report the nested fit.
    """
    dof, critical = _f_test(opts, flat.shape[1], lo.numel())
    significant = _significant(sse0[todo], out.sse[todo], dof, critical)
    sel = todo[~significant]
    LOGGER.debug(
        "delay kept in %d/%d voxels (F-test against the delay-0 fit)", todo.size - sel.size, todo.size
    )
    n_p = lo.numel()
    out.theta[sel] = theta0[sel]
    out.se[sel] = np.concatenate([nested.se[sel], np.full((sel.size, 1), np.nan)], axis=1)
    cov = np.full((sel.size, n_p, n_p), np.nan)
    cov[:, :-1, :-1] = nested.cov[sel]
    out.cov[sel] = cov
    y = np.asarray(flat[sel], dtype=np.float64)
    sst = ((y - y.mean(-1, keepdims=True)) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out.r2[sel] = np.where(sst > 0, 1.0 - sse0[sel] / sst, np.where(sse0[sel] <= 1e-300, 1.0, 0.0))
    out.sse[sel] = sse0[sel]
    out.converged[sel] = nested.converged[sel]
    held = np.zeros(flat.shape[0], dtype=bool)
    held[sel] = True
    return held


def _sse(spec, plasma, theta, y):
    """Return the sum of squares ``[n]`` of the delayed model at ``theta [n, P]`` (delay last) for ``y``."""
    p = {name: theta[:, i] for i, name in enumerate(spec.params)}
    return ((y - evaluate(spec, p, plasma, theta[:, -1])) ** 2).sum(-1)


def fit_model(
    model: str,
    concentration: ArrayLike,
    t: ArrayLike,
    aif: ArrayLike,
    mask: ArrayLike | None = None,
    fit_delay: bool = False,
    device: str | torch.device = "auto",
    **options,
) -> FitResult:
    """Fit a kinetic model to tissue concentration curves.

    Parameters
    ----------
    model : str
        ``tofts``, ``extended_tofts``, ``patlak``, ``2cxm`` or ``2cum``.
    concentration : array_like ``[..., T]``
        Tissue concentration in mM, any leading shape.
    t : array_like ``(T,)``
        Sample times in s (strictly increasing).
    aif : array_like ``(T,)``
        Plasma concentration (mM) at ``t``.
    mask : bool array of the leading shape, optional
        Voxels to fit (others get NaN and ``valid`` False).
    fit_delay : bool
        Fit a per-voxel bolus delay (s) within ``delay_bounds``.
    device : ``"auto"``, ``"cpu"`` or ``"cuda"``
    **options
        See :class:`FitOptions`.

    Returns
    -------
    FitResult
    """
    spec = get_model(model)
    opts = FitOptions.from_kwargs(options)
    dev = resolve_device(device)
    t_, aif_, aif_grid = prepare_inputs(t, aif, dev, opts.aif_times)
    if not bool((aif_ != 0).any()):
        raise ValueError("aif: the arterial input function is zero everywhere")
    plasma = PlasmaInput(t_, aif_, aif_grid, opts.substeps)
    flat, lead, use = _as_voxels(concentration, t_.numel(), mask)
    if fit_delay and opts.delay is not None:
        raise ValueError("delay: give a fixed delay or fit_delay=True, not both")
    fixed = None
    if opts.delay is not None:
        fixed = np.broadcast_to(np.asarray(opts.delay, dtype=float), lead).reshape(-1)
    lo, hi = _bounds(spec, opts, fit_delay, dev)
    names = spec.params + (("delay",) if fit_delay else ())
    n_vox = flat.shape[0]

    chunk = int(opts.chunk_size or (131072 if dev.type == "cuda" else 32768))
    todo = np.flatnonzero(use)
    progress = opts.progress or (lambda done, total: None)

    def default_start(y, problem, sel):
        return _starting_values(spec, opts, fit_delay, problem.fixed_delay, plasma, y, lo, hi)

    nested = np.zeros(n_vox, dtype=bool)  # voxels that report the delay-0 fit (delay not fitted)
    if fit_delay and _nested_applies(opts):
        out, nested = _fit_with_nested(spec, opts, plasma, flat, todo, dev, lo, hi, chunk, progress)
    else:
        out = _fit_chunks(
            spec, opts, plasma, flat, todo, fixed, fit_delay, dev, lo, hi, chunk, default_start, progress
        )
    theta_all, se_all, cov_all, sse_all, r2_all, conv_all = (
        out.theta,
        out.se,
        out.cov,
        out.sse,
        out.r2,
        out.converged,
    )

    params = {n: theta_all[:, i] for i, n in enumerate(names)}
    stderr = {n: se_all[:, i] for i, n in enumerate(names)}
    _derived(spec, names, params, stderr, cov_all)
    if fixed is not None:
        params["delay"] = np.where(use, fixed, np.nan)
    not_estimable = _not_estimable(spec, params, stderr, lo.cpu().numpy(), hi.cpu().numpy())
    for name, undetermined in not_estimable.items():
        params[name] = np.where(undetermined, np.nan, params[name])
        stderr[name] = np.where(undetermined, np.nan, stderr[name])

    valid = (
        _validity(
            spec,
            names,
            theta_all,
            se_all,
            r2_all,
            conv_all,
            lo.cpu().numpy(),
            hi.cpu().numpy(),
            fit_delay,
            opts.min_r2,
            not_estimable,
            nested,
        )
        & use
    )
    shape = lambda a: a.reshape(lead)  # noqa: E731
    return FitResult(
        model=spec.name,
        params={k: shape(v) for k, v in params.items()},
        stderr={k: shape(v) for k, v in stderr.items()},
        r2=shape(r2_all),
        sse=shape(sse_all),
        converged=shape(conv_all),
        valid=shape(valid),
    )


def _derived(spec, names, params, stderr, cov):
    """Add the model's derived parameters (kep) and their standard errors.

    The standard errors come from the delta method, sqrt(gᵀ·cov·g) with g the gradient of
    the registry (``DerivedParameter``).
    """
    for d in spec.derived:
        idx = [names.index(n) for n in d.inputs]
        with np.errstate(divide="ignore", invalid="ignore"):
            params[d.name] = d.value(params)
            grad = d.gradient(params)
            var = None
            for a in range(len(idx)):
                for b in range(a, len(idx)):
                    if a == b:
                        term = grad[a] ** 2 * cov[:, idx[a], idx[a]]
                    else:
                        term = 2 * grad[a] * grad[b] * cov[:, idx[a], idx[b]]
                    var = term if var is None else var + term
            ok = var >= 0
            for name in d.stderr_requires:
                ok &= np.isfinite(stderr[name])
            stderr[d.name] = np.sqrt(np.where(ok, var, np.nan))


def _not_estimable(spec, params, stderr, lower, upper):
    """Parameters that the data cannot determine in a voxel (name -> bool per voxel).

    ve (and kep) describe the exchange with the extravascular space. They are not
    determined when the transfer parameter (Ktrans, or PS for 2CXM) is not
    significantly above zero — on its lower bound, or below twice its standard error —
    or when ve runs into its upper bound: no washout within the acquisition, so the
    data give only a lower limit on ve (the Patlak regime). Ktrans and vp remain
    estimates in both cases.
    """
    out = {}
    for name, driver in spec.identifiable_if.items():
        if name not in params:
            continue
        value, se = params[driver], stderr[driver]
        ve = params["ve"]
        ve_hi = upper[spec.params.index("ve")]
        with np.errstate(invalid="ignore"):
            on_bound = value <= lower[spec.params.index(driver)] + 1e-9
            insignificant = value < 2.0 * np.where(np.isfinite(se), se, np.inf)
            out[name] = on_bound | insignificant | (ve >= ve_hi - 1e-6 * max(1.0, abs(ve_hi)))
    return out


def _validity(spec, names, theta, se, r2, converged, lo, hi, fit_delay, min_r2, not_estimable, nested):
    """Apply the documented validity rule to fitted parameters.

    The documented validity rule; parameters the data cannot determine are not checked, nor the delay where
    the delay-0 (``nested``) fit is reported.
    """
    determined = np.ones(theta.shape, dtype=bool)
    for name, undetermined in not_estimable.items():
        if name in names:
            determined[:, names.index(name)] = ~undetermined
    with np.errstate(invalid="ignore"):
        ok = converged & np.isfinite(r2) & (r2 >= min_r2)
        ok &= (np.isfinite(theta) | ~determined).all(-1)
        tol = 1e-6 * np.maximum(1.0, np.abs(hi))
        free = (theta > lo + tol) & (theta < hi - tol)
        if fit_delay:
            free[:, -1] &= ~nested
        ok &= (np.isfinite(se) | ~free | ~determined).all(-1)
        at_upper = (theta >= hi - tol) & determined
        if fit_delay:
            at_upper[:, -1] |= theta[:, -1] <= lo[-1] + tol[-1]
        ok &= ~at_upper.any(-1)
        if "ve" in names and "vp" in names:
            ve_ok = determined[:, names.index("ve")]
            ok &= ~ve_ok | (theta[:, names.index("ve")] + theta[:, names.index("vp")] <= 1.0 + 1e-6)
    return ok


def patlak_linear(
    concentration: ArrayLike,
    t: ArrayLike,
    aif: ArrayLike,
    mask: ArrayLike | None = None,
    delay: ArrayLike | None = None,
    aif_times: ArrayLike | None = None,
) -> FitResult:
    """Closed-form (unconstrained linear least squares) Patlak fit.

    C(t) = vp·Cp(t) + Ktrans·∫Cp, solved for all voxels with one pseudo-inverse.
    Returns a :class:`FitResult` (Ktrans in 1/min, vp fraction) whose ``stderr`` come
    from σ²·(XᵀX)⁻¹ and whose ``converged`` is True wherever the data are finite.
    """
    t_, aif_, aif_grid = prepare_inputs(t, aif, None, aif_times)
    if not bool((aif_ != 0).any()):
        raise ValueError("aif: the arterial input function is zero everywhere")
    flat, lead, use = _as_voxels(concentration, t_.numel(), mask)
    plasma = PlasmaInput(t_, aif_, aif_grid)
    p = {"Ktrans": torch.zeros(2, dtype=torch.float64), "vp": torch.tensor([1.0, 0.0], dtype=torch.float64)}
    p["Ktrans"][1] = 60.0  # unit coefficients: row 0 is Cp, row 1 is ∫Cp (Ktrans in 1/min)
    shift = None if delay is None else torch.full((2,), float(delay), dtype=torch.float64)
    x = evaluate(get_model("patlak"), p, plasma, shift).T.numpy()  # [T, 2] basis of the linear model
    xtx_inv = np.linalg.inv(x.T @ x)
    y = np.where(use[:, None], flat, 0.0).astype(float)
    coef = y @ (x @ xtx_inv)  # [N, 2]
    resid = y - coef @ x.T
    sse = (resid**2).sum(-1)
    sst = ((y - y.mean(-1, keepdims=True)) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1 - sse / sst, np.where(sse == 0, 1.0, 0.0))
    sigma2 = sse / max(x.shape[0] - 2, 1)
    se = np.sqrt(sigma2[:, None] * np.diag(xtx_inv)[None, :])
    nan = lambda a: np.where(use, a, np.nan).reshape(lead)  # noqa: E731
    per_min = 60.0
    params = {"Ktrans": nan(coef[:, 1] * per_min), "vp": nan(coef[:, 0])}
    if delay is not None:
        params["delay"] = nan(np.full(use.shape, float(delay)))
    return FitResult(
        model="patlak",
        params=params,
        stderr={"Ktrans": nan(se[:, 1] * per_min), "vp": nan(se[:, 0])},
        r2=nan(r2),
        sse=nan(sse),
        converged=use.reshape(lead),
        valid=(use & np.isfinite(r2) & (r2 >= 0)).reshape(lead),
        method=METHOD_LINEAR,
    )
