"""DINOv2 ViT backbones (Oquab et al. 2024; registers: Darcet et al. 2024) through timm.

Each variant is built by ``robustad_plugins.dinov2_network`` when it is created: the original model's
position-embedding rule on timm's ViT, with weights from the timm hub copy (``weights`` unset), a file in the
original or timm layout (``weights=PATH``), or a seeded random initialisation (``weights=random``, for tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from robustad.hookspecs import hookimpl
from robustad.kit.networks import NetworkBackbone

if TYPE_CHECKING:
    import torch

SMALL = dict(embed_dim=384, depth=12, num_heads=6)  # as timm's vit_{small,base,large}_patch14_dinov2
BASE = dict(embed_dim=768, depth=12, num_heads=12)
LARGE = dict(embed_dim=1024, depth=24, num_heads=16)
REGISTERS = dict(reg_tokens=4, no_embed_class=True)  # timm keeps register tokens and CLS off the table
RULE = "original position-embedding interpolation"


class DinoV2Backbone(NetworkBackbone):
    """A DINOv2 ViT: images in [0,1] -> final-norm patch tokens and CLS token."""

    patch_size = 14
    timm_name: ClassVar[str] = ""  # timm's name for the architecture, set by each registered variant
    architecture: ClassVar[dict] = {}  # VisionTransformer arguments of the variant

    def build(self, weights: str | None, device: str) -> torch.nn.Module:
        from robustad_plugins.dinov2_network import DinoV2Network

        return DinoV2Network(self.name, self.timm_name, self.architecture, weights, device)


class DinoV2ViTS14(DinoV2Backbone):
    name = "dinov2_vits14"
    description = f"DINOv2 ViT-S/14 (timm), {RULE}"
    timm_name = "vit_small_patch14_dinov2"
    architecture = SMALL


class DinoV2ViTB14(DinoV2Backbone):
    name = "dinov2_vitb14"
    description = f"DINOv2 ViT-B/14 (timm), {RULE}"
    timm_name = "vit_base_patch14_dinov2"
    architecture = BASE


class DinoV2ViTL14(DinoV2Backbone):
    name = "dinov2_vitl14"
    description = f"DINOv2 ViT-L/14 (timm), {RULE}"
    timm_name = "vit_large_patch14_dinov2"
    architecture = LARGE


class DinoV2ViTS14Registers(DinoV2Backbone):
    name = "dinov2_vits14_reg"
    description = f"DINOv2 ViT-S/14 with 4 registers (timm), {RULE}"
    timm_name = "vit_small_patch14_reg4_dinov2"
    architecture = {**SMALL, **REGISTERS}


class DinoV2ViTB14Registers(DinoV2Backbone):
    name = "dinov2_vitb14_reg"
    description = f"DINOv2 ViT-B/14 with 4 registers (timm), {RULE}"
    timm_name = "vit_base_patch14_reg4_dinov2"
    architecture = {**BASE, **REGISTERS}


class DinoV2ViTL14Registers(DinoV2Backbone):
    name = "dinov2_vitl14_reg"
    description = f"DINOv2 ViT-L/14 with 4 registers (timm), {RULE}"
    timm_name = "vit_large_patch14_reg4_dinov2"
    architecture = {**LARGE, **REGISTERS}


BACKBONES = [DinoV2ViTS14, DinoV2ViTB14, DinoV2ViTL14,
             DinoV2ViTS14Registers, DinoV2ViTB14Registers, DinoV2ViTL14Registers]


@hookimpl
def register_backbones(register):
    for backbone in BACKBONES:
        register(backbone)
