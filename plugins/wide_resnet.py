"""Wide ResNet-50-2 (Zagoruyko and Komodakis 2016) through timm: PatchCore's default backbone.

Built by ``robustad_plugins.wide_resnet_network`` when it is created: timm's ``wide_resnet50_2`` with weights from
timm's hub copy (``weights`` unset: the ones ``timm.create_model(..., pretrained=True)`` loads, as anomalib does),
a file in timm's key names (``weights=PATH``), or a seeded random initialisation (``weights=random``, for tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robustad.hookspecs import hookimpl
from robustad.kit.networks import NetworkBackbone

if TYPE_CHECKING:
    import torch


class WideResNet50(NetworkBackbone):
    """Wide ResNet-50-2: images in [0,1] -> stride-8 PatchCore-style patch features, pooled layer4 features."""

    name = "wide_resnet50_2"
    description = "Wide ResNet-50-2 (timm), named stages layer1-layer4, stride-8+16 patch features"
    patch_size = 8

    def build(self, weights: str | None, device: str) -> torch.nn.Module:
        from robustad_plugins.wide_resnet_network import WideResNetNetwork

        return WideResNetNetwork(weights, device)


@hookimpl
def register_backbones(register):
    register(WideResNet50)
