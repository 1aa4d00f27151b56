"""Kinetic-parameter maps from the shipped networks: :func:`infer_parameters`.

Arrays in, arrays out, no files. The input is formed as the contract says
(:mod:`bidsapp.nets.contract`): concentration and plasma AIF resampled to the fixed
grid and divided by the AIF peak; each slice (last spatial axis) is one 2-D image.

* ``net="cnn"`` — direct inference (:class:`bidsapp.nets.cnn.DirectCNN`); no SD.
* ``net="punet"`` — temporal + probabilistic U-Net
  (:class:`bidsapp.nets.prob_unet.ProbUNet`): the mean and the calibrated SD over K
  draws of the **prior** latent (the posterior net is never used at inference).

The result is a :class:`NetFitResult`, a :class:`bidsapp.results.FitResult` (model
``extended_tofts``) with the network's name, weights hash, input contract and envelope
warnings. ``stderr`` holds the SD maps (NaN for the CNN, which has none); ``r2`` and
``sse`` are NaN (not estimated). As for :func:`bidsapp.fit_model`, ve and kep are NaN
where Ktrans < 0.01 /min (no measurable leakage, ve not determined).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from bidsapp.results import FitResult

from . import contract

NETS = ("cnn", "punet")
#: networks whose result carries an SD per parameter (``stderr``; the others' is all NaN)
NETS_WITH_SD = ("punet",)
#: below this Ktrans (1/min) ve and kep are reported as NaN (as in training: not identifiable)
VE_MIN_KTRANS = 0.01


@dataclass
class NetFitResult(FitResult):
    """A :class:`bidsapp.results.FitResult` from a network, with its provenance.

    ``network`` name, ``sha256`` of its weights, ``input_contract`` (JSON-ready),
    ``envelope_warnings`` (one message per acquisition quantity outside the training
    envelope; empty if none).
    """

    network: str = ""
    sha256: str = ""
    input_contract: dict = field(default_factory=dict)
    envelope_warnings: list = field(default_factory=list)

    def coefficient_of_variation(self, name):
        """SD / mean of parameter ``name`` (NaN where the mean is 0 or no SD exists)."""
        mean, sd = self.params[name], self.stderr[name]
        return np.divide(sd, mean, out=np.full(mean.shape, np.nan), where=mean > 0)


@lru_cache(maxsize=4)
def load_network(net, directory=None):
    """Return the shipped network ``net`` (eval mode, CPU) and its model card; checksum verified."""
    from .weights import load_weights

    if net not in NETS:
        raise ValueError(f"net: unknown network {net!r}; choose one of {', '.join(NETS)}")
    shipped = load_weights(net, directory)
    kwargs = {k: v for k, v in shipped.card["architecture"].items() if k != "class"}
    if net == "cnn":
        from .cnn import DirectCNN as Network
    else:
        from .prob_unet import ProbUNet as Network
    module = Network(**kwargs)
    module.load_state_dict(shipped.state_dict)
    return module.eval(), shipped.card, shipped.sha256


def _device(device):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _run(module, net, x, samples, generator):
    import torch

    # the trained punet produces subnormal floats (< 1e-38) on CPU, which made a 176×176×30 volume
    # take 205 s instead of ~10 s; flushing them to zero changes no figure that matters
    flushed = x.device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        with torch.no_grad():
            if net == "cnn":
                return module(x), None
            return module.sample(x, samples, generator)
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def infer_parameters(
    concentration: ArrayLike,
    t: ArrayLike,
    aif: ArrayLike,
    mask: ArrayLike | None = None,
    net: str = "punet",
    device: str = "auto",
    acquisition: contract.Acquisition | dict | None = None,
    strict: bool = False,
    samples: int | None = None,
    seed: int = 0,
    batch: int = 4,
    weights_dir: str | Path | None = None,
) -> NetFitResult:
    """Return extended Tofts maps (Ktrans 1/min, ve, vp, kep 1/min) from a shipped network.

    Parameters
    ----------
    concentration : array ``[X, Y, T]`` or ``[X, Y, Z, T]``
        Tissue concentration (mM); slices are taken along Z.
    t : array ``(T,)``
        Frame times (s); must cover 300 s from the first frame.
    aif : array ``(T,)``
        Plasma AIF (mM) at ``t`` (e.g. ``AIFResult.plasma``).
    mask : bool array ``[X, Y(, Z)]``, optional
        Voxels to report (others NaN); default: voxels with finite curves.
    net : ``"punet"`` or ``"cnn"``
    device : ``"auto"``, ``"cpu"`` or ``"cuda"``
    acquisition : :class:`bidsapp.nets.contract.Acquisition` or dict, optional
        Flip angle (deg), TR (s), field strength (T), baseline length (s) for the
        envelope guard; duration and temporal resolution are taken from ``t``.
    strict : bool
        Refuse (``EnvelopeError``) instead of warning when a quantity is outside.
    samples : int, optional
        Prior draws for ``punet`` (default: the model card's).
    seed : int
        Seed of the prior draws.
    batch : int
        Slices per forward pass.
    weights_dir : path, optional
        Directory of the weights (default: the shipped ones).

    Returns
    -------
    NetFitResult
    """
    import torch

    conc = np.asarray(concentration, dtype=np.float32)
    squeeze = conc.ndim == 3
    if squeeze:
        conc = conc[:, :, None, :]
    if conc.ndim != 4:
        raise ValueError(f"concentration: expected [X, Y, T] or [X, Y, Z, T], got shape {conc.shape}")
    t = np.asarray(t, dtype=float)
    aif = np.asarray(aif, dtype=float)
    if t.ndim != 1 or t.size != conc.shape[-1] or aif.shape != t.shape:
        raise ValueError(
            f"t and aif: expected {conc.shape[-1]} frame times and AIF samples, got {t.shape} and {aif.shape}"
        )
    known = dict(
        acquisition.__dict__ if isinstance(acquisition, contract.Acquisition) else (acquisition or {})
    )
    for taken_from_t in ("duration", "temporal_resolution"):
        known.pop(taken_from_t, None)
    messages = contract.check_envelope(contract.acquisition_from_times(t, **known), strict=strict)
    for message in messages:
        warnings.warn(f"{net}: {message}", stacklevel=2)
    finite = np.isfinite(conc).all(-1)
    use = finite if mask is None else finite & np.asarray(mask, dtype=bool).reshape(finite.shape)

    module, card, sha = load_network(net, weights_dir)
    dev = _device(device)
    module = module.to(dev)
    samples = int(samples or card.get("inference", {}).get("prior_samples", 16))
    generator = torch.Generator(device=dev).manual_seed(int(seed))
    grid_aif = contract.resample(aif, t)
    nz = conc.shape[2]
    mean = np.empty((3,) + conc.shape[:3], dtype=np.float32)
    sd = np.full((3,) + conc.shape[:3], np.nan, dtype=np.float32)
    for z0 in range(0, nz, batch):
        slices = [
            contract.network_input(contract.resample(conc[:, :, z], t), grid_aif)[0]
            for z in range(z0, min(z0 + batch, nz))
        ]
        x = torch.as_tensor(np.stack(slices), device=dev)
        m, s = _run(module, net, x, samples, generator)
        mean[:, :, :, z0 : z0 + len(slices)] = m.permute(1, 2, 3, 0).cpu().numpy()
        if s is not None:
            sd[:, :, :, z0 : z0 + len(slices)] = s.permute(1, 2, 3, 0).cpu().numpy()
    return _result(net, mean, sd, use, squeeze, card, sha, messages)


def _result(net, mean, sd, use, squeeze, card, sha, messages):
    shape = use.shape[:2] if squeeze else use.shape

    def out(a):
        return np.where(use, a, np.nan).astype(float).reshape(shape)

    ktrans, ve, vp = (out(mean[i]) for i in range(3))
    s_ktrans, s_ve, s_vp = (out(sd[i]) for i in range(3))
    leaky = ktrans >= VE_MIN_KTRANS
    ve = np.where(leaky, ve, np.nan)
    s_ve = np.where(leaky, s_ve, np.nan)
    kep = np.divide(ktrans, ve, out=np.full(shape, np.nan), where=leaky & (ve > 0))
    valid = use.reshape(shape) & np.isfinite(ktrans) & np.isfinite(vp)
    nan = np.full(shape, np.nan)
    return NetFitResult(
        model="extended_tofts",
        params={"Ktrans": ktrans, "ve": ve, "vp": vp, "kep": kep},
        stderr={"Ktrans": s_ktrans, "ve": s_ve, "vp": s_vp, "kep": nan.copy()},
        r2=nan.copy(),
        sse=nan.copy(),
        converged=valid.copy(),
        valid=valid,
        network=net,
        sha256=sha,
        input_contract=card["input_contract"],
        envelope_warnings=list(messages),
    )
