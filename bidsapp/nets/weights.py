"""Shipped network weights: state dicts with a checksum and a JSON model card.

A network ``<name>`` ships as two files in ``bidsapp/data/nets/``:

- ``<name>.pt``: the ``state_dict`` only (never a pickled module), read with
  ``torch.load(weights_only=True)``;
- ``<name>.json``: the model card, a JSON object with at least ``name``, ``architecture``
  (the constructor keywords), ``sha256`` (of the ``.pt`` file), ``input_contract``,
  ``training`` (recipe and the command that reproduces the weights) and ``metrics``.

The checksum is verified on every load, so a corrupted or swapped file is refused with a
one-line error naming the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bidsapp.io_utils import atomic_path, write_text_atomic

REQUIRED_CARD_FIELDS = ("name", "architecture", "sha256", "input_contract", "training", "metrics")


class WeightsError(RuntimeError):
    """A shipped weight file or model card is missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class ShippedWeights:
    """A network's state dict and its model card, checksum verified.

    Attributes
    ----------
    name : str
        Network name (file stem).
    state_dict : dict
        Tensors to pass to ``module.load_state_dict``.
    card : dict
        The model card (see the module docstring).
    sha256 : str
        Hex digest of the weight file.
    """

    name: str
    state_dict: dict
    card: dict
    sha256: str


def default_directory() -> Path:
    """Return the package directory that holds the shipped weights (``bidsapp/data/nets``)."""
    return Path(str(resources.files("bidsapp") / "data" / "nets"))


def sha256_of(path: Path) -> str:
    """Return the hex sha256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(name: str, directory: Path | None = None) -> dict:
    """Read and check the model card ``<name>.json``.

    Raises
    ------
    WeightsError
        If the card is missing, not JSON, or lacks a required field.
    """
    path = Path(directory or default_directory()) / f"{name}.json"
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{path}: model card not found; network {name!r} is not shipped") from None
    except json.JSONDecodeError as error:
        raise WeightsError(f"{path}: model card is not valid JSON ({error})") from None
    missing = [field for field in REQUIRED_CARD_FIELDS if field not in card]
    if missing:
        raise WeightsError(f"{path}: model card lacks field(s) {', '.join(missing)}")
    return card


def load_weights(name: str, directory: Path | None = None) -> ShippedWeights:
    """Load a shipped state dict after verifying its sha256 against the model card.

    Parameters
    ----------
    name : str
        Network name, e.g. ``"cnn"``.
    directory : path, optional
        Where ``<name>.pt`` and ``<name>.json`` live; default :func:`default_directory`.

    Raises
    ------
    WeightsError
        If a file is missing or the checksum does not match the card.
    """
    import torch

    directory = Path(directory or default_directory())
    card = read_card(name, directory)
    path = directory / f"{name}.pt"
    if not path.is_file():
        raise WeightsError(f"{path}: weight file not found; network {name!r} is not shipped")
    digest = sha256_of(path)
    if digest != card["sha256"]:
        raise WeightsError(f"{path}: sha256 {digest} does not match the model card's sha256 {card['sha256']}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return ShippedWeights(name=name, state_dict=state, card=card, sha256=digest)


def save_weights(name: str, module, card: dict, directory: Path) -> Path:
    """Write ``<name>.pt`` (the module's state dict) and ``<name>.json`` atomically.

    The card's ``name`` and ``sha256`` fields are filled in here; the other required
    fields must be given by the caller.

    Returns
    -------
    Path
        The weight file written.
    """
    import io

    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    state = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
    torch.save(state, buffer)
    payload = buffer.getvalue()
    card = {**card, "name": name, "sha256": hashlib.sha256(payload).hexdigest()}
    missing = [field for field in REQUIRED_CARD_FIELDS if field not in card]
    if missing:
        raise WeightsError(f"model card for {name!r} lacks field(s) {', '.join(missing)}")
    weights_path = directory / f"{name}.pt"
    with atomic_path(weights_path) as tmp:
        tmp.write_bytes(payload)
    write_text_atomic(directory / f"{name}.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
    return weights_path


def shipped_networks(directory: Path | None = None) -> list[str]:
    """Return the names of the shipped kinetic networks, read from their model cards (sorted).

    A kinetic network is one whose card's ``input_contract.outputs`` has ``Ktrans`` (the
    dose network's card has none). Imports no numpy or torch (``dcequant --help`` uses it).
    """
    names = []
    for path in sorted(Path(directory or default_directory()).glob("*.json")):
        card = json.loads(path.read_text())
        if "Ktrans" in card.get("input_contract", {}).get("outputs", {}):
            names.append(card["name"])
    return names
