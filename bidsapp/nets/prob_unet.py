"""Temporal + probabilistic U-Net with calibrated uncertainty (after Lyoo et al. 2025).

Lyoo Y, et al. Eur Radiol 2025, doi:10.1007/s00330-025-11588-z; probabilistic U-Net:
Kohl SAA, et al. NeurIPS 2018 (arXiv:1806.05034).

Stage 1, :class:`bidsapp.nets.tcn.TemporalConvNet`, turns each voxel's curves into
temporal features. Stage 2 is a probabilistic U-Net assembled from
:mod:`bidsapp.nets.blocks`:

* a U-Net (``TwoConv`` → ``Down`` → ``Down`` → ``UpCat`` → ``UpCat``) on the features;
* a **prior net** (the U-Net's encoder layout, global mean) giving a Gaussian over a
  small latent ``z`` from the input alone;
* a **posterior net** of the same layout that also sees the true (normalised)
  parameters; it is used in training only (``z`` drawn from it, KL(posterior‖prior)
  in the loss) and never at inference;
* a head of 1×1 convolutions on [temporal features, U-Net output, ``z``] giving each
  parameter's mean (softplus × scale: non-negative) and log-variance (heteroscedastic
  noise term, above a soft floor, :func:`soft_floor`). Its first layer is split into a
  part on [features, U-Net output] and a part on ``z`` (the same linear map), so, as in
  Kohl et al., the TCN, the U-Net, the
  prior net and that first part run once per slice and only the rest of the head runs
  once per latent draw.

Inference (:meth:`ProbUNet.sample`) draws K latents from the **prior**. The predictive
variance is the mean of the heteroscedastic variances plus the variance of the K means;
its SD is multiplied by a per-parameter ``temperature`` fitted on slabs of the validation
stream so that 95 % of their voxels lie within ±1.96 SD (buffer, stored in the weights).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal

from .blocks import Down, TwoConv, UpCat, conv
from .tcn import TemporalConvNet

PARAM_NAMES = ("Ktrans", "ve", "vp")
#: soft floor of the head's log-variance of the normalised error (:func:`soft_floor`; docs/networks.md:
#: a hard floor of −12 let one voxel at the floor with a large error blow up training, a hard floor
#: of −6 steadied it but pinned most tissue SDs to it, so they no longer grew out of distribution)
LOG_VAR_MIN = -12.0
#: ceiling of the log-variance (hard; far above any normalised error of the training data)
LOG_VAR_MAX = 6.0


def soft_floor(raw: torch.Tensor, floor: float = LOG_VAR_MIN) -> torch.Tensor:
    """``floor + softplus(raw − floor)``: ≈ ``raw`` above the floor, never below it, smooth.

    Unlike a clamp, its gradient (sigmoid(raw − floor)) is not zero at the floor, so a
    voxel whose log-variance sits there while its error is large can still raise its
    variance instead of feeding e²/σ² ≈ e²·e¹² into the loss step after step.
    """
    return floor + nn.functional.softplus(raw - floor)


class LatentNet(nn.Module):
    """Encoder (TwoConv, Down, Down), masked global mean, 1×1 conv → Gaussian over ``latent`` dims."""

    def __init__(self, in_channels: int, channels, latent: int):
        super().__init__()
        c0, c1, c2 = channels
        self.encoder = nn.Sequential(TwoConv(2, in_channels, c0), Down(2, c0, c1), Down(2, c1, c2))
        self.out = conv(2, c2, 2 * latent, 1)

    def forward(self, x: torch.Tensor) -> Normal:
        """Return the diagonal Gaussian over the latent for the input ``x`` ``[B, C, H, W]``."""
        stats = self.out(self.encoder(x).mean(dim=(2, 3), keepdim=True))[:, :, 0, 0]
        mu, log_sigma = stats.chunk(2, dim=1)
        return Normal(mu, torch.exp(log_sigma.clamp(-8.0, 4.0)))


class ProbUNet(nn.Module):
    """``[B, 2N, H, W]`` contract input → Ktrans (1/min), ve, vp with uncertainty.

    Parameters
    ----------
    n_times : int
        Time points N of the input grid.
    tcn_channels, features : int
        Channels inside the TCN and temporal features per voxel.
    channels : sequence of 3 int
        U-Net channels per level.
    latent : int
        Latent dimensions.
    head : int
        Hidden channels of the output head.
    scales : sequence of 3 float
        Typical magnitude of Ktrans (1/min), ve, vp.
    tissue_gain : float
        Factor on the tissue channel before the TCN (:class:`TemporalConvNet`).
    feature_norm : bool
        Batch-normalise the temporal features (:class:`TemporalConvNet`).
    """

    def __init__(
        self,
        n_times: int,
        tcn_channels: int = 32,
        features: int = 16,
        channels=(16, 32, 48),
        latent: int = 4,
        head: int = 32,
        scales=(0.1, 0.3, 0.05),
        tissue_gain: float = 20.0,
        feature_norm: bool = True,
    ):
        super().__init__()
        c0, c1, c2 = channels
        n_out = len(PARAM_NAMES)
        self.latent = latent
        self.tcn = TemporalConvNet(
            n_times, tcn_channels, out_channels=features, tissue_gain=tissue_gain, feature_norm=feature_norm
        )
        self.enc0, self.enc1, self.enc2 = TwoConv(2, features, c0), Down(2, c0, c1), Down(2, c1, c2)
        self.up1, self.up0 = UpCat(2, c2, c1, c1), UpCat(2, c1, c0, c0)
        self.prior = LatentNet(features, channels, latent)
        self.posterior = LatentNet(features + n_out + 1, channels, latent)
        self.head_in = conv(2, features + c0, head, 1)
        self.head_z = nn.Linear(latent, head, bias=False)
        self.head_out = nn.Sequential(nn.LeakyReLU(0.1), conv(2, head, 2 * n_out, 1))
        self.register_buffer("scales", torch.as_tensor(scales, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("temperature", torch.ones(1, n_out, 1, 1))

    def encode(self, x: torch.Tensor):
        """Temporal features and the head's first layer on [features, U-Net output] (no ``z``)."""
        features = self.tcn(x)
        e0 = self.enc0(features)
        e1 = self.enc1(e0)
        unet = self.up0(self.up1(self.enc2(e1), e1), e0)
        return features, self.head_in(torch.cat([features, unet], dim=1))

    def decode(self, hidden, z):
        """Mean (non-negative, parameter units) and log-variance (of the normalised error).

        ``hidden`` is the second output of :meth:`encode`, ``z`` ``[B, latent]``.
        """
        mean, log_var = self.head_out(hidden + self.head_z(z)[:, :, None, None]).chunk(2, dim=1)
        return nn.functional.softplus(mean) * self.scales, soft_floor(log_var).clamp(max=LOG_VAR_MAX)

    def posterior_of(self, features, target, mask):
        """Posterior over ``z`` given the true parameters ``target [B, 3, H, W]`` (training only)."""
        return self.posterior(torch.cat([features, target / self.scales * mask, mask], dim=1))

    def sample(self, x: torch.Tensor, k: int = 16, generator: torch.Generator | None = None):
        """Predictive mean and calibrated SD ``[B, 3, H, W]`` from ``k`` draws of the **prior**.

        The posterior net is not called. ``generator`` makes the draws reproducible.
        """
        features, hidden = self.encode(x)
        prior = self.prior(features)
        means, variances = [], []
        for _ in range(k):
            eps = torch.randn(prior.loc.shape, generator=generator, device=x.device, dtype=x.dtype)
            mean, log_var = self.decode(hidden, prior.loc + prior.scale * eps)
            means.append(mean)
            variances.append(torch.exp(log_var) * self.scales**2)
        means, variances = torch.stack(means), torch.stack(variances)
        mean = means.mean(dim=0)
        variance = variances.mean(dim=0) + means.var(dim=0, unbiased=False)
        return mean, torch.sqrt(variance) * self.temperature
