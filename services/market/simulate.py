"""A seeded simulated spot market written in the replay format: the offline default of the app.

Not real data, and labelled so (`"source": "simulated"`). Each symbol's mid price is a Brownian bridge in log
space (it ends where it starts, so a looped replay has no seam) with a market-wide volatility regime (calm,
normal, volatile), a shared market factor, per-symbol volume bursts, taker side and bid/ask bounce.

    python -m services.market.simulate --seed 7 --minutes 60 --out assets/replay/simulated-7.jsonl.gz
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.market.markets import round_to_step, spot_market
from services.market.recording import RecordingMeta, write_recording

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: simulated time has its own fixed origin
_SECONDS_PER_YEAR = 365 * 86_400
# Market-wide regimes: volatility multiplier, and per-minute probability of leaving the regime.
_REGIMES = (("calm", 0.55, 0.08), ("normal", 1.0, 0.10), ("volatile", 2.3, 0.25))


@dataclass(frozen=True, slots=True)
class SimulatedSymbol:
    symbol: str
    price: float  # start (and end) price
    annual_vol: float
    beta: float  # loading on the market factor
    trades_per_s: float
    median_notional: float  # quote currency per trade
    price_tick: float
    amount_step: float
    max_amount: float


SYMBOLS: tuple[SimulatedSymbol, ...] = (
    SimulatedSymbol("BTC/USDT", 97_250.0, 0.70, 1.00, 2.6, 900.0, 0.01, 0.00001, 9_000.0),
    SimulatedSymbol("ETH/USDT", 3_420.0, 0.85, 0.90, 2.3, 600.0, 0.01, 0.0001, 9_000.0),
    SimulatedSymbol("SOL/USDT", 238.5, 1.10, 0.85, 2.0, 400.0, 0.01, 0.001, 9_000.0),
    SimulatedSymbol("BNB/USDT", 655.0, 0.70, 0.75, 1.4, 350.0, 0.01, 0.001, 9_000.0),
    SimulatedSymbol("XRP/USDT", 1.452, 1.10, 0.70, 1.8, 300.0, 0.0001, 0.1, 9_000_000.0),
    SimulatedSymbol("ADA/USDT", 1.048, 1.10, 0.70, 1.2, 200.0, 0.0001, 0.1, 900_000.0),
    SimulatedSymbol("DOGE/USDT", 0.40125, 1.30, 0.75, 1.6, 250.0, 0.00001, 1.0, 9_000_000.0),
    SimulatedSymbol("AVAX/USDT", 42.35, 1.20, 0.80, 1.1, 200.0, 0.01, 0.01, 90_000.0),
)


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _regime_path(rng: random.Random, seconds: int) -> list[float]:
    """Volatility multiplier per second from a per-minute Markov chain over `_REGIMES`."""
    out: list[float] = []
    state = 1
    for _ in range(0, seconds, 60):
        _, mult, leave = _REGIMES[state]
        out.extend([mult] * 60)
        if rng.random() < leave:
            state = rng.choice([i for i in range(len(_REGIMES)) if i != state])
    return out[:seconds]


def _bursts(rng: random.Random, seconds: int) -> list[float]:
    """Activity multiplier per second: about one burst every 8 minutes, 20–90 s long, 2–3.5× the rate."""
    out = [1.0] * seconds
    t = rng.expovariate(1 / 480)
    while t < seconds:
        length, mult = rng.randint(20, 90), rng.uniform(2.0, 3.5)
        for s in range(int(t), min(seconds, int(t) + length)):
            out[s] = mult
        t += length + rng.expovariate(1 / 480)
    return out


def simulate(
    seed: int, minutes: int, *, start_ms: int = START_MS
) -> tuple[RecordingMeta, list[dict[str, Any]]]:
    """The meta line and the time-ordered trades of a simulated market; the same seed gives the same market."""
    if minutes < 1:
        raise ValueError("minutes must be at least 1")
    rng = random.Random(seed)
    seconds = minutes * 60
    regime = _regime_path(rng, seconds)
    market_z = [rng.gauss(0.0, 1.0) for _ in range(seconds)]
    trades: list[dict[str, Any]] = []
    for k, spec in enumerate(SYMBOLS):
        sym_rng = random.Random(f"{seed}:{spec.symbol}")
        burst = _bursts(sym_rng, seconds)
        sigma_s = spec.annual_vol / math.sqrt(_SECONDS_PER_YEAR)
        idio = math.sqrt(1.0 - spec.beta**2)
        walk = [0.0]
        vols = []
        for s in range(seconds):
            vol = sigma_s * regime[s] * math.sqrt(burst[s])
            vols.append(vol)
            walk.append(walk[-1] + vol * (spec.beta * market_z[s] + idio * sym_rng.gauss(0.0, 1.0)))
        end = walk[-1]
        # Brownian bridge: remove the straight line to the end point, so the path closes on its start.
        log_mid = [math.log(spec.price) + w - end * s / seconds for s, w in enumerate(walk)]
        trade_id = 1_000_000_000 * (k + 1)
        half_spread = max(spec.price_tick / 2, spec.price * 0.00002)
        for s in range(seconds):
            count = _poisson(sym_rng, spec.trades_per_s * burst[s])
            for ms in sorted(sym_rng.randrange(1000) for _ in range(count)):
                frac = ms / 1000
                # Interpolate the bridge inside the second, with a little noise that vanishes at its ends.
                log_p = log_mid[s] * (1 - frac) + log_mid[s + 1] * frac
                log_p += vols[s] * math.sqrt(frac * (1 - frac)) * sym_rng.gauss(0.0, 1.0)
                side = "buy" if sym_rng.random() < 0.5 else "sell"
                mid = math.exp(log_p)
                price = round_to_step(mid + (half_spread if side == "buy" else -half_spread), spec.price_tick)
                notional = spec.median_notional * burst[s] * math.exp(1.2 * sym_rng.gauss(0.0, 1.0))
                amount = max(spec.amount_step, round_to_step(notional / price, spec.amount_step))
                trades.append(
                    {
                        "symbol": spec.symbol,
                        "timestamp": start_ms + s * 1000 + ms,
                        "price": price,
                        "amount": amount,
                        "side": side,
                        "id": str(trade_id),
                    }
                )
                trade_id += 1
    order = {spec.symbol: k for k, spec in enumerate(SYMBOLS)}
    trades.sort(key=lambda t: (t["timestamp"], order[t["symbol"]]))
    meta = RecordingMeta(
        source="simulated",
        exchange="simulated",
        seed=seed,
        symbols=tuple(s.symbol for s in SYMBOLS),
        markets={
            s.symbol: spot_market(
                s.symbol,
                price_tick=s.price_tick,
                amount_step=s.amount_step,
                min_amount=s.amount_step,
                max_amount=s.max_amount,
            )
            for s in SYMBOLS
        },
        start_ms=start_ms,
        end_ms=start_ms + seconds * 1000,
        extra={"note": "Simulated market (seeded random walk), not real exchange data."},
    )
    return meta, trades


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument(
        "--out", type=Path, default=None, help="default: assets/replay/simulated-SEED.jsonl.gz"
    )
    args = parser.parse_args(argv)
    out = args.out or Path("assets/replay") / f"simulated-{args.seed}.jsonl.gz"
    meta, trades = simulate(args.seed, args.minutes)
    count = write_recording(out, meta, trades)
    print(f"wrote {count} simulated trades of {len(meta.symbols)} symbols over {args.minutes} min to {out}")


if __name__ == "__main__":
    main()
