"""A run's inputs, declared once: each field's flag, help, default and parser.

The ``robustad bench`` command is generated from ``Request``'s fields, ``robustad.bench(**values)`` checks its
arguments against them and a config file is read against them, so all three take the same names and values and
refuse a bad one in one line naming it. ``grid`` fields decide which cells exist (and go into their keys);
``run`` fields say how and where they are computed. Adding an option means a field here and the code that reads it.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from robustad import parsing
from robustad.errors import RobustadError
from robustad.kit.threat import THREAT_MODELS
from robustad.records import CERT_ALPHA

GRID, RUN = "grid", "run"
PRECISIONS = ("fp32", "bf16", "fp16")
BPDA_CHOICES = ("auto", "identity", "off")
EXECUTORS = {"local": "robustad.engine.executors:run_local", "ray": "robustad.engine.ray_executor:run_ray"}
"""Each executor's function, imported when chosen (Ray's only then): both take the same arguments."""
MAX_EOT = 1000
MAX_CHUNK = 256  # images per model call: a bound that catches a typo before it asks a device for 10000 images
MAX_THREADS = 1024  # more than any machine's cores; torch 2.x crashes in its first matrix product with 100000
MAX_RESAMPLES = 100_000  # 21 eval images x 100000 resamples is already a 17 MB index array per interval
MAX_LIMIT = 1_000_000


def declare(default: Any, parse: parsing.Parser, help: str, *, role: str = GRID, cli: type = str,
            flag: str | None = None, shown: str | None = None) -> Any:
    """A ``Request`` field: its default, parser and help; ``cli`` is the type the command line reads (click checks
    it first: ``int``, ``float``, ``bool`` for a ``--x/--no-x`` switch, ``Path``, ``list`` for a repeatable
    option), ``flag`` the option's name when it is not the field's, ``shown`` the default as help shows it when
    the field's default is None (decided later)."""
    return field(default=default, metadata={"parse": parse, "help": help, "role": role, "cli": cli, "flag": flag,
                                            "shown": shown})


@dataclass(frozen=True)
class Request:
    """What ``robustad bench`` runs, every value parsed (lists as tuples of text, numbers typed, paths as Path)."""

    dataset: tuple[str, ...] = declare("demo", parsing.items, "Dataset plugin(s), comma-separated.")
    data_root: Path | None = declare(None, parsing.optional(parsing.path), "Dataset root folder (the demo set needs "
                                     "none).", cli=Path)
    category: tuple[str, ...] = declare("all", parsing.items, "Categories, comma-separated, or 'all' present under "
                                        "the root.")
    shots: tuple[str, ...] = declare("1", parsing.items, "Reference images k, comma-separated; 'all' = full-shot.")
    seeds: tuple[str, ...] = declare("0", parsing.items, "Seeds, comma-separated (the protocol's full grid uses "
                                     "0,1,2).")
    backbone: tuple[str, ...] = declare("efficientnet_lite0", parsing.items, "Backbone plugin(s), comma-separated.")
    weights: str = declare("", parsing.path_text,
                           "Weights file for the backbone (default: its own source).")
    resolution: tuple[str, ...] = declare("224", parsing.items, "Shorter-edge resolution(s); AnomalyDINO uses 448.")
    detector: tuple[str, ...] = declare("anomalydino", parsing.items, "Detector plugin(s), comma-separated.")
    surrogate: tuple[str, ...] = declare("linear,score", parsing.items, "Surrogate plugin(s), comma-separated.")
    attack: tuple[str, ...] = declare("fgsm,pgd", parsing.items, "Attack plugin(s), e.g. fgsm,pgd:20,apgd,square,"
                                      "worstcase or none.")
    noise_control: bool = declare(True, parsing.switch, "Add the noise control (attack 'noise') to every attack "
                                  "grid.", cli=bool)
    eps: tuple[str, ...] = declare("2/255,8/255", parsing.items, "Budgets in [0,1] pixel units of the --norm ball, "
                                   "e.g. 1/255,2/255 (L-inf), 0.25,0.5 (L2), or severities 0-5 (corruption).")
    norm: str = declare("linf", parsing.text(*THREAT_MODELS), "Threat model of the attacks: linf, l2 (eps the L2 "
                        "norm of the perturbation of the [0,1] resized image), or corruption (eps a severity 0-5 "
                        "of attack corruption:<name>).")
    cert_radius: tuple[str, ...] = declare("", parsing.items, "L2 radii at which to certify a median-smoothing "
                                           "defense, e.g. 0.25,0.5,1.0: one clean-only row per radius with "
                                           "cert_auroc.")
    cert_alpha: float = declare(CERT_ALPHA, parsing.fraction("0.001"), "Probability that a certified bound fails, "
                                "per bound and image.", cli=float)
    calib: tuple[str, ...] = declare("platt,isotonic,temperature:platt,none", parsing.items,
                                     "Calibrator plugin(s), comma-separated (temperature:platt: T fitted on "
                                     "Platt's smoothed targets, finite on separable calib scores).")
    calib_fraction: float = declare(0.3, parsing.fraction("0.3"), "Share of the test split used for calibration.",
                                    cli=float)
    options: tuple[str, ...] | dict[str, Any] = declare((), parsing.option_values, "Plugin option "
                                                        "kind.name.key=value (repeatable).", cli=list, flag="opt")
    precision: str = declare("fp32", parsing.text(*PRECISIONS), "fp32, bf16 (autocast; kNN stays fp32) or fp16 "
                             "(GPU only).")
    round_8bit: bool = declare(False, parsing.switch, "Round adversarial images to the 8-bit grid before scoring.",
                               cli=bool)
    keep_clean: bool = declare(True, parsing.switch, "Keep each image's clean version where an attack's result "
                                    "does not move its score the attack's way (off: plain FGSM).", cli=bool)
    defense: tuple[str, ...] = declare("none", parsing.items, "Defense plugin(s) in front of the backbone, e.g. "
                                       "jpeg,smoothing.")
    bpda: str = declare("auto", parsing.text(*BPDA_CHOICES), "Gradients through a non-differentiable defense: auto "
                        "(identity), identity, or off (the naive attacker); needs a defense.")
    eot: int | None = declare(None, parsing.optional(parsing.integer(1, MAX_EOT)), "EOT draws per gradient step "
                              "through a randomized defense; needs one.", cli=int, shown="16")
    chunk: int | None = declare(None, parsing.optional(parsing.integer(1, MAX_CHUNK)), "Images per model call, "
                                "consecutive in sample order; part of the cell (batched kernels change the last "
                                "bits).", cli=int, shown="1 on cpu, 16 on cuda")
    radius: bool = declare(False, parsing.switch, "Search each eval image's robustness radius up to the row's eps "
                           "(bisection over PGD through the surrogate, judged by the real score) for every attacked "
                           "row with a surrogate: radius_* columns, per-image radii in --save-scores.", cli=bool)
    flag: tuple[str, ...] = declare("entropy", parsing.items, "Attack flag(s), comma-separated (robustad plugins "
                                    "lists them); one row per flag.")
    flag_fpr: float = declare(0.05, parsing.fraction("0.05"), "False-flag rate on the clean calib images that sets "
                              "each flag's threshold.", cli=float)
    limit: int = declare(0, parsing.integer(0, MAX_LIMIT, " (0: every image)"), "At most N eval images per category "
                         "and seed, drawn by the split rule (stratified); recorded in the cell, for smoke runs.",
                         cli=int)
    device: str = declare("cpu", parsing.text(), "torch device: cpu or cuda.", role=RUN)
    threads: int | None = declare(None, parsing.optional(parsing.integer(1, MAX_THREADS)), "torch CPU threads; "
                                  "recorded per row.", role=RUN, cli=int,
                                  shown="OMP_NUM_THREADS when set, else the cores this process may use")
    batch_size: int = declare(8, parsing.integer(1), "Images per forward/attack batch (rows do not depend on it).",
                              role=RUN, cli=int)
    resamples: int = declare(1000, parsing.integer(0, MAX_RESAMPLES, " (0: no intervals)"), "Bootstrap resamples "
                             "for the 95 % intervals (0: none).", role=RUN, cli=int)
    pixel_metrics: bool = declare(True, parsing.switch, "Compute pixel AUROC and AU-PRO where masks exist.",
                                  role=RUN, cli=bool)
    out: Path = declare(Path("results/leaderboard.csv"), parsing.path, "Leaderboard CSV to append to.", role=RUN,
                        cli=Path)
    save_scores: Path | None = declare(None, parsing.optional(parsing.path), "Folder for per-image scores of every "
                                       "cell.", role=RUN, cli=Path)
    save_examples: int = declare(0, parsing.integer(0, note=" (0: none)"), "PNGs of the first N anomalous eval "
                                 "images of every attacked cell, for robustad site --examples (0: none).", role=RUN,
                                 cli=int)
    examples_dir: Path | None = declare(None, parsing.optional(parsing.path), "Folder for --save-examples.",
                                        role=RUN, cli=Path, shown="<out without .csv>-examples beside the leaderboard")
    executor: str = declare("local", parsing.text(*EXECUTORS), "local: in this process; ray: one Ray task per "
                            "prefix group (pip install 'robustad[ray]').", role=RUN)
    ray_address: str | None = declare(None, parsing.optional(parsing.text()), "Ray cluster to join: auto, HOST:PORT "
                                      "or ray://HOST:PORT.", role=RUN, shown="start a local Ray instance")

    def __post_init__(self) -> None:
        for spec in fields(self):
            object.__setattr__(self, spec.name, parse_field(spec, getattr(self, spec.name), flag_of(spec)))

    @classmethod
    def of(cls, values: dict[str, Any], name: Any = None, defaults: dict[str, Any] | None = None) -> Request:
        """A request from ``values`` keyed by field name, on top of ``defaults`` (checked already); an unknown key
        or a bad value is one line naming it as ``name(key)`` does (default: ``key=``)."""
        name = name or (lambda key: f"{key}=")
        known = {spec.name: spec for spec in fields(cls)}
        unknown = [key for key in values if key not in known]
        if unknown:
            raise RobustadError(f"{name(unknown[0]).rstrip('= ')}: unknown argument; expected one of "
                                f"{', '.join(known)}")
        parsed = {key: parse_field(known[key], value, name(key)) for key, value in values.items()}
        return cls(**{**(defaults or {}), **parsed})


def flag_of(spec: Field) -> str:
    """The command-line option of a field: ``--calib-fraction`` for ``calib_fraction``."""
    return "--" + (spec.metadata["flag"] or spec.name).replace("_", "-")


def parse_field(spec: Field, value: Any, named: str) -> Any:
    """``value`` through the field's parser; a refusal names the field as ``named`` does (``--x`` or ``x=``)."""
    try:
        return spec.metadata["parse"](value)
    except parsing.Refused as refused:
        shown = repr(value) if isinstance(value, str) or named.endswith("=") else str(value)
        raise RobustadError(f"{named}{'' if named.endswith('=') else ' '}{shown}: {refused}") from None


REQUEST_FIELDS = tuple(fields(Request))
