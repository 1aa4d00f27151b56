"""Tiny composable network modules shared by every network (after MONAI's ``basic_unet``).

Each block works in 1, 2 or 3 spatial dimensions (``dims``), so the temporal network, the
2D parameter networks and the 3D dose network assemble their U-Nets from the same pieces:

- :class:`TwoConv`: two (conv → norm → activation) layers;
- :class:`Down`: max-pool by 2, then :class:`TwoConv`;
- :class:`UpCat`: upsample by 2, concatenate the skip connection, then :class:`TwoConv`.

Normalisation is instance norm (independent of batch size, so inference on one slice or
volume behaves as in training); the activation is LeakyReLU(0.1).
"""

from __future__ import annotations

import torch
from torch import nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_UPSAMPLE_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def conv(
    dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1
) -> nn.Module:
    """Return a ``dims``-D convolution with 'same' padding for odd kernels."""
    padding = dilation * (kernel_size - 1) // 2
    return _CONV[dims](in_channels, out_channels, kernel_size, padding=padding, dilation=dilation)


class ConvNormAct(nn.Sequential):
    """Convolution, instance norm (affine) and LeakyReLU(0.1)."""

    def __init__(
        self, dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1
    ):
        super().__init__(
            conv(dims, in_channels, out_channels, kernel_size, dilation),
            _NORM[dims](out_channels, affine=True),
            nn.LeakyReLU(0.1),
        )


class TwoConv(nn.Sequential):
    """Two :class:`ConvNormAct` layers: ``in_channels`` → ``out_channels`` → ``out_channels``."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            ConvNormAct(dims, in_channels, out_channels, kernel_size),
            ConvNormAct(dims, out_channels, out_channels, kernel_size),
        )


class Down(nn.Sequential):
    """Max-pool by 2, then :class:`TwoConv`."""

    def __init__(self, dims: int, in_channels: int, out_channels: int):
        super().__init__(_POOL[dims](2), TwoConv(dims, in_channels, out_channels))


class UpCat(nn.Module):
    """Upsample by 2 to the skip's size, concatenate the skip, then :class:`TwoConv`.

    Parameters
    ----------
    dims : int
        Spatial dimensions (1, 2 or 3).
    in_channels : int
        Channels of the coarse input.
    skip_channels : int
        Channels of the skip connection.
    out_channels : int
        Channels of the output.
    """

    def __init__(self, dims: int, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.mode = _UPSAMPLE_MODE[dims]
        self.convs = TwoConv(dims, in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` to ``skip``'s spatial size (odd sizes allowed) and merge."""
        x = nn.functional.interpolate(x, size=skip.shape[2:], mode=self.mode, align_corners=False)
        return self.convs(torch.cat([x, skip], dim=1))
