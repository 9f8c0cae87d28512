"""OpenAI CLIP ViT image towers (Radford et al. 2021) through open_clip.

Each variant is built by ``robustad_plugins.clip_network`` when it is created: the image tower's patch tokens after
``ln_post`` and its CLS token before the projection, for any input size; weights from the hub copy of OpenAI's
(``weights`` unset), an open_clip checkpoint file (``weights=PATH``), or ``weights=random`` for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from robustad.hookspecs import hookimpl
from robustad.kit.networks import NetworkBackbone

if TYPE_CHECKING:
    import torch


class ClipBackbone(NetworkBackbone):
    """A CLIP ViT image tower: images in [0,1] -> final (``ln_post``) patch tokens and pooled CLS token."""

    architecture: ClassVar[str] = ""  # open_clip model name, set by each registered variant
    pretrained_tag: ClassVar[str] = "openai"

    def build(self, weights: str | None, device: str) -> torch.nn.Module:
        from robustad_plugins.clip_network import ClipNetwork

        return ClipNetwork(self.name, self.architecture, self.patch_size, self.pretrained_tag, weights, device)


class ClipViTB16(ClipBackbone):
    name = "clip_vitb16"
    description = "OpenAI CLIP ViT-B/16 image tower (open_clip), patch tokens after ln_post"
    architecture = "ViT-B-16"
    patch_size = 16


class ClipViTL14(ClipBackbone):
    name = "clip_vitl14"
    description = "OpenAI CLIP ViT-L/14 image tower (open_clip), patch tokens after ln_post"
    architecture = "ViT-L-14"
    patch_size = 14


BACKBONES = [ClipViTB16, ClipViTL14]


@hookimpl
def register_backbones(register):
    for backbone in BACKBONES:
        register(backbone)
