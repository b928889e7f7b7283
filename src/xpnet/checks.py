"""Small value checks shared by the classes that validate their settings, and the one way a component is built
from its registered name and settings (losses, optimizers, schedules)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from xpnet.errors import ConfigError

Built = TypeVar("Built")


def is_finite_number(value: Any) -> bool:
    """True for an int or float (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def build_named(what: str, classes: Mapping[str, Callable[..., Built]], name: str, settings: Mapping[str, Any],
                choices: str) -> Built:
    """``classes[name](**settings)``; a ConfigError naming ``what`` and listing ``choices`` for an unknown name, or
    naming the setting the class refused."""
    if name not in classes:
        raise ConfigError(f"unknown {what} {name!r}; use one of {choices}")
    try:
        return classes[name](**settings)
    except TypeError as exc:
        raise ConfigError(f"bad settings for {what} {name!r}: {exc}") from None
