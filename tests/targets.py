"""Hand-made ``AttackTarget``s on tiny models: what an attack plugin sees of a batch, without running the engine."""

from __future__ import annotations

from collections.abc import Callable

import torch

from robustad.contracts import AttackTarget
from robustad.engine.attacking import ChunkedLogits, ZeroGradients, same_model

EPS = 8 / 255


def two_logits(z_model: torch.nn.Module) -> ChunkedLogits:
    """The two-logit model the engine hands to attacks: ``z_model`` one image at a time, in eval mode."""
    return ChunkedLogits(same_model(z_model), ZeroGradients()).eval()


class TinyLogit(torch.nn.Module):
    """A nonlinear z through the tiny random backbone."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone(x).patch_tokens
        return 5 * (tokens[..., 0] * tokens[..., 1]).mean(dim=(1, 2))


class MeanLogit(torch.nn.Module):
    """z = scale * mean(x) + offset (x an image batch or a batch of logits): the gradient has one sign everywhere."""

    def __init__(self, scale: float = 1.0, offset: float = 0.0) -> None:
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x.reshape(x.shape[0], -1).mean(dim=1) + self.offset


def images_and_labels(count: int = 4, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images with a few pixels on the box edge (0 and 1), labels alternating 0, 1, 0, ..."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, size, size, generator=generator)
    images[:, 0, :2] = 0.0  # pixels on the box edge: the result must stay in [0, 1]
    images[:, 1, :2] = 1.0
    return images, torch.arange(count) % 2


def make_target(z_model: torch.nn.Module | None, images: torch.Tensor, labels: torch.Tensor, *, eps: float = EPS,
                seeds: list[int] | None = None, score: Callable | None = None, white_box: bool = True,
                member: Callable | None = None, norm: str = "linf") -> AttackTarget:
    """A target whose real detector score is ``score`` (default: z itself; ``white_box`` then also gives
    ``score_from_logit``, the identity); seeds default to 100, 101, ..."""
    model = None if z_model is None else two_logits(z_model)

    def z_score(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return z_model(x)

    return AttackTarget(images=images, labels=labels, eps=eps,
                        seeds=seeds if seeds is not None else [100 + i for i in range(len(labels))],
                        model=model, score=score or z_score,
                        score_from_logit=(lambda z: z) if white_box and score is None else None, member=member,
                        norm=norm)
