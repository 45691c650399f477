"""How configuration values are spelt in error messages (as TOML would)."""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = ["toml_value"]


def toml_value(value: object) -> str:
    """A value as TOML would spell it.

    Example:
        >>> toml_value(True), toml_value("pager"), toml_value({"a": 1}), toml_value(3)
        ('true', '"pager"', 'a table', '3')
        >>> toml_value(["a", 1.5, None])
        '["a", 1.5, None]'
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "a table" if isinstance(value, Mapping) else repr(value)
