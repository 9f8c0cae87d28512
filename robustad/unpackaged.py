"""Components from plain Python objects (``robustad.bench(..., plugins=[MyDetector, my_module])``), for one call.

A class becomes a component of the kind whose contract it fits (or its ``kind`` attribute), a module with robustad
hooks a plugin; both go into a copy of the registry, so they get the contracts, guards and one-line errors of
installed plugins and are forgotten after the call. Their distribution reads ``unpackaged module.qualname`` and
every row they touch names them in its ``unpackaged`` column: a leaderboard never passes one off as released.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from robustad.components import KINDS, parse_spec
from robustad.contracts import missing_members
from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.plugins import HOOK_OF_KIND, PluginRegistry
from robustad.records import Cell

UNPACKAGED = "unpackaged "  # how the distribution of such a component begins


def origin(obj: Any) -> str:
    """``module.qualname`` of a class or module (how rows and errors name it)."""
    if isinstance(obj, ModuleType):
        return obj.__name__
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def with_objects(base: PluginRegistry, objects: list | tuple) -> PluginRegistry:
    """A registry holding ``base``'s plugins and then ``objects``; a broken object is one line naming it."""
    if isinstance(objects, (str, bytes)) or not isinstance(objects, (list, tuple)):
        raise RobustadError(f"plugins={objects!r}: expected a list of classes or modules")
    registry = PluginRegistry()
    for name, plugin in base.pm.list_name_plugin():
        registry.add(plugin, name, base.distribution_of(name))
    registry.broken.extend(base.broken)
    known = set(registry.broken)
    for obj in objects:
        name = origin(obj)
        plugin = obj if isinstance(obj, ModuleType) else _ClassPlugin(obj, _kind_of(obj))
        registry.add(plugin, name, UNPACKAGED + name)
    for kind in KINDS:
        registry.components(kind)  # collected now: a class that misses its contract is broken now
    fresh = [broken for broken in registry.broken if broken not in known]
    if fresh:
        raise RobustadError(f"plugins: {fresh[0].message()}")
    return registry


def _kind_of(cls: Any) -> str:
    """The kind a class declares (``kind = "detector"``), else the one kind whose contract it fits."""
    if not isinstance(cls, type):
        raise RobustadError(f"plugins: {cls!r} is neither a class nor a module; expected a component class or a "
                            "module with robustad hooks")
    declared = getattr(cls, "kind", None)
    if declared is not None:
        if declared not in KINDS:
            raise RobustadError(f"plugins: {origin(cls)} declares kind {declared!r}; expected one of "
                                f"{', '.join(KINDS)}")
        return declared
    fits = [kind for kind in KINDS if not missing_members(kind, cls)]
    if len(fits) != 1:
        closest = min(KINDS, key=lambda kind: len(missing_members(kind, cls)))
        reason = (f"fits {' and '.join(fits)}" if fits else
                  f"fits no contract (closest: {closest}, lacking {', '.join(missing_members(closest, cls))})")
        raise RobustadError(f"plugins: {origin(cls)} {reason}; expected one, or a class attribute kind = '...'")
    return fits[0]


class _ClassPlugin:
    """A pluggy plugin that registers one class under its kind's hook."""

    def __init__(self, cls: type, kind: str) -> None:
        def register_class(register: Any) -> None:
            register(cls)

        setattr(self, HOOK_OF_KIND[kind], hookimpl(specname=HOOK_OF_KIND[kind])(register_class))


def unpackaged_in(cell: Cell, registry: PluginRegistry) -> str:
    """The unpackaged components a cell uses, by origin, comma-joined ("" for none)."""
    used = [(key.partition(".")[0], key.partition(".")[2]) for key in json.loads(cell.options)]
    used.append(("flag", cell.flag))
    found = []
    for kind, spec in used:
        component = registry.components(kind).get(parse_spec(spec)[0])
        if component is not None and component.distribution.startswith(UNPACKAGED):
            found.append(component.distribution[len(UNPACKAGED):])
    return ",".join(dict.fromkeys(found))
