"""Record types that flow between the core and the plugins."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: label 0 = normal, 1 = anomalous; ``mask`` is None for normal images."""

    path: Path
    label: int
    mask: Path | None = None
    defect: str = "good"


@dataclass(frozen=True)
class CategoryData:
    """What a dataset plugin returns for one category: normal training images and the labelled test split."""

    dataset: str
    category: str
    train: list[Sample]
    test: list[Sample]


@dataclass(frozen=True)
class Split:
    """The protocol's view of one category for one (k, seed): docs/protocol.md section 2."""

    reference: list[Sample]
    calib: list[Sample]
    eval: list[Sample]
    test: list[Sample]


@dataclass
class Features:
    """Backbone output: final-norm patch tokens ``(B, h, w, C)`` (not L2-normalised) and a global token ``(B, C)``.

    ``layers`` holds the intermediate outputs a detector asked for by name (``Backbone.layer_names``), each a
    feature map ``(B, C_l, h_l, w_l)`` as timm's ``forward_intermediates`` returns them; empty when none were asked.
    """

    patch_tokens: torch.Tensor
    global_token: torch.Tensor
    layers: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class DetectorOutput:
    """Scores of a batch: image scores ``(B,)``, patch distances ``(B, h, w)``, foreground masks or None."""

    scores: np.ndarray
    patch_distances: np.ndarray
    masks: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


NO_ATTACK = "none"  # the attack of clean-only cells
NOISE_CONTROL = "noise"  # the attack every attack grid gets beside it as its control
NO_SURROGATE = "none"  # the surrogate of cells whose attack needs none (clean-only cells, the noise control)


@dataclass(frozen=True)
class Cell:
    """One leaderboard row's experiment (docs/protocol.md section 1), every field in canonical form.

    ``weights`` is the weights' identity (``""``: the backbone's own source, ``random``, or ``sha256:<hex>`` of a
    file: moving the file keeps the key); ``data_id`` a digest of the category's images (relative paths, sizes,
    labels: moving the data keeps the key); ``options`` canonical JSON of the resolved options, defaults
    included, of every component the cell uses, keyed ``kind.spec``.
    """

    dataset: str
    category: str
    shots: str
    seed: int
    backbone: str
    weights: str
    resolution: int
    detector: str
    surrogate: str
    attack: str
    eps: str
    calibrator: str
    calib_fraction: float
    precision: str = "fp32"
    round_8bit: bool = False
    options: str = "{}"
    data_id: str = ""

    @property
    def key(self) -> str:
        """A stable hash of every field: the leaderboard's resume key."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def split_prefix(self) -> tuple:
        """Cells with equal split prefixes share the reference, calib and eval lists."""
        return (self.dataset, self.category, self.data_id, self.shots, self.seed, self.calib_fraction,
                self.options_of("dataset"))

    @property
    def model_prefix(self) -> tuple:
        """Cells with equal model prefixes share features, memory bank and clean scores."""
        return (*self.split_prefix, self.backbone, self.weights, self.resolution, self.detector, self.precision,
                self.options_of("backbone", "detector"))

    @property
    def threat_prefix(self) -> tuple:
        """Cells with equal threat prefixes are attacked together, batch by batch (a worst case and its members)."""
        return (*self.model_prefix, self.surrogate, self.eps, self.round_8bit, self.options_of("surrogate"))

    @property
    def attack_prefix(self) -> tuple:
        """Cells with equal attack prefixes share adversarial images and their scores."""
        return (*self.threat_prefix, self.attack, self.options_of("attack"))

    def options_of(self, *kinds: str) -> str:
        """The options of the components of these kinds, as canonical JSON."""
        chosen = {k: v for k, v in json.loads(self.options).items() if k.split(".")[0] in kinds}
        return json.dumps(chosen, sort_keys=True)

    def component_options(self, kind: str, spec: str) -> dict:
        """The resolved options of the component ``kind``/``spec`` in this cell."""
        return dict(json.loads(self.options).get(f"{kind}.{spec}", {}))


CELL_FIELDS = tuple(f.name for f in fields(Cell))
