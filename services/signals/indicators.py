"""Every indicator of one symbol, updated by one fused call per tick that shares running state.

Inputs and warm-up (the same as talipp 2.x, so the benchmark can compare value for value):
- SMA, Bollinger (population std), z-score: the last `sma_period` tick prices, by timestamp;
  defined once the window is full.
- EMA: seeded with the SMA of the first `period` prices, then `a*x + (1-a)*ema`, a = 2/(n+1).
- MACD: EMA(fast) - EMA(slow) from the slow EMA's first value; signal = EMA(signal) of MACD.
- RSI: Wilder; first value at `period + 1` prices, from the mean gain/loss of the first changes.
- ATR: Wilder over closed bars of `bar_ms` built from ticks; first value at `atr_period` bars,
  the first bar's true range being high - low. Intervals without trades make no bar.
- Median, quantiles, Donchian high/low: a `SortedWindow` of prices (count and/or time bound).
- VWAP, volume ratio/spike: a `FlowWindow` over stream time (the symbol's newest tick), with
  volume_ratio = volume rate over the spike horizon / rate over the VWAP horizon.
- Realised vol: sqrt(sum r^2) of the last `rvol_points` tick-to-tick log returns.

Out-of-order policy: a tick older than the newest by at most `late_tolerance_ms` is *placed*
in the windowed indicators (SMA/Bollinger/z-score, order statistics, VWAP/volume) and in the
current bar if its bar is still open; the recursive ones (EMA, MACD, RSI, realised vol, bar
close) only consume in-order ticks, because a late price fed to a recursion would read as a
fresh move. Older ticks are counted in `late_dropped` and change nothing. An exact duplicate
(every field equal: Tick has no trade id) of one of the last DUPLICATE_MEMORY ticks accepted
within the tolerance is a feed replay (reconnects resend trades): counted and dropped.
Set `drop_duplicates=False` for a feed where identical trades are genuinely distinct.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from math import fsum, log, sqrt
from typing import NamedTuple

from services.market.types import Tick
from services.signals.config import EngineConfig, quantile_key
from services.signals.flow import FlowWindow
from services.signals.windows import SortedWindow

NAN = math.nan
INF = math.inf
_NEVER = -(1 << 62)
# Duplicate detection remembers this many recent ticks, in a fixed ring of typed arrays (their
# timestamp, price, amount and side): no Python object per remembered tick, where a deque of the
# ticks themselves kept 4,096 `Tick`s (and their ints and floats) alive per symbol.
DUPLICATE_MEMORY = 4096
_SIDES = {None: 0, "buy": 1, "sell": 2}  # a tick's side as a number in the ring (others get their own)


@dataclass(frozen=True, slots=True)
class TickCounters:
    """What the out-of-order and duplicate policy did for one symbol."""

    accepted: int
    late_placed: int
    late_dropped: int
    duplicates: int
    invalid: int = 0  # price not a positive finite number, or amount negative or not finite


def indicator_keys(config: EngineConfig) -> tuple[str, ...]:
    """Every key `SymbolIndicators.read()` returns for this configuration."""
    keys = [
        "price",
        f"sma_{config.sma_period}",
        "bb_mid",
        "bb_upper",
        "bb_lower",
        "zscore",
        f"ema_{config.ema_period}",
        f"ema_{config.macd_fast}",
        f"ema_{config.macd_slow}",
        "macd",
        "macd_signal",
        "macd_hist",
        f"rsi_{config.rsi_period}",
        f"atr_{config.atr_period}",
    ]
    if config.stats_points or config.stats_horizon_ms:
        keys += ["median", "donchian_high", "donchian_low"] + [quantile_key(q) for q in config.quantiles]
    if config.vwap_horizon_ms:
        keys += ["vwap", "volume_ratio", "volume_spike"]
    if config.rvol_points:
        keys.append("rvol")
    return tuple(dict.fromkeys(keys))  # ema_20 may also be the MACD fast or slow EMA


class SymbolIndicators:
    """All indicators of one symbol. `update(tick) -> accepted` is the hot path.

    The state lives in closure cells rather than attributes: reading or writing a cell is one
    opcode where an attribute is a lookup, and the steady-state update touches ~40 of them.
    `update`: O(1) for the fused indicators (+ O(log n) for the sorted window when enabled).
    `read`: O(1) (+ O(log n) quantile reads); `reader(keys)` builds a cheaper `read` that only
    computes the groups holding `keys`.
    """

    __slots__ = ("symbol", "config", "update", "read", "reader", "counters", "window")

    def __init__(self, symbol: str, config: EngineConfig) -> None:
        self.symbol = symbol
        self.config = config
        update, read, reader, counters, window = _build(config)
        self.update: Callable[[Tick], bool] = update
        self.read: Callable[[], dict[str, float]] = read
        self.reader: Callable[[Iterable[str]], Callable[[], dict[str, float]]] = reader
        self.counters: Callable[[], TickCounters] = counters
        # The order-statistics window itself, for queries beyond the snapshot (None if off).
        self.window: SortedWindow | None = window


class _Parts(NamedTuple):
    update: Callable[[Tick], bool]
    read: Callable[[], dict[str, float]]
    reader: Callable[[Iterable[str]], Callable[[], dict[str, float]]]
    counters: Callable[[], TickCounters]
    window: SortedWindow | None


def _build(cfg: EngineConfig) -> _Parts:
    """The closures sharing one symbol's state (cells), see `SymbolIndicators`."""
    P = cfg.sma_period
    bb_k = cfg.bb_k
    E, F, S, G, R, A = (
        cfg.ema_period,
        cfg.macd_fast,
        cfg.macd_slow,
        cfg.macd_signal,
        cfg.rsi_period,
        cfg.atr_period,
    )
    # talipp's arithmetic, operation for operation, so values agree to the last bits.
    m_e, m_f, m_s, m_g = (2.0 / (x + 1.0) for x in (E, F, S, G))
    om_e, om_f, om_s, om_g = 1.0 - m_e, 1.0 - m_f, 1.0 - m_s, 1.0 - m_g
    R1 = R - 1
    decay = R1 / R
    bar_ms = cfg.bar_ms
    tol = cfg.late_tolerance_ms
    dedup = cfg.drop_duplicates
    # After `warm` in-order ticks every recursion is in its steady state: the fast path applies.
    warm = max(P, E, S + G - 1, R + 1)

    stats = (
        SortedWindow(max_points=cfg.stats_points or None, horizon_ms=cfg.stats_horizon_ms)
        if (cfg.stats_points or cfg.stats_horizon_ms)
        else None
    )
    quantiles = tuple((quantile_key(q), q) for q in cfg.quantiles)
    flow = FlowWindow(cfg.vwap_horizon_ms, cfg.volume_spike_horizon_ms) if cfg.vwap_horizon_ms else None
    spike_ratio = cfg.volume_spike_ratio
    Q = cfg.rvol_points
    has_extras = stats is not None or flow is not None or Q > 0

    # -- state (closure cells) ----------------------------------------------------------------
    n = 0  # in-order ticks applied to the recursive indicators
    last_ts = _NEVER
    last_p = NAN
    late_placed = late_dropped = duplicates = invalid = 0  # accepted = n + late_placed
    # The last `memory` in-order ticks accepted (sorted by timestamp), newest at r_i - 1. A tick of
    # this symbol is one of them when timestamp, price, amount and side are equal (its symbol is).
    memory = DUPLICATE_MEMORY
    r_ts = array("q", bytes(8 * memory))
    r_p = array("d", bytes(8 * memory))
    r_a = array("d", bytes(8 * memory))
    r_side = array("i", bytes(4 * memory))
    r_i = r_len = 0
    sides = dict(_SIDES)
    late_by_ts: dict[int, list[Tick]] = {}  # accepted late ticks, by timestamp
    # SMA/Bollinger window: a ring of P points in timestamp order, oldest at index i once full.
    wp = [0.0] * P
    wt = [0] * P
    wn = 0
    i = 0
    K = K2 = 0.0  # shift: sums are of (x - K) so the variance does not cancel catastrophically
    s = 0.0
    ss = 0.0
    d_max = 0.0  # largest |x - K| in the window at the last rebase (for the error bound)
    # EMA / MACD / RSI
    e = ef = es = sig = 0.0
    e_sum = f_sum = s_sum = g_sum = 0.0
    ag = al = gain_sum = loss_sum = 0.0
    # bars and ATR
    bar_start = bar_end = _NEVER
    bh = bl = 0.0  # the open bar's high and low; its close is `last_p` when the next one opens
    prev_close = NAN
    nbars = 0
    tr_sum = 0.0
    atr = NAN
    # realised volatility: ring of Q squared log returns
    rr = [0.0] * Q
    rn = ri = 0
    rs = 0.0

    def rebase() -> None:
        """Exact re-summation once per window turn: amortised O(1), bounds drift to one turn.

        Also re-centres the shift K on the mean, so (x - K) stays small and the variance does
        not come from subtracting two large, nearly equal sums.
        """
        nonlocal K, K2, s, ss, d_max
        vals = wp if wn == P else wp[:wn]
        K = fsum(vals) / len(vals)
        K2 = 2.0 * K
        d = [x - K for x in vals]
        s = fsum(d)
        ss = fsum([x * x for x in d])
        d_max = max(max(vals) - K, K - min(vals))

    def variance() -> float:
        """Population variance of the full window, to ~1e-11 relative. O(1) unless the window
        is far flatter than the moves since the last rebase, then O(P) once (it re-centres)."""
        m = s / P
        var = ss / P - m * m
        # Rounding in s and ss since the last rebase is at most a few eps per update times the
        # largest squared offset from K involved: values in the window at that rebase (d_max)
        # or inserted since (no further from the mean than sqrt(P var), so from K than that
        # plus |m|). While var stays above 1e-3 of that square, the error is below ~1e-11.
        reach = max(d_max, sqrt(P * var) + abs(m)) if var > 0.0 else math.inf
        if var < 1e-3 * reach * reach:
            reach = max(d_max, max(wp) - K, K - min(wp))  # the bound was loose: measure
            if var < 1e-3 * reach * reach:
                rebase()
                m = s / P
                var = ss / P - m * m
        return var if var > 0.0 else 0.0

    def side_code(side: str | None) -> int:
        code = sides.get(side)
        if code is None:
            code = sides[side] = len(sides)
        return code

    def is_duplicate(tick: Tick) -> bool:
        """O(k) over ticks with the same or a later timestamp; only run off the fast path."""
        ts, p, a = tick.timestamp_ms, tick.price, tick.amount
        code = sides.get(tick.side, -1)
        j, k = r_i, r_len
        while k:
            j = j - 1 if j else memory - 1
            t = r_ts[j]
            if t < ts:
                break
            # A NaN amount (VWAP off: amounts unchecked) is the same amount again: a replay.
            if t == ts and r_p[j] == p and r_side[j] == code and (r_a[j] == a or (a != a and r_a[j] != r_a[j])):
                return True
            k -= 1
        return tick in late_by_ts.get(ts, ())

    def remember_late(tick: Tick) -> None:
        """O(1) amortised: forgetting what fell out of the tolerance costs O(size) once in a while."""
        late_by_ts.setdefault(tick.timestamp_ms, []).append(tick)
        if len(late_by_ts) > DUPLICATE_MEMORY:
            cutoff = last_ts - tol
            for key in [k for k in late_by_ts if k < cutoff]:
                del late_by_ts[key]
            while len(late_by_ts) > DUPLICATE_MEMORY // 2:  # all within tolerance: keep the newest
                del late_by_ts[min(late_by_ts)]

    def is_valid(tick: Tick) -> bool:
        """Prices must be positive and finite, amounts (when VWAP/volume use them) non-negative
        and finite: one NaN would otherwise poison every recursive indicator for good."""
        return 0.0 < tick.price < INF and (not has_extras or 0.0 <= tick.amount < INF)

    def close_bar(ts: int, p: float) -> None:
        """O(1): close the open bar (Wilder ATR step) and open the one holding `ts`."""
        nonlocal bar_start, bar_end, bh, bl, prev_close, nbars, tr_sum, atr
        if bar_start != _NEVER:
            if prev_close != prev_close:  # first bar: no previous close (NaN)
                tr = bh - bl
            else:
                tr = max(bh - bl, abs(bh - prev_close), abs(bl - prev_close))
            nbars += 1
            if nbars < A:
                tr_sum += tr
            elif nbars == A:
                tr_sum += tr
                atr = tr_sum / A
            else:
                atr = (atr * (A - 1) + tr) / A
            prev_close = last_p
        bar_start = ts - ts % bar_ms
        bar_end = bar_start + bar_ms
        bh = bl = p

    def warm_up(ts: int, p: float) -> None:
        """The first `warm` in-order ticks: each indicator seeds itself as talipp does."""
        nonlocal n, wn, K, s, ss, i, e, ef, es, sig, e_sum, f_sum, s_sum, g_sum, ag, al, gain_sum, loss_sum
        n += 1
        if wn < P:
            if wn == 0:
                K = p
            wp[wn] = p
            wt[wn] = ts
            wn += 1
            d = p - K
            s += d
            ss += d * d
            if wn == P:
                rebase()
                i = 0
        else:
            old = wp[i]
            wp[i] = p
            wt[i] = ts
            d = p - K
            od = old - K
            s += d - od
            ss += d * d - od * od
            i += 1
            if i == P:
                rebase()
                i = 0
        if n <= E:
            e_sum += p
            if n == E:
                e = e_sum / E
        else:
            e = m_e * p + om_e * e
        if n <= F:
            f_sum += p
            if n == F:
                ef = f_sum / F
        else:
            ef = m_f * p + om_f * ef
        if n <= S:
            s_sum += p
            if n == S:
                es = s_sum / S
        else:
            es = m_s * p + om_s * es
        if n >= S:
            macd = ef - es
            count = n - S + 1
            if count <= G:
                g_sum += macd
                if count == G:
                    sig = g_sum / G
            else:
                sig = m_g * macd + om_g * sig
        if n >= 2:
            change = p - last_p
            c = n - 1
            if c < R:
                if change > 0:
                    gain_sum += change
                elif change < 0:
                    loss_sum += -change
            else:
                if c == R:
                    ag = gain_sum / R1
                    al = loss_sum / R1
                gain = change if change > 0 else 0.0
                loss = -change if change < 0 else 0.0
                ag = (ag * R1 + gain) / R
                al = (al * R1 + loss) / R

    def place_late(ts: int, p: float) -> None:
        """O(P) for the P-point SMA window (P is small); the big windows place in O(log n)."""
        nonlocal wn, i
        order = range(wn) if wn < P else [(i + j) % P for j in range(P)]
        pts = [(wt[j], wp[j]) for j in order]
        # After points with the same timestamp: among equals, arrival order decides eviction.
        pts.insert(bisect_right([t for t, _ in pts], ts), (ts, p))
        if len(pts) > P:
            pts.pop(0)
        for j, (t, v) in enumerate(pts):
            wt[j] = t
            wp[j] = v
        wn = len(pts)
        rebase()
        i = 0

    def extras(ts: int, p: float, amount: float, in_order: bool) -> None:
        """The optional groups: O(log n) sorted window, O(1) flow, O(1) realised vol."""
        nonlocal rn, ri, rs
        if Q and in_order and n:  # before `last_p` moves on: the return is p / last_p
            r = log(p / last_p)  # both positive: invalid ticks never get here
            r2 = r * r
            if rn < Q:
                rr[rn] = r2
                rn += 1
                rs += r2
            else:
                rs += r2 - rr[ri]
                rr[ri] = r2
                ri += 1
                if ri == Q:
                    ri = 0
                    rs = fsum(rr)
        if stats is not None:
            stats.insert(ts, p)
        if flow is not None:
            flow.insert(ts, p, amount)

    def late(tick: Tick) -> bool:
        nonlocal late_dropped, duplicates, late_placed, invalid, bh, bl
        ts = tick.timestamp_ms
        if ts < last_ts - tol:
            late_dropped += 1
            return False
        if not is_valid(tick):
            invalid += 1
            return False
        if dedup and is_duplicate(tick):
            duplicates += 1
            return False
        p = tick.price
        if dedup:
            remember_late(tick)
        place_late(ts, p)
        if ts >= bar_start:  # its bar is still open: it shaped the high and low
            if p > bh:
                bh = p
            elif p < bl:
                bl = p
        if has_extras:
            extras(ts, p, tick.amount, False)
        late_placed += 1
        return True

    def update(tick: Tick) -> bool:
        """Apply one tick; False when the policy dropped it. O(1) in-order (+ O(log n) extras)."""
        nonlocal n, last_ts, last_p, duplicates, invalid, bh, bl
        nonlocal s, ss, i, e, ef, es, sig, ag, al, r_i, r_len
        ts = tick.timestamp_ms
        if ts <= last_ts:
            if ts < last_ts:
                return late(tick)
            if dedup and is_duplicate(tick):
                duplicates += 1
                return False
        p = tick.price
        if not 0.0 < p < INF:  # NaN fails too
            invalid += 1
            return False
        if has_extras:
            amount = tick.amount
            if not 0.0 <= amount < INF:
                invalid += 1
                return False
            extras(ts, p, amount, True)
        if ts >= bar_end:
            close_bar(ts, p)
        elif p > bh:
            bh = p
        elif p < bl:
            bl = p
        if n >= warm:
            # Fast path, every indicator in its steady state: O(1), no calls but the rare rebase.
            old = wp[i]
            wp[i] = p
            wt[i] = ts
            # (p-K)^2 - (old-K)^2 == (p - old)(p + old - 2K): two float ops fewer per tick.
            dp = p - old
            s += dp
            ss += dp * (p + old - K2)
            i += 1
            if i == P:
                rebase()
                i = 0
            e = m_e * p + om_e * e
            ef = m_f * p + om_f * ef
            es = m_s * p + om_s * es
            sig = m_g * (ef - es) + om_g * sig
            change = p - last_p
            # Wilder's smoothing as talipp writes it, except that a zero gain or loss decays by
            # one multiplication (the same value to within an ulp).
            if change > 0:
                ag = (ag * R1 + change) / R
                al *= decay
            else:
                ag *= decay
                al = (al * R1 - change) / R
            n += 1
        else:
            warm_up(ts, p)
        last_p = p
        last_ts = ts
        if dedup:  # the ring's oldest slot takes it: O(1), written out (no call per tick)
            j = r_i
            r_ts[j] = ts
            r_p[j] = p
            r_a[j] = tick.amount
            code = sides.get(tick.side)
            r_side[j] = side_code(tick.side) if code is None else code
            r_i = j + 1 if j + 1 < memory else 0
            if r_len < memory:
                r_len += 1
        return True

    # Reading is split in groups so rules that need three values do not pay for quantiles.
    # Key names are built once: an f-string per read costs more than the value it labels.
    k_sma, k_ema, k_ema_f, k_ema_s = f"sma_{P}", f"ema_{E}", f"ema_{F}", f"ema_{S}"
    k_rsi, k_atr = f"rsi_{R}", f"atr_{A}"

    def read_window(out: dict[str, float]) -> None:
        if wn == P:
            std = sqrt(variance())
            mean = K + s / P
            out[k_sma] = out["bb_mid"] = mean
            out["bb_upper"] = mean + bb_k * std
            out["bb_lower"] = mean - bb_k * std
            newest = wp[(i - 1) % P]
            out["zscore"] = (newest - mean) / std if std > 0.0 else 0.0
        else:
            out[k_sma] = out["bb_mid"] = out["bb_upper"] = out["bb_lower"] = out["zscore"] = NAN

    def read_trend(out: dict[str, float]) -> None:
        out["price"] = last_p
        out[k_ema_f] = ef if n >= F else NAN
        out[k_ema_s] = es if n >= S else NAN
        out[k_ema] = e if n >= E else NAN
        if n >= S:
            macd = ef - es
            out["macd"] = macd
            ready = n - S + 1 >= G
            out["macd_signal"] = sig if ready else NAN
            out["macd_hist"] = macd - sig if ready else NAN
        else:
            out["macd"] = out["macd_signal"] = out["macd_hist"] = NAN
        if n >= R + 1:
            out[k_rsi] = 100.0 if al == 0 else 100.0 - (100.0 / (1.0 + ag / al))
        else:
            out[k_rsi] = NAN
        out[k_atr] = atr
        if Q:
            out["rvol"] = sqrt(rs) if rn == Q and rs > 0.0 else (0.0 if rn == Q else NAN)

    def read_stats(out: dict[str, float]) -> None:
        if stats is not None:
            out["median"] = stats.median()
            out["donchian_high"] = stats.max()
            out["donchian_low"] = stats.min()
            for key, q in quantiles:
                out[key] = stats.quantile(q)

    def read_flow(out: dict[str, float]) -> None:
        if flow is not None:
            out["vwap"] = flow.vwap
            ratio = flow.volume_ratio
            out["volume_ratio"] = ratio
            out["volume_spike"] = NAN if ratio != ratio else (1.0 if ratio >= spike_ratio else 0.0)

    groups = (read_trend, read_window, read_stats, read_flow)

    def read() -> dict[str, float]:
        """Every value, NaN before warm-up. O(log n) (quantile reads)."""
        out: dict[str, float] = {}
        for group in groups:
            group(out)
        return out

    def reader(keys: Iterable[str]) -> Callable[[], dict[str, float]]:
        """A `read` that computes only the groups holding `keys` (what the rules use)."""
        probe: dict[str, float] = {}
        wanted = set(keys)
        needed = []
        for group in groups:
            probe.clear()
            group(probe)
            if wanted & probe.keys():
                needed.append(group)

        def read_some() -> dict[str, float]:
            out: dict[str, float] = {}
            for group in needed:
                group(out)
            return out

        return read_some

    def counters() -> TickCounters:
        return TickCounters(n + late_placed, late_placed, late_dropped, duplicates, invalid)

    return _Parts(update, read, reader, counters, stats)
