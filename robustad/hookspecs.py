"""Hook specifications: one ``register_*`` hook per plugin kind.

Each hook receives a ``register`` callable. A plugin calls ``register(cls)`` once per component class; the class
carries ``name`` and ``description`` class attributes, its keyword-only ``__init__`` parameters (with type hints
and defaults) are its options, and it must provide every member of its kind's protocol in ``robustad.contracts``
(checked when it registers). See ``docs/writing-a-plugin.md``.
"""

import pluggy

hookspec = pluggy.HookspecMarker("robustad")
hookimpl = pluggy.HookimplMarker("robustad")


@hookspec
def register_datasets(register):
    """Register dataset classes.

    :param register: call ``register(cls)``; ``cls(**options)`` follows ``robustad.contracts.Dataset``:
        ``categories(root) -> list[str]`` and ``load(root, category) -> CategoryData``.
    """


@hookspec
def register_backbones(register):
    """Register backbone classes.

    :param register: call ``register(cls)``; ``cls(*, weights=None, device="cpu", **options)`` follows
        ``robustad.contracts.Backbone``: called on images in [0,1] ``(B,3,H,W)`` it returns ``Features``
        (differentiably), with attributes ``patch_size`` and ``weights_id``.
    """


@hookspec
def register_detectors(register):
    """Register detector classes.

    :param register: call ``register(cls)``; ``cls(backbone, resolution, **options)`` (plus the cell's
        ``category`` and ``seed`` where the constructor names them) follows ``robustad.contracts.Detector``:
        ``preprocess``, ``fit``, ``score``, the differentiable ``score_tensor`` and ``anomaly_map``; optionally
        ``layers`` (backbone layers it reads), ``memory_bank_size`` and ``zero_shot``. A class that also defines
        ``image_features(images) -> Features`` owns its forward pass (``robustad.contracts.ImageDetector``).
    """


@hookspec
def register_surrogates(register):
    """Register surrogate classes (where an attack's gradient comes from).

    :param register: call ``register(cls)``; ``cls(**options)`` follows ``robustad.contracts.Surrogate``:
        ``white_box``, ``fit(backbone, detector, features, labels, scores)`` on the calib split and
        ``logit_model(clean) -> module`` returning the anomaly logit z ``(B,)``.
    """


@hookspec
def register_attacks(register):
    """Register attack classes.

    :param register: call ``register(cls)``; ``cls(**options)`` follows ``robustad.contracts.Attack``:
        ``perturb(target: AttackTarget) -> images | Perturbed`` and ``describe(eps) -> dict``; optionally
        ``needs_surrogate`` and ``members()``.
    """


@hookspec
def register_calibrators(register):
    """Register calibrator classes.

    :param register: call ``register(cls)``; ``cls(**options)`` follows ``robustad.contracts.Calibrator``:
        ``fit(scores, labels) -> self`` and ``predict(scores) -> probabilities`` of the anomalous class.
    """


@hookspec
def register_defenses(register):
    """Register defense classes (input transformations in front of the backbone).

    :param register: call ``register(cls)``; ``cls(**options)`` follows ``robustad.contracts.Defense``:
        ``differentiable``, ``randomized`` and ``transform(images, generator) -> images``; optionally ``samples``
        and ``aggregate`` (how a randomized defense's scores over draws are combined).
    """


@hookspec
def register_flags(register):
    """Register attack-flag classes (per-image statistics that should be high on attacked images).

    :param register: call ``register(cls)``; ``cls(**options)`` follows ``robustad.contracts.Flag``: ``reads``
        (``probabilities`` or ``images``) and ``statistic(view: FlagView) -> (B,)``; the engine fits its threshold.
    """
