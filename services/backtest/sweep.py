"""Honest testing: an in-sample / out-of-sample split and a parameter sweep (a grid over periods and
thresholds), ranked by a chosen figure, with progress, cancel, and a warning when the best in-sample choice
does not hold up out of sample.

Parameters are written into a strategy document as "$name": a string that is exactly "$slow" becomes the
value (`"stopLossPct": "$sl"`), and "$name" inside a longer string is replaced by its text
(`"sma($fast)"`). The out-of-sample part starts fresh (its indicators warm up on its own candles), as a
strategy switched on at that moment would.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.backtest.candles import Candles
from services.backtest.runner import DEFAULT_CASH, backtest
from services.backtest.strategy import StrategyError, parse_strategy

METRICS = ("totalReturn", "cagr", "sharpe", "sortino", "calmar", "profitFactor", "expectancy", "winRate",
           "maxDrawdown")  # every one: higher is better (maxDrawdown is negative)
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Candidate:
    params: dict[str, float]
    in_sample: dict[str, Any]  # stats
    out_of_sample: dict[str, Any] | None  # stats; None when the sweep was cancelled first

    def score(self, metric: str, sample: str = "in") -> float:
        stats = self.in_sample if sample == "in" else self.out_of_sample
        value = None if stats is None else stats.get(metric)
        return -math.inf if value is None else float(value)


@dataclass(frozen=True, slots=True)
class SweepReport:
    metric: str
    ranked: tuple[Candidate, ...]  # best in-sample first
    total: int
    cancelled: bool
    split_ms: int  # first out-of-sample candle's timestamp
    warning: str | None

    @property
    def best(self) -> Candidate | None:
        return self.ranked[0] if self.ranked else None


def split(candles: Candles, in_sample: float = 0.7) -> tuple[Candles, Candles]:
    """The first `in_sample` share of the candles and the rest."""
    if not 0.0 < in_sample < 1.0:
        raise StrategyError(f"the in-sample share must be between 0 and 1, not {in_sample:g}")
    cut = int(len(candles) * in_sample)
    if cut < 2 or len(candles) - cut < 2:
        raise StrategyError("too few candles to split into an in-sample and an out-of-sample part")
    return candles.slice(0, cut), candles.slice(cut, len(candles))


def grid(space: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """Every combination of the values, in order."""
    if not space or any(not values for values in space.values()):
        raise StrategyError("each swept parameter needs at least one value")
    names = list(space)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(space[n] for n in names))]


def fill_in(template: Any, params: Mapping[str, float]) -> Any:
    """The strategy document with "$name" placeholders replaced by `params`."""
    if isinstance(template, Mapping):
        return {k: fill_in(v, params) for k, v in template.items()}
    if isinstance(template, list):
        return [fill_in(v, params) for v in template]
    if isinstance(template, str):
        whole = _PARAM.fullmatch(template)
        if whole:
            return _value(whole[1], params)
        return _PARAM.sub(lambda m: _text(_value(m[1], params)), template)
    return template


def _value(name: str, params: Mapping[str, float]) -> float:
    if name not in params:
        raise StrategyError(f"the strategy uses ${name}, but the sweep gives no values for it")
    return params[name]


def _text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def sweep(template: Mapping[str, Any], candles: Candles, space: Mapping[str, Sequence[float]], *,
          metric: str = "sharpe", in_sample: float = 0.7, cash: Decimal = DEFAULT_CASH, fee: float | None = None,
          slippage: float | None = None, check_operand: Callable[[str], None] | None = None,
          progress: Callable[[int, int], None] | None = None,
          cancelled: Callable[[], bool] | None = None) -> SweepReport:
    """Backtest every grid point on the in-sample part and on the out-of-sample part; rank by `metric` in
    sample. `progress(done, total)` after each grid point; `cancelled()` is asked before each one, and a
    cancelled sweep returns what it has. CPU-bound: run it off the UI loop (`asyncio.to_thread`)."""
    if metric not in METRICS:
        raise StrategyError(f"rank by one of {', '.join(METRICS)}, not {metric!r}")
    points = grid(space)
    ins, outs = split(candles, in_sample)
    strategies = []
    for params in points:  # every document is checked before any work starts
        try:
            strategies.append(parse_strategy(fill_in(template, params), check_operand=check_operand))
        except StrategyError as exc:
            raise StrategyError(f"with {_describe(params)}: {exc}") from None
    done: list[Candidate] = []
    stopped = False
    for i, (params, strategy) in enumerate(zip(points, strategies, strict=True)):
        if cancelled is not None and cancelled():
            stopped = True
            break
        a = backtest(strategy, ins, cash=cash, fee=fee, slippage=slippage)
        b = backtest(strategy, outs, cash=cash, fee=fee, slippage=slippage)
        done.append(Candidate(params, a.stats, b.stats))
        if progress is not None:
            progress(i + 1, len(points))
    ranked = tuple(sorted(done, key=lambda c: c.score(metric), reverse=True))
    return SweepReport(metric, ranked, len(points), stopped, int(outs.timestamp_ms[0]), _warning(ranked, metric))


def _describe(params: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={_text(v)}" for k, v in params.items())


def _warning(ranked: Sequence[Candidate], metric: str) -> str | None:
    """Said when the best in-sample choice fails out of sample: it loses (metric ≤ break-even), keeps less than
    half its in-sample figure (for total return: of its yearly rate), or ranks in the worse half."""
    if not ranked or ranked[0].out_of_sample is None:
        return None
    best = ranked[0]
    a, b = best.score(metric, "in"), best.score(metric, "out")
    out_rank = 1 + sum(1 for c in ranked if c.score(metric, "out") > b)
    # A total return grows with the span, and the two parts differ in length: compare growth per candle.
    pa, pb = (_growth(best.in_sample), _growth(best.out_of_sample)) if metric == "totalReturn" else (a, b)
    zero = 1.0 if metric == "profitFactor" else (50.0 if metric == "winRate" else 0.0)
    reasons = []
    if b <= zero and a > zero:
        reasons.append("loses out of sample")
    elif pa > zero and (pb - zero) < (pa - zero) / 2:
        reasons.append("keeps less than half of it out of sample")
    if len(ranked) >= 4 and out_rank > len(ranked) / 2:
        reasons.append(f"ranks {out_rank} of {len(ranked)} out of sample")
    if not reasons:
        return None
    return (f"The best in-sample parameters ({_describe(best.params)}) made {metric} {_fmt(a)} in sample but "
            f"{_fmt(b)} out of sample ({'; '.join(reasons)}): the result is likely fitted to the past.")


def _growth(stats: Mapping[str, Any] | None) -> float:
    """Log growth per candle (0 = break-even)."""
    if stats is None:
        return -math.inf
    total, candles = stats.get("totalReturn"), stats.get("candles") or 0
    if total is None or candles <= 0 or total <= -100:
        return -math.inf
    return math.log1p(total / 100.0) / candles


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2f}"


def report_json(report: SweepReport) -> dict[str, Any]:
    return json.loads(json.dumps({
        "metric": report.metric, "total": report.total, "cancelled": report.cancelled,
        "outOfSampleFrom": report.split_ms, "warning": report.warning,
        "ranked": [{"params": c.params, "inSample": c.in_sample, "outOfSample": c.out_of_sample}
                   for c in report.ranked],
    }))
