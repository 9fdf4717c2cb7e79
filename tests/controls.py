"""Looking inside a Flet control tree without a browser: what view tests assert on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flet as ft


def walk(control: Any) -> Iterator[Any]:
    """`control` and every control below it (content, controls, destinations)."""
    yield control
    for attr in ("content", "controls", "destinations"):
        child = getattr(control, attr, None)
        if isinstance(child, list):
            for c in child:
                yield from walk(c)
        elif isinstance(child, ft.BaseControl):
            yield from walk(child)


def texts(control: Any) -> list[str]:
    return [c.value for c in walk(control) if isinstance(c, ft.Text) and c.value]


def by_identifier(control: Any, identifier: str) -> ft.Semantics:
    found = [c for c in walk(control) if isinstance(c, ft.Semantics) and c.identifier == identifier]
    assert found, f"no control with semantics identifier {identifier!r}"
    return found[0]
