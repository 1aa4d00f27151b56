"""Direct kinetic-parameter CNN (after Ulas et al. 2018).

Ulas C, Das D, Thrippleton MJ, et al. Convolutional neural networks for direct inference
of pharmacokinetic parameters: application to stroke dynamic contrast-enhanced MRI.
Front Neurol 2019;9:1147, doi:10.3389/fneur.2018.01147.

The frames of the resampled series are channels (:mod:`bidsapp.nets.contract`):

1. a temporal pathway of 1×1 convolutions mixes each voxel's concentration and AIF
   curves into features;
2. a local pathway (two 3×3 convolutions) and a global pathway (3×3 convolutions
   dilated 2, 4 and 8: a 31-voxel receptive field) see the neighbourhood;
3. the three are concatenated and 1×1 convolutions map them to Ktrans, ve and vp;
   softplus keeps them non-negative and each is multiplied by its typical magnitude
   (:data:`bidsapp.nets.training.data.SCALES`, stored in the architecture).

Fully convolutional: any slice size runs at inference. No normalisation layers, so a
voxel's output depends on its absolute (AIF-normalised) curve, not on slice statistics.

``tissue_gain`` multiplies the N concentration channels before the first layer. Tissue
curves are 0.01–0.2 of the AIF peak while the AIF channels (the same in every voxel)
reach 1, so without it the voxel-to-voxel differences are a small part of the first
features and, with Adam's per-weight step, the concentration weights change the features
slowly (``docs/networks.md``).
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import conv

PARAM_NAMES = ("Ktrans", "ve", "vp")


def _act():
    return nn.LeakyReLU(0.1)


class DirectCNN(nn.Module):
    """Ulas-style CNN: ``[B, 2N, H, W]`` input → ``[B, 3, H, W]`` (Ktrans 1/min, ve, vp).

    Parameters
    ----------
    n_times : int
        Time points N of the input grid (the input has 2N channels).
    temporal : int
        Channels of the temporal (1×1) pathway.
    spatial : int
        Channels of the local and of the global pathway.
    head : int
        Channels of the hidden 1×1 layer of the output head.
    scales : sequence of 3 floats
        Output scale of Ktrans (1/min), ve and vp.
    tissue_gain : float
        Factor on the concentration channels (the AIF channels are unchanged).
    """

    def __init__(
        self,
        n_times: int,
        temporal: int = 48,
        spatial: int = 32,
        head: int = 64,
        scales=(0.1, 0.3, 0.05),
        tissue_gain: float = 1.0,
    ):
        super().__init__()
        self.n_times, self.tissue_gain = int(n_times), float(tissue_gain)
        self.temporal = nn.Sequential(
            conv(2, 2 * n_times, temporal, 1), _act(), conv(2, temporal, temporal, 1), _act()
        )
        self.local = nn.Sequential(conv(2, temporal, spatial), _act(), conv(2, spatial, spatial), _act())
        self.globl = nn.Sequential(
            *(
                layer
                for d, c_in in ((2, temporal), (4, spatial), (8, spatial))
                for layer in (conv(2, c_in, spatial, 3, d), _act())
            )
        )
        self.head = nn.Sequential(
            conv(2, temporal + 2 * spatial, head, 1), _act(), conv(2, head, len(PARAM_NAMES), 1)
        )
        self.register_buffer("scales", torch.as_tensor(scales, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Non-negative Ktrans (1/min), ve, vp maps ``[B, 3, H, W]``."""
        if self.tissue_gain != 1.0:
            x = torch.cat([x[:, : self.n_times] * self.tissue_gain, x[:, self.n_times :]], dim=1)
        features = self.temporal(x)
        merged = torch.cat([features, self.local(features), self.globl(features)], dim=1)
        return nn.functional.softplus(self.head(merged)) * self.scales
