"""A component fitted once per group of cells (a surrogate or a calibrator), as the stages share it."""

from __future__ import annotations

from dataclasses import dataclass

from robustad.components import Component
from robustad.contracts import Calibrator, Surrogate
from robustad.engine.handles import Handle
from robustad.errors import RobustadError


@dataclass
class Fitted:
    """A component fitted once per group (a surrogate or a calibrator), or why it could not be."""

    component: Component
    instance: Surrogate | Calibrator | None = None
    seconds: float = 0.0
    failure: RobustadError | None = None

    @property
    def handle(self) -> Handle:
        """The fitted instance behind the guarded door (its optional members read with their defaults)."""
        return Handle(self.component, self.instance)
