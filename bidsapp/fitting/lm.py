"""Batched, bounded Levenberg–Marquardt least squares in torch.

All voxels iterate together; each keeps its own damping λ, and voxels that have
converged leave the batch so the work shrinks as the fit proceeds. Steps use
Marquardt's scaling (λ·diag(JᵀJ)) and are projected onto the box bounds; a parameter
on a bound whose gradient points outwards is held there for that step (active-set
handling), so the others take a proper Gauss–Newton step instead of creeping along
the boundary. Data are
time-major: ``y [T, N]``, Jacobian ``[P, T, N]``.

A voxel has converged when an accepted step improves the sum of squares by less than
``ftol`` (relative) or moves every parameter by less than ``xtol`` (relative), when
the model fits exactly, or when the predicted improvement of the damped step is below
``ftol`` (a minimum on the boundary). Running out of ``max_iter`` iterations leaves
it unconverged.

Reference: Moré JJ. The Levenberg-Marquardt algorithm: implementation and theory.
Lecture Notes in Mathematics 630, 1978, pp. 105-116.
"""

from dataclasses import dataclass

import torch


@dataclass
class LMResult:
    theta: torch.Tensor  # [N, P] solution
    sse: torch.Tensor  # [N] residual sum of squares
    jtj: torch.Tensor  # [N, P, P] JᵀJ at the solution
    converged: torch.Tensor  # [N] bool
    n_iter: torch.Tensor  # [N] iterations used


def normal_matrix(jac):
    """JᵀJ ``[n, P, P]`` of a time-major Jacobian ``[P, T, n]``."""
    n_p = jac.shape[0]
    out = torch.empty(jac.shape[2], n_p, n_p, dtype=jac.dtype, device=jac.device)
    for i in range(n_p):
        for j in range(i, n_p):
            out[:, i, j] = out[:, j, i] = (jac[i] * jac[j]).sum(0)
    return out


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
    n = y.shape[1]
    theta = torch.maximum(torch.minimum(theta0, upper), lower)
    idx = torch.arange(n, device=y.device)
    pred, jac = predict(theta, idx)
    resid = y - pred
    sse = (resid * resid).sum(0)
    tiny = 1e-28 * (y * y).sum(0).clamp_min(1e-300)

    out_theta, out_sse = theta.clone(), sse.clone()
    out_jtj = torch.full((n, theta.shape[1], theta.shape[1]), float("nan"), dtype=y.dtype, device=y.device)
    out_conv = torch.zeros(n, dtype=torch.bool, device=y.device)
    out_iter = torch.zeros(n, dtype=torch.long, device=y.device)
    lam = torch.full((n,), lambda0, dtype=y.dtype, device=y.device)
    act, ya = idx, y
    jtj = normal_matrix(jac)

    for _ in range(max_iter):
        if act.numel() == 0:
            break
        grad = torch.einsum("ptn,tn->np", jac, resid)  # a step along +grad lowers the SSE
        # parameters on a bound whose gradient points outwards are held (active set)
        held = ((theta <= lower) & (grad < 0)) | ((theta >= upper) & (grad > 0))
        free = (~held).to(jtj.dtype)
        grad = grad * free
        system = jtj * (free[:, :, None] * free[:, None, :]) + torch.diag_embed(held.to(jtj.dtype))
        scale = torch.diagonal(system, dim1=1, dim2=2)
        scale = torch.maximum(scale, 1e-12 * scale.amax(-1, keepdim=True)).clamp_min(1e-300)
        step, info = torch.linalg.solve_ex(system + torch.diag_embed(lam[:, None] * scale), grad)
        step = torch.where((info == 0)[:, None] & torch.isfinite(step), step, torch.zeros_like(step))
        predicted = (step * (grad + lam[:, None] * scale * step)).sum(-1)
        trial = torch.maximum(torch.minimum(theta + step, upper), lower)
        t_pred, t_jac = predict(trial, act)
        t_resid = ya - t_pred
        t_sse = (t_resid * t_resid).sum(0)
        better = torch.isfinite(t_sse) & (t_sse < sse)
        moved = ((trial - theta).abs() <= xtol * (theta.abs() + xtol)).all(-1)
        gain = (sse - t_sse) / sse.clamp_min(1e-300)
        done = (better & ((gain <= ftol) | moved)) | (~better & (predicted <= ftol * sse))

        # keep the trial state and copy back the (usually few) rejected voxels
        rejected = ~better
        t_jtj = normal_matrix(t_jac)
        if rejected.any():
            t_resid[:, rejected], t_jac[:, :, rejected] = resid[:, rejected], jac[:, :, rejected]
            t_jtj[rejected] = jtj[rejected]
        theta, resid, jac, jtj = torch.where(better[:, None], trial, theta), t_resid, t_jac, t_jtj
        sse = torch.where(better, t_sse, sse)
        lam = torch.where(better, (lam * 0.3).clamp_min(1e-12), lam * 10.0)
        done |= sse <= tiny[act]
        out_iter[act] += 1

        finish = done | (lam > 1e16)
        if finish.any():
            f = act[finish]
            out_theta[f], out_sse[f], out_jtj[f], out_conv[f] = theta[finish], sse[finish], jtj[finish], done[finish]
            keep = ~finish
            act, theta, sse, lam, jtj = act[keep], theta[keep], sse[keep], lam[keep], jtj[keep]
            resid, jac, ya = resid[:, keep], jac[:, :, keep], ya[:, keep]
    if act.numel():
        out_theta[act], out_sse[act], out_jtj[act] = theta, sse, jtj
    return LMResult(out_theta, out_sse, out_jtj, out_conv, out_iter)
