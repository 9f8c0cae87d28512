"""Where plugin code meets the engine: errors that name their component, and values checked where they enter.

A third party's bug or bad output becomes one line that names the component, its plugin and its distribution;
non-finite numbers are refused where they enter (backbone features, detector scores, attack images, calibrated
probabilities), so no row is ever written from a NaN.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from robustad import interrupts
from robustad.components import Component
from robustad.errors import RobustadError, one_line
from robustad.records import Features

if TYPE_CHECKING:
    import torch

AUTOCAST_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


class ComponentError(RobustadError):
    """An error already attributed to a component: passed on unchanged by enclosing ``blame`` blocks."""


@contextlib.contextmanager
def blame(component: Component) -> Iterator[None]:
    """Turn any exception raised inside into a one-line ``ComponentError`` naming ``component``: ``SystemExit``
    and ``KeyboardInterrupt`` too, which would otherwise end the whole run, unless it is the user's Ctrl-C."""
    try:
        yield
    except ComponentError:
        raise
    except BaseException as error:
        if interrupts.is_users(error):
            raise
        raise ComponentError(f"{component.label()}: {one_line(error)}") from error


def create(component: Component, *args: Any, **options: Any) -> Any:
    """Instantiate a component, blaming it for whatever its constructor raises."""
    with blame(component):
        return component.create(*args, **options)


def require_finite(values: Any, component: Component, what: str) -> None:
    """A ``ComponentError`` when ``values`` (array or tensor) hold NaN or infinity; a tensor is checked where it
    lies, without a copy to the host."""
    if hasattr(values, "detach"):
        import torch

        finite = torch.isfinite(values.detach())
    else:
        finite = np.isfinite(np.asarray(values, dtype=float))
    if bool(finite.all()):
        return
    bad = int((~finite).sum())
    raise ComponentError(f"{component.label()} returned {bad} non-finite value(s) in its {what}")


class GuardedBackbone:
    """The run's view of a backbone: images in the cell's chunks, autocast at the run's precision, float32
    features, non-finite values refused.

    Convolution and matrix kernels are chosen by input shape, so a batched forward can change an image's features
    in the last bit with the batch it is in, and sign-gradient attacks amplify such bits: the backbone sees chunks
    of at most ``chunk`` images, cut from the start of what it is given, and the engine hands it batches that
    start at a chunk boundary of the sample order, so every row depends on the chunk, never on the batch size
    (docs/protocol.md section 9). Everything else (``patch_size``, ``weights_id``, ...) is read through from the
    backbone itself.

    ``layers`` are the intermediate layers the run's detector reads (its ``layers``): every forward asks the
    backbone for them, so the clean scores, the surrogate and every attack see the same features.
    """

    def __init__(self, backbone: Any, component: Component, precision: str, device: str,
                 defense: Callable[[torch.Tensor], torch.Tensor] | None = None, chunk: int = 1) -> None:
        self.backbone = backbone
        self.component = component
        self.precision = precision
        self.device = device
        self.defense = defense  # applied to each image before the backbone (robustad.engine.defended)
        self.chunk = chunk
        self.layers: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backbone, name)

    def __call__(self, images: torch.Tensor, layers: Sequence[str] | None = None) -> Features:
        """Features of a batch; ``layers`` None asks for the run's detector layers."""
        import torch

        names = self.layers if layers is None else tuple(layers)
        each = []
        for start in range(0, images.shape[0], self.chunk):
            chunk = images[start:start + self.chunk]
            if self.defense is not None:
                chunk = torch.cat([self.defense(chunk[row:row + 1]) for row in range(chunk.shape[0])])
            with blame(self.component), self._autocast():
                each.append(self.backbone(chunk, layers=names) if names else self.backbone(chunk))
        for name in names:
            if any(name not in f.layers for f in each):
                raise ComponentError(f"{self.component.label()} returned no layer {name!r} when asked for it")
        joined = joined_features(each, names)
        tokens, global_token = joined.patch_tokens.float(), joined.global_token.float()
        require_finite(tokens, self.component, "patch tokens")
        require_finite(global_token, self.component, "global token")
        maps = {name: layer.float() for name, layer in joined.layers.items()}
        for name, layer in maps.items():
            require_finite(layer, self.component, f"layer {name}")
        return Features(patch_tokens=tokens, global_token=global_token, layers=maps)

    def _autocast(self) -> contextlib.AbstractContextManager:
        import torch

        if self.precision not in AUTOCAST_DTYPES:
            return contextlib.nullcontext()
        device_type = torch.device(self.device).type
        return torch.autocast(device_type, dtype=getattr(torch, AUTOCAST_DTYPES[self.precision]))


def joined_features(parts: Sequence[Features], layers: Sequence[str] | None = None) -> Features:
    """The features of consecutive chunks as those of one batch: ``layers`` (default: the first part's) joined too."""
    import torch

    names = parts[0].layers if layers is None else layers
    return Features(torch.cat([f.patch_tokens for f in parts]), torch.cat([f.global_token for f in parts]),
                    {name: torch.cat([f.layers[name] for f in parts]) for name in names})


def check_precision(precision: str, device: str) -> str | None:
    """None when ``precision`` runs well on ``device``; else why not: a one-line error for fp16 on a CPU, a
    warning text for bf16 on a CPU without native bfloat16 instructions (emulated: slower than fp32)."""
    if precision == "fp32" or not device.startswith("cpu"):
        return None
    if precision == "fp16":
        raise RobustadError("--precision fp16 needs a GPU (--device cuda); on a CPU use bf16 or fp32")
    if not _cpu_has_native_bf16():
        return ("--precision bf16: this CPU has no native bfloat16 instructions (avx512_bf16 or amx_bf16); "
                "torch emulates them, which is slower than fp32")
    return None


def _cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:  # not Linux: assume no
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
