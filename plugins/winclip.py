"""WinCLIP (Jeong et al., CVPR 2023): zero- and few-shot anomaly detection with CLIP windows and text prompts, as
anomalib 2.7.0's ``WinClipModel`` computes it with its default pre-processor (docs/protocol.md section 3).

Zero-shot (k = 0): the image embedding and the embedding of every window of 2x2 and 3x3 patches are scored against
two text embeddings, the means of the normal and the anomalous prompt ensemble of the class name (softmax of the
cosine similarities at temperature 0.07, the anomalous class's share). A patch's score at a scale is the harmonic
mean of the windows that cover it; the patch map is the harmonic mean over the scales and the image scale, and the
image score is the image embedding's alone. Few-shot (k >= 1) adds the visual association score, half the cosine
distance to the nearest reference embedding, of each patch token and each window (harmonically aggregated), whose
mean over the scales is averaged with the zero-shot map; the image score is the mean of the zero-shot image score
and the few-shot map's peak.

``windows``: ``anomalib`` (default) is what anomalib 2.7.0 computes under open_clip 3: it hands the window tokens
to the batch-first transformer transposed, so attention runs across windows at each token position, and the CLS
position, identical in every window, attends only to itself: every window embedding is the CLS token alone through
the tower, the same for every window and image (anomalib issue #2571). ``separate`` runs every window as its own
sequence, the class token and the window's patch tokens, as the paper describes.

The detector owns its forward pass (``robustad.contracts.ImageDetector``): ``image_features`` runs the tower on
the image and on its windows, and the engine calls it wherever it would call the backbone. torch and open_clip are
imported where they are used, so listing plugins stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
from PIL import Image

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.networks import NetworkBackbone
from robustad.records import DetectorOutput, Features

if TYPE_CHECKING:
    import torch

TEMPERATURE = 0.07  # CLIP's
NORMAL_STATES = ("{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect",
                 "{} without damage")
ANOMALOUS_STATES = ("damaged {}", "{} with flaw", "{} with defect", "{} with damage")
TEMPLATES = (
    "a cropped photo of the {}.", "a close-up photo of a {}.", "a close-up photo of the {}.",
    "a bright photo of a {}.", "a bright photo of the {}.", "a dark photo of the {}.", "a dark photo of a {}.",
    "a jpeg corrupted photo of the {}.", "a jpeg corrupted photo of the {}.",  # twice, as in anomalib's ensemble
    "a blurry photo of the {}.", "a blurry photo of a {}.", "a photo of a {}.", "a photo of the {}.",
    "a photo of a small {}.", "a photo of the small {}.", "a photo of a large {}.", "a photo of the large {}.",
    "a photo of the {} for visual inspection.", "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.", "a photo of a {} for anomaly detection.",
)
WINDOW_MODES = ("anomalib", "separate")
REFERENCE_BATCH = 8


def prompt_ensemble(class_name: str) -> tuple[list[str], list[str]]:
    """The normal and the anomalous prompts of ``class_name``: every template around every state."""
    def ensemble(states: tuple[str, ...]) -> list[str]:
        return [template.format(state.format(class_name)) for state in states for template in TEMPLATES]

    return ensemble(NORMAL_STATES), ensemble(ANOMALOUS_STATES)


def parse_scales(text: str) -> tuple[int, ...]:
    """``"2+3"`` -> ``(2, 3)``: window sides in patches, each >= 1."""
    try:
        scales = tuple(int(part) for part in str(text).split("+"))
    except ValueError:
        scales = ()
    if not scales or min(scales) < 1:
        raise RobustadError(f"winclip option scales={text!r}: expected window sides in patches joined by + "
                            "(e.g. 2+3)")
    return scales


def window_indices(grid: tuple[int, int], side: int) -> np.ndarray:
    """``(windows, side*side)`` patch indices (row-major) of every ``side`` x ``side`` window at stride 1, the
    windows in row-major order of their top-left patch."""
    rows, cols = grid
    if side > min(rows, cols):
        raise RobustadError(f"winclip: window side {side} exceeds the {rows}x{cols} patch grid")
    index = np.arange(rows * cols).reshape(rows, cols)
    return np.stack([index[r:r + side, c:c + side].reshape(-1)
                     for r in range(rows - side + 1) for c in range(cols - side + 1)])


def harmonic_map(window_scores: torch.Tensor, grid: tuple[int, int], side: int) -> torch.Tensor:
    """``(B, windows)`` -> ``(B, rows, cols)``: each patch's harmonic mean of the windows that cover it; a window
    score of 0 makes it 0."""
    import torch

    rows, cols = grid
    inverse = torch.where(window_scores > 0, 1 / window_scores.clamp_min(1e-30), torch.inf)
    inverse = inverse.reshape(-1, 1, rows - side + 1, cols - side + 1)
    ones = torch.ones(1, 1, side, side, dtype=inverse.dtype, device=inverse.device)
    # a full correlation with a side x side box spreads every window onto the patches it covers
    total = torch.nn.functional.conv_transpose2d(inverse, ones)[:, 0]
    count = torch.nn.functional.conv_transpose2d(torch.ones_like(inverse[:1]), ones)[:, 0]
    return torch.nan_to_num(count / total, posinf=0.0)


def anomalous_share(embeddings: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Softmax over (normal, anomalous) of the cosine similarities at ``TEMPERATURE``: the anomalous share."""
    import torch.nn.functional as F

    similarity = F.normalize(embeddings, dim=-1) @ F.normalize(text, dim=-1).T
    return (similarity / TEMPERATURE).softmax(dim=-1)[..., 1]


def association(embeddings: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``(B, N, C)`` against L2-normalised ``(M, C)``: half the cosine distance to the nearest reference ``(B, N)``."""
    import torch.nn.functional as F

    return (1 - F.normalize(embeddings, dim=-1) @ reference.T).amin(dim=-1) / 2


class WholeClip(NetworkBackbone):
    """open_clip ViT-B-16-plus-240 with its text tower (``robustad_plugins.winclip_network``)."""

    name = "clip_vitb16plus_240"
    description = "open_clip ViT-B-16-plus-240 (LAION-400M), whole CLIP (image and text towers): WinCLIP's model"
    patch_size = 16
    architecture: ClassVar[str] = "ViT-B-16-plus-240"
    pretrained_tag: ClassVar[str] = "laion400m_e31"

    def build(self, weights: str | None, device: str) -> torch.nn.Module:
        from robustad_plugins.winclip_network import WholeClipNetwork

        return WholeClipNetwork(self.name, self.architecture, self.pretrained_tag, weights, device)


class WinClip:
    """WinCLIP on a whole-CLIP backbone: prompt ensemble and harmonic window aggregation (zero-shot), plus visual
    association with the reference images' patch and window embeddings (few-shot)."""

    name = "winclip"
    primary_option = "class_name"  # what winclip:VALUE sets
    description = ("WinCLIP (CVPR 2023), as anomalib 2.7.0: CLIP prompt ensemble on the image and 2x2/3x3 windows, "
                   "harmonic aggregation; k >= 1 adds nearest-reference patch and window distances")
    zero_shot = True  # scores with no reference images (--shots 0)
    memory_bank_size: int

    def __init__(self, backbone: object, resolution: int, category: str, *, class_name: str = "",
                 scales: str = "2+3", windows: str = "anomalib") -> None:
        self.check_options(class_name=class_name, scales=scales, windows=windows)
        network = getattr(backbone, "network", None)
        if not all(hasattr(network, member) for member in ("tokens", "encode", "project", "encode_text")):
            raise RobustadError(f"winclip needs a whole-CLIP backbone (clip_vitb16plus_240); "
                                f"{getattr(backbone, 'name', backbone)!r} has no text tower")
        if resolution != network.image_size[0] or network.image_size[0] != network.image_size[1]:
            raise RobustadError(f"winclip: resolution={resolution!r}; expected {network.image_size[0]}, the input "
                                "size of the backbone's CLIP (--resolution)")
        self.backbone, self.network, self.resolution = backbone, network, resolution
        self.class_name = class_name or category
        self.scales = parse_scales(scales)
        self.windows = windows
        self.grid = (resolution // network.patch_size, resolution // network.patch_size)
        self.indices = {side: window_indices(self.grid, side) for side in self.scales}
        self.layers = tuple(f"window_{side}" for side in self.scales)
        self.memory_bank_size = 0
        self._text: torch.Tensor | None = None
        self._patches: torch.Tensor | None = None  # (k*h*w, width) L2-normalised reference patch tokens
        self._windows: dict[int, torch.Tensor] = {}  # side -> (k*windows, embed) L2-normalised

    @staticmethod
    def check_options(*, class_name: str = "", scales: str = "2+3", windows: str = "anomalib") -> None:
        """One line for a bad option, before the CLIP model is built."""
        parse_scales(scales)
        if windows not in WINDOW_MODES:
            raise RobustadError(f"winclip option windows={windows!r}; expected anomalib (anomalib 2.7.0's "
                                "computation) or separate (each window its own sequence, as the paper)")
        if not str(class_name).isprintable():
            raise RobustadError(f"winclip option class_name={class_name!r}: expected printable text")

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """anomalib's default pre-processor: torchvision bicubic antialiased resize of the float image to a square
        of ``resolution``, then clipped to [0,1] (robustad's images live there; the resize overshoots slightly)."""
        import torch
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2.functional import resize

        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
        resized = resize(pixels, [self.resolution, self.resolution], interpolation=InterpolationMode.BICUBIC,
                         antialias=True)
        return resized.clamp(0, 1)

    def fit(self, reference: list[Image.Image]) -> None:
        """Text embeddings of the class's prompt ensemble; with reference images, their patch and window
        embeddings (computed through the run's backbone slot, so a defense applies to them too)."""
        import torch
        import torch.nn.functional as F

        normal, anomalous = prompt_ensemble(self.class_name)
        with torch.no_grad():
            self._text = torch.cat([self.network.encode_text(normal).mean(dim=0, keepdim=True),
                                    self.network.encode_text(anomalous).mean(dim=0, keepdim=True)]).float()
            patches, windows = [], {side: [] for side in self.scales}
            for start in range(0, len(reference), REFERENCE_BATCH):
                batch = torch.stack([self.preprocess(image) for image in reference[start:start + REFERENCE_BATCH]])
                features = self.backbone(batch, layers=self.layers)
                patches.append(features.patch_tokens.flatten(1, 2).flatten(0, 1))
                for side in self.scales:
                    windows[side].append(features.layers[f"window_{side}"].flatten(2).transpose(1, 2).flatten(0, 1))
        self._patches = F.normalize(torch.cat(patches), dim=-1) if patches else None
        self._windows = {side: F.normalize(torch.cat(parts), dim=-1) for side, parts in windows.items() if parts}
        self.memory_bank_size = 0 if self._patches is None else len(self._patches) + sum(
            len(w) for w in self._windows.values())

    def image_features(self, images: torch.Tensor) -> Features:
        """The tower on the whole image (patch tokens after ``ln_post``, projected CLS embedding) and on its
        windows: ``layers["window_<side>"]`` ``(B, embed, rows - side + 1, cols - side + 1)``."""
        import torch

        tokens = self.network.tokens(images)
        encoded = self.network.encode(tokens)
        batch, width = tokens.shape[0], tokens.shape[-1]
        features = Features(patch_tokens=encoded[:, 1:].reshape(batch, *self.grid, width),
                            global_token=self.network.project(encoded[:, 0]))
        for side, indices in self.indices.items():
            shape = (batch, self.grid[0] - side + 1, self.grid[1] - side + 1, -1)
            if self.windows == "anomalib":  # the CLS token alone: see the module docstring
                pooled = self.network.project(self.network.encode(tokens[:, :1])[:, 0])
                embedded = pooled[:, None, None, :].expand(shape)
            else:
                gather = torch.as_tensor(indices + 1, device=tokens.device).reshape(-1)
                windows = tokens[:, gather].reshape(batch * len(indices), indices.shape[1], width)
                cls = tokens[:, :1].repeat_interleave(len(indices), dim=0)
                pooled = self.network.project(self.network.encode(torch.cat([cls, windows], dim=1))[:, 0])
                embedded = pooled.reshape(shape)
            features.layers[f"window_{side}"] = embedded.permute(0, 3, 1, 2)
        return features

    def score(self, features: Features) -> DetectorOutput:
        import torch

        with torch.no_grad():
            scores, maps = self._scores(features)
        return DetectorOutput(scores.double().cpu().numpy(), maps.double().cpu().numpy())

    def score_tensor(self, features: Features, masks: object = None) -> torch.Tensor:
        """The image scores ``(B,)``, differentiable (WinCLIP keeps no foreground mask)."""
        return self._scores(features)[0]

    def anomaly_map(self, patch_distances: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The patch map bilinearly resized to ``size``, as anomalib resizes it to its input."""
        import torch
        import torch.nn.functional as F

        grid = torch.as_tensor(np.asarray(patch_distances, dtype=np.float32))[None, None]
        return F.interpolate(grid, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()

    def _scores(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores ``(B,)`` and patch maps ``(B, rows, cols)``."""
        import torch

        if self._text is None:
            raise RuntimeError("WinClip.score called before fit")
        text = self._text.to(features.global_token.device)
        image = anomalous_share(features.global_token, text)
        inverse = [1 / image[:, None, None].expand(-1, *self.grid)]
        few_shot = []
        if self._patches is not None:
            patches = features.patch_tokens.flatten(1, 2)
            few_shot.append(association(patches, self._patches.to(patches.device)).reshape(-1, *self.grid))
        for side in self.scales:
            windows = features.layers[f"window_{side}"].flatten(2).transpose(1, 2)  # (B, windows, embed)
            inverse.append(1 / harmonic_map(anomalous_share(windows, text), self.grid, side))
            if self._patches is not None:
                reference = self._windows[side].to(windows.device)
                few_shot.append(harmonic_map(association(windows, reference), self.grid, side))
        maps = len(inverse) / torch.stack(inverse).sum(dim=0)
        if not few_shot:
            return image, maps
        few = torch.stack(few_shot).mean(dim=0)
        return (image + few.flatten(1).amax(dim=1)) / 2, (maps + few) / 2


@hookimpl
def register_backbones(register):
    register(WholeClip)


@hookimpl
def register_detectors(register):
    register(WinClip)
