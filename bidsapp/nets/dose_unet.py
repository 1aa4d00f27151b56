"""Conditional 3D U-Net predicting the standard-dose contrast enhancement from a low dose.

After Pinetz et al. ("Gadolinium dose reduction for brain MRI using conditional deep
learning", arXiv:2403.03539, 2024): a U-Net whose residual blocks receive an embedding
of the acquisition's physics, added to the features inside every block as diffusion
models add their timestep embedding (Ho et al., NeurIPS 2020).

Inputs (channels, see :mod:`bidsapp.nets.dose_inputs`): the dose-normalised low-dose
subtraction ``(low − registered pre) / (s · fraction)``, the low-dose image ``/ s`` and
the local noise SD of the first channel, with ``s`` the reference intensity of the
pre-contrast image. Conditioning: the vector of :data:`CONDITION_NAMES`, each divided
by its :data:`CONDITION_SCALE`. Output: the standard-dose contrast-enhancement signal
divided by ``s``; with ``residual`` (the shipped network) the network predicts the
correction to the first channel, the naive standard-dose estimate, and the output is
their sum.

Architecture (``features = (f0, f1, f2)``): ``ResBlock(3→f0)`` · max-pool ·
``ResBlock(f0→f1)`` · max-pool · ``ResBlock(f1→f2)`` · upsample, concatenate ·
``ResBlock(f2+f1→f1)`` · upsample, concatenate · ``ResBlock(f1+f0→f0)`` · 1×1×1
convolution → 1 channel. A residual block is ``conv3 → norm → act → (+ Linear(emb)) →
conv3 → norm → (+ 1×1 skip of the input) → act`` with group norm (4 groups), which
normalises each sample over its extent, so inference runs on tiles of the training
patch size (:func:`bidsapp.nets.dose_infer.run_network`). The embedding is
``MLP(condition) = Linear → SiLU → Linear`` of width ``embedding``.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import conv

#: physical conditioning values, in the order of the condition vector
CONDITION_NAMES = (
    "field_strength_t",
    "low_dose_mmol_per_kg",
    "dose_fraction",
    "relaxivity_per_mm_per_s",
    "noise_level",
    "voxel_size_mm",
)
#: divisors bringing each condition to order one (T, mmol/kg, fraction, /mM/s, relative SD, mm)
CONDITION_SCALE = (3.0, 0.033, 0.33, 6.0, 0.1, 3.0)
INPUT_NAMES = ("dose_normalised_subtraction", "low_dose", "local_noise_sd")


def _norm(channels: int) -> nn.Module:
    return nn.GroupNorm(4, channels)


class ResBlock(nn.Module):
    """3D residual block with an additive conditioning embedding (see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, embedding: int):
        super().__init__()
        self.conv1 = nn.Sequential(conv(3, in_channels, out_channels), _norm(out_channels), nn.LeakyReLU(0.1))
        self.project = nn.Linear(embedding, out_channels)
        self.conv2 = nn.Sequential(conv(3, out_channels, out_channels), _norm(out_channels))
        self.skip = conv(3, in_channels, out_channels, kernel_size=1)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C, X, Y, Z]``, ``emb`` ``[B, E]``."""
        h = self.conv1(x) + self.project(emb)[:, :, None, None, None]
        return self.act(self.conv2(h) + self.skip(x))


class DoseUNet(nn.Module):
    """Conditional residual 3D U-Net (see the module docstring).

    Parameters
    ----------
    features : tuple of int
        Channels at the three resolutions.
    embedding : int
        Width of the conditioning embedding.
    residual : bool
        Add the first input channel (the dose-normalised subtraction) to the output.
    """

    def __init__(self, features: tuple = (8, 16, 32), embedding: int = 32, residual: bool = False):
        super().__init__()
        self.residual = bool(residual)
        f0, f1, f2 = (int(f) for f in features)
        self.embed = nn.Sequential(
            nn.Linear(len(CONDITION_NAMES), embedding), nn.SiLU(), nn.Linear(embedding, embedding)
        )
        self.enc0 = ResBlock(len(INPUT_NAMES), f0, embedding)
        self.enc1 = ResBlock(f0, f1, embedding)
        self.bottom = ResBlock(f1, f2, embedding)
        self.dec1 = ResBlock(f2 + f1, f1, embedding)
        self.dec0 = ResBlock(f1 + f0, f0, embedding)
        self.head = conv(3, f0, 1, kernel_size=1)
        self.pool = nn.MaxPool3d(2)

    def embedding(self, condition: torch.Tensor) -> torch.Tensor:
        """Embedding ``[B, E]`` of the scaled condition vector ``[B, len(CONDITION_NAMES)]``."""
        return self.embed(condition)

    def forward(self, x: torch.Tensor, condition: torch.Tensor, zero_embedding: bool = False) -> torch.Tensor:
        """Enhancement ``[B, 1, X, Y, Z]`` of inputs ``x`` ``[B, 3, X, Y, Z]`` (any size).

        ``zero_embedding`` replaces the embedding by zeros (the conditioning ablation).
        """
        emb = self.embedding(condition)
        if zero_embedding:
            emb = torch.zeros_like(emb)
        e0 = self.enc0(x, emb)
        e1 = self.enc1(self.pool(e0), emb)
        b = self.bottom(self.pool(e1), emb)
        d1 = self.dec1(_up_cat(b, e1), emb)
        d0 = self.dec0(_up_cat(d1, e0), emb)
        out = self.head(d0)
        return out + x[:, :1] if self.residual else out


def _up_cat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``x`` upsampled (trilinear) to ``skip``'s size and concatenated with it."""
    x = nn.functional.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
    return torch.cat([x, skip], dim=1)
