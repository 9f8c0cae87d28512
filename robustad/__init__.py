"""robustad: adversarial robustness and calibration of few-shot image anomaly detectors.

What a plugin may import from here is listed in ``__all__``: the hook marker, the record types, the contract of
each plugin kind (``robustad.contracts``), the error type, and two modules of helpers, ``robustad.kit`` (images,
dataset layouts, weights files, the threat model, backbone checks) and ``robustad.metrics`` (input checks and
metrics). Everything else is internal and may change between versions.
"""

from robustad.api import BenchResult, bench, compare
from robustad.components import parse_spec
from robustad.contracts import (
    ATTACK_SETTINGS,
    Attack,
    AttackTarget,
    Backbone,
    Calibrator,
    Dataset,
    Defense,
    Detector,
    Flag,
    FlagTarget,
    FlagView,
    ImageDetector,
    Perturbed,
    Surrogate,
)
from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.records import CategoryData, DetectorOutput, Features, Sample
from robustad.version import __version__

__all__ = [
    "hookimpl", "RobustadError",
    "Sample", "CategoryData", "Features", "DetectorOutput",
    "Dataset", "Defense", "Backbone", "Detector", "ImageDetector", "Surrogate", "Attack", "Calibrator", "Flag",
    "FlagView",
    "AttackTarget", "FlagTarget", "Perturbed",
    "ATTACK_SETTINGS", "parse_spec",
    "kit", "metrics", "bench", "BenchResult", "compare",
    "__version__",
]
