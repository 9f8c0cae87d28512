"""A registered component: its kind, name, description and typed options, read off its class."""

from __future__ import annotations

import inspect
import math
import sys
import typing
from dataclasses import dataclass
from typing import Any

from robustad.contracts import CONTRACTS, FLAG_READS, missing_members
from robustad.errors import RobustadError
from robustad.records import NO_ATTACK, NO_SURROGATE

KINDS = tuple(CONTRACTS)
# supplied by the engine, not options: a backbone's weights and device; the cell's category and seed, which a
# detector receives only when its constructor names them (e.g. a per-category rule, a seeded coreset)
RUNTIME_KEYWORDS = {"backbone": ("weights", "device"), "detector": ("category", "seed")}
UNUSABLE_IN_NAMES = ",:="  # they separate list items, a name from its argument, an --opt target from its value
RESERVED_NAMES = {"attack": (NO_ATTACK,), "surrogate": (NO_SURROGATE,)}


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``"pgd:20"`` -> ``("pgd", "20")``, ``"pgd"`` -> ``("pgd", None)``: a component name and the value of its
    first option, as the command line writes them (``torchattacks:MIFGSM``)."""
    name, sep, argument = str(spec).strip().partition(":")
    name, argument = name.strip(), argument.strip()
    if not name or (sep and not argument):
        raise RobustadError(f"{spec!r}: expected NAME or NAME:VALUE (e.g. pgd or pgd:20)")
    return name, (argument if sep else None)


@dataclass(frozen=True)
class Option:
    """One keyword option of a component, with its type and default."""

    name: str
    type: type
    default: Any

    def parse(self, value: Any) -> Any:
        """Convert a command-line string (or a Python value given through the API) to this option's type; a
        number must be finite, and a list is a ``+``-joined member list for a text option."""
        if isinstance(value, (list, tuple)) and self.type is str:
            value = "+".join(str(item).strip() for item in value)
        text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
        if self.type is bool:
            if isinstance(value, bool):
                return value
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise RobustadError(f"option {self.name}={text!r}: expected true or false")
        if isinstance(value, bool) and self.type is not str:
            raise RobustadError(f"option {self.name}={value!r}: expected {self.type.__name__}, not a bool")
        try:
            parsed = self.type(text) if isinstance(value, str) or self.type is str else self.type(value)
        except (TypeError, ValueError, OverflowError):
            raise RobustadError(f"option {self.name}={text!r}: expected {self.type.__name__}") from None
        if _non_finite(parsed) and not _non_finite(self.default):
            raise RobustadError(f"option {self.name}={text!r}: expected a finite number")
        if isinstance(parsed, int) and not isinstance(parsed, bool) and isinstance(value, float):
            raise RobustadError(f"option {self.name}={text!r}: expected int")
        return parsed


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
        if not name.isprintable() or any(c.isspace() or c in UNUSABLE_IN_NAMES for c in name):
            raise TypeError(f"{kind} name {name!r} cannot be written on the command line; expected no spaces and "
                            f"none of {' '.join(UNUSABLE_IN_NAMES)}")
        if name in RESERVED_NAMES.get(kind, ()):
            raise TypeError(f"{kind} name {name!r} is reserved: --{kind} {name} means no {kind}")
        if not isinstance(description, str):
            raise TypeError(f"{kind} {name!r} has no string class attribute 'description'")
        missing = missing_members(kind, obj)
        if missing:
            raise TypeError(f"{kind} {name!r} lacks {', '.join(missing)} "
                            f"(see robustad.contracts.{CONTRACTS[kind].__name__})")
        if kind == "flag" and getattr(obj, "reads", None) not in FLAG_READS:
            raise TypeError(f"flag {name!r} reads {getattr(obj, 'reads', None)!r}; expected one of "
                            f"{', '.join(FLAG_READS)}")
        open_options = obj.__init__ is not object.__init__ and any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(obj.__init__).parameters.values())
        options = tuple(o for o in _options_of(obj) if o.name not in RUNTIME_KEYWORDS.get(kind, ()))
        return cls(kind, name, obj, description, options, plugin, distribution, open_options)

    def option(self, key: str) -> Option:
        """The option called ``key``, or a clear error listing the valid ones."""
        for option in self.options:
            if option.name == key:
                return option
        valid = ", ".join(o.name for o in self.options) or "none"
        raise RobustadError(f"{self.kind} {self.name!r} has no option {key!r}; options: {valid}")

    def label(self) -> str:
        """``kind 'name' (plugin 'p' from distribution)``: how errors name a component."""
        return f"{self.kind} {self.name!r} (plugin {self.plugin!r} from {self.distribution})"

    def spec_options(self, argument: str | None) -> dict[str, Any]:
        """The options a ``name:argument`` spec sets: the argument, converted to the type of the option the class
        declares as its ``primary_option`` (``pgd:20`` sets ``steps``)."""
        if argument is None:
            return {}
        primary = getattr(self.cls, "primary_option", None)
        if not isinstance(primary, str) or primary not in {o.name for o in self.options}:
            raise RobustadError(f"{self.kind} {self.name!r} declares no primary option for a ':' argument (got "
                                f"{self.name}:{argument}); use --opt {self.kind}.{self.name}.KEY=VALUE")
        return {primary: self.parse_option(primary, argument)}

    def parse_option(self, key: str, text: str) -> Any:
        """A command-line string for option ``key``, converted to its type (open options: a Python literal)."""
        if self.open_options and key not in {o.name for o in self.options}:
            return _literal(text) if isinstance(text, str) else text
        option = self.option(key)  # its error names the component already
        try:
            return option.parse(text)
        except RobustadError as error:
            raise RobustadError(f"{self.kind} {self.name!r} {error}") from None

    def runtime_keywords(self, **available: Any) -> dict[str, Any]:
        """Those of the engine's ``available`` keywords that the constructor names, for optional metadata."""
        parameters = inspect.signature(self.cls.__init__).parameters
        return {key: value for key, value in available.items()
                if key in RUNTIME_KEYWORDS.get(self.kind, ()) and key in parameters}

    def check_options(self, options: dict[str, Any]) -> None:
        """Let the class refuse bad option values before any work, through its optional ``check_options(**options)``
        (a backbone or detector is built only when its cells run, with weights or a backbone in hand)."""
        check = getattr(self.cls, "check_options", None)
        if callable(check):
            check(**options)

    def create(self, *args: Any, **options: Any) -> Any:
        """Instantiate with runtime ``args`` (and runtime keywords) and validated keyword ``options``."""
        if not self.open_options:
            for key in options:
                if key not in RUNTIME_KEYWORDS.get(self.kind, ()):
                    self.option(key)
        return self.cls(*args, **options)


def _options_of(obj: type) -> tuple[Option, ...]:
    options = []
    for param in inspect.signature(obj.__init__).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            hint = _evaluate(param.annotation, obj)
            options.append(Option(param.name, _plain_type(hint, param.default), param.default))
    return tuple(options)


def _evaluate(annotation: Any, obj: type) -> Any:
    """One parameter's annotation, evaluated alone: other parameters may name types (torch's) that a plugin
    imports only when it runs, and evaluating those would import them for nothing."""
    if annotation is inspect.Parameter.empty:
        return None
    if not isinstance(annotation, str):
        return annotation
    module = sys.modules.get(obj.__module__)
    try:
        return eval(annotation, dict(vars(module)) if module else {})  # noqa: S307 - the plugin's own annotation
    except Exception:
        return None


def _literal(text: str) -> object:
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if _non_finite(value):
        raise RobustadError(f"option value {text!r}: expected a finite number")
    return value


def _non_finite(value: Any) -> bool:
    """NaN or infinite: refused as an option value unless the option's own default is (``float("inf")`` for no
    limit, say), since a NaN slips through every comparison a plugin makes to check it."""
    return isinstance(value, float) and not math.isfinite(value)


def _plain_type(hint: Any, default: Any) -> type:
    """Reduce ``int | None`` style hints to the concrete type a string is parsed into."""
    if hint is None:
        return type(default) if default is not None else str
    if isinstance(hint, type):
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1 and isinstance(args[0], type):
        return args[0]
    return type(default) if default is not None else str
