"""Hook specifications: one ``register_*`` hook per plugin kind.

Each hook receives a ``register`` callable. A plugin calls ``register(cls)`` once per component class;
the class carries ``name`` and ``description`` class attributes, and its keyword-only ``__init__``
parameters (with type hints and defaults) are its options. See ``docs/writing-a-plugin.md``.
"""

import pluggy

hookspec = pluggy.HookspecMarker("robustad")
hookimpl = pluggy.HookimplMarker("robustad")


@hookspec
def register_datasets(register):
    """Register dataset classes.

    :param register: call ``register(cls)``; ``cls(**options)`` has ``categories(root) -> list[str]``
        and ``load(root, category) -> CategoryData`` (reference candidates and the labelled test split).
    """


@hookspec
def register_backbones(register):
    """Register backbone classes.

    :param register: call ``register(cls)``; ``cls(weights=None, device="cpu", **options)`` is a
        ``torch.nn.Module`` mapping images in [0,1] ``(B,3,H,W)`` to ``Features`` (normalisation inside,
        differentiable), with attributes ``patch_size`` and ``weights_id``.
    """


@hookspec
def register_detectors(register):
    """Register detector classes.

    :param register: call ``register(cls)``; ``cls(backbone, resolution, category, **options)`` has
        ``preprocess(image) -> Tensor``, ``fit(reference_images)``, ``score(features) -> DetectorOutput``
        and the differentiable ``score_tensor(features, masks) -> Tensor``.
    """


@hookspec
def register_surrogates(register):
    """Register surrogate classes (where an attack's gradient comes from).

    :param register: call ``register(cls)``; ``cls(**options)`` has ``white_box: bool``,
        ``fit(backbone, detector, features, labels, scores)`` on the calib split and
        ``logit_model(clean: DetectorOutput) -> torch.nn.Module`` returning the anomaly logit z ``(B,)``.
    """


@hookspec
def register_attacks(register):
    """Register attack classes.

    :param register: call ``register(cls)``; ``cls(**options)`` has
        ``perturb(model, images, labels, eps) -> Tensor`` where ``model`` returns two logits per image,
        and ``describe(eps) -> dict`` with the row's ``steps``, ``alpha``, ``random_start``, ``restarts``.
    """


@hookspec
def register_calibrators(register):
    """Register calibrator classes.

    :param register: call ``register(cls)``; ``cls(**options)`` has ``fit(scores, labels) -> self``
        and ``predict(scores) -> probabilities`` of the anomalous class.
    """
