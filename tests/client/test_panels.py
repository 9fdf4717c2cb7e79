"""Portfolio, insights, rules and settings panels built from state, without a browser."""

from __future__ import annotations

import flet as ft

from client.shell import Shell
from client.state import AppState, Quote
from services.live import Change
from services.signals import Rule, default_rules
from tests.client.test_views import make_state
from tests.controls import by_identifier, texts, walk
from views.common import Intents
from views.rules import describe


def test_positions_are_marked_at_the_live_quote() -> None:
    state = make_state()
    state.apply_change(Change("positions", "BTC-USDT", "added", {
        "symbol": "BTC/USDT", "amount": 0.5, "entryPrice": 100.0, "costBasis": 50.0, "realizedPnl": 2.0,
        "unrealizedPnl": 0.0, "fees": {"cost": 0.05, "currency": "USDT"}}, 1))
    state.quotes["BTC/USDT"] = Quote("BTC/USDT", 110.0, 100.0, 1)
    state.navigate("portfolio")
    shell = Shell(Intents())
    shell.render(state)
    row = texts(by_identifier(shell.root, "position-BTC/USDT"))
    assert "+5.00 (+10.00%)" in row  # 0.5 × 110 − 50
    assert shell.positions.total.value == "P&L +7.00 (fees 0.05)"


def test_a_position_whose_cost_is_unknown_says_so_and_stays_out_of_the_total() -> None:
    state = make_state()
    state.apply_change(Change("positions", "BTC-USDT", "added", {
        "symbol": "BTC/USDT", "amount": 0.5, "entryPrice": 100.0, "costBasis": 50.0, "realizedPnl": 2.0,
        "unrealizedPnl": 5.0, "fees": {"cost": 0.05, "currency": "USDT"}, "basis": "trades"}, 1))
    state.apply_change(Change("positions", "ETH-USDT", "added", {  # a live broker: coins deposited
        "symbol": "ETH/USDT", "amount": 2.0, "entryPrice": None, "costBasis": None, "realizedPnl": None,
        "unrealizedPnl": None, "fees": None, "basis": "unknown"}, 2))
    state.quotes["BTC/USDT"] = Quote("BTC/USDT", 110.0, 100.0, 1)
    state.navigate("portfolio")
    shell = Shell(Intents())
    shell.render(state)
    row = texts(by_identifier(shell.root, "position-ETH/USDT"))
    assert "cost unknown" in row and "2.0000 @ —" in row  # never a made-up +0.00
    assert shell.positions.total.value == "P&L +7.00 (fees 0.05) · 1 without a known cost"


def test_insights_arrive_from_the_listener_and_name_their_provider() -> None:
    state = make_state()
    state.navigate("insights")
    state.insight_pending = True
    shell = Shell(Intents())
    shell.render(state)
    assert shell.insights.ask.disabled and shell.insights.progress.visible
    state.apply_change(Change("insights", "i1", "added", {
        "id": "i1", "symbol": "BTC/USDT", "trend": "up", "volatility": "low", "sentiment": "bullish",
        "signals": [], "reasoning": "Closes rose steadily.", "provider": "local", "model": None,
        "fallback": "openai: timed out", "timestamp": 1, "question": None}, 2))
    shell.render(state)
    card = texts(by_identifier(shell.root, "insight-i1"))
    assert "BTC/USDT: bullish" in card and "Closes rose steadily." in card
    assert "Answered by Local analyst — remote unavailable: openai: timed out" in card
    assert not shell.insights.ask.disabled and shell.insights.ask.content == "Ask again"


def test_rule_editor_lists_rules_and_submits_a_new_one_as_data() -> None:
    saved: list[dict] = []
    toggled: list[tuple[str, bool]] = []
    state = make_state()
    state.navigate("signals")
    state.indicator_keys = ("price", "ema_20", "rsi_14")
    state.set_rules(default_rules())
    shell = Shell(Intents(save_rule=saved.append, toggle_rule=lambda i, e: toggled.append((i, e))))
    shell.render(state)
    row = by_identifier(shell.root, "rule-ema-cross-up")
    assert "ema_12 crosses above ema_26 · all symbols · cool-down 300 s" in texts(row)
    switch = next(c for c in walk(row) if isinstance(c, ft.Switch))
    switch.value = False
    switch.on_change(type("E", (), {"control": switch})())
    assert toggled == [("ema-cross-up", False)]
    rules = shell.rules
    rules.name.value, rules.left.value, rules.right.value = "Price over 100", "price", "100"
    rules.kind.selected, rules.way.selected = ["compare"], ["above"]
    rules.cooldown.value = "30"
    rules.save.on_click(None)
    assert saved == [{"name": "Price over 100", "direction": "buy",
                      "when": {"op": "gt", "left": "price", "right": 100.0}, "symbols": "*",
                      "cooldown_ms": 30_000}]
    Rule.from_dict({"id": "x", **saved[0]})  # what the editor emits is a rule the engine accepts


def test_settings_search_adds_symbols_and_never_shows_saved_secrets() -> None:
    added: list[str] = []
    state = make_state()
    state.set_markets({s: {"symbol": s} for s in ("BTC/USDT", "ETH/USDT", "DOGE/USDT", "DOT/USDT")})
    state.navigate("settings")
    state.search_symbol("do")
    state.saved_keys = {"binance": "abcd…wxyz"}
    state.secure_store = "available"
    shell = Shell(Intents(add_symbol=added.append))
    shell.render(state)
    matches = [b.content for b in shell.settings.matches.controls]
    assert matches == ["DOGE/USDT", "DOT/USDT"]
    shell.settings.matches.controls[0].on_click(None)
    assert added == ["DOGE/USDT"]
    assert shell.settings.saved.value == "Saved: abcd…wxyz"
    assert shell.settings.key.password and shell.settings.key.value in (None, "")


def test_settings_say_when_there_is_no_secure_store() -> None:
    state = make_state()
    state.navigate("settings")
    state.secure_store = "none"
    shell = Shell(Intents())
    shell.render(state)
    assert shell.settings.save_key.disabled
    assert "no secure key store" in shell.settings.store.value


def test_describe_rule_conditions() -> None:
    assert describe({"op": "all", "of": [{"op": "gt", "left": "rsi_14", "right": 70, "hysteresis": 5},
                                         {"op": "cross_below", "left": "price", "right": "ema_20"}]}) == \
        "(rsi_14 is above 70 (±5)) and (price crosses below ema_20)"


def test_every_section_renders_at_every_width() -> None:
    for width in (390, 820, 1440):
        state: AppState = make_state(width)
        shell = Shell(Intents())
        for section in ("dashboard", "portfolio", "signals", "insights", "settings"):
            state.navigate(section)  # type: ignore[arg-type]
            shell.render(state)
            assert shell.root.content is not None


def test_sign_in_asks_for_both_fields_before_calling_out() -> None:
    from views.sign_in import SignInView

    attempts: list[tuple[str, str]] = []
    view = SignInView(lambda email, password: attempts.append((email, password)))
    view.email.value, view.password.value = "trader@example.com", ""
    view.submit.on_click(None)
    assert attempts == [] and view.error.visible and view.error.value == "Enter your email and password"
    view.password.value = "s3cret"
    view.submit.on_click(None)
    assert attempts == [("trader@example.com", "s3cret")]
    view.render(pending=True)
    assert view.submit.disabled and view.progress.visible and view.password.password


def test_timeframes_longer_than_the_replay_can_fill_are_disabled() -> None:
    state = make_state()
    state.history_span_ms = 60 * 60_000  # a one-hour recording
    shell = Shell(Intents())
    shell.render(state)
    disabled = {s.value for s in shell.chart.timeframe.segments if s.disabled}
    assert disabled == {"15m", "1h", "4h", "1d"}  # 15-minute bars would show the hour only 4 times over
    state.history_span_ms = 0  # a live exchange: every timeframe
    shell.render(state)
    assert not any(s.disabled for s in shell.chart.timeframe.segments)


def test_the_signal_log_stays_newest_first_when_warm_ups_arrive_symbol_by_symbol() -> None:
    from services.signals import Signal

    state = make_state()
    state.add_signals([Signal("BTC/USDT", "r1", "Breakout", "buy", 1.0, t) for t in (1_000, 5_000)])
    state.add_signals([Signal("ETH/USDT", "r1", "Breakout", "buy", 1.0, t) for t in (2_000, 6_000)])  # a later warm-up
    state.add_signals([Signal("BTC/USDT", "r2", "Overbought", "sell", 0.5, 7_000)])  # live
    assert [(s.symbol, s.timestamp_ms) for s in state.signals] == [
        ("BTC/USDT", 7_000), ("ETH/USDT", 6_000), ("BTC/USDT", 5_000), ("ETH/USDT", 2_000), ("BTC/USDT", 1_000)]
    shell = Shell(Intents())
    state.navigate("signals")
    shell.render(state)
    log = texts(by_identifier(shell.root, "signal-log"))
    assert log.index("BTC/USDT") < log.index("ETH/USDT")  # the newest on top, as the trader reads it


def scroll_areas(control: ft.Control) -> list[ft.Control]:
    """The scrolling columns below `control`, but for a backtest's trade list: it scrolls in a small box of
    its own, and a page's swipe outside that box still scrolls the page."""
    found: list[ft.Control] = []

    def visit(c: object) -> None:
        if isinstance(c, ft.Semantics) and c.identifier == "backtest-trades":
            return
        if isinstance(c, ft.Column) and c.scroll is not None:
            found.append(c)
        for child in [getattr(c, "content", None), *(getattr(c, "controls", None) or [])]:
            if isinstance(child, ft.Control):
                visit(child)

    visit(control)
    return found


def test_a_phone_scrolls_each_section_as_one_page_and_wider_screens_keep_their_panels() -> None:
    state = make_state(390)
    shell = Shell(Intents())
    for section in ("dashboard", "signals"):
        state.navigate(section)  # type: ignore[arg-type]
        shell.render(state)
        assert len(scroll_areas(shell.root)) == 1, section  # the page; no list scrolls inside it
    strategies = by_identifier(shell.root, "strategies")
    assert strategies is not None  # reached by scrolling the one page
    state.width = 1440  # the same panels, wide: each fills its room and scrolls inside
    shell.render(state)
    assert len(scroll_areas(shell.root)) > 1
