"""One anomalib image model behind a robustad detector: its pre-processing, its fitting and its torch model.

- Pre-processing: the model's default pre-processor (``configure_pre_processor`` at the cell's resolution) split in
  two: its geometric steps (resize, crop) make robustad's image in [0,1], the space the attacks perturb; its
  ``Normalize`` runs inside the forward pass.
- Fitting: the reference images go through the run's backbone slot (so a defense applies to them), then the
  Lightning module's own ``training_step`` on each and its ``fit`` (memory-bank and density models), or the torch
  model's ``setup(class_name, reference)`` (zero- and few-shot models).
- Scoring: the torch model in eval mode; image score and anomaly map are its raw outputs. anomalib wraps its
  feature extraction in ``torch.no_grad`` (it never needs gradients); while an attack differentiates, those blocks
  are lifted, so the attack follows the model's own gradient (white-box). A ``detach`` in a model's code still cuts
  the gradient there (WinCLIP's window features: its zero-shot image score and patch tokens keep theirs), except
  Dfkde's, whose whole score it would cut: its features are taken without it (``undetached``).
- ``weights=random`` (the backbone ``anomalib``): anomalib's timm and open_clip networks are built with seeded random
  weights and nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from robustad import Features, RobustadError
from robustad.kit.weights import seeded_random_init
from robustad_anomalib.catalogue import ZERO_SHOT, check_model

FIT_BATCH = 8
KDE_MIN_SHOTS = 3  # Dfkde: its KDE needs more image features than PCA components, and anomalib reads 1 as a ratio


class _Lifted:
    """Stands in for ``torch.no_grad`` and ``torch.inference_mode`` inside anomalib's code during an attack: a context
    manager and decorator that changes nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False

    def __call__(self, function: Any) -> Any:
        return function


@contextlib.contextmanager
def gradients_through() -> Iterator[None]:
    """Where gradients are enabled (an attack), anomalib's ``no_grad`` and ``inference_mode`` blocks let them
    through; elsewhere (clean scores, under ``inference_mode``) nothing changes."""
    if not torch.is_grad_enabled():
        yield
        return
    saved = torch.no_grad, torch.inference_mode
    torch.no_grad = torch.inference_mode = _Lifted
    try:
        yield
    finally:
        torch.no_grad, torch.inference_mode = saved


@contextlib.contextmanager
def undetached(model: torch.nn.Module) -> Iterator[None]:
    """Where gradients are enabled, Dfkde's ``get_features`` without its closing ``detach``: the same pooled layer
    outputs, concatenated as anomalib does, so its score's gradient reaches the image (white-box)."""
    from anomalib.models.image.dfkde.torch_model import DfkdeModel

    if not torch.is_grad_enabled() or not isinstance(model, DfkdeModel):
        yield
        return

    def pooled(batch: torch.Tensor) -> torch.Tensor:
        layers = model.feature_extractor(batch)
        return torch.cat([F.adaptive_avg_pool2d(output, (1, 1)).flatten(1) for output in layers.values()])

    model.get_features = pooled
    try:
        yield
    finally:
        del model.get_features


@contextlib.contextmanager
def random_networks() -> Iterator[None]:
    """timm and open_clip networks built inside get seeded random weights instead of downloaded ones."""
    import open_clip
    import timm

    create_timm, create_clip = timm.create_model, open_clip.create_model_and_transforms

    def timm_random(*args: Any, **kwargs: Any) -> Any:
        return create_timm(*args, **{**kwargs, "pretrained": False})

    def clip_random(*args: Any, **kwargs: Any) -> Any:
        return create_clip(*args, **{**kwargs, "pretrained": None})

    timm.create_model, open_clip.create_model_and_transforms = timm_random, clip_random
    try:
        with seeded_random_init():
            yield
    finally:
        timm.create_model, open_clip.create_model_and_transforms = create_timm, create_clip


class AnomalibModel:
    """An anomalib Lightning module, its pre-processing split around robustad's image space."""

    def __init__(self, model: str, resolution: int, class_name: str, random: bool, device: str) -> None:
        import anomalib.models
        from torchvision.transforms.v2 import Compose, Normalize

        self.name = check_model(model)
        self.class_name = class_name
        cls = getattr(anomalib.models, self.name)
        options: dict[str, Any] = {"pre_processor": cls.configure_pre_processor(image_size=(resolution, resolution))}
        if random and "pre_trained" in inspect.signature(cls.__init__).parameters:
            options["pre_trained"] = False
        with random_networks() if random else contextlib.nullcontext():
            self.lightning = cls(**options)
        transform = options["pre_processor"].transform
        steps = list(transform.transforms) if isinstance(transform, Compose) else [transform]
        self.geometric = Compose([s for s in steps if not isinstance(s, Normalize)])
        self.normalise = Compose([s for s in steps if isinstance(s, Normalize)])
        self.lightning.to(device)
        self.torch_model = self.lightning.model.eval().requires_grad_(False)
        self.forward = inspect.unwrap(type(self.torch_model).forward)  # past a @torch.no_grad on forward itself
        self._collected: list[torch.Tensor] | None = None
        self.shots = 0

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
        return self.geometric(pixels).clamp(0, 1)

    def fit(self, images: torch.Tensor | None, backbone: Any) -> None:
        """Fit on the reference images (None: zero-shot), which reach the model through ``backbone``."""
        self.shots = 0 if images is None else len(images)
        if images is None and self.name not in ZERO_SHOT:
            raise RobustadError(f"anomalib:{self.name} needs k >= 1 reference images")
        if self.name == "Dfkde":
            self.fit_kde_to_shots()
        defended = None
        if images is not None:
            self._collected = []
            try:
                with torch.no_grad():
                    for start in range(0, len(images), FIT_BATCH):
                        backbone(images[start:start + FIT_BATCH])
                defended = torch.cat(self._collected)
            finally:
                self._collected = None
        device = next(self.torch_model.parameters()).device
        if self.name in ZERO_SHOT:
            reference = None if defended is None else self.normalise(defended).to(device)
            self.torch_model.setup(self.class_name, reference)
            return
        self.torch_model.train()
        with torch.no_grad():
            for start in range(0, len(defended), FIT_BATCH):
                batch = self.normalise(defended[start:start + FIT_BATCH]).to(device)
                self.lightning.training_step(SimpleNamespace(image=batch))
            self.lightning.fit()
        self.torch_model.eval()

    def fit_kde_to_shots(self) -> None:
        """Dfkde keeps ``n_pca_components`` (16) of its k image features for a Gaussian KDE, whose covariance is
        singular unless k > components, and it leaves itself unfitted when k < components. With fewer images the
        components are clamped to k - 1 (a function of k, which the row records) and a warning says so."""
        classifier = self.torch_model.classifier
        if self.shots < KDE_MIN_SHOTS:
            raise RobustadError(f"anomalib:Dfkde needs k >= {KDE_MIN_SHOTS} reference images (its KDE over k image "
                                f"features keeps at most k - 1 >= 2 PCA components); got k = {self.shots}")
        allowed = self.shots - 1
        if classifier.n_pca_components > allowed:
            warnings.warn(f"anomalib:Dfkde: {self.shots} reference images allow at most {allowed} PCA components; "
                          f"using {allowed} instead of {classifier.n_pca_components}", RuntimeWarning, stacklevel=2)
            classifier.n_pca_components = allowed
            classifier.pca_model = type(classifier.pca_model)(n_components=allowed)

    def bank_size(self) -> int:
        bank = getattr(self.torch_model, "memory_bank", None)
        return int(bank.shape[0]) if isinstance(bank, torch.Tensor) and bank.ndim >= 1 else 0

    def features(self, images: torch.Tensor) -> Features:
        """The model's image scores as the global token ``(B, 1)`` and its anomaly maps as the patch tokens
        ``(B, H, W, 1)`` (an image-level model's map is its score, one uniform cell); while fitting, the (defended)
        reference images are kept instead."""
        batch = images.shape[0]
        if self._collected is not None:
            self._collected.append(images.detach())
            return Features(torch.zeros(batch, 1, 1, 1), torch.zeros(batch, 1))
        with gradients_through(), undetached(self.torch_model):
            output = self.forward(self.torch_model, self.normalise(images))
        scores = output.pred_score.reshape(batch, -1)[:, :1].float()
        if output.anomaly_map is None:  # an image-level model (Dfkde): its map is its score, uniform
            maps = scores.reshape(batch, 1, 1)
        else:
            maps = output.anomaly_map.reshape(batch, *output.anomaly_map.shape[-2:]).float()
        if not bool(torch.isfinite(scores.detach()).all() and torch.isfinite(maps.detach()).all()):
            raise RobustadError(f"anomalib:{self.name} returned non-finite scores after fitting on {self.shots} "
                                "reference image(s); it may need more (PaDiM's covariance needs k >= 2)")
        return Features(patch_tokens=maps[..., None], global_token=scores)
