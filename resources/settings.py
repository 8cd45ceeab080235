"""Typed reads of HRM_* environment variables, for the defaults of asset configs.

An empty variable counts as unset; a malformed one is an error that names the variable.
"""

from __future__ import annotations

import os


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value in (None, "") else int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected an integer") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return default if value in (None, "") else float(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected a number") from None


def split_csv(text: str) -> tuple[str, ...]:
    """"a, b,,c" -> ("a", "b", "c"): the comma-separated lists of config strings."""
    return tuple(s.strip() for s in text.split(",") if s.strip())
