"""Record types that flow between the core and the plugins."""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
NO_DEFENSE = "none"  # the defense of undefended cells
NO_SURROGATE = "none"  # the surrogate of cells whose attack needs none (clean-only cells, the noise control)
CERT_ALPHA = 0.001  # the default probability that a certified bound fails (per bound and image)


SPLIT, MODEL, THREAT, ATTACK, CALIBRATION = "split", "model", "threat", "attack", "calibration"
STAGES = (SPLIT, MODEL, THREAT, ATTACK, CALIBRATION)
"""What a cell field decides, in the order work is shared: cells agreeing on every field (and option) of the
stages up to one share its work (docs/protocol.md section 8)."""
STAGE_OPTION_KINDS = {SPLIT: ("dataset",), MODEL: ("backbone", "detector", "defense"), THREAT: ("surrogate",),
                      ATTACK: ("attack",), CALIBRATION: ("calibrator", "flag")}
FIRST_PROTOCOL = 1
PROTOCOL_VERSION = 2
"""Bumped when a change alters what a cell computes (docs/choices.md lists each bump); enters the key from 2 on."""


def axis(stage: str, default: object = MISSING, *, since: int = 1, role: str = "config", before: object = MISSING,
         gradient: bool = False) -> Any:
    """A cell field deciding ``stage``. A field added after the first release (``since`` > 1) enters the key only
    when it differs from its default, so rows finished before it existed keep their keys.

    ``role`` says how results use it: ``config`` (rows are compared and averaged only within one value),
    ``perturbation`` (what the audit compares across: the attack, its surrogate and eps), ``replicate`` (what
    aggregation averages over: categories, seeds and their images) or ``key`` (identity only, never compared:
    rows of older versions lack it). ``gradient``: how an attack takes its gradients (BPDA, EOT draws); a control
    that takes none (``noise``) keeps the default, so it must not separate the control from the attacks it controls.

    ``before``: what rows written before the field existed ran with, where that is not the default (the default
    changed what cells compute, so the protocol version was bumped with it); the key leaves the field out at that
    value, so that those rows keep their keys.
    """
    return field(default=default, metadata={"stage": stage, "since": since, "role": role, "gradient": gradient,
                                            "before": default if before is MISSING else before})


@dataclass(frozen=True)
class Cell:
    """One leaderboard row's experiment (docs/protocol.md section 1), every field in canonical form: the one
    declaration from which the key, the shared-work prefixes, the leaderboard columns, aggregation and the audit's
    comparisons are derived.

    ``weights`` is the weights' identity (``""``: the backbone's own source, ``random``, or ``sha256:<hex>`` of a
    file: moving the file keeps the key); ``data_id`` a digest of the category's image names, sizes and labels, and
    ``data_sha`` one of their bytes (moving the data keeps both); ``defense`` the input defense in front of the
    backbone (``none``), ``bpda`` how attacks differentiate through it (``none``: its own gradient, ``identity``,
    ``off``) and ``eot_samples`` their EOT draws per gradient step; ``chunk`` how many images of one size each
    model call holds (consecutive in sample order: batched kernels change the last bits with the batch, so the
    chunk is part of the experiment and the batch size is not); ``flag`` the attack flag whose ``flag_*`` and
    ``evasion_rate`` columns the row holds (a spec, like ``calibrator``), thresholded at ``flag_fpr`` false flags
    on the clean calib images; ``norm`` the ball ``eps`` measures (``linf``, or ``l2``: the L2 norm of the
    perturbation of the [0,1] resized image, or ``corruption``: eps a natural corruption's severity; a config, not a
    perturbation, so that rows of two threat models are never compared; clean-only cells keep ``linf``);
    ``cert_radius`` the L2 radius (canonical, ``""``: none) at which a clean-only cell of a certified defense holds
    the certified AUROC, each bound failing with probability at most ``cert_alpha`` (a long format: one cell per
    radius); ``limit`` at most that many eval images (0: all), drawn by the split rule for a smoke run, whose rows
    are never taken for full ones; ``radius`` whether an attacked row with a surrogate also holds each eval image's
    robustness radius up to its eps (``radius_*`` columns; identity only, as it changes no other column);
    ``attack`` the attack plugin's name, its settings in ``options``: canonical JSON of the resolved options,
    defaults included, of every component the cell uses, keyed ``kind.name``.
    """

    dataset: str = axis(SPLIT)
    category: str = axis(SPLIT, role="replicate")
    shots: str = axis(SPLIT)
    seed: int = axis(SPLIT, role="replicate")
    backbone: str = axis(MODEL)
    weights: str = axis(MODEL)
    resolution: int = axis(MODEL)
    detector: str = axis(MODEL)
    surrogate: str = axis(THREAT, role="perturbation")
    attack: str = axis(ATTACK, role="perturbation")
    eps: str = axis(THREAT, role="perturbation")
    calibrator: str = axis(CALIBRATION)
    calib_fraction: float = axis(SPLIT)
    precision: str = axis(MODEL, "fp32")
    round_8bit: bool = axis(THREAT, False)
    options: str = axis(SPLIT, "{}", role="key")  # compared by kind: see options_of
    data_id: str = axis(SPLIT, "", role="replicate")
    data_sha: str = axis(SPLIT, "", since=2, role="key")
    protocol: int = axis(SPLIT, PROTOCOL_VERSION, since=2, before=FIRST_PROTOCOL)
    defense: str = axis(MODEL, "none", since=2)
    bpda: str = axis(THREAT, "none", since=2, gradient=True)
    eot_samples: int = axis(THREAT, 1, since=2, gradient=True)
    chunk: int = axis(MODEL, 1, since=2)
    flag: str = axis(CALIBRATION, "entropy", since=2)
    flag_fpr: float = axis(CALIBRATION, 0.05, since=2)
    norm: str = axis(THREAT, "linf", since=2)
    cert_radius: str = axis(CALIBRATION, "", since=2)
    cert_alpha: float = axis(CALIBRATION, CERT_ALPHA, since=2)
    limit: int = axis(SPLIT, 0, since=2)
    keep_clean: bool = axis(THREAT, True, since=2, before=False)
    radius: bool = axis(THREAT, False, since=2, role="key")

    @property
    def key(self) -> str:
        """A stable hash of the cell: the leaderboard's resume key."""
        return _hash({f.name: getattr(self, f.name) for f in fields(self) if _in_key(f, getattr(self, f.name))})

    @property
    def legacy_key(self) -> str | None:
        """The key rows written before ``data_sha`` existed have for this cell (they are resumed, not redone);
        None for a cell of a later protocol, which no such row computed."""
        if self.protocol != FIRST_PROTOCOL:
            return None
        return _hash({f.name: getattr(self, f.name) for f in fields(self) if f.metadata["since"] == 1})

    def prefix(self, stage: str) -> tuple:
        """Cells with equal prefixes up to ``stage`` share its work: the split (reference, calib and eval lists),
        the model (features, memory bank, clean scores), the threat (attacked together, batch by batch: a worst
        case and its members) and the attack (adversarial images and their scores)."""
        upto = STAGES[: STAGES.index(stage) + 1]
        values = tuple(getattr(self, name) for name in CELL_FIELDS if name != "options"
                       and FIELD_STAGES[name] in upto)
        return (*values, self.options_of(*(kind for s in upto for kind in STAGE_OPTION_KINDS[s])))

    @property
    def model_prefix(self) -> tuple:
        return self.prefix(MODEL)

    @property
    def threat_prefix(self) -> tuple:
        return self.prefix(THREAT)

    @property
    def attack_prefix(self) -> tuple:
        return self.prefix(ATTACK)

    def options_of(self, *kinds: str) -> str:
        """The options of the components of these kinds, as canonical JSON."""
        chosen = {k: v for k, v in json.loads(self.options).items() if k.split(".")[0] in kinds}
        return json.dumps(chosen, sort_keys=True)

    def component_options(self, kind: str, spec: str) -> dict:
        """The resolved options of the component ``kind``/``spec`` in this cell."""
        return dict(json.loads(self.options).get(f"{kind}.{spec}", {}))


def _in_key(spec: Field, value: object) -> bool:
    return spec.metadata["since"] == 1 or value != spec.metadata["before"]


def _hash(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


CELL_FIELDS = tuple(f.name for f in fields(Cell))
FIELD_STAGES = {f.name: f.metadata["stage"] for f in fields(Cell)}
"""The stage each cell field decides: what the shared-work prefixes are derived from."""


def fields_with(*roles: str, stages: tuple[str, ...] = STAGES, gradient: bool | None = None) -> tuple[str, ...]:
    """The cell fields of these roles (and stages; with ``gradient`` only those that do or do not say how an attack
    takes its gradients), in declaration order: what aggregation groups by and what the audit compares are derived
    from here."""
    return tuple(f.name for f in fields(Cell) if f.metadata["role"] in roles and f.metadata["stage"] in stages
                 and gradient in (None, f.metadata["gradient"]))
