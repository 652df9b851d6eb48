"""Config sections as typed settings: the machinery every section of :mod:`truthmap.settings` shares.

A :class:`Section` is a frozen dataclass whose fields are config keys. Built
from a config mapping it checks each value against its field's type and the
bounds declared with :func:`setting`, with errors that name the key. Built
with :meth:`Section.given` from a rule's params it holds only the keys the
rule was given, and reading another raises :class:`NotGiven`: a script cannot
fall back on a default for a setting whose changes would not rerun it.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import field, fields
from typing import Any, ClassVar, Literal

from truthmap.files import InputError


class NotGiven(InputError):
    """A script read a setting that its rule's ``params`` do not carry (a fault of the rule file:
    one line naming the key, like any other fixable error; not an AttributeError, which
    ``getattr`` with a default or ``hasattr`` would swallow)."""


class _Unread:
    """The value of a setting a rule was not given (see :meth:`Section.given`)."""

    def __repr__(self) -> str:
        return "<not given>"


UNREAD = _Unread()


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
            minimum: float | None = None, exclusive_minimum: float | None = None,
            exclusive_maximum: float | None = None, maximum: float | None = None,
            schema: Mapping | None = None) -> Any:
    """A dataclass field with bounds that both :meth:`Section.check` and the schema use.

    ``schema`` adds JSON-schema keywords the type cannot say (``minItems``, name patterns).
    """
    bounds = {"minimum": minimum, "exclusiveMinimum": exclusive_minimum, "exclusiveMaximum": exclusive_maximum,
              "maximum": maximum}
    metadata = {"bounds": {k: v for k, v in bounds.items() if v is not None}, "schema": dict(schema or {})}
    return field(default=default, default_factory=factory, metadata=metadata)


class Section:
    """A config section as settings: checked on construction, frozen, every key documented.

    Subclasses are frozen dataclasses declared with ``repr=False`` (the base's
    repr shows settings a rule was not given) and set :attr:`KEY`.
    """

    KEY: ClassVar[str] = ""
    """The section's key in the config (a prefix such as ``models.<name>`` for entries of a mapping)."""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if value is UNREAD:
            key = object.__getattribute__(self, "_key_of")(name)
            raise NotGiven(
                f"setting '{key}' was not passed to this rule: add it to the rule's params "
                "(workflow/rules/) so that changing it reruns the rule"
            )
        return value

    def __repr__(self) -> str:
        values = ", ".join(f"{f.name}={v!r}" for f, v in zip(fields(self), self._values().values()))
        return f"{type(self).__name__}({values})"

    def __post_init__(self) -> None:
        self.check()

    def _where(self) -> str:
        return self.__dict__.get("_key") or self.KEY

    def _key_of(self, name: str) -> str:
        """The config key of setting ``name`` (``probe.C``, ``models.<name>.dtype``, ``shards``)."""
        return f"{self._where()}.{name}" if self._where() else name

    def _values(self) -> dict[str, Any]:
        """Every field's value, ``UNREAD`` included (no :class:`NotGiven`)."""
        return {f.name: self.__dict__[f.name] for f in fields(self)}

    def check(self) -> None:
        """Types, choices and bounds of every given setting; subclasses add what these cannot say."""
        hints = field_types(type(self))
        for f in fields(self):
            value = self.__dict__[f.name]
            if value is not UNREAD:
                check_value(self._key_of(f.name), value, hints[f.name], f.metadata.get("bounds", {}))

    @classmethod
    def from_mapping(cls, mapping: Mapping | None, key: str | None = None):
        """The section from a config mapping; unknown keys are errors, absent keys take their defaults."""
        mapping = dict(mapping or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(mapping) - set(known))
        where = key or cls.KEY
        if unknown:
            raise InputError(f"config section {where!r}: unknown key(s) {unknown}; known: {sorted(known)}")
        return _build(cls, mapping, where)

    @classmethod
    def given(cls, mapping: Mapping, key: str | None = None):
        """The section from the keys a rule was given; reading any other key raises :class:`NotGiven`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise InputError(f"config section {key or cls.KEY!r}: unknown key(s) {unknown}")
        values = {name: mapping.get(name, UNREAD) for name in known}
        return _build(cls, values, key or cls.KEY)

    def pick(self, *names: str) -> dict[str, Any]:
        """The named settings as a plain mapping: what a rule's ``params`` carry."""
        return {name: _plain(getattr(self, name)) for name in names}


def _build(cls, values: Mapping, key: str):
    """Construct ``cls`` with ``_key`` set before the checks run (messages name the right key)."""
    obj = cls.__new__(cls)
    object.__setattr__(obj, "_key", key)
    try:
        obj.__init__(**values)
    except TypeError as err:  # a required key is missing
        raise InputError(f"config section {key!r}: {err}") from None
    return obj


def _plain(value: Any) -> Any:
    """Settings values as builtins, which Snakemake compares to decide a rerun."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


@functools.lru_cache(maxsize=None)
def field_types(cls) -> dict[str, Any]:
    """The resolved type of every field of a settings dataclass."""
    return typing.get_type_hints(cls)


def check_value(key: str, value: Any, hint: Any, bounds: Mapping[str, float]) -> None:
    """Raise an :class:`InputError` naming ``key`` when ``value`` does not fit ``hint`` or ``bounds``."""
    if not fits(value, hint):
        raise InputError(f"config key {key!r}: {value!r} is not {describe_type(hint)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high = bounds.get("exclusiveMinimum"), bounds.get("exclusiveMaximum")
    if low is not None and high is not None and not low < value < high:
        raise InputError(f"config key {key!r}: must be in ({low}, {high}), got {value!r}")
    if low is not None and not value > low:
        raise InputError(f"config key {key!r}: must be {'positive' if low == 0 else f'above {low}'}, got {value!r}")
    if "minimum" in bounds and value < bounds["minimum"]:
        raise InputError(f"config key {key!r}: must be at least {bounds['minimum']}, got {value!r}")
    if "maximum" in bounds and value > bounds["maximum"]:
        raise InputError(f"config key {key!r}: must be at most {bounds['maximum']}, got {value!r}")


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has type ``hint`` (the few types settings use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if origin in (list, tuple, Sequence):
        item = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(fits(v, item) for v in value)
    if origin in (dict, Mapping):
        k, v = args or (Any, Any)
        return isinstance(value, Mapping) and all(fits(a, k) and fits(b, v) for a, b in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def describe_type(hint: Any) -> str:
    """``hint`` in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin in (list, tuple, Sequence):
        return f"a list of {describe_type(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
