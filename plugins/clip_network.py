"""The OpenAI CLIP ViT image towers (Radford et al. 2021) behind the ``clip_*`` backbones, through open_clip
(imported when one is created).

Only the image tower is kept, and run here from its parts (conv1, class and position embeddings, ln_pre,
transformer, ln_post) so that any input size works. Patch tokens are the transformer output after
``ln_post``, as open_clip itself returns them for these towers (``ln_post`` on every token, CLS pooling); the
global token is the CLS token after ``ln_post`` BEFORE the projection into the text space, so it has the
width of the patch tokens. The 224-px position table is resized to each input grid with open_clip's own
load-time rule (bicubic, antialiased, exact size, as ``open_clip.model.resize_pos_embed``): the result equals
a model created with ``force_image_size`` = the input size.

Weights: the hub copy of OpenAI's weights (``weights`` unset), or an open_clip checkpoint file of the same
model (``weights=PATH``). ``weights=random`` is a seeded random initialisation for tests.
"""

from __future__ import annotations

import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.transformer import VisionTransformer

from robustad.errors import RobustadError
from robustad.kit.backbone_checks import patch_grid, torch_device
from robustad.kit.weights import RANDOM, file_id, hub_file, local_file, seeded_random_init, unloadable
from robustad.records import Features

HUB_FILENAMES = (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME)


def resize_positions(positions: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A ``(1 + S*S, C)`` CLS-first position table resized to ``grid`` the way open_clip resizes on load."""
    side = int(round((positions.shape[0] - 1) ** 0.5))
    if tuple(grid) == (side, side):
        return positions
    square = positions[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square.float(), size=grid, mode="bicubic", antialias=True, align_corners=False)
    resized = resized.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(positions.dtype)
    return torch.cat([positions[:1], resized])


class ClipNetwork(torch.nn.Module):
    """A CLIP ViT image tower: images in [0,1] -> final (``ln_post``) patch tokens and pooled CLS token."""

    def __init__(self, name: str, architecture: str, patch_size: int, pretrained_tag: str, weights: str | None,
                 device: str) -> None:
        super().__init__()
        target = torch_device(device, name)  # checked before any slow loading
        self.name, self.architecture, self.patch_size = name, architecture, patch_size
        self.pretrained_tag = pretrained_tag
        if weights == RANDOM:
            with seeded_random_init():
                model = self._create(None)
            self.weights_id = RANDOM
        else:
            if weights is None:
                hub = open_clip.get_pretrained_cfg(self.architecture, self.pretrained_tag)["hf_hub"]
                self.weights_id = hub.rstrip("/")
                path = hub_file(self.weights_id, HUB_FILENAMES, self.name)
            else:
                path = local_file(weights, self.name)
                self.weights_id = file_id(path)
            try:
                model = self._create(str(path))
            except Exception as exc:  # open_clip, torch and safetensors each raise their own types for a bad file
                raise unloadable(path, self.name, exc) from None
        visual = model.visual
        if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None \
                or visual.pool_type != "tok" or visual.final_ln_after_pool:  # forward below assumes these
            raise RobustadError(f"backbone {self.name}: {self.architecture} is not a CLS-pooled open_clip ViT")
        visual.proj = None  # not used: the global token stays in the patch tokens' space
        self.visual = visual
        self.embed_dim = self.visual.ln_post.normalized_shape[0]
        self.register_buffer("mean", torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.to(target).eval()

    def _create(self, pretrained: str | None) -> torch.nn.Module:
        # OpenAI trained with QuickGELU; open_clip's built-in ViT configs use nn.GELU unless told
        return open_clip.create_model(self.architecture, pretrained=pretrained, force_quick_gelu=True)

    def forward(self, images: torch.Tensor) -> Features:
        rows, cols = patch_grid(images, self.patch_size, self.name)
        x = (images.to(self.mean.device) - self.mean) / self.std
        visual = self.visual
        patches = visual.conv1(x).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.expand(len(x), 1, -1)
        tokens = torch.cat([cls, patches], dim=1) + resize_positions(visual.positional_embedding, (rows, cols))
        tokens = visual.ln_post(visual.transformer(visual.ln_pre(visual.patch_dropout(tokens))))
        return Features(patch_tokens=tokens[:, 1:].reshape(len(x), rows, cols, -1), global_token=tokens[:, 0])
