"""The plugin manager: entry points of the ``robustad`` group, loaded lazily, once.

robustad's own entry points register first, then other distributions' in a fixed order (distribution, entry
point order). A component name is owned by whoever registered first, whatever pluggy ordering a hookimpl asks for
(``tryfirst``, ``trylast``): a later plugin that registers a taken name is refused as broken, naming both
distributions, so a third party can never shadow a built-in. Only entry points of a distribution called robustad
that name a module of the built-in package are robustad's own: another distribution that calls itself
``Robustad`` is a third party (and cannot hide ours: every installed distribution is read, not one per name).
Whatever a plugin raises while it is imported or registered (``SystemExit`` included, but not the user's Ctrl-C)
makes that plugin broken, not the command.
``ROBUSTAD_LOAD_PLUGINS=name1,name2`` restricts which entry points load; an empty value loads none
(only what a test registers by hand with ``get_registry().add``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib.metadata import EntryPoint, distributions
from types import ModuleType

import pluggy

from robustad import hookspecs, interrupts
from robustad.components import KINDS, Component
from robustad.errors import RobustadError, one_line

ENTRY_POINT_GROUP = "robustad"
LOAD_VARIABLE = "ROBUSTAD_LOAD_PLUGINS"
OWN_DISTRIBUTION = "robustad"
BUILTIN_PACKAGE = "robustad_plugins"  # where robustad's own entry points point (pyproject.toml)
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
        found, unreadable = _entry_points()
        if allowed is None:
            self.broken.extend(unreadable)
        for distribution, ep in found:
            if allowed is not None and ep.name not in allowed:
                continue
            try:
                module = ep.load()
            except BaseException as exc:  # a third party's import error must not take the CLI down
                if interrupts.is_users(exc):
                    raise
                self.broken.append(BrokenPlugin(ep.name, distribution, one_line(exc)))
                continue
            self.add(module, ep.name, distribution)

    def add(self, plugin: ModuleType | object, name: str, distribution: str = "registered by hand") -> None:
        """Register a plugin object (module or instance with hookimpls) under ``name``; one that pluggy refuses
        (a hookimpl argument the hookspec lacks, a wrapper that is no generator, the same module twice) or that
        implements a hook robustad does not have is broken."""
        if self.pm.has_plugin(name) or name in self._distribution:
            self.broken.append(BrokenPlugin(name, distribution, f"plugin name {name!r} is already taken"))
            return
        try:
            self.pm.register(plugin, name=name)
            unknown = [impl.function.__name__ for caller in self.pm.get_hookcallers(plugin) or []
                       if caller.spec is None for impl in caller.get_hookimpls() if impl.plugin is plugin]
            if unknown:
                raise RobustadError(f"implements {', '.join(unknown)}, which is not a robustad hook; expected "
                                    f"one of {', '.join(sorted(HOOK_OF_KIND.values()))}")
        except BaseException as exc:  # pluggy's PluginValidationError, or whatever the plugin's attributes raise
            if interrupts.is_users(exc):
                raise
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            self.broken.append(BrokenPlugin(name, distribution, one_line(exc)))
            return
        self._distribution[name] = distribution
        self._components = None

    def distribution_of(self, plugin: str) -> str:
        """The distribution a registered plugin came from."""
        return self._distribution.get(plugin, "unknown distribution")

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
        # by plugin and distribution: a refused duplicate's entry must not hide the plugin whose name it wanted
        failed: set[tuple[str, str]] = {(b.plugin, b.distribution) for b in self.broken}
        for kind in KINDS:
            hook = getattr(self.pm.hook, HOOK_OF_KIND[kind])
            for impl in self._in_registration_order(hook.get_hookimpls()):
                plugin = impl.plugin_name
                distribution = self._distribution.get(plugin, "unknown distribution")
                if (plugin, distribution) in failed:
                    continue
                if impl.hookwrapper or impl.wrapper:
                    error = f"{HOOK_OF_KIND[kind]} is a hook wrapper; robustad calls each plugin's hook itself"
                    self._mark_broken(plugin, distribution, error, found, failed)
                    continue
                registered: list[Component] = []
                try:
                    impl.function(register=lambda cls: registered.append(
                        Component.from_class(kind, cls, plugin, distribution)))
                except BaseException as exc:
                    if interrupts.is_users(exc):
                        raise
                    self._mark_broken(plugin, distribution, exc, found, failed)
                    continue
                taken = [(c, found[kind][c.name]) for c in registered if c.name in found[kind]]
                if taken:
                    component, owner = taken[0]
                    error = (f"refused: {kind} {component.name!r} is already registered by plugin {owner.plugin!r} "
                             f"from {owner.distribution}")
                    self._mark_broken(plugin, distribution, error, found, failed)
                    continue
                names = [c.name for c in registered]
                twice = sorted({name for name in names if names.count(name) > 1})
                if twice:
                    error = f"refused: registers {kind} {twice[0]!r} more than once"
                    self._mark_broken(plugin, distribution, error, found, failed)
                    continue
                for component in registered:
                    found[kind][component.name] = component
        return found

    def _in_registration_order(self, impls: list[pluggy.HookImpl]) -> list[pluggy.HookImpl]:
        """Hookimpls in the order their plugins registered, robustad's first: pluggy's own order puts ``trylast``
        ones first, which would let such a plugin take a built-in's name."""
        order = {name: index for index, name in enumerate(self._distribution)}
        return sorted(impls, key=lambda impl: order.get(impl.plugin_name, len(order)))

    def _mark_broken(self, plugin, distribution, error, found, failed) -> None:
        self.broken.append(BrokenPlugin(plugin, distribution, one_line(error)))
        failed.add((plugin, distribution))
        for by_name in found.values():
            for name in [n for n, c in by_name.items() if c.plugin == plugin]:
                del by_name[name]


def _entry_points() -> tuple[list[tuple[str, EntryPoint]], list[BrokenPlugin]]:
    """Every installed distribution's entry points of the group with the distribution's name, robustad's own first
    and the rest by distribution (file order within one), an entry point installed twice counted once; and the
    distributions whose entry points cannot be read (a damaged ``entry_points.txt``), as broken.

    ``importlib.metadata.entry_points`` keeps one distribution per normalised name, so a ``Robustad`` earlier on
    the path would hide ours, and one damaged file fails it for all: every distribution is read on its own instead.
    """
    found: dict[tuple[str, str], tuple[bool, str, EntryPoint]] = {}
    unreadable: list[BrokenPlugin] = []
    for dist in distributions():
        name = dist.metadata["Name"] or "unknown distribution"
        try:
            entries = list(dist.entry_points.select(group=ENTRY_POINT_GROUP))
        except Exception as exc:  # importlib's parser raises TypeError or ValueError on a malformed line
            unreadable.append(BrokenPlugin("entry_points.txt", name, f"cannot be read: {one_line(exc)}"))
            continue
        for ep in entries:
            own = _is_own(name, ep)
            label = OWN_DISTRIBUTION if own else name
            if not own and _normalised(name) == OWN_DISTRIBUTION:
                label = f"{name} (not robustad's own: {ep.value} is outside {BUILTIN_PACKAGE})"
            found.setdefault((ep.name, ep.value), (own, label, ep))
    ordered = sorted(found.values(), key=lambda entry: (not entry[0], _normalised(entry[1])))
    return [(name, ep) for _, name, ep in ordered], unreadable


def _is_own(distribution: str, ep: EntryPoint) -> bool:
    """Whether an entry point is one of robustad's built-ins: declared by a distribution called robustad (in any
    spelling that normalises to it) and naming a module of the built-in package."""
    return _normalised(distribution) == OWN_DISTRIBUTION and ep.module.partition(".")[0] == BUILTIN_PACKAGE


def _normalised(distribution: str) -> str:
    """A distribution name as PEP 503 compares them: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


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
