"""The plugin manager: entry points of the ``robustad`` group, loaded lazily, once.

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
from robustad.errors import RobustadError

ENTRY_POINT_GROUP = "robustad"
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
        """Import and register every entry point of the group (or only the ``allowed`` names)."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and ep.name not in allowed:
                continue
            distribution = ep.dist.name if ep.dist else "unknown distribution"
            try:
                module = ep.load()
            except Exception as exc:  # a third party's import error must not take the CLI down
                self.broken.append(BrokenPlugin(ep.name, distribution, _one_line(exc)))
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
            raise RobustadError(f"unknown {kind} {name!r}; choose from: {choices}")
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
                for component in registered:
                    other = found[kind].get(component.name)
                    if other is not None:
                        error = (f"{kind} {component.name!r} is already registered by plugin "
                                 f"{other.plugin!r} ({other.distribution})")
                        self._mark_broken(plugin, distribution, error, found, failed)
                        break
                    found[kind][component.name] = component
        return found

    def _mark_broken(self, plugin, distribution, error, found, failed) -> None:
        self.broken.append(BrokenPlugin(plugin, distribution, _one_line(error)))
        failed.add(plugin)
        for by_name in found.values():
            for name in [n for n, c in by_name.items() if c.plugin == plugin]:
                del by_name[name]


def _one_line(error: object) -> str:
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return " ".join(text.split())


_registry: PluginRegistry | None = None


def get_registry() -> PluginRegistry:
    """The process-wide registry, built on first use."""
    global _registry
    if _registry is None:
        registry = PluginRegistry()
        setting = os.environ.get("ROBUSTAD_LOAD_PLUGINS")
        allowed = None if setting is None else {n.strip() for n in setting.split(",") if n.strip()}
        registry.load_entry_points(allowed)
        _registry = registry
    return _registry


def reset_registry() -> None:
    """Forget the registry so the next ``get_registry`` loads again (for tests)."""
    global _registry
    _registry = None
