"""A whole open_clip CLIP model (image and text towers) behind the ``clip_vitb16plus_240`` backbone, through open_clip
(imported when one is created).

WinCLIP needs more of CLIP than a feature map: the image tower run on its own token sequences (windows of patch
tokens), the projection into the joint space and the text tower, so this network keeps the whole model and offers
those steps (``tokens``, ``encode``, ``project``, ``encode_text``). Called as a backbone it maps images in [0,1] at
the model's input size to the ``ln_post`` patch tokens and the projected CLS embedding.

Weights: an open_clip state_dict or checkpoint file of the same architecture (``weights=PATH``), the hub copy of
LAION-400M's (``weights`` unset: ``laion400m_e31``), or ``weights=random`` (seeded) for tests. The model is built
as open_clip builds it for these weights (``nn.GELU``, not OpenAI's QuickGELU).
"""

from __future__ import annotations

import open_clip
import torch
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.tokenizer import tokenize
from open_clip.transformer import VisionTransformer

from robustad.errors import RobustadError
from robustad.kit.backbone_checks import patch_grid, torch_device
from robustad.kit.weights import RANDOM, file_id, hub_file, local_file, seeded_random_init, unloadable
from robustad.records import Features

HUB_FILENAMES = (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME)


class WholeClipNetwork(torch.nn.Module):
    """An open_clip CLIP model, frozen: its image tower step by step, and its text tower."""

    def __init__(self, name: str, architecture: str, pretrained_tag: str, weights: str | None, device: str) -> None:
        super().__init__()
        target = torch_device(device, name)  # checked before any slow loading
        self.name = name
        if weights == RANDOM:
            with seeded_random_init():
                model = open_clip.create_model(architecture)
            self.weights_id = RANDOM
        else:
            if weights is None:
                hub = open_clip.get_pretrained_cfg(architecture, pretrained_tag)["hf_hub"]
                self.weights_id = hub.rstrip("/")
                path = hub_file(self.weights_id, HUB_FILENAMES, name)
            else:
                path = local_file(weights, name)
                self.weights_id = file_id(path)
            try:
                model = open_clip.create_model(architecture, pretrained=str(path))
            except Exception as exc:  # open_clip, torch and safetensors each raise their own types for a bad file
                raise unloadable(path, name, exc) from None
        visual = model.visual
        if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None \
                or visual.pool_type != "tok" or visual.final_ln_after_pool or visual.proj is None:
            raise RobustadError(f"backbone {name}: {architecture} is not a CLS-pooled, projected open_clip ViT")
        self.model = model
        self.patch_size = visual.patch_size[0]
        self.image_size = tuple(visual.image_size)
        self.embed_dim = visual.ln_post.normalized_shape[0]
        self.register_buffer("mean", torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.to(target).eval()

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0,1] at the model's input size -> its input tokens ``(B, 1 + h*w, width)``: the class token
        first, position embeddings added, before ``ln_pre``."""
        grid = patch_grid(images, self.patch_size, self.name)
        expected = (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)
        if grid != expected:
            raise RobustadError(f"backbone {self.name}: image size {tuple(images.shape[-2:])}; expected "
                                f"{self.image_size}, the size its position table was trained at")
        visual = self.model.visual
        x = (images.to(self.mean.device) - self.mean) / self.std
        patches = visual.conv1(x).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(patches.dtype).expand(len(x), 1, -1)
        return torch.cat([cls, patches], dim=1) + visual.positional_embedding.to(patches.dtype)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token sequences ``(N, L, width)`` (each its own sequence) through ``ln_pre``, the transformer and
        ``ln_post``."""
        visual = self.model.visual
        return visual.ln_post(visual.transformer(visual.ln_pre(tokens)))

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """CLS outputs ``(..., width)`` -> the joint image-text space ``(..., embed)``."""
        return pooled @ self.model.visual.proj

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """The text tower's (unnormalised) embeddings of ``prompts`` ``(P, embed)``."""
        device = self.mean.device
        return self.model.encode_text(tokenize(prompts, context_length=self.model.context_length).to(device))

    def forward(self, images: torch.Tensor) -> Features:
        encoded = self.encode(self.tokens(images))
        rows, cols = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        return Features(patch_tokens=encoded[:, 1:].reshape(len(images), rows, cols, -1),
                        global_token=self.project(encoded[:, 0]))
