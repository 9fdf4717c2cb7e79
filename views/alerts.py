"""Price alerts: tell me when a symbol trades at a price. Set here, watched by the backend, fired
through the live state (so every device of the trader hears it), listed as active and triggered."""

from __future__ import annotations

from typing import Any

import flet as ft

from client.state import AppState
from client.theme import direction_colour, direction_icon
from views.common import Intents, fmt, fmt_time, panel, price_decimals, reachable, text_field


def alert_fired_message(alert: dict[str, Any], market: dict[str, Any] | None) -> str:
    """What the trader is told when an alert fires, e.g. "Alert: BTC/USDT rose to 65,000.00 ..."."""
    places = price_decimals(market, alert.get("price"))
    verb = "rose to" if alert.get("condition") == "above" else "fell to"
    note = f" · {alert['note']}" if alert.get("note") else ""
    return (f"Alert: {alert.get('symbol')} {verb} {fmt(alert.get('price'), places)} "
            f"(traded {fmt(alert.get('triggerPrice'), places)}){note}")


def preview(price_text: str, last: float | None, places: int) -> str:
    """What the alert being typed will do, from the last price: rises to / falls to, and how far."""
    try:
        price = float(price_text)
    except ValueError:
        return "Enter a price" if price_text.strip() else "Set a price: Skeet tells you when it trades there"
    if price <= 0 or not last:
        return "The price must be above zero" if price <= 0 else ""
    if price == last:
        return "That is the price now: pick one above or below it"
    way = "rises to" if price > last else "falls to"
    return f"Fires when it {way} {fmt(price, places)} · {(price - last) / last:+.2%} from {fmt(last, places)}"


class AlertsView:
    TOPICS = frozenset({"alerts", "alert_draft", "selected", "watchlist", "markets", "quotes"})  # repaints only for these

    def __init__(self, intents: Intents) -> None:
        self._intents = intents
        self.symbol = ft.Dropdown(label="Symbol", tooltip="The symbol to watch", dense=True, width=170,
                                  options=[], on_select=lambda _e: self._refresh_preview())
        self.price = text_field(label="Alert price", dense=True, width=170, keyboard_type=ft.KeyboardType.NUMBER,
                                text_align=ft.TextAlign.RIGHT, on_change=lambda _e: self._refresh_preview())
        self.note = text_field(label="Note (optional)", dense=True, max_length=140, expand=True)
        self.preview = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.error = ft.Text("", size=12, color=ft.Colors.ERROR, visible=False)
        self.progress = ft.ProgressRing(width=16, height=16, stroke_width=2, visible=False)
        self.add = ft.FilledButton("Set alert", icon=ft.Icons.NOTIFICATIONS_ACTIVE_OUTLINED,
                                   on_click=lambda _e: self._submit())
        self.active = ft.Column(spacing=2)
        self.fired = ft.Column(spacing=2)
        self.empty = ft.Text("No alerts yet. Set a price and Skeet tells you when it trades there, on every "
                             "device you are signed in on.", size=13, color=ft.Colors.ON_SURFACE_VARIANT)
        self.count = ft.Text("", size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        form = ft.Column(
            [
                ft.Row([self.symbol, self.price], wrap=True),
                ft.Row([self.note]),
                self.preview,
                self.error,
                ft.Row([self.add, self.progress], vertical_alignment=ft.CrossAxisAlignment.CENTER),
            ],
            spacing=8,
        )
        body = ft.Column([form, ft.Divider(), self.empty, self.active, self.fired], spacing=8,
                         scroll=ft.ScrollMode.AUTO, expand=True)
        self.control = panel("Price alerts", body, identifier="alerts", expand=True, actions=[self.count])
        self._state: AppState | None = None
        self._saved = 0
        self._choices: tuple[str, ...] | None = None
        self._rows: tuple[Any, ...] | None = None
        self._built: dict[tuple[str, str], tuple[ft.Control, ft.Text]] = {}  # (id, status) → row, detail

    # -- input -----------------------------------------------------------------------------------

    def _submit(self) -> None:
        self._intents.add_alert(self.symbol.value or "", (self.price.value or "").strip(),
                                (self.note.value or "").strip())

    def _refresh_preview(self) -> None:
        if self._state is not None:
            self.preview.value = self._preview(self._state)
            self.preview.update()

    def _preview(self, state: AppState) -> str:
        symbol = self.symbol.value or state.selected
        quote = state.quotes.get(symbol)
        last = quote.last if quote else None
        return preview(self.price.value or "", last, price_decimals(state.markets.get(symbol), last))

    # -- output ----------------------------------------------------------------------------------

    def render(self, state: AppState) -> None:
        self._state = state
        choices = tuple(state.watchlist)
        if choices != self._choices:  # rebuild the options only when the watchlist changes
            self._choices = choices
            self.symbol.options = [ft.DropdownOption(key=s, text=s) for s in choices]
        if self.symbol.value not in choices:
            self.symbol.value = state.selected if state.selected in choices else (choices[0] if choices else None)
        draft = state.alert_draft
        if draft.saved != self._saved:  # an alert was set: clear the form for the next one
            self._saved = draft.saved
            self.price.value, self.note.value = "", ""
        symbol = self.symbol.value or state.selected
        self.price.label = f"Alert price ({state.markets.get(symbol, {}).get('quote') or symbol.split('/')[-1]})"
        self.preview.value = self._preview(state)
        self.error.value = draft.error or ""
        self.error.visible = bool(draft.error)
        self.add.disabled = draft.submitting
        self.progress.visible = draft.submitting

        active, fired = state.sorted_alerts()
        self.count.value = f"{len(active)} active · {len(fired)} triggered" if state.alerts else ""
        self.empty.visible = not state.alerts
        # A row is built once per alert and state; as the price moves only its detail line is rewritten.
        # Rebuilding rows on every tick replaced the delete button under the trader's finger (and the
        # screen reader's focus), and a tap landing on the outgoing one was lost.
        rows = {}
        for alert in (*active, *fired):
            key = (alert.get("id", ""), alert.get("status", ""))
            row, detail = self._built.get(key) or self._row(alert, state)
            detail.value = self._detail(alert, state)
            rows[key] = (row, detail)
        self._built = rows
        order = tuple(rows)
        if order == self._rows:
            return  # the same rows in the same order: only changed details are sent
        self._rows = order
        self.active.controls = ([ft.Text("Active", size=12, weight=ft.FontWeight.W_600)] if active else []) + [
            rows[(a.get("id", ""), a.get("status", ""))][0] for a in active]
        self.fired.controls = ([ft.Text("Triggered", size=12, weight=ft.FontWeight.W_600)] if fired else []) + [
            rows[(a.get("id", ""), a.get("status", ""))][0] for a in fired]

    @staticmethod
    def _distance(alert: dict[str, Any], state: AppState) -> str:
        distance = state.alert_distance(alert)
        return "" if distance is None else f"{distance:.1%} away"

    def _detail(self, alert: dict[str, Any], state: AppState) -> str:
        """The row's second line: how far the price has to go, or when it fired and at what price."""
        if alert.get("status") == "triggered":
            places = price_decimals(state.markets.get(alert.get("symbol", "")), alert.get("price"))
            detail = f"at {fmt_time(alert.get('triggeredAt'))} · traded {fmt(alert.get('triggerPrice'), places)}"
        else:
            detail = self._distance(alert, state) or "waiting for a price"
        return f"{detail} · {alert['note']}" if alert.get("note") else detail

    def _row(self, alert: dict[str, Any], state: AppState) -> tuple[ft.Control, ft.Text]:
        """The alert's row, and its detail line (updated in place)."""
        alert_id, symbol, price = alert.get("id", ""), alert.get("symbol", ""), alert.get("price")
        places = price_decimals(state.markets.get(symbol), price)
        up = alert.get("condition") == "above"
        triggered = alert.get("status") == "triggered"
        verb = ("rose to" if up else "fell to") if triggered else ("rises to" if up else "falls to")
        title = f"{symbol} {verb} {fmt(price, places)}"
        detail = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        row = ft.Semantics(
            identifier=f"alert-{alert_id}", container=True,
            label=f"Alert {title}, {'triggered' if triggered else 'active'}",
            content=ft.Row(
                [
                    ft.Icon(ft.Icons.NOTIFICATIONS_ACTIVE if triggered else ft.Icons.NOTIFICATIONS_OUTLINED,
                            size=18, color=direction_colour(1 if up else -1) if triggered else None),
                    direction_icon(1 if up else -1),
                    ft.Column([ft.Text(title, size=13, weight=ft.FontWeight.W_600), detail],
                              spacing=0, expand=True),
                    reachable(ft.IconButton(ft.Icons.DELETE_OUTLINE, tooltip="Delete",
                                            on_click=lambda _e: self._intents.delete_alert(alert_id)),
                              f"Delete alert {title}"),
                ],
                vertical_alignment=ft.CrossAxisAlignment.CENTER,
            ),
        )
        return row, detail
