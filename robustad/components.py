"""A registered component: its kind, name, description and typed options, read off its class."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any

from robustad.errors import RobustadError

KINDS = ("dataset", "backbone", "detector", "surrogate", "attack", "calibrator")


@dataclass(frozen=True)
class Option:
    """One keyword option of a component, with its type and default."""

    name: str
    type: type
    default: Any

    def parse(self, text: str) -> Any:
        """Convert a command-line string to this option's type."""
        if self.type is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise RobustadError(f"option {self.name}={text!r}: expected true or false")
        try:
            return self.type(text)
        except (TypeError, ValueError):
            raise RobustadError(
                f"option {self.name}={text!r}: expected {self.type.__name__}"
            ) from None


@dataclass(frozen=True)
class Component:
    """A plugin-provided class registered under ``kind``/``name``."""

    kind: str
    name: str
    cls: type
    description: str
    options: tuple[Option, ...]
    plugin: str
    distribution: str
    open_options: bool = False

    @classmethod
    def from_class(cls, kind: str, obj: type, plugin: str, distribution: str) -> Component:
        """Read name, description and options (keyword-only ``__init__`` parameters) off a class."""
        name = getattr(obj, "name", None)
        description = getattr(obj, "description", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{obj!r} has no string class attribute 'name'")
        if not isinstance(description, str):
            raise TypeError(f"{kind} {name!r} has no string class attribute 'description'")
        open_options = any(p.kind is inspect.Parameter.VAR_KEYWORD
                           for p in inspect.signature(obj.__init__).parameters.values())
        return cls(kind, name, obj, description, _options_of(obj), plugin, distribution, open_options)

    def option(self, key: str) -> Option:
        """The option called ``key``, or a clear error listing the valid ones."""
        for option in self.options:
            if option.name == key:
                return option
        valid = ", ".join(o.name for o in self.options) or "none"
        raise RobustadError(f"{self.kind} {self.name!r} has no option {key!r}; options: {valid}")

    def create(self, *args: Any, **options: Any) -> Any:
        """Instantiate with runtime ``args`` and validated keyword ``options``."""
        if not self.open_options:
            for key in options:
                self.option(key)
        return self.cls(*args, **options)


def _options_of(obj: type) -> tuple[Option, ...]:
    hints = typing.get_type_hints(obj.__init__)
    options = []
    for param in inspect.signature(obj.__init__).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        hint = hints.get(param.name, type(param.default))
        options.append(Option(param.name, _plain_type(hint, param.default), param.default))
    return tuple(options)


def _plain_type(hint: Any, default: Any) -> type:
    """Reduce ``int | None`` style hints to the concrete type a string is parsed into."""
    if isinstance(hint, type):
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1 and isinstance(args[0], type):
        return args[0]
    return type(default) if default is not None else str
