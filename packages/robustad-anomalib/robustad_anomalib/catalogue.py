"""Which of anomalib 2.7.0's image models robustad can run: those that fit on the k reference images without
training epochs. Kept as lists (checking an option imports nothing); ``tests/test_anomalib_plugin.py`` checks them
against anomalib itself (memory-bank mixin, learning type, optimiser)."""

from __future__ import annotations

from robustad import RobustadError

FITTED = ("AnomalyDINO", "Dfkde", "Dfm", "Padim", "Patchcore", "Rad", "SuperADD")  # memory bank or density: one pass
ZERO_SHOT = ("WinClip",)  # zero-shot, and few-shot with reference images
TRAINED = ("CFM", "Cfa", "Cflow", "Csflow", "Dinomaly", "Draem", "Dsr", "EfficientAd", "Fastflow", "FoundAD", "Fre",
           "Ganomaly", "GeneralAD", "Glass", "InpFormer", "L2BT", "Patchflow", "ReverseDistillation", "Stfpm",
           "Supersimplenet", "Uflow", "UniNet")
OTHER = {
    "MHPatchcore": "fits in several passes over the training set",
    "AnomalyVFM": "runs its backbone without gradient in its own code (torch.autocast and no_grad), and downloads it",
    "VlmAd": "asks a remote vision-language model (not white-box)",
}
SUPPORTED = FITTED + ZERO_SHOT


def canonical(model: str) -> str:
    """anomalib's class name for ``model``, whatever its case and underscores (``padim``, ``anomaly_dino``)."""
    key = str(model).replace("_", "").replace("-", "").lower()
    for name in (*SUPPORTED, *TRAINED, *OTHER):
        if name.lower() == key:
            return name
    return str(model)


def check_model(model: str) -> str:
    """The class name of a model robustad can run, or a one-line error saying why not."""
    name = canonical(model)
    if name in SUPPORTED:
        return name
    if name in TRAINED:
        raise RobustadError(f"anomalib:{name} needs training epochs; robustad fits a detector on the k reference "
                            f"images only (choose from {', '.join(SUPPORTED)})")
    if name in OTHER:
        raise RobustadError(f"anomalib:{name} {OTHER[name]}; choose from {', '.join(SUPPORTED)}")
    raise RobustadError(f"anomalib has no image model {model!r}; choose from {', '.join(SUPPORTED)}")
