"""Indicator periods and window sizes of one `SignalEngine`: every knob in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.signals.operands import check_timeframe


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Periods are counted in ticks (prices of trades) except ATR, which counts closed bars.

    Set `stats_points`, `vwap_horizon_ms` or `rvol_points` to 0 to switch that group off (the
    benchmark does, to compare with talipp on exactly talipp's indicator set).
    """

    sma_period: int = 20  # shared window: SMA, Bollinger bands, z-score
    bb_k: float = 2.0
    ema_period: int = 20
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    rsi_period: int = 14
    atr_period: int = 14
    bar_ms: int = 60_000  # bars built from ticks, for ATR
    # Order-statistics window (median, quantiles, Donchian channel): last N ticks and/or last T ms.
    stats_points: int = 500
    stats_horizon_ms: int | None = None
    quantiles: tuple[float, ...] = field(default=(0.1, 0.9))
    # Volume-weighted price and volume spike over time windows.
    vwap_horizon_ms: int = 15 * 60_000
    volume_spike_horizon_ms: int = 60_000
    volume_spike_ratio: float = 3.0
    # Realised volatility: sqrt of the sum of squared log returns over the last N tick returns.
    rvol_points: int = 100
    # Out-of-order policy: a tick up to this much older than the newest one is placed; older
    # ones are counted and dropped.
    late_tolerance_ms: int = 2_000
    drop_duplicates: bool = True
    # Timeframe of candle operands that name none (`rsi(14)`) in rules that name none either.
    timeframe: str = "1m"

    def __post_init__(self) -> None:
        for name in (
            "sma_period",
            "ema_period",
            "macd_fast",
            "macd_slow",
            "macd_signal",
            "atr_period",
            "bar_ms",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.rsi_period < 2:
            raise ValueError("rsi_period must be >= 2")
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be shorter than macd_slow")
        if any(not 0.0 <= q <= 1.0 for q in self.quantiles):
            raise ValueError("quantiles must be in [0, 1]")
        check_timeframe(self.timeframe)  # OperandError is a ValueError
        if self.late_tolerance_ms < 0:
            raise ValueError("late_tolerance_ms must be >= 0")
        if self.vwap_horizon_ms and not 0 < self.volume_spike_horizon_ms <= self.vwap_horizon_ms:
            raise ValueError("volume_spike_horizon_ms must be in (0, vwap_horizon_ms]")


def quantile_key(q: float) -> str:
    """Snapshot key of a quantile: 0.1 -> "q10", 0.975 -> "q97.5"."""
    return f"q{q * 100:g}"
