"""Rule editor: the engine's rules as data; add, enable/disable and delete them from the app."""

from __future__ import annotations

from typing import Any

import flet as ft

from client.state import AppState
from client.theme import direction_colour, direction_icon
from views.common import Intents, panel, reachable, text_field

OPS = {
    "cross_above": "crosses above",
    "cross_below": "crosses below",
    "gt": "is above",
    "lt": "is below",
    "breakout_above": "breaks out above",
    "breakout_below": "breaks out below",
}


def describe(when: Any) -> str:
    """A rule's condition in words, e.g. "ema_12 crosses above ema_26"."""
    if not isinstance(when, dict):
        return str(when)
    if when.get("op") in ("all", "any"):
        joiner = " and " if when["op"] == "all" else " or "
        return joiner.join(f"({describe(c)})" for c in when.get("of", []))
    text = f"{when.get('left')} {OPS.get(when.get('op', ''), when.get('op'))} {when.get('right')}"
    if when.get("hysteresis"):
        text += f" (±{when['hysteresis']:g})"
    return text


class RulesView:
    TOPICS = frozenset({"rules", "watchlist"})  # the AppState topics this view reads: it repaints only for them
    def __init__(self, intents: Intents) -> None:
        self._intents = intents
        self.list = ft.Column(spacing=4)
        self.name = text_field(label="Rule name", dense=True, width=220)
        self.left = ft.Dropdown(label="When", tooltip="The indicator the rule watches", dense=True, width=150,
                                value="price", options=[])
        self.kind = ft.SegmentedButton(
            segments=[ft.Segment(value="cross", label="crosses"), ft.Segment(value="compare", label="is"),
                      ft.Segment(value="breakout", label="breaks out")],
            selected=["cross"], show_selected_icon=False,
        )
        self.way = ft.SegmentedButton(
            segments=[ft.Segment(value="above", label="above"), ft.Segment(value="below", label="below")],
            selected=["above"], show_selected_icon=False,
        )
        self.right = text_field(label="this (indicator or number)", dense=True, width=200, value="ema_20")
        self.direction = ft.SegmentedButton(
            segments=[ft.Segment(value="buy", label="Buy signal"), ft.Segment(value="sell", label="Sell signal")],
            selected=["buy"], show_selected_icon=False,
        )
        self.symbols = ft.Dropdown(label="Symbols", tooltip="Which symbols the rule watches", dense=True, width=190, value="*", options=[])
        self.cooldown = text_field(label="Cool-down (s)", dense=True, width=120, value="60",
                                     keyboard_type=ft.KeyboardType.NUMBER)
        self.error = ft.Text("", color=ft.Colors.ERROR, size=12, visible=False)
        self.save = ft.FilledButton("Add rule", icon=ft.Icons.ADD, on_click=lambda _e: self._submit())
        form = ft.Column(
            [
                ft.Text("New rule", weight=ft.FontWeight.W_600, size=13),
                ft.Row([self.name, self.symbols], wrap=True),
                ft.Row([self.left, self.kind, self.way, self.right], wrap=True,
                       vertical_alignment=ft.CrossAxisAlignment.CENTER),
                ft.Row([self.direction, self.cooldown], wrap=True),
                self.error,
                self.save,
            ],
            spacing=8,
        )
        self.control = panel("Rules", ft.Column([self.list, ft.Divider(), form], scroll=ft.ScrollMode.AUTO,
                                                 expand=True),
                             identifier="rules", expand=True)
        self._saved_serial = 0
        self._shown: tuple[Any, ...] | None = None
        self._rows: dict[str, RuleRow] = {}
        self._none = ft.Text("No rules: the engine fires nothing until you add one.", size=13)
        self._choices: tuple[Any, ...] | None = None

    @property
    def op(self) -> str:
        """The rule operator the two segmented choices spell, e.g. crosses + above → "cross_above"."""
        kind = self.kind.selected[0] if self.kind.selected else "cross"
        way = self.way.selected[0] if self.way.selected else "above"
        if kind == "compare":
            return "gt" if way == "above" else "lt"
        return f"{kind}_{way}"

    def _submit(self) -> None:
        right: Any = (self.right.value or "").strip()
        try:
            right = float(right)
        except ValueError:
            pass
        try:
            cooldown_ms = int(float(self.cooldown.value or 0) * 1000)
        except ValueError:
            cooldown_ms = -1  # the rule book rejects it with a readable message
        self._intents.save_rule({
            "name": (self.name.value or "").strip(),
            "direction": self.direction.selected[0] if self.direction.selected else "buy",
            "when": {"op": self.op, "left": self.left.value, "right": right},
            "symbols": "*" if self.symbols.value in (None, "*") else [self.symbols.value],
            "cooldown_ms": cooldown_ms,
        })

    def render(self, state: AppState) -> None:
        choices = (tuple(state.indicator_keys), tuple(state.watchlist))
        if choices != self._choices:  # rebuild option lists only when they change: no patch otherwise
            self._choices = choices
            keys = ["price", *[k for k in state.indicator_keys if k != "price"]]
            self.left.options = [ft.DropdownOption(key=k, text=k) for k in keys]
            self.symbols.options = [ft.DropdownOption(key="*", text="All symbols"),
                                    *(ft.DropdownOption(key=s, text=s) for s in state.watchlist)]
        self.error.value = state.rule_error or ""
        self.error.visible = bool(state.rule_error)
        if state.rule_saved != self._saved_serial:
            self._saved_serial = state.rule_saved
            self.name.value = ""
        shown = tuple(state.rules)  # rules are frozen dataclasses: equal when nothing changed
        if shown == self._shown:
            return
        self._shown = shown
        # A rule keeps its row while it exists and its texts change in place: rebuilt rows on every change
        # gave the switches and delete buttons new control ids, and a tap on one still on screen (a second
        # rule's Delete as the first is toggled, or synced from another device) reached a control already
        # gone and was dropped.
        self._rows = {r.id: self._rows.get(r.id) or RuleRow(r.id, self._intents) for r in state.rules}
        for rule in state.rules:
            self._rows[rule.id].show(rule)
        self.list.controls = [row.control for row in self._rows.values()] or [self._none]


class RuleRow:
    """A rule's row: on/off switch, direction, name and condition, delete. Built once per rule id."""

    def __init__(self, rule_id: str, intents: Intents) -> None:
        self.enabled = ft.Switch(tooltip="Enabled",
                                 on_change=lambda e: intents.toggle_rule(rule_id, bool(e.control.value)))
        self.icon = direction_icon(1)
        self.name = ft.Text("", size=13, weight=ft.FontWeight.W_600)
        self.detail = ft.Text("", size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        self.side = ft.Text("", size=11)
        self.delete = reachable(ft.IconButton(ft.Icons.DELETE_OUTLINE, tooltip="Delete",
                                              on_click=lambda _e: intents.delete_rule(rule_id)), "")
        self.control = ft.Semantics(
            identifier=f"rule-{rule_id}", container=True,
            content=ft.Row(
                [self.enabled, self.icon, ft.Column([self.name, self.detail], spacing=0, expand=True), self.side,
                 self.delete],
                vertical_alignment=ft.CrossAxisAlignment.CENTER,
            ),
        )

    def show(self, rule: Any) -> None:
        direction = 1 if rule.direction == "buy" else -1
        symbols = "all symbols" if rule.symbols == "*" else ", ".join(rule.symbols)
        self.control.label = f"Rule {rule.name}, {'enabled' if rule.enabled else 'disabled'}"
        self.enabled.value = rule.enabled
        arrow = direction_icon(direction)
        self.icon.icon, self.icon.color = arrow.icon, arrow.color
        self.name.value = rule.name
        self.name.color = None if rule.enabled else ft.Colors.ON_SURFACE_VARIANT
        self.detail.value = f"{describe(rule.when)} · {symbols} · cool-down {rule.cooldown_ms / 1000:g} s"
        self.side.value, self.side.color = rule.direction.upper(), direction_colour(direction)
        self.delete.label = f"Delete rule {rule.name}"
