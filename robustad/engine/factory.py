"""The one door through which the engine builds components.

A component is looked up by kind and spec, given the options the cell records for it (its defaults, ``--opt`` and
the spec's ``:argument``, resolved once when the cells were built; a spec the cell does not record, such as a
flag-aware attack's posterior without ``--opt``, gets its spec's own) and created behind the guard, so that a
constructor's failure is one line naming the component. Stages that keep what they fitted key it by ``key``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from robustad.components import Component, parse_spec
from robustad.engine.handles import Handle
from robustad.plugins import PluginRegistry
from robustad.records import Cell


@dataclass(frozen=True)
class Factory:
    """Builds the components of cells from one registry."""

    registry: PluginRegistry

    def component(self, kind: str, spec: str) -> Component:
        return self.registry.get(kind, parse_spec(spec)[0])

    def options(self, cell: Cell, kind: str, spec: str) -> dict[str, Any]:
        """The options the cell records for ``kind``/``spec``, else those its spec's argument sets."""
        recorded = cell.component_options(kind, spec)
        return recorded if recorded else self.component(kind, spec).spec_options(parse_spec(spec)[1])

    def key(self, cell: Cell, kind: str, spec: str) -> tuple[str, str, str]:
        """What tells two built components apart: kind, spec and options."""
        return kind, spec, json.dumps(self.options(cell, kind, spec), sort_keys=True)

    def build(self, cell: Cell, kind: str, spec: str, *args: Any, **runtime: Any) -> Handle:
        """A guarded handle on a new instance: runtime ``args`` and keywords (a backbone's weights and device, a
        detector's backbone) and the options of ``options``."""
        return Handle.create(self.component(kind, spec), *args, **runtime, **self.options(cell, kind, spec))
