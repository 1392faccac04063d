"""The studies' recipes, nested dicts of `RunConfig` keys, as the `key=value` overrides that
`load_config` reads."""

from __future__ import annotations

import json
from typing import Any


def as_overrides(recipe: dict[str, Any], prefix: str = "") -> list[str]:
    """A nested recipe as `a.b=value` overrides, each value written so that YAML reads it back unchanged."""
    items = []
    for key, value in recipe.items():
        if isinstance(value, dict):
            items += as_overrides(value, f"{prefix}{key}.")
        else:
            items.append(f"{prefix}{key}={yaml_value(value)}")
    return items


def yaml_value(value: Any) -> str:
    """`value` as YAML reads it back unchanged: JSON, except that a float in exponent notation gets its
    decimal point (YAML 1.1 reads `1e-05` as a string)."""
    if isinstance(value, float) and "e" in repr(value):
        mantissa, exponent = repr(value).split("e")
        return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}"
    return json.dumps(value)
