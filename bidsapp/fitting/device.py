"""Choice of the torch device for fitting and networks (``auto``, ``cpu``, ``cuda``)."""

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return a :class:`torch.device` for ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda[:i]"``.

    Raises ``ValueError`` if CUDA is asked for but not available.
    """
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} requested but CUDA is not available (use 'auto' or 'cpu')")
        return torch.device(name)
    raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda', got {device!r}")
