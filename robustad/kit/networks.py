"""A base for backbones whose torch network is built when the backbone is created, not when its plugin loads.

Registering a subclass imports no deep-learning library, so ``robustad plugins`` and ``--help`` stay fast: the
heavy imports happen in ``build``, on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from robustad.kit.backbone_checks import device_of

if TYPE_CHECKING:
    import torch

    from robustad.records import Features


class NetworkBackbone:
    """A backbone (``robustad.contracts.Backbone``) around a torch network made by ``build``.

    Subclasses set ``name``, ``description`` and ``patch_size``, and implement ``build(weights, device)``, which
    returns a frozen ``torch.nn.Module`` in eval mode that maps images in [0,1] to ``Features`` and has a
    ``weights_id``; a network with ``layer_names`` also takes ``layers=`` and returns them in ``Features.layers``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    patch_size: ClassVar[int] = 0
    weights_id: str

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        self.network = self.build(weights, device)
        self.weights_id = self.network.weights_id
        self.embed_dim = getattr(self.network, "embed_dim", None)  # channels of the patch tokens, when known
        self.layer_names: tuple[str, ...] = tuple(getattr(self.network, "layer_names", ()))
        self.device = device_of(self.network)

    def build(self, weights: str | None, device: str) -> torch.nn.Module:
        """The network, weights loaded, on ``device``."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, layers: Sequence[str] = ()) -> Features:
        return self.network(images, layers=layers) if layers else self.network(images)
