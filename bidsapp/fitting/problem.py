"""Predictions and analytic Jacobians of a kinetic model for a batch of voxels.

Each model is a sum of terms ``coef(θ) · B(rate(θ), delay)`` (:mod:`bidsapp.registry.kinetic`),
the bases B evaluated by :meth:`bidsapp.models.PlasmaInput.basis`.
The Jacobian follows from the chain rule: the small per-voxel maps θ → (coef, rate) are
differentiated by autograd, the bases B by the exact recursions of
:func:`bidsapp.convolution.exp_conv_time_major` (∂B/∂rate) and by linearity in the
delayed input (∂B/∂delay = B evaluated on −slope of the delayed AIF).

Arrays are time-major (``[T, n]``, Jacobian ``[P, T, n]``): every operation then runs on
contiguous memory, which is several times faster on CPU for the short curves of DCE.
"""

import torch


class KineticProblem:
    """Model, plasma input and per-voxel delays of one chunk of voxels.

    Parameters
    ----------
    spec : ModelSpec
    plasma : bidsapp.models.PlasmaInput
        The AIF (mM) and the frame times (s).
    delay : torch.Tensor ``[N]``, optional
        Fixed per-voxel delay (s) when the delay is not fitted.
    fit_delay : bool
        Append the delay (s) as the last fitted parameter.
    """

    def __init__(self, spec, plasma, delay=None, fit_delay=False):
        self.spec, self.plasma, self.t = spec, plasma, plasma.t
        self.fixed_delay = delay
        self.fit_delay = bool(fit_delay)
        self.names = spec.params + (("delay",) if self.fit_delay else ())

    @property
    def n_params(self):
        """Number of free parameters (the model's, plus the delay when it is fitted)."""
        return len(self.names)

    def predict(self, theta, idx):
        """Prediction ``[T, n]`` and Jacobian ``[P, T, n]`` at ``theta [n, P]`` for voxels ``idx``."""
        spec = self.spec
        n_model = len(spec.params)
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            terms = spec.terms({name: th[:, i] for i, name in enumerate(spec.params)})
            quantities = [q for coef, rate in terms for q in (coef, rate) if q is not None]
            grads = iter(
                [
                    torch.autograd.grad(q.sum(), th, retain_graph=True)[0].T
                    if q.requires_grad
                    else torch.zeros_like(th).T
                    for q in quantities
                ]
            )  # constant rates (k = 0)
        if self.fit_delay:
            delay = theta[:, -1]
        else:
            delay = None if self.fixed_delay is None else self.fixed_delay[idx]
        n_t, n = self.t.shape[0], theta.shape[0]
        located = None if delay is None else self.plasma.locate(delay)
        pred = torch.empty(n_t, n, dtype=theta.dtype, device=theta.device)
        jac = torch.empty(self.n_params, n_t, n, dtype=theta.dtype, device=theta.device)
        written = (
            set()
        )  # rows of pred (-1) and jac filled so far: the first term is written, not added to zeros

        def add(row, a, b, value=1.0):
            out = pred if row < 0 else jac[row]
            if row in written:
                out.addcmul_(a, b, value=value)
            else:
                torch.mul(a, b, out=out)
                if value != 1.0:
                    out.mul_(value)
                written.add(row)

        for coef, rate in terms:
            coef, dcoef = coef.detach(), next(grads)  # dcoef [P, n]
            basis, dbasis_dk, dbasis_ds = self.plasma.basis(
                None if rate is None else rate.detach(), located, True
            )
            if rate is None:
                basis = basis.expand(n_t, n)
            else:
                drate = next(grads)
                coef_g = coef * dbasis_dk
                for p in _depends_on(drate):
                    add(p, coef_g, drate[p])
            add(-1, basis, coef)
            for p in _depends_on(dcoef):
                add(p, basis, dcoef[p])
            if self.fit_delay:  # the basis is read at s = t − delay: ∂/∂delay = −∂/∂s
                add(n_model, dbasis_ds, coef, value=-1.0)
        for row in set(range(-1, self.n_params)) - written:  # parameters no term depends on here
            (pred if row < 0 else jac[row]).zero_()
        return pred, jac


def _depends_on(derivatives):
    """Return the indices of the parameters with a non-zero derivative (skips structural zeros)."""
    return [p for p in range(derivatives.shape[0]) if bool(derivatives[p].any())]
