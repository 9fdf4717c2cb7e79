"""`SignalEngine`: ticks in, indicator snapshots and fired `Signal`s out, for every symbol."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from services.market.types import Tick
from services.signals.candles import SymbolCandles
from services.signals.config import EngineConfig
from services.signals.errors import RuleError
from services.signals.indicators import SymbolIndicators, TickCounters, indicator_keys
from services.signals.operands import IndicatorSpec, parse_operand
from services.signals.rules import Rule, RuleRunner, Signal
from services.signals.windows import SortedWindow


class SignalEngine:
    """Streaming indicators and rules over many symbols. Not thread-safe: feed it from one task.

    `on_tick` is the hot path: O(1) for the fused indicators plus O(log n) per sorted window
    and O(size of each applicable rule) for the rules.
    """

    # `on_tick(tick) -> list[Signal]` is a per-instance closure (see `_make_on_tick`).
    on_tick: Callable[[Tick], list[Signal]]
    __slots__ = (
        "config", "_symbols", "_updates", "_readers", "_runners", "_has_rules", "_rules", "on_tick",
        "_candles", "_has_candles", "_watched", "_close_runners", "_has_close",
    )

    def __init__(self, *, rules: Iterable[Rule] = (), config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self._symbols: dict[str, SymbolIndicators] = {}
        self._updates: dict[str, Callable[[Tick], bool]] = {}
        # Per symbol: the rules that apply to it, and a reader computing only what they use.
        self._readers: dict[str, tuple[Callable[[], dict[str, float]], tuple[RuleRunner, ...]]] = {}
        self._rules: tuple[Rule, ...] = ()
        self._has_rules = [False]  # a box the on_tick closure reads without attribute lookups
        self._runners: tuple[RuleRunner, ...] = ()
        # Candle indicators per symbol: only the specs rules and `watch` ask for, shared when equal.
        self._candles: dict[str, SymbolCandles] = {}
        self._has_candles = [False]
        self._watched: dict[str, set[IndicatorSpec]] = {}
        # `on_close` rules by the timeframe whose closes they are evaluated at.
        self._close_runners: dict[str, tuple[RuleRunner, ...]] = {}
        self._has_close = [False]
        self.set_rules(rules)
        self.on_tick = self._make_on_tick()

    # -- rules --------------------------------------------------------------------------------
    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Replace the rules. A rule whose content is unchanged keeps its state (edge, cool-down)."""
        rules = tuple(rules)
        ids = [r.id for r in rules]
        if len(ids) != len(set(ids)):
            raise RuleError("rule ids must be unique")
        kept = {runner.rule.id: runner for runner in self._runners}
        self._rules = rules
        tf = self.config.timeframe
        self._runners = tuple(
            kept[r.id] if r.id in kept and kept[r.id].rule == r else RuleRunner(r, tf) for r in rules if r.enabled
        )
        self._readers.clear()
        self._has_rules[0] = any(not r.rule.on_close for r in self._runners)
        by_tf: dict[str, list[RuleRunner]] = {}
        for runner in self._runners:
            if runner.rule.on_close:
                by_tf.setdefault(runner.timeframe, []).append(runner)
        self._close_runners = {k: tuple(v) for k, v in by_tf.items()}
        self._has_close[0] = bool(by_tf)
        for symbol in self._symbols:
            self._want_candles(symbol)

    # -- candle indicators ------------------------------------------------------------------------
    def watch(self, symbol: str, operand: str | IndicatorSpec) -> str:
        """Compute a candle indicator for `symbol` (a chart asks), warmed by the candles kept so
        far; its value is then in `snapshot(symbol)` under the returned key. Raises OperandError."""
        spec = parse_operand(operand) if isinstance(operand, str) else operand
        spec = spec.on(self.config.timeframe)
        self._watched.setdefault(symbol, set()).add(spec)
        return self._candles_of(symbol).want(spec)

    def _candles_of(self, symbol: str) -> SymbolCandles:
        candles = self._candles.get(symbol)
        if candles is None:
            candles = self._candles[symbol] = SymbolCandles()
            self._has_candles[0] = True
        return candles

    def _want_candles(self, symbol: str) -> None:
        tf = self.config.timeframe
        specs = {s for r in self._runners if r.rule.applies_to(symbol) for s in r.rule.specs(tf)}
        # An on_close rule needs its own timeframe's candles, to know when one closes.
        specs |= {parse_operand("close", r.timeframe) for r in self._runners if r.rule.on_close and r.rule.applies_to(symbol)}
        specs |= self._watched.get(symbol, set())
        existing = self._candles.get(symbol)
        if existing is not None:
            existing.keep_only(specs)  # a rule deleted or edited stops costing anything
        if specs:
            candles = self._candles_of(symbol)
            for spec in sorted(specs, key=str):
                candles.want(spec)

    # -- ticks --------------------------------------------------------------------------------
    def _make_on_tick(self) -> Callable[[Tick], list[Signal]]:
        # A closure over the dicts rather than a method: no bound-method object and no attribute
        # lookups per tick (~0.1 us of a ~1 us tick).
        updates = self._updates
        add_symbol = self._add_symbol
        evaluate = self._evaluate
        has_rules = self._has_rules
        has_candles = self._has_candles
        candles = self._candles
        has_close = self._has_close
        at_closes = self._at_closes

        def on_tick(tick: Tick) -> list[Signal]:
            """Feed one trade; returns the signals it fired (usually none)."""
            # A trade opening a new candle first closes the last one: on_close rules see the
            # values as they stood at that close, before this trade moves anything.
            closed = at_closes(tick) if has_close[0] else None
            try:
                update = updates[tick.symbol]  # a subscript is cheaper than .get(): no call
            except KeyError:
                update = add_symbol(tick.symbol).update
            if not update(tick):
                return closed or []
            if has_candles[0]:
                series = candles.get(tick.symbol)
                if series is not None:
                    series.on_trade(tick.timestamp_ms, tick.price, tick.amount)
            if not has_rules[0]:
                return closed or []
            fired = evaluate(tick)
            return closed + fired if closed else fired

        return on_tick

    def _at_closes(self, tick: Tick) -> list[Signal]:
        """Signals of on_close rules whose timeframe's candle `tick` closes. O(1) unless it closes
        one; then one full read of the symbol's values and the rules of that timeframe."""
        symbol, ts = tick.symbol, tick.timestamp_ms
        candles = self._candles.get(symbol)
        if candles is None or not 0.0 < tick.price < math.inf:  # an invalid trade closes nothing
            return []
        values: dict[str, float] | None = None
        fired = []
        for tf, runners in self._close_runners.items():
            series = candles.series.get(tf)
            if series is None or series.start is None or ts - ts % series.ms <= series.start:
                continue
            if values is None:
                indicators = self._symbols.get(symbol)
                values = indicators.read() if indicators is not None else {}
                candles.read_into(values)
                values["price"] = series.c  # the close, whatever the tick indicators hold
            close_ms = series.start + series.ms
            for runner in runners:
                if runner.rule.applies_to(symbol):
                    signal = runner.evaluate(symbol, values, close_ms)
                    if signal is not None:
                        fired.append(signal)
        return fired

    def _evaluate(self, tick: Tick) -> list[Signal]:
        symbol = tick.symbol
        plan = self._readers.get(symbol)
        if plan is None:
            runners = tuple(r for r in self._runners if not r.rule.on_close and r.rule.applies_to(symbol))
            keys = {"price"}.union(*(runner.rule.operands() for runner in runners))
            plan = self._readers[symbol] = (self._symbols[symbol].reader(keys), runners)
        read, runners = plan
        if not runners:
            return []
        values = read()
        candles = self._candles.get(symbol)
        if candles is not None:
            candles.read_into(values)
        fired = []
        for runner in runners:
            signal = runner.evaluate(symbol, values, tick.timestamp_ms)
            if signal is not None:
                fired.append(signal)
        return fired

    def _add_symbol(self, symbol: str) -> SymbolIndicators:
        indicators = SymbolIndicators(symbol, self.config)
        self._symbols[symbol] = indicators
        self._updates[symbol] = indicators.update
        self._want_candles(symbol)
        return indicators

    # -- reading ------------------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._symbols)

    def keys(self) -> tuple[str, ...]:
        """Every tick-indicator key a snapshot holds with this configuration (candle indicators
        add their spec's text, e.g. "sma(50, 1h)", for the specs rules or `watch` asked for)."""
        return indicator_keys(self.config)

    def snapshot(self, symbol: str) -> dict[str, float]:
        """Current values (NaN before warm-up); empty for a symbol never seen. O(log n)."""
        indicators = self._symbols.get(symbol)
        if indicators is None:
            return {}
        values = indicators.read()
        candles = self._candles.get(symbol)
        if candles is not None:
            candles.read_into(values)
        return values

    def reader(self, symbol: str, keys: Iterable[str]) -> Callable[[], dict[str, float]] | None:
        """A `snapshot` of `symbol` that computes only the groups holding `keys` (at least those keys; no
        candle indicators): what a caller reading a value or two on every tick should use. None for a
        symbol never seen."""
        indicators = self._symbols.get(symbol)
        return indicators.reader(keys) if indicators is not None else None

    def window(self, symbol: str) -> SortedWindow | None:
        """The symbol's price window, for any quantile, rank or time range (O(log n) each).

        Read-only by contract: it is the engine's own state, shared by median, quantiles and
        the Donchian channel. None for an unknown symbol or with `stats_points=0`.
        """
        indicators = self._symbols.get(symbol)
        return indicators.window if indicators is not None else None

    def counters(self, symbol: str) -> TickCounters:
        """Accepted, late-placed, late-dropped and duplicate ticks of `symbol`."""
        indicators = self._symbols.get(symbol)
        return indicators.counters() if indicators is not None else TickCounters(0, 0, 0, 0)
