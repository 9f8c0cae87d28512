"""The typed contract of each plugin kind: every member the engine reads or calls.

Plugins stay plain classes (no base class to inherit); registration checks a class against its kind's protocol,
so a component that lacks a member is reported by ``robustad plugins`` when it is loaded, not halfway through a
grid. Positional constructor arguments are supplied by the engine; keyword-only ones are the component's options.
A class built only when its cells run (a backbone, a detector) may define ``check_options(**options)``, which the
engine calls with the resolved options when the cells are built, so a bad value is one line before any work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from robustad.records import CategoryData, DetectorOutput, Features


class Dataset(Protocol):
    """``cls(**options)``: lists the categories under a root and reads one category's samples."""

    name: ClassVar[str]
    description: ClassVar[str]

    def categories(self, root: Path | None) -> list[str]:
        """The categories present under ``root``; a one-line ``RobustadError`` when the root is unusable."""

    def load(self, root: Path | None, category: str) -> CategoryData:
        """The category's normal training images and its labelled test images."""


class Backbone(Protocol):
    """``cls(*, weights=None, device="cpu", **options)``: a frozen network in eval mode.

    Calling it maps images in [0,1] ``(B, 3, H, W)`` (H, W multiples of ``patch_size``) to ``Features``,
    differentiably; it normalises its input itself and moves it to its own device.

    Optional: ``layer_names`` (a tuple of the intermediate layers it can return by name); a backbone that has it
    is called as ``backbone(images, layers=names)`` when a detector reads some of them, and returns them in
    ``Features.layers``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    patch_size: int
    weights_id: str  # what the leaderboard records: a hub name, ``sha256:<hex>`` of a file, or ``random``

    def __call__(self, images: torch.Tensor) -> Features:
        """Patch tokens ``(B, h, w, C)`` and a global token ``(B, C)``."""


class Detector(Protocol):
    """``cls(backbone, resolution, **options)``: an anomaly detector on a backbone's features.

    Optional metadata: a constructor that names ``category`` or ``seed`` receives the cell's (a per-category rule,
    a seeded coreset or augmentation). Optional attributes: ``layers`` (names from the backbone's
    ``layer_names`` that its scores read: the engine asks the backbone for them on every forward, so they arrive
    in ``Features.layers``), ``memory_bank_size`` (entries of whatever it fitted, recorded in the row) and
    ``zero_shot`` (True: it scores with no reference image, so ``--shots 0`` is allowed; else refused). A detector
    that owns its forward pass from the image follows ``ImageDetector`` instead.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB image -> ``(3, H, W)`` in [0,1], the size the backbone receives (images may differ in size)."""

    def fit(self, reference: list[Image.Image]) -> None:
        """Learn from the few-shot reference images."""

    def score(self, features: Features) -> DetectorOutput:
        """Image scores, patch distances and foreground masks of a batch, without gradient."""

    def score_tensor(self, features: Features, masks: Any = None) -> torch.Tensor:
        """Differentiable image scores ``(B,)`` equal to ``score``'s; ``masks`` is ``DetectorOutput.masks`` of the
        clean images, to hold fixed during an attack, or None for what the detector computes from these features
        (a detector without masks ignores it)."""

    def anomaly_map(self, patch_distances: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The pixel anomaly map ``(H, W)`` of one image from its patch distances ``(h, w)``."""


class ImageDetector(Detector, Protocol):
    """A ``Detector`` that owns its forward pass from the image: it defines ``image_features``, and the engine calls
    it wherever it would call the backbone on images (clean scores, the surrogate, every attack and flag), behind
    the same defense, precision, chunks and finiteness checks, so ``score`` and ``score_tensor`` receive what it
    returns. For detectors that need more than one forward pass of a feature map: windows of tokens, a text tower,
    another library's model. It may read the backbone's modules (``backbone.<attribute>``) but must not call the
    backbone on images, which would call ``image_features`` again. A class that defines ``image_features`` is
    checked against this protocol when it registers.
    """

    def image_features(self, images: torch.Tensor) -> Features:
        """Images in [0,1] ``(B, 3, H, W)`` -> the ``Features`` its ``score`` reads, differentiably; ``layers``
        holds any further maps by the names in its ``layers`` attribute."""


class Surrogate(Protocol):
    """``cls(**options)``: where an attack's gradient comes from, fitted on the calib split only."""

    name: ClassVar[str]
    description: ClassVar[str]
    white_box: bool  # True when the logit is the detector's own score (recorded in the row)

    def fit(self, backbone: Backbone, detector: Detector, features: list[Features], labels: np.ndarray,
            scores: np.ndarray) -> None:
        """Fit on the calib images: ``features`` holds one ``Features`` (batch of one) per image."""

    def logit_model(self, clean: DetectorOutput) -> Callable[[torch.Tensor], torch.Tensor]:
        """The anomaly logit z ``(B,)`` of images, differentiable; ``clean`` is the batch's clean detector output.

        The returned module may define ``score_of(z) -> scores``: the detector's image scores when z is an exact
        function of them (white-box), which lets attacks judge iterates by the real score at no extra cost.
        """


class Attack(Protocol):
    """``cls(**options)``: crafts adversarial images inside the ``target.norm`` ball of ``target.eps``.

    Optional class attributes read by the engine: ``norms`` (the balls it can attack in, default ``("linf",)``:
    an attack that does not declare ``"l2"`` is refused under ``--norm l2``; ``"corruption"``: a natural corruption,
    whose eps is an integer severity 0-5 with no ball around the image), ``needs_surrogate`` (default True;
    False for controls such as random noise, whose cells take no surrogate), ``control`` (default False; True for
    a control, such as random noise, that attacks are read against: the engine gives it no clean candidate) and
    ``members(self) -> list[str]`` (attack specs this attack combines, e.g. a worst case; the engine computes them
    first on the same batch and hands them over through ``target.member``, whose scores behind a randomized defense
    are the selection draws').
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def perturb(self, target: AttackTarget) -> torch.Tensor | Perturbed:
        """Adversarial images ``(B, 3, H, W)``, or ``Perturbed`` when their detector output is already known."""

    def describe(self, eps: float) -> dict[str, Any]:
        """The row's attack settings; keys from ``ATTACK_SETTINGS``."""


class Calibrator(Protocol):
    """``cls(**options)``: maps raw scores to P(anomalous), fitted on clean calib scores only.

    Optional attribute read after ``fit``: ``degenerate`` (True when the fit ran to a bound and gives 0/1
    probabilities; recorded in the row). A calibrator that makes its own decision with an error rate (``conformal``)
    sets ``alpha`` (a number in (0, 1); default None: no decision) and defines ``decide(scores) -> bool array``
    (True: anomalous); the row then records its false- and true-positive rates, clean and attacked.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> Calibrator:
        """Fit on calib scores and 0/1 labels; returns self."""

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities of the anomalous class, in [0, 1]."""


class Defense(Protocol):
    """``cls(**options)``: an input transformation in front of the backbone, applied to every image the detector
    sees (reference images included, so the memory bank lives in the defended domain).

    ``differentiable``: gradients through ``transform`` are the defense's true gradients (else attacks use BPDA:
    the identity on the backward pass). ``randomized``: ``transform`` draws from ``generator`` (else it is given
    None); the engine then scores an image as the ``aggregate`` (``mean`` or ``median``, optional attribute,
    default ``mean``) of ``samples`` draws (optional attribute, default 1), and gradient attacks average their
    logit over EOT draws. Optional ``certified_sigma`` (default None): a randomized defense whose ``transform``
    adds N(0, sigma^2) noise and nothing else, aggregated by the median, sets it to sigma; the engine then
    certifies its scores (``--cert-radius``, docs/protocol.md section 10). Optional ``reach`` (default 0): the
    pixels a filter reads on each side of a pixel; the engine refuses it before any work at a resolution not wider.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    differentiable: bool
    randomized: bool

    def transform(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Images in [0,1] ``(B, 3, H, W)`` -> defended images of the same shape in [0,1]."""


class Flag(Protocol):
    """``cls(**options)``: a per-image statistic that should be high on attacked images (docs/protocol.md section 6).

    The engine thresholds it at the ``--flag-fpr`` quantile of its values on the clean calib images (fitting on
    calib only), so a flag is just its statistic. ``reads``: ``probabilities`` (a function of the calibrated
    posterior ``view.probs``; computed per calibrator) or ``images`` (of the detector on ``view.images`` through
    ``view.score``; computed once per attack, whatever the calibrator). ``statistic`` should be differentiable in
    ``view.images`` (a non-differentiable step written straight-through, BPDA) so flag-aware attacks can descend it.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    reads: str

    def statistic(self, view: FlagView) -> torch.Tensor:
        """One value per image ``(B,)``: higher means more likely attacked."""


FLAG_READS = ("probabilities", "images")
"""What a flag's ``reads`` may declare."""


@dataclass
class FlagView:
    """What a flag sees of one batch: for ``reads="probabilities"`` the detector scores and the calibrated
    posterior; for ``reads="images"`` the images, their detector scores and the differentiable score function."""

    scores: torch.Tensor  # (B,) detector scores of the images
    probs: torch.Tensor | None = None  # (B,) calibrated P(anomalous), for reads="probabilities"
    images: torch.Tensor | None = None  # (B, 3, H, W) in [0,1], for reads="images"
    score: Callable[[torch.Tensor], torch.Tensor] | None = None  # images -> detector scores (B,), differentiable
    seeds: Sequence[int] = ()  # one per image: draw random numbers with ``generator`` (the same for an image's
    # clean and attacked versions)

    def generator(self, index: int) -> torch.Generator:
        """A torch generator seeded for image ``index``."""
        import torch

        device = self.images.device if self.images is not None else self.scores.device
        generator = torch.Generator(device=device)
        generator.manual_seed(int(self.seeds[index]))
        return generator


ATTACK_SETTINGS = ("steps", "alpha", "random_start", "restarts", "loss", "queries", "members", "flag_aware",
                   "corruption")
"""Keys an attack's ``describe`` may return; each is a leaderboard column."""


@dataclass
class Perturbed:
    """Adversarial images together with the detector's output on them (no need to score them again)."""

    images: torch.Tensor
    output: DetectorOutput


@dataclass
class AttackTarget:
    """What an attack sees of one batch of eval images (all of one size)."""

    images: torch.Tensor  # clean images (B, 3, H, W) in [0,1]
    labels: torch.Tensor  # (B,) int64: 0 normal (push up), 1 anomalous (push down)
    eps: float  # the radius of the ``norm`` ball in [0,1] pixel units (under "corruption": the severity)
    seeds: Sequence[int]  # one per image, from (cell seed, image path): draw random numbers with ``generator``
    model: torch.nn.Module | None  # two logits [-z/2, +z/2] from the surrogate; None when no surrogate is used
    score: Callable[[torch.Tensor], torch.Tensor]  # the detector's real image scores (B,), no gradient (a forward);
    # behind a randomized defense on the selection draws, never on the draws a row reports
    score_from_logit: Callable[[torch.Tensor], torch.Tensor] | None = None  # z -> real score, where z gives it
    member: Callable[[str], Perturbed] | None = None  # a member attack's result on this batch (see ``Attack``)
    flag: FlagTarget | None = None  # the flag a flag-aware attack must keep below its threshold
    norm: str = "linf"  # the ball of ``eps``: "linf" or "l2" (the L2 norm of the perturbation of each image), or
    # "corruption" (no ball: eps is a corruption's severity)

    def generator(self, index: int) -> torch.Generator:
        """A torch generator on the images' device seeded for image ``index``: random draws that do not depend
        on the batch the image is in."""
        import torch

        generator = torch.Generator(device=self.images.device)
        generator.manual_seed(int(self.seeds[index]))
        return generator


@dataclass
class FlagTarget:
    """The flag a flag-aware attack evades: its statistic of images (differentiable, computed through the
    surrogate's logit, which gives the detector's scores) and the threshold above which an image is flagged."""

    spec: str
    statistic: Callable[[torch.Tensor], torch.Tensor]  # images (B, 3, H, W) -> (B,)
    threshold: float


CONTRACTS: dict[str, type] = {
    "dataset": Dataset, "backbone": Backbone, "detector": Detector,
    "surrogate": Surrogate, "attack": Attack, "calibrator": Calibrator, "defense": Defense, "flag": Flag,
}


def contract_of(kind: str, cls: type) -> type:
    """The protocol ``cls`` is checked against: ``ImageDetector`` for a detector that defines ``image_features``,
    else ``kind``'s."""
    return ImageDetector if kind == "detector" and _provides(cls, "image_features") else CONTRACTS[kind]


def owns_forward(detector: object) -> bool:
    """True for a detector (class or instance) that owns its forward pass from the image (``ImageDetector``)."""
    return callable(getattr(detector, "image_features", None))


def missing_members(kind: str, cls: type) -> list[str]:
    """The members of ``cls``'s protocol (``contract_of``) that it neither defines nor declares (an annotation
    counts); an ``image_features`` that is not a method counts as missing."""
    protocol = contract_of(kind, cls)
    required = [name for name in _protocol_members(protocol) if name not in ("name", "description")]
    missing = [name for name in required if not _provides(cls, name)]
    if protocol is ImageDetector and not owns_forward(cls):
        missing.append("image_features (a method)")
    return missing


def _protocol_members(protocol: type) -> list[str]:
    names: list[str] = []
    for klass in reversed(protocol.__mro__):  # a protocol's own members after those of the protocols it extends
        if klass in (object, Protocol, Generic) or not getattr(klass, "_is_protocol", False):
            continue
        names += list(vars(klass).get("__annotations__", {}))
        names += [n for n, v in vars(klass).items() if callable(v) and not n.startswith("_")]
        if "__call__" in vars(klass):
            names.append("__call__")
    return list(dict.fromkeys(names))


def _provides(cls: type, name: str) -> bool:
    for klass in cls.__mro__:
        if klass is object:
            continue
        if name in vars(klass) or name in getattr(klass, "__annotations__", {}):
            return True
    return False
