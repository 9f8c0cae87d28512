"""A defense as the engine applies it: in front of the backbone, adaptive to the attacker (docs/protocol.md
section 4).

Non-differentiable defenses get BPDA (Athalye et al. 2018): the forward pass is the defense, the backward pass the
identity (``bpda="identity"``), or nothing flows back (``bpda="off"``: the naive attacker, kept to measure how
much it overstates a defense). Randomized defenses draw their noise from a generator seeded by the cell seed, the
image's own content and the draw index, so a draw never depends on the batch, the order or the executor; the
draw index is set by ``draw`` (the clean score's samples, the attack's EOT draws).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import Iterator

import torch

from robustad.engine.adaptive import certified_sigma, reporting_draws
from robustad.engine.guard import ComponentError
from robustad.engine.handles import Handle

SELECTION = 0  # the draws behind an attack's ``score``: numbers 0 .. samples - 1
EOT_DRAWS = 1 << 20  # EOT draw numbers start here, apart from the selection and the reporting draws
REPORTING = 1 << 21  # the draws behind every reported score start here: no attack can query them
_DRAW: contextvars.ContextVar[int] = contextvars.ContextVar("robustad_draw", default=0)


@contextlib.contextmanager
def draw(index: int) -> Iterator[None]:
    """Randomized defenses use draw ``index`` inside the block."""
    token = _DRAW.set(index)
    try:
        yield
    finally:
        _DRAW.reset(token)


class DefenseStep:
    """One model prefix's defense, applied to one image at a time; gradients through it follow the BPDA rule of
    the threat being attacked (``attacked_with``)."""

    def __init__(self, handle: Handle, seed: int, bpda: str = "identity") -> None:
        self.handle = handle
        self.seed = seed
        self.bpda = bpda
        self.randomized = bool(getattr(handle.instance, "randomized"))
        self.differentiable = bool(getattr(handle.instance, "differentiable"))
        self.samples = int(handle.optional("samples")) if self.randomized else 1
        self.report_draws = reporting_draws(handle) if self.randomized else 1
        self.aggregate = str(handle.optional("aggregate"))
        self.certified_sigma = certified_sigma(handle)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        generator = self._generator(image) if self.randomized else None
        defended = self.handle.call("transform", image, generator)
        if tuple(defended.shape) != tuple(image.shape):
            raise ComponentError(f"{self.handle.component.label()} returned shape {tuple(defended.shape)}; "
                                 f"expected {tuple(image.shape)}")
        if not image.requires_grad:
            return defended
        if self.differentiable:
            if not defended.requires_grad:
                raise ComponentError(f"{self.handle.component.label()} declares differentiable = True, but its "
                                     "output carries no gradient; declare it False (attacks then use BPDA)")
            return defended
        if self.bpda == "identity":
            return image + (defended - image).detach()  # forward: the defense; backward: the identity
        return defended.detach() + 0 * image  # bpda off: the true (zero) gradient of a non-differentiable step

    @contextlib.contextmanager
    def attacked_with(self, bpda: str) -> Iterator[None]:
        """Gradients inside the block follow ``bpda`` (a threat-stage setting: one prefix's threats may differ)."""
        before, self.bpda = self.bpda, bpda
        try:
            yield
        finally:
            self.bpda = before

    def _generator(self, image: torch.Tensor) -> torch.Generator:
        content = hashlib.sha256(image.detach().float().cpu().numpy().tobytes())
        content.update(f"{self.seed}:{_DRAW.get()}".encode())
        generator = torch.Generator(device=image.device)
        generator.manual_seed(int.from_bytes(content.digest()[:8], "big") >> 1)
        return generator
