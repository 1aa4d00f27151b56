"""Temporal convolutional network over each voxel's curves (stage 1 of Lyoo et al. 2025).

Lyoo Y, et al. Eur Radiol 2025, doi:10.1007/s00330-025-11588-z.

Each voxel's concentration curve and the AIF (two input channels on the contract's time
grid, :mod:`bidsapp.nets.contract`) pass through a stack of dilated *causal*
convolutions with kernel 2 and dilations 1, 2, 4, …, 2^(L−1) (WaveNet, van den Oord et
al. 2016, arXiv:1609.03499; TCN, Bai, Kolter, Koltun 2018, arXiv:1803.01271). The curves
are zero-padded at the start to 2^L ≥ N samples, so the receptive field of the last
time step is the whole curve. Only the last time step's features are used, and it
depends on the layer-k outputs at every 2^k-th step only: the network evaluates exactly
those, so each layer is a kernel-2, stride-2 convolution over the previous layer's
outputs — the same function as the full dilated causal stack read at its last step, at
about 1/L of the cost (a 176×176×30 volume in seconds on 2 CPU cores). Layer 0 maps each
pair of input samples to ``channels``; every further layer is a residual block
(two-tap causal convolution → LeakyReLU → 1×1 layer, added to the input at the later
tap → LeakyReLU). The last step, mapped by a linear layer, gives the voxel's temporal
feature map ``[B, F, H, W]`` for the spatial network.

Scale of the input: tissue curves are about 0.01–0.2 of the AIF peak and the AIF is the
same in every voxel, so with the raw contract input the features of different voxels
differ by under 10 % of their size. A network whose spatial stage is instance-normalised
then has no usable per-voxel, per-slice *absolute* signal, which is what Ktrans needs
(``docs/networks.md``). ``tissue_gain`` multiplies the tissue channel before the first
layer and ``feature_norm`` standardises the output features with batch statistics
(running statistics at inference, so absolute differences between slices are kept).
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: voxels per chunk through the TCN (bounds the memory of a whole-volume forward pass)
CHUNK = 1024


class CausalLevel(nn.Module):
    """One residual level: two-tap causal convolution at the level's dilation, read every other step.

    Input ``[M, T, C]`` (channels last, T even); output ``[M, T/2, C]``, the block's
    output at the later tap of each pair, i.e. at the steps the last output depends on.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.taps = nn.Linear(2 * channels, channels)
        self.mix = nn.Linear(channels, channels)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the level to ``x`` ``[M, T, C]``."""
        m, t, c = x.shape
        h = self.act(self.taps(x.reshape(m, t // 2, 2 * c)))
        return self.act(x[:, 1::2] + self.mix(h))


class TemporalConvNet(nn.Module):
    """``[B, 2N, H, W]`` contract input → ``[B, out_channels, H, W]`` temporal features.

    Parameters
    ----------
    n_times : int
        Time points N of the input grid.
    channels : int
        Channels inside the TCN.
    out_channels : int
        Features per voxel handed to the spatial network.
    tissue_gain : float
        Factor on the tissue-concentration channel (the AIF channel is unchanged).
    feature_norm : bool
        Batch-normalise the output features (module docstring).
    """

    def __init__(
        self,
        n_times: int,
        channels: int = 32,
        out_channels: int = 16,
        tissue_gain: float = 20.0,
        feature_norm: bool = True,
    ):
        super().__init__()
        self.n_times = n_times
        levels = max(1, math.ceil(math.log2(n_times)))
        self.length = 2**levels
        self.tissue_gain = float(tissue_gain)
        self.inp = nn.Linear(4, channels)
        self.levels = nn.Sequential(*(CausalLevel(channels) for _ in range(levels - 1)))
        self.out = nn.Sequential(nn.Linear(channels, out_channels), nn.LeakyReLU(0.1))
        self.norm = nn.BatchNorm2d(out_channels) if feature_norm else nn.Identity()
        self.act = nn.LeakyReLU(0.1)

    def last_step(self, curves: torch.Tensor) -> torch.Tensor:
        """Features ``[M, out_channels]`` of the last step of ``curves`` ``[M, length, 2]``."""
        m = curves.shape[0]
        h = self.act(self.inp(curves.reshape(m, self.length // 2, 4)))
        return self.out(self.levels(h)[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the temporal feature maps ``[B, out_channels, H, W]`` of the contract input ``x``."""
        b, _, h, w = x.shape
        curves = x.view(b, 2, self.n_times, h * w).permute(0, 3, 2, 1).reshape(b * h * w, self.n_times, 2)
        gain = curves.new_tensor([self.tissue_gain, 1.0])
        curves = nn.functional.pad(curves * gain, (0, 0, self.length - self.n_times, 0))
        last = torch.cat([self.last_step(chunk) for chunk in curves.split(CHUNK)])
        return self.norm(last.view(b, h, w, -1).permute(0, 3, 1, 2).contiguous())
