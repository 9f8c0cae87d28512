"""Input checks every backbone plugin shares: the image batch's patch grid, the requested torch device, and the
named layers a detector asks for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from robustad.errors import RobustadError

if TYPE_CHECKING:
    import torch


def patch_grid(images: torch.Tensor, patch_size: int, backbone: str) -> tuple[int, int]:
    """The patch grid ``(H/p, W/p)`` of a ``(B, 3, H, W)`` batch, or a one-line error for any other shape."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise RobustadError(f"backbone {backbone}: expected images (B, 3, H, W), got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if height % patch_size or width % patch_size:
        raise RobustadError(f"backbone {backbone}: image size {height}x{width} is not a multiple of "
                            f"the patch size {patch_size}")
    return height // patch_size, width // patch_size


def check_resolution(resolution: object, backbone: object, detector: str) -> None:
    """A detector's input ``resolution``: a positive multiple of the backbone's patch size, or a one-line error."""
    patch = backbone.patch_size
    if not isinstance(resolution, int) or resolution < patch or resolution % patch:
        raise RobustadError(f"{detector}: resolution={resolution!r}; expected a positive multiple of the "
                            f"backbone's patch size {patch}")


def device_of(module: object) -> torch.device:
    """Where a backbone (or any module) computes: its ``device`` attribute, else its first parameter's device,
    else the CPU."""
    import torch

    device = getattr(module, "device", None)
    if device is not None:
        return torch.device(device)
    parameters = getattr(module, "parameters", None)
    parameter = next(iter(parameters()), None) if callable(parameters) else None
    return parameter.device if parameter is not None else torch.device("cpu")


def torch_device(device: str, backbone: str) -> torch.device:
    """The torch device named by the ``device`` option; CUDA only when a GPU is present."""
    import torch

    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise RobustadError(f"backbone {backbone}: device {device!r} is not a torch device "
                            f"(cpu, cuda, cuda:1, ...)") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise RobustadError(f"backbone {backbone}: device {device!r} requested but no CUDA GPU is available")
    return chosen


def check_layers(backbone: object, layers: Sequence[str], who: str = "") -> tuple[str, ...]:
    """``layers`` as a tuple when the backbone exposes every one (its ``layer_names``), else a one-line error
    (prefixed ``who: `` when given, e.g. the detector asking) naming the first missing layer and those there are."""
    available = tuple(getattr(backbone, "layer_names", ()))
    for layer in layers:
        if layer not in available:
            name = getattr(backbone, "name", type(backbone).__name__)
            there = ", ".join(available) if available else "none"
            prefix = f"{who}: " if who else ""
            raise RobustadError(f"{prefix}backbone {name} has no layer {layer!r}; its named layers: {there}")
    return tuple(layers)
