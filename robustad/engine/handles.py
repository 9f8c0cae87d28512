"""Plugin instances as the engine calls them: one guarded door, with the defaults of optional members supplied once.

Every call goes through ``Handle.call`` (whatever it raises becomes one line naming the component) and every
optional member is read through ``Handle.optional``, whose defaults are declared here for every kind, so no engine
module calls plugin code bare or keeps its own ``getattr`` default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robustad.components import Component
from robustad.contracts import ATTACK_SETTINGS
from robustad.engine.guard import blame, create
from robustad.errors import RobustadError, one_line
from robustad.results.leaderboard import row_text

OPTIONAL_MEMBERS: dict[str, dict[str, Any]] = {
    "attack": {"norms": ("linf",), "needs_surrogate": True, "members": None, "flag_aware": None,
               "flag_posterior": None, "control": False},
    "calibrator": {"degenerate": False, "alpha": None, "fpr_bound": None},
    "surrogate": {"white_box": False},
    "defense": {"samples": 1, "aggregate": "mean", "certified_sigma": None, "reach": 0, "report_samples": 0},
}
"""Members a plugin may leave out, per kind, with the value the engine assumes then (``None``: no such method)."""


@dataclass(frozen=True)
class Handle:
    """A created plugin instance and the component it came from."""

    component: Component
    instance: Any

    @classmethod
    def create(cls, component: Component, *args: Any, **options: Any) -> Handle:
        """Instantiate ``component``; its constructor's failure is one line naming it."""
        return cls(component, create(component, *args, **options))

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``instance.method(*args)``, blamed on the component."""
        with blame(self.component):
            return getattr(self.instance, method)(*args, **kwargs)

    def optional(self, member: str) -> Any:
        """An optional attribute, or its declared default; an optional method is called (without arguments)."""
        default = OPTIONAL_MEMBERS[self.component.kind][member]
        with blame(self.component):
            value = getattr(self.instance, member, default)
            return value() if callable(value) else value


def check_settings(attack: Handle, settings: object) -> dict:
    """An attack's ``describe()``: known keys, and values that a row can hold (finite numbers, one-line text)."""
    label = attack.component.label()
    if not isinstance(settings, dict):
        raise RobustadError(f"{label}: describe() returned {type(settings).__name__}; expected a dict")
    unknown = set(settings) - set(ATTACK_SETTINGS)
    if unknown:
        raise RobustadError(f"{label}: describe() returned unknown keys {', '.join(sorted(map(str, unknown)))}; "
                            f"expected keys from {', '.join(ATTACK_SETTINGS)}")
    for key, value in settings.items():
        try:
            row_text(key, value)
        except RobustadError as error:
            raise RobustadError(f"{label}: describe() {one_line(error)}") from None
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise RobustadError(f"{label}: describe() value {key}={value!r} is a {type(value).__name__}; "
                                "expected a number, text or None")
    return settings
