"""What every view shares: the intents it may emit, and number formatting at the market's precision."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import flet as ft


def _ignore(*_args: Any, **_kwargs: Any) -> None:
    return None


# An intent's return value is ignored (a handler may return the task it started), hence `object`.


@dataclass(frozen=True, slots=True)
class Intents:
    """What a user can ask for; the app shell turns each into service calls and state changes.
    Every intent defaults to doing nothing, so a view can be built alone (tests, previews)."""

    select_symbol: Callable[[str], object] = _ignore
    show_rows: Callable[[list[str]], object] = _ignore  # the watchlist rows in view (after a scroll)
    edit_ticket: Callable[..., object] = _ignore
    submit_order: Callable[[], object] = _ignore
    cancel_order: Callable[[str], object] = _ignore
    add_alert: Callable[[str, str, str], object] = _ignore
    delete_alert: Callable[[str], object] = _ignore
    navigate: Callable[[str], object] = _ignore
    set_timeframe: Callable[[str], object] = _ignore
    add_symbol: Callable[[str], object] = _ignore
    remove_symbol: Callable[[str], object] = _ignore
    ask_insight: Callable[[str], object] = _ignore
    save_rule: Callable[[dict[str, Any]], None] = _ignore
    toggle_rule: Callable[[str, bool], object] = _ignore
    delete_rule: Callable[[str], object] = _ignore
    set_theme: Callable[[str], object] = _ignore
    save_api_key: Callable[[str, str, str], object] = _ignore
    delete_api_key: Callable[[str], object] = _ignore
    export_report: Callable[[], object] = _ignore
    search_symbol: Callable[[str], object] = _ignore
    open_ticket: Callable[[], object] = _ignore
    set_market: Callable[[str], object] = _ignore
    set_range: Callable[[int], object] = _ignore
    set_alerts: Callable[[bool], object] = _ignore
    run_backtest: Callable[[Any], object] = _ignore  # a client.backtest_lab.StrategyDraft
    cancel_backtest: Callable[[], object] = _ignore
    save_strategy: Callable[[Any, bool], object] = _ignore  # (StrategyDraft, switch it on for paper)
    strategy_action: Callable[[str, str], object] = _ignore  # (load | on | off | drift | delete, strategy id)
    toggle_study: Callable[[str], object] = _ignore
    toggle_full_chart: Callable[[], object] = _ignore
    load_older: Callable[[], object] = _ignore  # the chart neared its oldest candle: scroll back in history


def same_control(self: object, other: object) -> bool:
    """A control equals only itself (`__eq__` for a view's own control classes). A dataclass's generated
    `__eq__` compares every field, and Flet's diff asks whether a patched control's child has the patched
    control for its parent with `!=`: ~130 property reads, a third of a watchlist row's patch."""
    return self is other


def text_field(**kwargs: Any) -> ft.TextField:
    """A TextField whose every keystroke reaches Python as it happens. Without an `on_change` handler
    Flet reports the value late, and a quick tap on the form's button can arrive ahead of what was typed."""
    kwargs.setdefault("on_change", _ignore)
    return ft.TextField(**kwargs)


def reachable(control: ft.Control, label: str) -> ft.Semantics:
    """`control` (a button inside a labelled row) as its own node named `label`: without it Flutter
    merges the button into the row, and screen readers (and tests) cannot press it."""
    return ft.Semantics(container=True, button=True, label=label, content=control)


def decimals(step: Any, default: int = 2) -> int:
    """Decimal places of a ccxt precision value (a tick size such as 0.01, or a count such as 2)."""
    if step is None:
        return default
    step = float(step)
    if step >= 1 and step.is_integer() and step < 20:
        return int(step) if step != 1 else 0
    if step <= 0:
        return default
    return max(0, round(-math.log10(step)))


def price_decimals(market: dict[str, Any] | None, price: float | None = None) -> int:
    if market and market.get("precision", {}).get("price") is not None:
        return decimals(market["precision"]["price"])
    if price is None:
        return 2
    return 2 if price >= 100 else 4 if price >= 1 else 6


def amount_decimals(market: dict[str, Any] | None) -> int:
    if market and market.get("precision", {}).get("amount") is not None:
        return decimals(market["precision"]["amount"], 4)
    return 4


def fmt(value: float | None, places: int) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.{places}f}"


def fmt_time(timestamp_ms: int | None, seconds: bool = True) -> str:
    if not timestamp_ms:
        return "—"
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).astimezone()
    return moment.strftime("%H:%M:%S" if seconds else "%H:%M")


def panel(title: str, content: ft.Control, *, identifier: str, expand: bool | int = False,
          actions: list[ft.Control] | None = None) -> ft.Semantics:
    """A titled card; `identifier` is the semantics id tests and screen readers find it by."""
    header = ft.Row(
        [ft.Text(title, weight=ft.FontWeight.BOLD, size=14), *(actions or [])],
        alignment=ft.MainAxisAlignment.SPACE_BETWEEN,
    )
    return ft.Semantics(
        identifier=identifier,
        container=True,
        content=ft.Container(
            content=ft.Column([header, content], spacing=8, expand=bool(expand)),
            padding=ft.Padding.all(12),
            border_radius=ft.BorderRadius.all(12),
            bgcolor=ft.Colors.SURFACE_CONTAINER,
            expand=expand,
        ),
        expand=expand,
    )


# A control's `expand` and `scroll` as built, so a panel that flowed on a phone gets them back wider. Weak:
# ids are reused once a control is gone, and a stale entry would hand another control the wrong layout.
_EXPANDS: weakref.WeakKeyDictionary[ft.Control, object] = weakref.WeakKeyDictionary()
_SCROLLS: weakref.WeakKeyDictionary[ft.Control, object] = weakref.WeakKeyDictionary()


def set_flowing(control: ft.Control, flowing: bool) -> None:
    """Lay a panel out at its content's height (`flowing`, inside a page that scrolls as one: a phone) or
    fill the room it is given and scroll inside (wide layouts). Nested scroll areas are what made a phone's
    signals list swallow the swipe meant for the page."""
    stack: list[object] = [control]
    while stack:
        c = stack.pop()
        if isinstance(c, ft.Column | ft.Container | ft.Semantics | ft.Row):
            key = c
            _EXPANDS.setdefault(key, c.expand)
            c.expand = False if flowing else _EXPANDS[key]  # type: ignore[assignment]
            if isinstance(c, ft.Column) and c.scroll is not None or key in _SCROLLS:
                _SCROLLS.setdefault(key, c.scroll)  # type: ignore[union-attr]
                c.scroll = None if flowing else _SCROLLS[key]  # type: ignore[union-attr]
        if isinstance(c, ft.Row):
            continue  # a row's cells are not panels
        if c is not control and isinstance(c, ft.Container) and c.height is not None:
            continue  # a box of a set height (a backtest's trade list) keeps its own scroll: it cannot flow
        child = getattr(c, "content", None)
        if isinstance(child, ft.Control):
            stack.append(child)
        stack.extend(x for x in getattr(c, "controls", None) or [] if isinstance(x, ft.Column | ft.Container))

