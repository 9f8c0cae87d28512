"""The backbone slot of a detector that owns its forward pass from the image (``contracts.ImageDetector``).

The engine calls one shape everywhere: ``backbone(images) -> Features``, then ``detector.score(features)``. For an
``ImageDetector`` the network inside the run's ``GuardedBackbone`` is replaced by ``DetectorForward``, which calls
the detector's ``image_features``; everything the guard does around the network (the defense, the precision, the
chunks, the finiteness checks) and everything downstream (surrogates, attacks, flags, calibrators, certificates)
stays as it is, with no branch for such detectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from robustad.contracts import owns_forward
from robustad.engine.handles import Handle
from robustad.records import Features

if TYPE_CHECKING:
    import torch


class DetectorForward:
    """Called like a backbone, it runs the detector's ``image_features``; every attribute (``patch_size``,
    ``weights_id``, the modules the detector reads) is the network's."""

    def __init__(self, network: Any, detector: Handle) -> None:
        self.network = network
        self.detector = detector

    def __getattr__(self, name: str) -> Any:
        return getattr(self.network, name)

    def __call__(self, images: torch.Tensor, layers: Sequence[str] | None = None) -> Features:
        """The detector's features of ``images``; ``layers`` (the detector's own) are in what it returns."""
        return self.detector.call("image_features", images)


def forward_of(network: Any, detector: Handle) -> Any:
    """What the run's ``GuardedBackbone`` calls on images: the detector's own forward where it has one, else the
    backbone network."""
    return DetectorForward(network, detector) if owns_forward(detector.instance) else network
