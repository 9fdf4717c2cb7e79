"""The synthetic market: every candle and trade of every symbol as a pure function of (seed, symbol, time).

Nothing is stored and nothing is replayed from an origin: any range from `ORIGIN_MS` (2024-01-01) on is
computed at once, vectorised with numpy, and is the same in every process (the app, the backend's paper
broker, its alert watcher), so they agree on every price without talking. It never loops.

How a price is made (randomness is counter-based: Philox's raw words keyed by (seed, name, day) or
(seed, symbol, minute), so a day or a minute is drawn without drawing what came before it; uniforms, normals
and Student-t are made here from those words, see `raw_bits`):
- **Days.** One cheap cumulative process per symbol from the origin to 2053 (10,950 days, ~10 ms, cached):
  a multi-scale log-volatility (AR(1) components with half-lives of 4, 25 and 150 days, mostly shared by the whole market),
  Student-t daily returns loaded on a market factor with the symbol's beta (ETH, SOL, … correlate with BTC),
  weekly seasonality (quieter weekends), rare jumps (market-wide and the symbol's own), and a log price that
  reverts slowly (half-life 180 days) to the symbol's level in `simulate.SYMBOLS`: realistic levels forever.
- **Minutes.** Each day's 1,440 minutes are drawn from that day's key alone: intraday log-volatility (half-life
  45 min), a daily seasonality (busiest around 15:00 UTC), Student-t innovations, the day's jump at its
  minute; then bridged (in variance time) to the next day's anchor, so days join without a seam. High and low
  come from the exact law of a Brownian bridge's extremes; volume rises with the minute's volatility and the
  size of its move. Prices sit on the market's tick, volumes on its lot.
- **Trades.** A minute's trades are drawn from the minute's own key, constrained to its candle: the first at
  the open, the last at the close, one at the high and one at the low, every price inside [low, high] on the
  tick, amounts in whole lots summing exactly to the candle's volume. Candles and trades therefore agree.

Arrays of candles are `float64` of shape (n, 6): timestamp ms (exact in float64), open, high, low, close,
volume — ccxt's OHLCV row order. Higher timeframes aggregate the 1-minute candles (bars open at multiples of
the timeframe since the epoch, UTC).
"""

from __future__ import annotations

import copy
import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np

from services.market.markets import decimals, spot_market
from services.market.simulate import SYMBOLS, SimulatedSymbol
from services.market.types import TIMEFRAME_MS, MarketDataError, Tick, UnknownSymbol

ORIGIN_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: the synthetic market's first minute
DAY_MS = 86_400_000
MINUTE_MS = 60_000
MINUTES_PER_DAY = 1440
HORIZON_DAYS = 365 * 30  # days from the origin the cached day-level process covers (to 2053)
TRADE_IDS_PER_MINUTE = 10_000  # trade id = minute index since the epoch × this + position in the minute
MAX_TRADES_PER_MINUTE = 2_000
DEFAULT_SEED = 7

_T_DF = 6.0  # Student-t degrees of freedom of the innovations (fat tails; variance df / (df - 2))
_T_SCALE = math.sqrt((_T_DF - 2) / _T_DF)
_DAY_VOL = ((4.0, 0.22), (25.0, 0.22), (150.0, 0.18))  # market log-vol components: (half-life days, sd)
_IDIO_DAY_VOL = (10.0, 0.15)
_MINUTE_VOL = (45.0, 0.35)  # market intraday log-vol: (half-life minutes, sd)
_IDIO_MINUTE_VOL = (20.0, 0.20)
_LEVEL_HALF_LIFE_DAYS = 180.0
_WEEKDAY_VOL = np.array([1.08, 1.06, 1.06, 1.06, 1.08, 0.82, 0.78])  # Monday first; mean ≈ 1
_MARKET_JUMP_P, _IDIO_JUMP_P = 1 / 20, 1 / 40  # per day
_JUMP_SCALE = 0.6  # jump size in units of the symbol's typical daily sigma (a 1.8–3.5 % move for BTC)
_VOLUME_VOL_ELASTICITY = 0.9
_MIN_LOTS = 4  # a minute trades at least open, high, low, close

OHLCV = np.ndarray  # (n, 6) float64: timestamp_ms, open, high, low, close, volume


def stream_key(seed: int, *parts: object) -> int:
    text = ":".join(["skeet-synthetic/1", str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


_MASK = 0xFFFF_FFFF_FFFF_FFFF
_U53 = 2.0**-53
_SQRT12 = math.sqrt(12.0)


def raw_bits(key: int, counter: int, n: int) -> np.ndarray:
    """`n` raw 64-bit words of Philox4x64-10 keyed by (key, counter).

    Only the bit generator's raw stream is used, never numpy's distribution methods: NEP 19 keeps bit
    generator streams stable across numpy versions but not `Generator` methods, and a phone (Flet's numpy
    2.1 wheel) must compute the same market as a server on a newer numpy.
    """
    return np.random.Philox(key=[key & _MASK, counter & _MASK]).random_raw(n)


def to_uniform(raw: np.ndarray) -> np.ndarray:
    """Uniforms in the open interval (0, 1) from raw words (53 bits each)."""
    return ((raw >> np.uint64(11)).astype(np.float64) + 0.5) * _U53


def to_uniform32(raw: np.ndarray) -> np.ndarray:
    """Two uniforms in (0, 1) from each raw word (32 bits each: plenty for volatility, volume, extremes)."""
    halves = np.concatenate([raw & np.uint64(0xFFFF_FFFF), raw >> np.uint64(32)], axis=-1)
    return (halves.astype(np.float64) + 0.5) * 2.0**-32


def to_normal(u: np.ndarray) -> np.ndarray:
    """Standard normals from an even number of uniforms along the last axis (Box–Muller, both halves)."""
    a, b = u[..., 0::2], u[..., 1::2]
    r = np.sqrt(-2.0 * np.log(a))
    return np.concatenate([r * np.cos(2 * np.pi * b), r * np.sin(2 * np.pi * b)], axis=-1)


def to_student_t(z: np.ndarray, u3: np.ndarray) -> np.ndarray:
    """Student-t with 6 degrees of freedom, scaled to unit variance: z / sqrt(χ²₆ / 6), χ²₆ = -2 ln(u1 u2 u3)."""
    chi2 = -2.0 * np.log(u3[..., 0::3] * u3[..., 1::3] * u3[..., 2::3])
    return z / np.sqrt(chi2 / _T_DF) * _T_SCALE


class Draws:
    """Sequential draws from the raw stream of one (key, counter): uniforms, normals, t, in a fixed order."""

    def __init__(self, key: int, counter: int) -> None:
        self._bits = np.random.Philox(key=[key & _MASK, counter & _MASK])

    def uniform(self, n: int) -> np.ndarray:
        return to_uniform(self._bits.random_raw(n))

    def normal(self, n: int) -> np.ndarray:
        return to_normal(self.uniform(2 * -(-n // 2)))[:n]

    def student_t(self, n: int) -> np.ndarray:
        return to_student_t(self.normal(n), self.uniform(3 * n))


def _ar1(innov: np.ndarray, half_life: float, sd: float) -> np.ndarray:
    """Stationary AR(1) along the last axis (started from its stationary law), vectorised by blocks.

    x_t = φ^t (x_0 + Σ φ^-j c e_j): a cumulative sum per block, the block short enough that φ^-j stays finite.
    """
    phi = 0.5 ** (1.0 / half_life)
    c = sd * math.sqrt(1.0 - phi * phi)
    n = innov.shape[-1]
    block = max(1, min(n, int(600.0 / -math.log(phi))))
    out = np.empty_like(innov)
    x0 = sd * innov[..., 0]
    out[..., 0] = x0
    start = 1
    prev = x0
    while start < n:
        stop = min(n, start + block)
        j = np.arange(1, stop - start + 1, dtype=np.float64)
        grow = phi ** -j
        acc = np.cumsum(innov[..., start:stop] * (c * grow), axis=-1)
        out[..., start:stop] = (prev[..., None] + acc) / grow
        prev = out[..., stop - 1]
        start = stop
    return out


def _spec(symbol: str) -> SimulatedSymbol:
    for spec in SYMBOLS:
        if spec.symbol == symbol:
            return spec
    raise UnknownSymbol(
        f"{symbol} is not in the simulated market; available: {', '.join(s.symbol for s in SYMBOLS)}."
    )


@cache
def _market(symbol: str) -> dict[str, Any]:
    s = _spec(symbol)
    return spot_market(s.symbol, price_tick=s.price_tick, amount_step=s.amount_step,
                       min_amount=s.amount_step, max_amount=s.max_amount)


def _round_tick(values: np.ndarray, step: float) -> np.ndarray:
    return np.round(np.round(values / step) * step, decimals(step))


@dataclass(frozen=True, slots=True)
class _Days:
    """A symbol's day-level process from the origin: anchors, daily sigma and the day's jump."""

    log_anchor: np.ndarray  # (H + 1,) log price at each day's 00:00 UTC
    sigma: np.ndarray  # (H,) the day's diffusive sigma (log units)
    jump_minute: np.ndarray  # (H,) minute of the day's jump (market or own), -1 when none
    jump: np.ndarray  # (H,) the day's total jump (log units)


@lru_cache(maxsize=8)
def _market_days(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The market factor per day: log-vol, t return innovation, jump minute (-1: none), jump size (unit)."""
    g = Draws(stream_key(seed, "market", "days"), 0)
    lv = sum((_ar1(g.normal(HORIZON_DAYS), hl, sd) for hl, sd in _DAY_VOL), np.zeros(HORIZON_DAYS))
    z = g.student_t(HORIZON_DAYS)
    minute, size = _jumps(g, _MARKET_JUMP_P)
    return lv, z, minute, size


def _jumps(g: Draws, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Per day: the minute of a jump (-1: none, probability 1 - p) and its size, ±0.8–1.6 (unit)."""
    has = g.uniform(HORIZON_DAYS) < p
    minute = np.floor(g.uniform(HORIZON_DAYS) * MINUTES_PER_DAY).astype(np.int64)
    u = g.uniform(HORIZON_DAYS)
    size = np.where(u < 0.5, -1.0, 1.0) * (0.8 + 0.8 * g.uniform(HORIZON_DAYS))
    return np.where(has, minute, -1), np.where(has, size, 0.0)


@lru_cache(maxsize=64)
def _symbol_days(seed: int, symbol: str) -> _Days:
    spec = _spec(symbol)
    m_lv, m_z, m_minute, m_jump = _market_days(seed)
    g = Draws(stream_key(seed, symbol, "days"), 0)
    hl, sd = _IDIO_DAY_VOL
    lv = m_lv + _ar1(g.normal(HORIZON_DAYS), hl, sd)
    var_lv = sum(s * s for _, s in _DAY_VOL) + sd * sd
    base = spec.annual_vol / math.sqrt(365.0)
    weekday = (ORIGIN_MS // DAY_MS + np.arange(HORIZON_DAYS) + 3) % 7  # 1970-01-01 was a Thursday
    sigma = base * np.exp(lv - var_lv) * _WEEKDAY_VOL[weekday]  # E[exp(2 lv)] = exp(2 var): E[σ²] ≈ base²
    idio = math.sqrt(max(0.0, 1.0 - spec.beta**2))
    z = spec.beta * m_z + idio * g.student_t(HORIZON_DAYS)
    own_minute, own_size = _jumps(g, _IDIO_JUMP_P)
    # One jump a day at most: the market's (scaled by beta) wins over the symbol's own.
    jump_minute = np.where(m_minute >= 0, m_minute, own_minute)
    jump = np.where(m_minute >= 0, spec.beta * m_jump, own_size) * _JUMP_SCALE * base
    returns = sigma * z + jump
    phi = 0.5 ** (1.0 / _LEVEL_HALF_LIFE_DAYS)
    # The level's deviation from log(price): x_{d+1} = φ x_d + r_d, started at a stationary draw.
    x0 = float(g.normal(1)[0]) * 0.5 * base / math.sqrt(1 - phi * phi)
    dev = np.empty(HORIZON_DAYS + 1)
    dev[0] = x0
    for start in range(0, HORIZON_DAYS, 2000):  # blocks keep φ^-j finite
        stop = min(HORIZON_DAYS, start + 2000)
        dev[start + 1:stop + 1] = _ar_level(dev[start], returns[start:stop], phi)
    return _Days(math.log(spec.price) + dev, sigma, jump_minute, jump)


def _ar_level(x0: float, r: np.ndarray, phi: float) -> np.ndarray:
    """x_k = φ x_{k-1} + r_k for k = 1..n from x_0, in closed form: φ^k (x_0 + Σ_{j≤k} φ^-j r_j)."""
    j = np.arange(1, len(r) + 1, dtype=np.float64)
    grow = phi ** -j
    return (x0 + np.cumsum(r * grow)) / grow


def _minute_vol_season() -> np.ndarray:
    """Relative volatility by minute of the day: busiest near 15:00 UTC (US open), calmest near 03:00."""
    m = np.arange(MINUTES_PER_DAY) / MINUTES_PER_DAY
    return 1.0 + 0.30 * np.cos(2 * np.pi * (m - 15 / 24)) + 0.10 * np.cos(4 * np.pi * (m - 15 / 24))


_SEASON = _minute_vol_season()


class SyntheticMarket:
    """The synthetic market of one seed: candles of any range and timeframe, and each minute's trades.

    Results depend only on (seed, symbol, time); the object only caches recent days and minutes.
    """

    def __init__(self, seed: int = DEFAULT_SEED, *, cache_days: int = 32) -> None:
        self.seed = int(seed)
        self._km = stream_key(self.seed, "market", "minutes")
        self._ks = {s.symbol: stream_key(self.seed, s.symbol, "minutes") for s in SYMBOLS}
        self._kt = {s.symbol: stream_key(self.seed, s.symbol, "trades") for s in SYMBOLS}
        self._days: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cache_days = cache_days
        self._trades: OrderedDict[tuple[str, int], tuple[np.ndarray, ...]] = OrderedDict()
        self._lock = threading.Lock()  # the caches only: a feed may compute in a worker thread

    # -- reference data ----------------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(s.symbol for s in SYMBOLS)

    def check(self, symbol: str) -> None:
        """`UnknownSymbol` (naming the ones there are) unless the market lists `symbol`."""
        _spec(symbol)

    def steps(self, symbol: str) -> tuple[float, float]:
        """(price tick, amount step) of `symbol`."""
        spec = _spec(symbol)
        return spec.price_tick, spec.amount_step

    def market(self, symbol: str) -> dict[str, Any]:
        """The ccxt market structure (tick and lot sizes as in `simulate.SYMBOLS`); a fresh copy each call."""
        return copy.deepcopy(_market(symbol))

    # -- candles -------------------------------------------------------------------------------------
    def candles(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> OHLCV:
        """Bars opening in [since_ms, until_ms) (since rounded up to a bar boundary), oldest first.

        Only whole bars: a bar is computed from all of its minutes, also when it ends after `until_ms`
        (a caller wanting the forming bar at "now" aggregates trades itself, as `SyntheticFeed` does).
        """
        frame = timeframe_ms(timeframe)
        _spec(symbol)
        first = max(-(-int(since_ms) // frame) * frame, -(-ORIGIN_MS // frame) * frame)
        if until_ms <= first:
            return np.empty((0, 6))
        bars = -(-(int(until_ms) - first) // frame)
        per = frame // MINUTE_MS
        minutes = self.minute_candles(symbol, first // MINUTE_MS, first // MINUTE_MS + bars * per)
        if per == 1:
            return minutes
        return aggregate(minutes, per)

    def minute_candles(self, symbol: str, first_minute: int, end_minute: int) -> OHLCV:
        """1-minute bars of minutes [first_minute, end_minute) (minute index = epoch ms // 60,000)."""
        origin_minute = ORIGIN_MS // MINUTE_MS
        if first_minute < origin_minute:
            raise MarketDataError("The simulated market starts on 2024-01-01 (UTC): ask for a later range.")
        d0 = (first_minute - origin_minute) // MINUTES_PER_DAY
        d1 = -(-(end_minute - origin_minute) // MINUTES_PER_DAY)
        if d1 > HORIZON_DAYS:
            raise MarketDataError("The simulated market ends in 2053: ask for an earlier range.")
        if d1 - d0 <= 2:
            block = np.concatenate([self._day(symbol, d) for d in range(d0, d1)])
        else:
            block = self._compute_days(symbol, d0, d1).reshape(-1, 6)
        lo = first_minute - origin_minute - d0 * MINUTES_PER_DAY
        return block[lo:lo + (end_minute - first_minute)]

    def _day(self, symbol: str, day: int) -> np.ndarray:
        key = (symbol, day)
        with self._lock:
            cached = self._days.get(key)
            if cached is not None:
                self._days.move_to_end(key)
                return cached
        cached = self._compute_days(symbol, day, day + 1)[0]
        with self._lock:
            self._days[key] = cached
            while len(self._days) > self._cache_days:
                self._days.popitem(last=False)
        return cached

    def _compute_days(self, symbol: str, d0: int, d1: int) -> np.ndarray:
        """(days, 1440, 6) 1-minute bars of days [d0, d1) since the origin: the vectorised heart."""
        spec = _spec(symbol)
        days = _symbol_days(self.seed, symbol)
        n = d1 - d0
        m = MINUTES_PER_DAY
        # Uniforms per minute (two per raw word): the market's t numerator (a normal), its χ² (3) and its
        # log-vol innovation; the symbol's the same five, its volume noise, and the high's and the low's.
        m_raw = np.empty((n, 5 * m // 2), dtype=np.uint64)
        s_raw = np.empty((n, 4 * m), dtype=np.uint64)
        ks = self._ks[symbol]
        for i, d in enumerate(range(d0, d1)):  # one counter per day and key: random access by day
            m_raw[i] = raw_bits(self._km, d, 5 * m // 2)
            s_raw[i] = raw_bits(ks, d, 4 * m)
        m_u, s_u = to_uniform32(m_raw), to_uniform32(s_raw)
        m_t = to_student_t(to_normal(m_u[:, :m]), m_u[:, m:4 * m])
        s_t = to_student_t(to_normal(s_u[:, :m]), s_u[:, m:4 * m])
        # Log-vol innovations need no normal: uniform ones of unit variance, smoothed by the AR(1).
        lv = (_ar1((m_u[:, 4 * m:] - 0.5) * _SQRT12, *_MINUTE_VOL)
              + _ar1((s_u[:, 4 * m:5 * m] - 0.5) * _SQRT12, *_IDIO_MINUTE_VOL))
        volume_noise = (s_u[:, 5 * m:6 * m] - 0.5) * _SQRT12
        s_unif = s_u[:, 6 * m:].reshape(n, 2, m)
        shape = _SEASON * np.exp(lv)
        var = shape * shape
        total = var.sum(axis=1, keepdims=True)
        sigma_d = days.sigma[d0:d1, None]
        var_min = var * (sigma_d * sigma_d / total)  # each minute's variance; they sum to the day's
        sd_min = np.sqrt(var_min)
        idio = math.sqrt(max(0.0, 1.0 - spec.beta**2))
        z = spec.beta * m_t + idio * s_t
        path = np.cumsum(sd_min * z, axis=1)
        target = (days.log_anchor[d0 + 1:d1 + 1] - days.log_anchor[d0:d1] - days.jump[d0:d1])[:, None]
        weight = np.cumsum(var_min, axis=1) / (sigma_d * sigma_d)
        path += (target - path[:, -1:]) * weight  # bridge (in variance time) to the next day's anchor
        jm = days.jump_minute[d0:d1]
        has = jm >= 0
        if has.any():
            after = np.arange(MINUTES_PER_DAY)[None, :] >= jm[:, None]
            path += np.where(after & has[:, None], days.jump[d0:d1, None], 0.0)
        log_close = days.log_anchor[d0:d1, None] + path
        log_open = np.concatenate([days.log_anchor[d0:d1, None], log_close[:, :-1]], axis=1)
        step = log_close - log_open
        # Extremes of a Brownian bridge from 0 to b with variance v: P(max ≥ m) = exp(-2 m (m - b) / v).
        root_up = np.sqrt(step * step - 2 * var_min * np.log(s_unif[:, 0]))
        root_dn = np.sqrt(step * step - 2 * var_min * np.log(s_unif[:, 1]))
        log_high = log_open + (step + root_up) / 2
        log_low = log_open - (-step + root_dn) / 2
        tick = spec.price_tick
        close = _round_tick(np.exp(log_close), tick)
        close = np.maximum(close, tick)
        first_open = np.maximum(_round_tick(np.exp(days.log_anchor[d0:d1]), tick), tick)
        open_ = np.concatenate([first_open[:, None], close[:, :-1]], axis=1)
        high = np.maximum(_round_tick(np.exp(log_high), tick), np.maximum(open_, close))
        low = np.maximum(np.minimum(_round_tick(np.exp(log_low), tick), np.minimum(open_, close)), tick)
        # Volume: the symbol's typical minute, busier with volatility, the size of the move and the season.
        base_lots = spec.trades_per_s * 60 * spec.median_notional / spec.price / spec.amount_step
        ref_sd = spec.annual_vol / math.sqrt(365.0 * MINUTES_PER_DAY)
        activity = (sd_min / ref_sd) ** _VOLUME_VOL_ELASTICITY * (0.55 + 0.45 * np.abs(z) / _T_SCALE)
        noise = np.exp(0.45 * volume_noise - 0.1)
        lots = np.maximum(np.round(base_lots * activity * noise), _MIN_LOTS)
        volume = np.round(lots * spec.amount_step, decimals(spec.amount_step))
        origin_minute = ORIGIN_MS // MINUTE_MS
        ts = (origin_minute + np.arange(d0 * MINUTES_PER_DAY, d1 * MINUTES_PER_DAY)) * float(MINUTE_MS)
        out = np.empty((n, MINUTES_PER_DAY, 6))
        out[..., 0] = ts.reshape(n, MINUTES_PER_DAY)
        out[..., 1], out[..., 2], out[..., 3], out[..., 4], out[..., 5] = open_, high, low, close, volume
        return out

    # -- trades ---------------------------------------------------------------------------------------
    def minute_trades(self, symbol: str, minute: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(timestamp_ms int64, price, amount, is_buy) of minute `minute`'s trades, agreeing with its candle."""
        key = (symbol, minute)
        with self._lock:
            cached = self._trades.get(key)
            if cached is not None:
                self._trades.move_to_end(key)
                return cached  # type: ignore[return-value]
        spec = _spec(symbol)
        bar = self.minute_candles(symbol, minute, minute + 1)[0]
        o, h, lo, c, v = (float(x) for x in bar[1:])
        step, tick = spec.amount_step, spec.price_tick
        lots = int(round(v / step))
        g = Draws(self._kt[symbol], minute)
        base_lots = spec.trades_per_s * 60 * spec.median_notional / spec.price / step
        lam = spec.trades_per_s * 60 * (lots / base_lots) ** 0.8
        count = lam * math.exp(0.35 * float(g.normal(1)[0]) - 0.06)  # about lam, busier minutes trade more
        n = int(min(lots, MAX_TRADES_PER_MINUTE, max(4, round(count))))
        # Prices: a random walk pinned at open (first), close (last), high and low (two interior trades).
        u_h, u_l = g.uniform(2)
        ih = 1 + int(u_h * (n - 2))
        il = 1 + int(u_l * (n - 3))
        il += il >= ih  # distinct from ih
        fixed_idx = np.array(sorted({0: o, n - 1: c, ih: h, il: lo}.items()))
        walk = np.cumsum(g.normal(n))
        walk -= np.interp(np.arange(n), fixed_idx[:, 0], walk[fixed_idx[:, 0].astype(int)])
        span = h - lo
        raw = np.interp(np.arange(n), fixed_idx[:, 0], fixed_idx[:, 1]) + walk * span / (2 * math.sqrt(n))
        price = _round_tick(np.clip(raw, lo, h), tick)
        price[0], price[-1], price[ih], price[il] = o, c, h, lo
        # Amounts: whole lots, each at least one, summing exactly to the candle's volume.
        weights = np.exp(g.normal(n))
        share = (lots - n) * weights / weights.sum()
        parts = np.floor(share)
        short = int(lots - n - parts.sum())
        if short:
            parts[np.argsort(parts - share)[:short]] += 1
        amount = np.round((parts + 1) * step, decimals(step))
        offsets = np.sort(np.floor(g.uniform(n) * (MINUTE_MS - n + 1)).astype(np.int64)) + np.arange(n)
        ts = minute * MINUTE_MS + offsets.astype(np.int64)
        moves = np.diff(price, prepend=o)
        coin = g.uniform(n) < 0.5
        is_buy = np.where(moves > 0, True, np.where(moves < 0, False, coin))
        result = (ts, price, amount, is_buy)
        with self._lock:
            self._trades[key] = result
            while len(self._trades) > 256:
                self._trades.popitem(last=False)
        return result

    def numbered_trades(self, symbol: str, since_ms: int, until_ms: int) -> list[tuple[int, Tick]]:
        """(trade id, trade) with since_ms <= timestamp < until_ms, oldest first; ids rise with time."""
        out: list[tuple[int, Tick]] = []
        since_ms = max(int(since_ms), ORIGIN_MS)
        for minute in range(since_ms // MINUTE_MS, -(-int(until_ms) // MINUTE_MS)):
            ts, price, amount, is_buy = self.minute_trades(symbol, minute)
            lo, hi = np.searchsorted(ts, since_ms), np.searchsorted(ts, until_ms)
            base = minute * TRADE_IDS_PER_MINUTE
            out.extend(
                (base + i, Tick(symbol, int(ts[i]), float(price[i]), float(amount[i]), "buy" if is_buy[i] else "sell"))
                for i in range(lo, hi)
            )
        return out


def aggregate(minutes: OHLCV, per: int) -> OHLCV:
    """Bars of `per` consecutive rows each (the input starts on a bar boundary; a short last bar is kept)."""
    n = len(minutes)
    if n == 0:
        return minutes
    starts = np.arange(0, n, per)
    out = np.empty((len(starts), 6))
    out[:, 0] = minutes[starts, 0]
    out[:, 1] = minutes[starts, 1]
    out[:, 2] = np.maximum.reduceat(minutes[:, 2], starts)
    out[:, 3] = np.minimum.reduceat(minutes[:, 3], starts)
    out[:, 4] = minutes[np.minimum(starts + per, n) - 1, 4]
    out[:, 5] = np.add.reduceat(minutes[:, 5], starts)
    return out


def timeframe_ms(timeframe: str) -> int:
    frame = TIMEFRAME_MS.get(timeframe)
    if frame is None:
        raise MarketDataError(f"Timeframe {timeframe!r} is not supported; use one of {', '.join(TIMEFRAME_MS)}.")
    return frame
