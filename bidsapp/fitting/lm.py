"""Batched, bounded Levenberg–Marquardt least squares in torch.

All voxels iterate together; each keeps its own damping λ, and voxels that have
converged leave the batch so the work shrinks as the fit proceeds. Steps use
Marquardt's scaling (λ·diag(JᵀJ)) and are projected onto the box bounds; a parameter
on a bound whose gradient points outwards is held there for that step (active-set
handling), so the others take a proper Gauss–Newton step instead of creeping along
the boundary. Data are time-major: ``y [T, N]``, Jacobian ``[P, T, N]``. Between
iterations only JᵀJ ``[N, P, P]`` and Jᵀr ``[N, P]`` are kept, so a rejected step
restores a few numbers per voxel rather than its whole Jacobian.

A voxel has converged when the Gauss–Newton step from its current point (over the
parameters not held on a bound) predicts a relative decrease of the sum of squares
below ``ftol`` — checked before that step is evaluated, which saves the model
evaluation that would only confirm it — when an accepted step improves the sum of
squares by less than ``ftol`` (relative) or moves every parameter by less than
``xtol`` (relative), when the model fits exactly, or when a rejected damped step
predicts a decrease below ``ftol`` (a minimum on the boundary). Running out of
``max_iter`` iterations leaves it unconverged.

Reference: Moré JJ. The Levenberg-Marquardt algorithm: implementation and theory.
Lecture Notes in Mathematics 630, 1978, pp. 105-116.
"""

from dataclasses import dataclass

import torch


@dataclass
class LMResult:
    """Solution of :func:`levenberg_marquardt` for a batch of ``N`` problems with ``P`` parameters."""

    theta: torch.Tensor  # [N, P] solution
    sse: torch.Tensor  # [N] residual sum of squares
    jtj: torch.Tensor  # [N, P, P] JᵀJ at the solution
    converged: torch.Tensor  # [N] bool
    n_iter: torch.Tensor  # [N] iterations used


REDUCE_BLOCK = 2048  # voxels per block of the JᵀJ and Jᵀr reductions on CPU


def _blocks(n, device):
    """Return the voxel slices for the reductions.

    On CPU blocks of :data:`REDUCE_BLOCK`, so each
    ``[T, block]`` product stays in cache (about twice as fast as whole-chunk products);
    one slice on a GPU.
    """
    step = n if device.type == "cuda" else REDUCE_BLOCK
    return [slice(first, first + step) for first in range(0, n, max(step, 1))]


def normal_matrix(jac):
    """JᵀJ ``[n, P, P]`` of a time-major Jacobian ``[P, T, n]``."""
    n_p = jac.shape[0]
    out = torch.empty(jac.shape[2], n_p, n_p, dtype=jac.dtype, device=jac.device)
    for part in _blocks(jac.shape[2], jac.device):
        jb, ob = jac[:, :, part], out[part]
        for i in range(n_p):
            for j in range(i, n_p):
                ob[:, i, j] = ob[:, j, i] = (jb[i] * jb[j]).sum(0)
    return out


def gradient(jac, resid):
    """Jᵀr ``[n, P]`` of a time-major Jacobian ``[P, T, n]`` and residuals ``[T, n]``.

    One product and reduction over time per parameter, as in :func:`normal_matrix`: on
    CPU several times faster than ``einsum("ptn,tn->np")``, which reorders the operands.
    """
    out = torch.empty(jac.shape[2], jac.shape[0], dtype=jac.dtype, device=jac.device)
    for part in _blocks(jac.shape[2], jac.device):
        jb, rb, ob = jac[:, :, part], resid[:, part], out[part]
        for p in range(jac.shape[0]):
            ob[:, p] = (jb[p] * rb).sum(0)
    return out


COMPACT_FRACTION = 0.2  # finished voxels leave the batch once they are this share of it


def levenberg_marquardt(predict, y, theta0, lower, upper, max_iter=60, ftol=1e-6, xtol=1e-6, lambda0=1e-3):
    """Minimise ``Σ_t (y − f(θ))²`` per voxel within ``lower ≤ θ ≤ upper``.

    Parameters
    ----------
    predict : callable
        ``predict(theta [n, P], idx [n]) -> (f [T, n], J [P, T, n])``.
    y : torch.Tensor ``[T, N]``
    theta0 : torch.Tensor ``[N, P]``
        Starting values (projected onto the bounds).
    lower, upper : torch.Tensor ``[P]``
    """
    n, n_p = y.shape[1], theta0.shape[1]
    dev, dtype = y.device, y.dtype
    theta = torch.maximum(torch.minimum(theta0, upper), lower)
    idx = torch.arange(n, device=dev)
    sse, grad, jtj = _evaluate(predict, y, theta, idx)
    tiny = 1e-28 * (y * y).sum(0).clamp_min(1e-300)

    out_theta, out_sse = theta.clone(), sse.clone()
    out_jtj = torch.full((n, n_p, n_p), float("nan"), dtype=dtype, device=dev)
    out_conv = torch.zeros(n, dtype=torch.bool, device=dev)
    out_iter = torch.zeros(n, dtype=torch.long, device=dev)
    lam = torch.full((n,), lambda0, dtype=dtype, device=dev)
    act, ya = idx, y
    live = torch.ones(n, dtype=torch.bool, device=dev)  # finished voxels stay in the batch until compaction
    eye = torch.eye(n_p, dtype=dtype, device=dev)

    for _ in range(max_iter):
        # parameters on a bound whose gradient points outwards are held (active set);
        # a step along +grad lowers the SSE
        held = ((theta <= lower) & (grad < 0)) | ((theta >= upper) & (grad > 0))
        free = (~held).to(dtype)
        g = grad * free
        system = jtj * (free[:, :, None] * free[:, None, :]) + held.to(dtype)[:, :, None] * eye
        gauss_newton, gn_info = torch.linalg.solve_ex(system, g)
        gn_gain = (gauss_newton * g).sum(-1)  # the quadratic model's largest decrease
        converged = (gn_info == 0) & (gn_gain >= 0) & (gn_gain <= ftol * sse) & live  # < 0: ill-conditioned
        if bool(converged.any()):
            out_conv[act[converged]] = True
            live = _finish(converged, live, act, theta, sse, jtj, out_theta, out_sse, out_jtj)
        if not bool(live.any()):
            break
        if (~live).sum() >= COMPACT_FRACTION * live.numel():
            ya = ya[:, live]
            act, theta, sse, grad, jtj, lam, system, g = (
                a[live] for a in (act, theta, sse, grad, jtj, lam, system, g)
            )
            live = live[live]
        scale = torch.diagonal(system, dim1=1, dim2=2)
        scale = torch.maximum(scale, 1e-12 * scale.amax(-1, keepdim=True)).clamp_min(1e-300)
        step, info = torch.linalg.solve_ex(system + torch.diag_embed(lam[:, None] * scale), g)
        step = torch.where((info == 0)[:, None] & torch.isfinite(step), step, torch.zeros_like(step))
        predicted = (step * (g + lam[:, None] * scale * step)).sum(-1)
        trial = torch.maximum(torch.minimum(theta + step, upper), lower)
        t_sse, t_grad, t_jtj = _evaluate(predict, ya, trial, act)
        better = torch.isfinite(t_sse) & (t_sse < sse)
        moved = ((trial - theta).abs() <= xtol * (theta.abs() + xtol)).all(-1)
        gain = (sse - t_sse) / sse.clamp_min(1e-300)
        done = (better & ((gain <= ftol) | moved)) | (~better & (predicted <= ftol * sse))

        theta = torch.where(better[:, None], trial, theta)
        grad = torch.where(better[:, None], t_grad, grad)
        jtj = torch.where(better[:, None, None], t_jtj, jtj)
        sse = torch.where(better, t_sse, sse)
        lam = torch.where(better, (lam * 0.3).clamp_min(1e-12), lam * 10.0)
        done |= sse <= tiny[act]
        out_iter[act[live]] += 1
        stop = (done | (lam > 1e16)) & live
        if bool(stop.any()):
            out_conv[act[stop & done]] = True
            live = _finish(stop, live, act, theta, sse, jtj, out_theta, out_sse, out_jtj)
    rest = act[live]
    if rest.numel():
        out_theta[rest], out_sse[rest], out_jtj[rest] = theta[live], sse[live], jtj[live]
    return LMResult(out_theta, out_sse, out_jtj, out_conv, out_iter)


def _evaluate(predict, y, theta, idx):
    """SSE ``[n]``, Jᵀr ``[n, P]`` and JᵀJ ``[n, P, P]`` at ``theta`` (r = y − f)."""
    pred, jac = predict(theta, idx)
    resid = y - pred
    return (resid * resid).sum(0), gradient(jac, resid), normal_matrix(jac)


def _finish(stop, live, act, theta, sse, jtj, out_theta, out_sse, out_jtj):
    """Store the state of the voxels in ``stop`` and retire them from the batch."""
    f = act[stop]
    out_theta[f], out_sse[f], out_jtj[f] = theta[stop], sse[stop], jtj[stop]
    return live & ~stop
