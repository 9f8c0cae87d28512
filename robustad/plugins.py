"""The plugin manager: entry points of the ``robustad`` group, loaded lazily, once.

robustad's own entry points register first, then other distributions' in a fixed order (distribution, entry
point order). A component name is owned by whoever registered it first: a later plugin that registers a taken name
is refused as broken, naming both distributions, so a third party can never shadow a built-in.
``ROBUSTAD_LOAD_PLUGINS=name1,name2`` restricts which entry points load; an empty value loads none
(only what a test registers by hand with ``get_registry().add``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from robustad import hookspecs
from robustad.components import KINDS, Component
from robustad.errors import RobustadError, one_line

ENTRY_POINT_GROUP = "robustad"
LOAD_VARIABLE = "ROBUSTAD_LOAD_PLUGINS"
OWN_DISTRIBUTION = "robustad"
HOOK_OF_KIND = {kind: f"register_{kind}s" for kind in KINDS}


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that failed to import or to register its components."""

    plugin: str
    distribution: str
    error: str

    def message(self) -> str:
        return f"plugin {self.plugin!r} from {self.distribution} is broken: {self.error}"


class PluginRegistry:
    """The pluggy manager plus every component the registered plugins provide, by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("robustad")
        self.pm.add_hookspecs(hookspecs)
        self.broken: list[BrokenPlugin] = []
        self._distribution: dict[str, str] = {}
        self._components: dict[str, dict[str, Component]] | None = None

    def load_entry_points(self, allowed: set[str] | None = None) -> None:
        """Import and register every entry point of the group (or only the ``allowed`` names), robustad's first."""
        found = [(ep.dist.name if ep.dist else "unknown distribution", ep)
                 for ep in entry_points(group=ENTRY_POINT_GROUP)]
        found.sort(key=lambda pair: (pair[0] != OWN_DISTRIBUTION, pair[0]))  # stable: file order within one
        for distribution, ep in found:
            if allowed is not None and ep.name not in allowed:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a third party's import error must not take the CLI down
                self.broken.append(BrokenPlugin(ep.name, distribution, one_line(exc)))
                continue
            self.add(module, ep.name, distribution)

    def add(self, plugin: ModuleType | object, name: str, distribution: str = "registered by hand") -> None:
        """Register a plugin object (module or instance with hookimpls) under ``name``."""
        if self.pm.has_plugin(name) or name in self._distribution:
            self.broken.append(BrokenPlugin(name, distribution, f"plugin name {name!r} is already taken"))
            return
        self.pm.register(plugin, name=name)
        self._distribution[name] = distribution
        self._components = None

    def components(self, kind: str) -> dict[str, Component]:
        """All healthy components of one kind, by name."""
        if self._components is None:
            self._components = self._collect()
        return self._components[kind]

    def get(self, kind: str, name: str) -> Component:
        """The component ``kind``/``name``, or a one-line error listing what exists."""
        found = self.components(kind)
        if name not in found:
            choices = ", ".join(sorted(found)) or "none installed"
            setting = os.environ.get(LOAD_VARIABLE)
            hint = f" ({LOAD_VARIABLE}={setting!r} restricts which plugins load)" if setting is not None else ""
            raise RobustadError(f"unknown {kind} {name!r}; choose from: {choices}{hint}")
        return found[name]

    def _collect(self) -> dict[str, dict[str, Component]]:
        found: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        failed: set[str] = {b.plugin for b in self.broken}
        for kind in KINDS:
            hook = getattr(self.pm.hook, HOOK_OF_KIND[kind])
            for impl in hook.get_hookimpls():  # registration order (pluggy calls them last-first)
                plugin = impl.plugin_name
                if plugin in failed:
                    continue
                distribution = self._distribution.get(plugin, "unknown distribution")
                registered: list[Component] = []
                try:
                    impl.function(register=lambda cls: registered.append(
                        Component.from_class(kind, cls, plugin, distribution)))
                except Exception as exc:
                    self._mark_broken(plugin, distribution, exc, found, failed)
                    continue
                taken = [(c, found[kind][c.name]) for c in registered if c.name in found[kind]]
                if taken:
                    component, owner = taken[0]
                    error = (f"refused: {kind} {component.name!r} is already registered by plugin {owner.plugin!r} "
                             f"from {owner.distribution}")
                    self._mark_broken(plugin, distribution, error, found, failed)
                    continue
                for component in registered:
                    found[kind][component.name] = component
        return found

    def _mark_broken(self, plugin, distribution, error, found, failed) -> None:
        self.broken.append(BrokenPlugin(plugin, distribution, one_line(error)))
        failed.add(plugin)
        for by_name in found.values():
            for name in [n for n, c in by_name.items() if c.plugin == plugin]:
                del by_name[name]


_registry: PluginRegistry | None = None


def get_registry() -> PluginRegistry:
    """The process-wide registry, built on first use."""
    global _registry
    if _registry is None:
        registry = PluginRegistry()
        setting = os.environ.get(LOAD_VARIABLE)
        allowed = None if setting is None else {n.strip() for n in setting.split(",") if n.strip()}
        registry.load_entry_points(allowed)
        _registry = registry
    return _registry


def reset_registry() -> None:
    """Forget the registry so the next ``get_registry`` loads again (for tests)."""
    global _registry
    _registry = None
