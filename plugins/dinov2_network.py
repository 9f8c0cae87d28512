"""The DINOv2 ViT network behind the ``dinov2_*`` backbones (imported when one is created).

The model keeps DINOv2's 37x37 position-embedding table (built at 518 px, so loading never resamples it) and
interpolates it for each input grid exactly as the original facebookresearch model does at run time: bicubic,
no antialiasing, ``scale_factor = (grid + 0.1) / 37``, and no interpolation at all for a 37x37 grid. timm's
own resampling (exact size, antialiased) gives different features, and the published AnomalyDINO numbers
come from the original model. The network is timm's ``VisionTransformer`` (a subclass that only replaces
``_pos_embed``), built directly so that timm's NaFlex switch cannot swap in another class.

Weights: the timm hub copy (``weights`` unset), or a file (``weights=PATH``) in the original layout
(``dinov2_vits14_pretrain.pth``) or timm's (``.pth``/``.safetensors``); timm's ``checkpoint_filter_fn``
converts the original layout. ``weights=random`` is a seeded random initialisation for tests.

Named layers ``blocks.0`` to ``blocks.<depth-1>``: the patch tokens each block outputs, before the final norm (what
Hugging Face's ``hidden_states[i + 1]`` holds), as feature maps ``(B, C, h, w)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import load_checkpoint
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

from robustad.kit.backbone_checks import check_layers, patch_grid, torch_device
from robustad.kit.weights import RANDOM, file_id, hub_file, local_file, seeded_random_init, unloadable
from robustad.records import Features

PATCH_SIZE = 14
TABLE_IMAGE_SIZE = 518  # 37 x 14: the resolution DINOv2's position table was trained at
INTERPOLATE_OFFSET = 0.1  # the original model's interpolate_offset
HUB_TAG = "lvd142m"
HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")


def interpolate_pos_table(table: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resize a square ``(1, S*S, C)`` patch position table to ``grid`` by DINOv2's run-time rule."""
    side = math.isqrt(table.shape[1])
    if side * side != table.shape[1]:
        raise ValueError(f"position table of {table.shape[1]} entries is not square")
    if tuple(grid) == (side, side):
        return table
    rows, cols = grid
    square = table.float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    scale = ((rows + INTERPOLATE_OFFSET) / side, (cols + INTERPOLATE_OFFSET) / side)
    resized = F.interpolate(square, scale_factor=scale, mode="bicubic", antialias=False)
    if tuple(resized.shape[-2:]) != (rows, cols):
        raise ValueError(f"DINOv2 interpolation gave grid {tuple(resized.shape[-2:])}, expected {grid}")
    return resized.permute(0, 2, 3, 1).reshape(1, rows * cols, -1).to(table.dtype)


class DinoV2VisionTransformer(VisionTransformer):
    """timm's ViT whose run-time position embedding follows the original DINOv2 rule for any input grid."""

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch grid ``(B, h, w, C)`` -> CLS (+ its position), registers (no position), patches + positions."""
        batch, rows, cols, dim = x.shape
        cls = self.cls_token.expand(batch, -1, -1)
        table = self.pos_embed
        if not self.no_embed_class:  # plain DINOv2: the table's first entry is the CLS position
            cls = cls + table[:, :1]
            table = table[:, 1:]
        patches = x.reshape(batch, rows * cols, dim) + interpolate_pos_table(table, (rows, cols))
        prefix = [cls] if self.reg_token is None else [cls, self.reg_token.expand(batch, -1, -1)]
        return self.pos_drop(torch.cat(prefix + [patches], dim=1))


class DinoV2Network(torch.nn.Module):
    """A DINOv2 ViT: images in [0,1] -> final-norm patch tokens and CLS token."""

    def __init__(self, name: str, timm_name: str, architecture: dict, weights: str | None, device: str) -> None:
        super().__init__()
        target = torch_device(device, name)  # checked before any slow loading
        self.name = name
        self.patch_size = PATCH_SIZE
        if weights == RANDOM:
            with seeded_random_init():
                self.vit = create_vit(architecture)
            self.weights_id = RANDOM
        else:
            if weights is None:
                self.weights_id = f"timm/{timm_name}.{HUB_TAG}"
                path = hub_file(self.weights_id, HUB_FILENAMES, name)
            else:
                path = local_file(weights, name)
                self.weights_id = file_id(path)
            self.vit = create_vit(architecture)
            try:
                load_checkpoint(self.vit, str(path), strict=True, filter_fn=checkpoint_filter_fn)
            except Exception as exc:  # timm, torch and safetensors each raise their own types for a bad file
                raise unloadable(path, name, exc) from None
        self.embed_dim = self.vit.embed_dim
        self.layer_names = tuple(f"blocks.{index}" for index in range(len(self.vit.blocks)))
        self.register_buffer("mean", torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.to(target).eval()

    def forward(self, images: torch.Tensor, layers: Sequence[str] = ()) -> Features:
        rows, cols = patch_grid(images, self.patch_size, self.name)
        check_layers(self, layers)
        x = (images.to(self.mean.device) - self.mean) / self.std
        maps = {}
        if layers:
            indices = sorted({self.layer_names.index(name) for name in layers})
            tokens, blocks = self.vit.forward_intermediates(x, indices=indices, norm=False, output_fmt="NCHW")
            maps = {f"blocks.{index}": block for index, block in zip(indices, blocks)}
        else:
            tokens = self.vit.forward_features(x)
        patches = tokens[:, self.vit.num_prefix_tokens:]
        return Features(patch_tokens=patches.reshape(len(x), rows, cols, -1), global_token=tokens[:, 0],
                        layers={name: maps[name] for name in layers})


def create_vit(architecture: dict) -> DinoV2VisionTransformer:
    """A variant's network, randomly initialised, with the 37x37 table (518 px)."""
    return DinoV2VisionTransformer(img_size=TABLE_IMAGE_SIZE, patch_size=PATCH_SIZE, init_values=1e-5,
                                   num_classes=0, dynamic_img_size=True, **architecture)
