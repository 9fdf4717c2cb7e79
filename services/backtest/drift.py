"""Drift report: a strategy's live (paper) trades beside the backtest of the same period — entry/exit times,
prices, slippage against the candle's open, fees and P&L — the question "why does live differ from the
backtest?" answered trade by trade.

Live fills are anything with `side, amount, price, fee, timestamp_ms` (the live runner's `LiveFill`, or the
ledger `Fill`s `services.analytics.fills_from_orders` reads from the paper broker's orders), one position at
a time: fills pair into round trips in order. A live trade matches the next unmatched backtest trade of the
same side whose entry candle is within `tolerance` candles of its own. Prices drift in basis points against
the trader (positive: live paid more on a buy / got less on a sell).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from services.backtest.candles import iso
from services.backtest.engine import Trade
from services.backtest.runner import BacktestResult

_BPS = Decimal(10_000)


class FillLike(Protocol):
    """Read-only, so frozen dataclasses (`LiveFill`, the ledger's `Fill`) match."""

    @property
    def side(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def fee(self) -> Decimal: ...
    @property
    def timestamp_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LiveTrade:
    side: str  # "long" | "short"
    amount: Decimal
    entry_ms: int
    exit_ms: int | None  # None: still open
    entry_price: Decimal
    exit_price: Decimal | None
    fees: Decimal
    pnl: Decimal | None


@dataclass(frozen=True, slots=True)
class TradeDrift:
    live: LiveTrade
    backtest: Trade
    entry_delay_ms: int  # live entry time − the backtest's entry candle time
    entry_drift_bps: float
    exit_drift_bps: float | None
    live_slippage_bps: float  # live entry price against the entry candle's open
    backtest_slippage_bps: float
    fee_difference: Decimal  # live − backtest
    pnl_difference: Decimal | None


@dataclass(frozen=True, slots=True)
class DriftReport:
    rows: tuple[TradeDrift, ...]
    unmatched_live: tuple[LiveTrade, ...]
    unmatched_backtest: tuple[Trade, ...]

    @property
    def matched(self) -> int:
        return len(self.rows)

    @property
    def max_price_drift_bps(self) -> float:
        values = [abs(r.entry_drift_bps) for r in self.rows] + [abs(r.exit_drift_bps) for r in self.rows
                                                                 if r.exit_drift_bps is not None]
        return max(values, default=0.0)

    @property
    def mean_entry_drift_bps(self) -> float:
        return sum(r.entry_drift_bps for r in self.rows) / len(self.rows) if self.rows else 0.0

    @property
    def fee_difference(self) -> Decimal:
        return sum((r.fee_difference for r in self.rows), Decimal(0))

    @property
    def pnl_difference(self) -> Decimal:
        return sum((r.pnl_difference for r in self.rows if r.pnl_difference is not None), Decimal(0))

    def summary(self) -> str:
        return (f"{self.matched} trades matched, {len(self.unmatched_live)} live and {len(self.unmatched_backtest)} "
                f"backtest trades without a twin; entry prices drift {self.mean_entry_drift_bps:+.1f} bps on "
                f"average (worst {self.max_price_drift_bps:.1f} bps); fees differ by {self.fee_difference:+.2f}, "
                f"P&L by {self.pnl_difference:+.2f}")

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "matched": self.matched,
            "trades": [{
                "side": r.live.side, "liveEntryTime": iso(r.live.entry_ms), "backtestEntryTime": iso(r.backtest.entry_ms),
                "entryDelayMs": r.entry_delay_ms, "liveEntryPrice": float(r.live.entry_price),
                "backtestEntryPrice": float(r.backtest.entry_price), "entryDriftBps": r.entry_drift_bps,
                "exitDriftBps": r.exit_drift_bps, "liveSlippageBps": r.live_slippage_bps,
                "backtestSlippageBps": r.backtest_slippage_bps, "feeDifference": float(r.fee_difference),
                "pnlDifference": None if r.pnl_difference is None else float(r.pnl_difference),
            } for r in self.rows],
            "unmatchedLive": [iso(t.entry_ms) for t in self.unmatched_live],
            "unmatchedBacktest": [iso(t.entry_ms) for t in self.unmatched_backtest],
        }


def round_trips(fills: Sequence[FillLike]) -> list[LiveTrade]:
    """Fills paired into trades, one position at a time (an entry, then the fill that closes it)."""
    out: list[LiveTrade] = []
    for i in range(0, len(fills), 2):
        entry = fills[i]
        exit_ = fills[i + 1] if i + 1 < len(fills) else None
        side = "long" if entry.side == "buy" else "short"
        pnl = None
        if exit_ is not None:
            sign = 1 if side == "long" else -1
            pnl = sign * (exit_.price - entry.price) * entry.amount - entry.fee - exit_.fee
        out.append(LiveTrade(side, entry.amount, entry.timestamp_ms, exit_.timestamp_ms if exit_ else None,
                             entry.price, exit_.price if exit_ else None, entry.fee + (exit_.fee if exit_ else 0),
                             pnl))
    return out


def _bps(live: Decimal, tested: Decimal, buying: bool) -> float:
    diff = (live - tested) / tested * _BPS
    return float(diff if buying else -diff)


def drift_report(live_fills: Sequence[FillLike], result: BacktestResult, *, timeframe_ms: int,
                 tolerance: int = 1, since_ms: int | None = None) -> DriftReport:
    """Live trades beside `result`'s trades of the same period. O(trades). `since_ms`: when the live session
    started; the backtest's trades entered before it (its warm-up candles) are left out."""
    live = round_trips(live_fills)
    tested = [t for t in result.trades if (t.exit_reason != "end" or t is result.trades[-1])
              and (since_ms is None or t.entry_ms >= since_ms)]
    opens = result.candles.open
    rows: list[TradeDrift] = []
    unmatched: list[LiveTrade] = []
    used = [False] * len(tested)
    j = 0
    for trade in live:
        candle = trade.entry_ms - trade.entry_ms % timeframe_ms
        while j < len(tested) and used[j]:
            j += 1
        match = None
        for k in range(j, len(tested)):
            t = tested[k]
            if t.entry_ms > candle + tolerance * timeframe_ms:
                break
            if not used[k] and t.side == trade.side and abs(t.entry_ms - candle) <= tolerance * timeframe_ms:
                match = k
                break
        if match is None:
            unmatched.append(trade)
            continue
        used[match] = True
        t = tested[match]
        buying = trade.side == "long"
        candle_open = Decimal(repr(float(opens[t.entry_index])))
        exit_drift = None
        if trade.exit_price is not None and t.exit_reason != "end":
            exit_drift = _bps(trade.exit_price, t.exit_price, not buying)
        rows.append(TradeDrift(
            live=trade, backtest=t, entry_delay_ms=trade.entry_ms - t.entry_ms,
            entry_drift_bps=_bps(trade.entry_price, t.entry_price, buying), exit_drift_bps=exit_drift,
            live_slippage_bps=_bps(trade.entry_price, candle_open, buying),
            backtest_slippage_bps=_bps(t.entry_price, candle_open, buying),
            fee_difference=trade.fees - (t.entry_fee + t.exit_fee if trade.exit_price is not None else t.entry_fee),
            pnl_difference=None if trade.pnl is None or t.exit_reason == "end" else trade.pnl - t.pnl))
    return DriftReport(tuple(rows), tuple(unmatched), tuple(t for t, u in zip(tested, used, strict=True) if not u
                                                            and t.exit_reason != "end"))
