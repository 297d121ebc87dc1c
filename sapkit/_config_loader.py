"""Building frozen configuration dataclasses from nested mappings, checked by their annotations.

The machinery behind :func:`sapkit.config.load_config`, independent of the sections it builds.
Every check comes from the field's declaration, in one generic pass:

* the type annotation: ``int``, ``float``, ``bool``, ``str``, fixed-length ``tuple[int, int, int]``
  or variable ``tuple[X, ...]``, a nested dataclass (a section), ``Literal[...]`` (the value must
  be one of the choices) and ``Annotated[T, Pattern(...)]`` (a string matching a pattern);
* the field's ``range`` metadata, set with :func:`bounded` (inclusive bounds).

Values are coerced where YAML or the command line is loose (``1e-3`` read as a string for a float,
``3.0`` for an int) and a wrong value raises :class:`~sapkit.errors.ConfigError` naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Mapping

from sapkit.errors import ConfigError

__all__ = ["Pattern", "bounded", "build", "flatten", "set_dotted", "to_plain_dict"]


@dataclass(frozen=True)
class Pattern:
    """A string option that must match ``regex`` in full; ``description`` tells the user what is valid.

    Used as ``Annotated[str, Pattern(r"any|iou:...", "'any' or 'iou:T'")]`` on a config field.
    """

    regex: str
    description: str

    def check(self, value: str, key: str) -> None:
        """Raise :class:`~sapkit.errors.ConfigError` unless ``value`` matches."""
        if not re.fullmatch(self.regex, value):
            raise ConfigError(f"config key '{key}' must be {self.description}, got {value!r}")


def bounded(default: Any, low: float | None = None, high: float | None = None, *,
            low_open: bool = False, high_open: bool = False) -> Any:
    """A dataclass field with ``default`` whose value must lie in ``[low, high]`` (None = unbounded).

    ``low_open`` / ``high_open`` exclude the bound itself (``(0, ∞)`` for a learning rate).

    Examples
    --------
    >>> @dataclass(frozen=True)
    ... class Section:
    ...     overlap: float = bounded(0.5, 0.0, 1.0, high_open=True)
    >>> build(Section, {"overlap": 1.0}, prefix="infer.")
    Traceback (most recent call last):
    ...
    sapkit.errors.ConfigError: config key 'infer.overlap' must be in [0.0, 1.0), got 1.0
    """
    return dataclasses.field(default=default, metadata={"range": (low, high), "open": (low_open, high_open)})


def _out_of_range(value: Any, low: Any, high: Any, low_open: bool, high_open: bool) -> bool:
    if low is not None and (value < low or (low_open and value == low)):
        return True
    return high is not None and (value > high or (high_open and value == high))


def build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from ``values``, every field coerced and checked.

    Parameters
    ----------
    cls : dataclass type
        The section (or the whole configuration); nested dataclass fields are built recursively.
    values : mapping
        Field name → value; missing fields keep their defaults.
    prefix : str
        Dotted path of ``cls`` (``"lesion."``), used in error messages.

    Raises
    ------
    ConfigError
        An unknown key, or a value of the wrong type, choice, pattern or range.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + u for u in unknown)}; "
            f"valid keys under '{prefix.rstrip('.') or 'top level'}' are: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in values.items():
        key = prefix + name
        coerced = _coerce(value, hints[name], key)
        low, high = fields[name].metadata.get("range", (None, None))
        low_open, high_open = fields[name].metadata.get("open", (False, False))
        if _out_of_range(coerced, low, high, low_open, high_open):
            raise ConfigError(f"config key '{key}' must be in {'(' if low_open else '['}{low}, "
                              f"{high if high is not None else '∞'}{')' if high_open or high is None else ']'}, "
                              f"got {coerced!r}")
        kwargs[name] = coerced
    return cls(**kwargs)


def to_plain_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) of a config dataclass, ready for YAML/JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree["a"]["b"] = value`` for ``dotted = "a.b"``; the key must already exist."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            if part not in node:
                raise ConfigError(f"unknown config section '{part}' in override '{dotted}'")
            raise ConfigError(f"'{part}' is a value, not a section, in override '{dotted}'")
        node = child
    if parts[-1] not in node:
        raise ConfigError(
            f"unknown config key '{dotted}'; valid keys here: {', '.join(sorted(node))}"
        )
    node[parts[-1]] = value


def flatten(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (dotted keys are kept as they are).

    Examples
    --------
    >>> flatten({"lesion": {"epochs": 2}, "eval.hit": "any"})
    {'lesion.epochs': 2, 'eval.hit': 'any'}
    """
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML/override value to the annotated type or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *extras = typing.get_args(annotation)
        out = _coerce(value, base, key)
        for extra in extras:
            if isinstance(extra, Pattern):
                extra.check(out, key)
        return out
    if origin is Literal:
        choices = typing.get_args(annotation)
        out = _coerce(value, type(choices[0]), key)
        if out not in choices:
            raise ConfigError(f"config key '{key}' must be one of {choices}, got {out!r}")
        return out
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config section '{key}' must be a mapping, got {value!r}")
        return build(annotation, value, prefix=key + ".")  # type: ignore[arg-type]
    if origin is tuple:
        return _coerce_tuple(value, typing.get_args(annotation), key)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"config key '{key}' has an unsupported type {annotation!r}")  # pragma: no cover


def _coerce_tuple(value: Any, args: tuple[Any, ...], key: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        element = args[0]
        if typing.get_origin(element) is Literal:  # name every bad entry at once
            choices = typing.get_args(element)
            bad = [v for v in value if v not in choices]
            if bad:
                raise ConfigError(f"config key '{key}' has {bad}; each entry must be one of {choices}")
        return tuple(_coerce(v, element, key) for v in value)
    if len(args) != len(value):
        raise ConfigError(f"config key '{key}' needs {len(args)} values, got {len(value)}: {value!r}")
    return tuple(_coerce(v, a, key) for v, a in zip(value, args))
