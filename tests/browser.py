"""Driving Skeet's Flutter web client the way a person does."""

from __future__ import annotations

import time
from typing import Any


def type_into(field: Any, text: str, attempts: int = 3, settle_s: float = 0.6) -> None:
    """Tap a text field and type `text` into it, once the field really is ready for typing.

    Flutter's web engine opens its editing connection a frame or more after the tap, and on opening
    it writes its own editing state (still empty) into the input: text that landed before is wiped.
    A person types after the caret shows; Playwright fills the moment the tap returns, which on a
    busy machine can be before. So the text must still be there after a settle window, or it is
    typed again. A field that never holds the text fails the test with what it held instead."""
    field.click()
    held = ""
    for _ in range(attempts):
        field.fill(text)
        deadline = time.monotonic() + settle_s
        while (held := field.input_value()) == text and time.monotonic() < deadline:
            time.sleep(0.05)
        if held == text:
            return
    raise AssertionError(f"the field kept {held!r} instead of {text!r} after {attempts} attempts")


def painted(page: Any, frames: int = 2) -> None:
    """Wait until the browser has painted `frames` more frames: Flutter updates its semantics tree (what
    the tests wait on) before the canvas shows the same state, so a screenshot taken at once can catch the
    previous frame (even Flet's "Working..." loader on a fresh page)."""
    page.evaluate("""(n) => new Promise(resolve => {
        const step = (left) => left ? requestAnimationFrame(() => step(left - 1)) : resolve(true);
        step(n);
    })""", frames)
