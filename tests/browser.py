"""Driving Skeet's Flutter web client the way a person does."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil

# Resolves once the element has held the focus for `frames` animation frames and `ms` milliseconds in a row
# (false after `limit_ms`): frames, since on a loaded machine Flutter's frames, and so its focus changes, come late.
KEEPS_FOCUS = """(el, [frames, ms, limitMs]) => new Promise(resolve => {
    const start = performance.now();
    let since = null, count = 0;
    const step = (now) => {
        if (document.activeElement !== el) { since = null; count = 0; }
        else if (since === null) { since = now; count = 0; }
        else count += 1;
        if (since !== null && count >= frames && now - since >= ms) return resolve(true);
        if (now - start > limitMs) return resolve(false);
        requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
})"""


def tap_to_type(field: Any, attempts: int = 4) -> None:
    """Tap a text field until it keeps the focus. With the semantics tree on, the first tap on a field of the
    phone's stacked sections is taken back ~6 frames later (the input is blurred, Flutter's editing closes:
    keys typed then go nowhere, and text filled in sits in the input unread); a second tap holds. Without the
    semantics tree the first tap holds (checked on the wire: each key reaches the server)."""
    for _ in range(attempts):
        field.click()
        if field.evaluate(KEEPS_FOCUS, [12, 300, 5_000]):
            return
    raise AssertionError(f"the field never kept the focus after {attempts} taps")


def type_into(field: Any, text: str, attempts: int = 3, settle_s: float = 0.6) -> None:
    """Tap a text field and type `text` into it, once the field really is ready for typing.

    The tap must hold (`tap_to_type`). Flutter's web engine opens its editing connection a frame or more after
    the tap, and on opening it writes its own editing state (still empty) into the input: text that landed
    before is wiped. A person types after the caret shows; Playwright fills the moment the tap returns, which
    on a busy machine can be before. So the text must still be there after a settle window, or it is typed
    again. A field that never holds the text fails the test with what it held instead."""
    tap_to_type(field)
    held = ""
    for _ in range(attempts):
        field.fill(text)
        deadline = time.monotonic() + settle_s
        while (held := field.input_value()) == text and time.monotonic() < deadline:
            time.sleep(0.05)
        if held == text:
            return
    raise AssertionError(f"the field kept {held!r} instead of {text!r} after {attempts} attempts")


def type_until_seen(field: Any, text: str, seen: Callable[[], None]) -> None:
    """`type_into`, then `seen()` (an expect on what the app shows for that value); if it is not seen, typed
    once more, as a person would, and it must be seen the second time. Two causes were found (README, Tests):
    the app's answer came back >10 s late behind a signal log rebuilt whole on every signal (fixed in the app),
    and, rarer, the text sits in the browser's input while Flutter's editing never reads it: no change leaves
    the browser at all (seen in ws frames). Much of the second was a first tap taken back (`tap_to_type`)."""
    type_into(field, text)
    try:
        seen()
    except AssertionError:
        # Leave the field and come back, as a person would: a new focus opens a new editing connection (typing
        # into the same focused field again went unread twice in a row once, CI under load after the soak).
        field.blur()
        type_into(field, "")
        type_into(field, text)
        seen()


def painted(page: Any, frames: int = 5, max_gap_ms: float = 100.0, timeout_ms: float = 20_000) -> None:
    """Wait until the page has caught up with its drawing: `frames` animation frames in a row each within
    `max_gap_ms` of the last. Flutter updates its semantics tree (what the tests wait on) before the canvas
    shows the same state, and on a loaded machine its (main-thread) rasterising runs seconds behind, so a
    screenshot taken at once shows an old frame (even Flet's "Working..." loader on a fresh page)."""
    caught_up = page.evaluate("""([frames, maxGap, timeout]) => new Promise(resolve => {
        const start = performance.now();
        let last = start, steady = 0;
        const step = (now) => {
            steady = now - last <= maxGap ? steady + 1 : 0;
            last = now;
            if (steady >= frames) return resolve(true);
            if (now - start > timeout) return resolve(false);
            requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
    })""", [frames, max_gap_ms, timeout_ms])
    if not caught_up:
        raise AssertionError(f"the page never drew {frames} frames within {max_gap_ms} ms of each other "
                             f"in {timeout_ms / 1000:.0f} s")


def switch_on_semantics(page: Any, timeout_ms: float = 60_000) -> None:
    """Flutter's accessibility tree (what the tests read, as a screen reader does), switched on as a person
    with one does: its placeholder tapped. Bounded, unlike `page.evaluate`, which waits for ever on a page
    whose renderer does not answer."""
    placeholder = page.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=timeout_ms)
    placeholder.dispatch_event("click", timeout=timeout_ms)


def _renderers() -> set[int]:
    """The pids of the Chromium renderer processes under this one (Playwright's driver, then the browser)."""
    found = set()
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "--type=renderer" in process.cmdline():
                found.add(process.pid)
    return found


@contextlib.contextmanager
def renderer_watchdog(deadline_s: float) -> Iterator[threading.Event]:
    """Kills the renderer processes started inside the block if the block is still running `deadline_s`
    after it began; the event it yields says whether it did. A page whose renderer stops answering holds
    every Playwright call on it for ever: their timeouts never fire (checked: a page spinning in a script
    held `expect(...)` with a 3 s timeout past 60 s). Killed, those calls fail at once with an error, and
    the browser's other pages go on."""
    before = _renderers()
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        for pid in _renderers() - before:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    timer = threading.Timer(deadline_s, kill)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
