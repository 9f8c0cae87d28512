"""The Wide ResNet-50-2 network behind the ``wide_resnet50_2`` backbone (imported when it is created).

Inputs are normalised with the ImageNet mean and standard deviation, as timm's and anomalib's pipelines do. Named
layers are timm's stage modules ``layer1`` to ``layer4`` (strides 4, 8, 16, 32), returned raw. Patch tokens
follow PatchCore, as ``efficientnet_lite0``'s do: ``layer2`` and ``layer3``, each 3x3 average-pooled (stride 1,
zero padding 1), ``layer3`` bilinearly upsampled to the stride-8 grid, concatenated (512 + 1024 = 1536 channels).
Global token: the pooled ``layer4`` features the classifier sees (2048).
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import load_checkpoint

from robustad.kit.backbone_checks import check_layers, patch_grid, torch_device
from robustad.kit.weights import RANDOM, file_id, hub_file, local_file, seeded_random_init, unloadable
from robustad.records import Features

NAME = "wide_resnet50_2"
HUB_ID = "timm/wide_resnet50_2.racm_in1k"  # timm's default pretrained tag for the architecture
HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")
LAYERS = {"layer1": 1, "layer2": 2, "layer3": 3, "layer4": 4}  # timm feature indices
PATCH_LAYERS = ("layer2", "layer3")


class WideResNetNetwork(torch.nn.Module):
    """Wide ResNet-50-2: images in [0,1] -> stride-8 PatchCore-style patch features, pooled layer4 features."""

    name = NAME
    patch_size = 8
    layer_names = tuple(LAYERS)

    def __init__(self, weights: str | None, device: str) -> None:
        super().__init__()
        target = torch_device(device, self.name)  # checked before any slow loading
        if weights == RANDOM:
            with seeded_random_init():
                self.net = timm.create_model(NAME, pretrained=False)
            self.weights_id = RANDOM
        else:
            if weights is None:
                self.weights_id = HUB_ID
                path = hub_file(HUB_ID, HUB_FILENAMES, self.name)
            else:
                path = local_file(weights, self.name)
                self.weights_id = file_id(path)
            self.net = timm.create_model(NAME, pretrained=False)
            try:
                load_checkpoint(self.net, str(path), strict=True)
            except Exception as exc:  # timm, torch and safetensors each raise their own types for a bad file
                raise unloadable(path, self.name, exc) from None
        self.embed_dim = sum(self.net.feature_info[LAYERS[name]]["num_chs"] for name in PATCH_LAYERS)
        self.register_buffer("mean", torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.to(target).eval()

    def forward(self, images: torch.Tensor, layers: Sequence[str] = ()) -> Features:
        rows, cols = patch_grid(images, self.patch_size, self.name)
        check_layers(self, layers)
        names = sorted({*PATCH_LAYERS, *layers}, key=LAYERS.get)
        x = (images.to(self.mean.device) - self.mean) / self.std
        head, maps = self.net.forward_intermediates(x, indices=[LAYERS[name] for name in names])
        by_name = dict(zip(names, maps))
        local = [F.avg_pool2d(by_name[name], kernel_size=3, stride=1, padding=1) for name in PATCH_LAYERS]
        aligned = [F.interpolate(f, size=(rows, cols), mode="bilinear", align_corners=False)
                   if f.shape[-2:] != (rows, cols) else f for f in local]
        patches = torch.cat(aligned, dim=1).permute(0, 2, 3, 1)
        return Features(patch_tokens=patches, global_token=self.net.forward_head(head, pre_logits=True),
                        layers={name: by_name[name] for name in layers})
