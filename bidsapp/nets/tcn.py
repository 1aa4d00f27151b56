"""Temporal convolutional network over each voxel's curves (stage 1 of Lyoo et al. 2025).

Lyoo Y, et al. Eur Radiol 2025, doi:10.1007/s00330-025-11588-z.

Each voxel's concentration curve and the AIF (two input channels on the contract's time
grid, :mod:`bidsapp.nets.contract`) pass through residual blocks of dilated *causal*
1-D convolutions (Bai, Kolter, Koltun 2018, arXiv:1803.01271): dilations 1, 2, 4, 8, 16
with kernel 3 give a 63-sample receptive field, so the last time step sees the whole
61-sample curve. Its features, mapped by a 1×1 layer, are the voxel's temporal feature
map ``[B, F, H, W]`` passed to the spatial network.

Scale of the input: tissue curves are about 0.01–0.2 of the AIF peak and the AIF is the
same in every voxel, so with the raw contract input the features of different voxels
differ by under 10 % of their size (measured at initialisation: SD over head voxels
0.008 against a mean magnitude of 0.12). A network whose spatial stage is
instance-normalised then has no usable per-voxel, per-slice *absolute* signal, which is
what Ktrans needs. ``tissue_gain`` multiplies the tissue channel before the first layer
and ``feature_norm`` standardises the output features with batch statistics (running
statistics at inference, so absolute differences between slices are kept).
"""

from __future__ import annotations

import torch
from torch import nn


class CausalBlock(nn.Module):
    """Residual block: causal dilated conv → LeakyReLU → causal dilated conv, plus the input."""

    def __init__(self, channels: int, dilation: int, kernel_size: int = 3):
        super().__init__()
        self.pad = dilation * (kernel_size - 1)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the two causal dilated convolutions with a residual connection to ``x`` ``[B, C, T]``."""
        y = self.act(self.conv1(nn.functional.pad(x, (self.pad, 0))))
        return self.act(x + self.conv2(nn.functional.pad(y, (self.pad, 0))))


class TemporalConvNet(nn.Module):
    """``[B, 2N, H, W]`` contract input → ``[B, out_channels, H, W]`` temporal features.

    Parameters
    ----------
    n_times : int
        Time points N of the input grid.
    channels : int
        Channels inside the TCN.
    dilations : sequence of int
        One residual block per dilation.
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
        channels: int = 12,
        dilations=(1, 2, 4, 8, 16),
        out_channels: int = 16,
        tissue_gain: float = 1.0,
        feature_norm: bool = False,
    ):
        super().__init__()
        self.n_times = n_times
        self.tissue_gain = float(tissue_gain)
        self.inp = nn.Conv1d(2, channels, 1)
        self.blocks = nn.Sequential(*(CausalBlock(channels, d) for d in dilations))
        self.out = nn.Sequential(nn.Linear(channels, out_channels), nn.LeakyReLU(0.1))
        self.norm = nn.BatchNorm2d(out_channels) if feature_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the temporal feature maps ``[B, channels, H, W]`` of the contract input ``x``."""
        b, _, h, w = x.shape
        curves = x.view(b, 2, self.n_times, h * w).permute(0, 3, 1, 2).reshape(b * h * w, 2, self.n_times)
        if self.tissue_gain != 1.0:
            curves = curves * curves.new_tensor([self.tissue_gain, 1.0]).view(1, 2, 1)
        last = self.blocks(self.inp(curves))[..., -1]  # [B·H·W, channels]
        return self.norm(self.out(last).view(b, h, w, -1).permute(0, 3, 1, 2).contiguous())
