"""`/v1/insights`: ask for a market insight (stored per user) and list your own.

Mounted by `backend_stub.app`; the caller's uid, the store and the market feed come from the core's
dependencies (`runtime.current_uid`, `runtime.current_backend`). The desk (which provider answers) is
built from the environment at startup by this router's lifespan, and closed at shutdown.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from backend_stub.errors import ApiError
from backend_stub.insights.config import InsightSettings, build_desk
from backend_stub.insights.desk import InsightDesk
from backend_stub.insights.types import Insight, MarketContext, NotEnoughData, SignalEvent
from backend_stub.models import ErrorOut
from backend_stub.ratelimit import RateLimiter
from backend_stub.runtime import Backend, current_backend, current_uid
from backend_stub.store.base import INSIGHTS, Put
from backend_stub.timefmt import iso
from services.market.types import MarketDataError, UnknownSymbol

CANDLES_PER_INSIGHT = 120
# A remote model costs money per call: a trader gets a burst of 10, then one insight every 6 s.
INSIGHT_RATE_PER_S = 1 / 6
INSIGHT_BURST = 10


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.insight_limiter = RateLimiter(rate_per_s=INSIGHT_RATE_PER_S, burst=INSIGHT_BURST)
    async with build_desk(InsightSettings.from_env()) as desk:
        app.state.insight_desk = desk
        yield


router = APIRouter(tags=["insights"], lifespan=_lifespan)

ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 404, 422, 429, 503)}


class SignalIn(BaseModel):
    """A signal the client's engine saw fire (its `Signal`: rule name, direction, time); the analyst
    counts it among the recent signals and weighs its direction."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=64, description='rule name, e.g. "sma_cross_up"')
    detail: str = Field(default="", max_length=200, description="what happened, in a few words")
    timestamp: int | None = Field(default=None, ge=0, description="when it fired (ms since the epoch)")
    direction: Literal["buy", "sell"] | None = Field(default=None, description="the side it suggests")


class InsightIn(BaseModel):
    """Body of `POST /v1/insights`."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    symbol: str = Field(min_length=1, max_length=64, description='ccxt symbol, e.g. "BTC/USDT"')
    question: str | None = Field(default=None, max_length=500, description="what the trader wants to know")
    timeframe: Literal["1m", "5m", "15m", "1h", "1d"] = Field(default="1m", description="candle size read")
    signals: list[SignalIn] = Field(
        default_factory=list, max_length=20, description="recent signals, oldest first"
    )


class SignalOut(BaseModel):
    name: str
    detail: str
    timestamp: int | None
    direction: Literal["buy", "sell"] | None = None


class IndicatorsOut(BaseModel):
    """The numbers the insight rests on, computed from the candles whatever the provider."""

    lastClose: float
    changePct: float = Field(description="first → last close of the window, in percent")
    emaFast: float = Field(description="EMA(9) of closes")
    emaSlow: float = Field(description="EMA(21) of closes")
    slopePctPerBar: float = Field(description="least-squares slope of closes, percent of their mean per bar")
    rSquared: float = Field(description="fit of that line, 0..1")
    rsi: float | None = Field(description="Wilder RSI(14)")
    realisedVolPct: float = Field(description="stdev of log returns per bar over the window, percent")
    recentVolPct: float = Field(description="the same over the last 20 bars")
    annualisedVolPct: float
    bars: int


class InsightOut(BaseModel):
    """A stored insight (`users/{uid}/insights/{id}`)."""

    id: str
    symbol: str
    timeframe: str
    question: str | None
    trend: Literal["up", "down", "sideways"]
    volatility: Literal["low", "normal", "high"]
    sentiment: Literal["bullish", "bearish", "neutral"]
    signals: list[SignalOut]
    reasoning: str
    indicators: IndicatorsOut
    provider: Literal["local", "vertex", "openai"] = Field(description="who answered")
    model: str | None = Field(description="the remote model's name, when one answered")
    fallback: str | None = Field(description="why the configured remote provider did not answer")
    timestamp: int
    datetime: str


def insight_document(insight: Insight, *, insight_id: str, timestamp_ms: int) -> dict[str, Any]:
    """The insight as stored and returned (JSON values, ccxt-style camelCase)."""
    a, ind = insight.analysis, insight.analysis.indicators
    return {
        "id": insight_id,
        "symbol": insight.symbol,
        "timeframe": insight.timeframe,
        "question": insight.question,
        "trend": a.trend,
        "volatility": a.volatility,
        "sentiment": a.sentiment,
        "signals": [
            {"name": s.name, "detail": s.detail, "timestamp": s.timestamp_ms, "direction": s.direction}
            for s in a.signals
        ],
        "reasoning": a.reasoning,
        "indicators": {
            "lastClose": ind.last_close,
            "changePct": ind.change_pct,
            "emaFast": ind.ema_fast,
            "emaSlow": ind.ema_slow,
            "slopePctPerBar": ind.slope_pct_per_bar,
            "rSquared": ind.r_squared,
            "rsi": ind.rsi,
            "realisedVolPct": ind.realised_vol_pct,
            "recentVolPct": ind.recent_vol_pct,
            "annualisedVolPct": ind.annualised_vol_pct,
            "bars": ind.bars,
        },
        "provider": insight.provider,
        "model": a.model,
        "fallback": insight.fallback,
        "timestamp": timestamp_ms,
        "datetime": iso(timestamp_ms),
    }


def current_desk(request: Request) -> InsightDesk:
    """The app's desk; built on first use when the app runs without its lifespan (some test clients)."""
    desk = getattr(request.app.state, "insight_desk", None)
    if desk is None:
        desk = request.app.state.insight_desk = build_desk(InsightSettings.from_env())
    return desk


def _rate_limit(request: Request, uid: str) -> None:
    limiter = getattr(request.app.state, "insight_limiter", None)
    if limiter is None:
        limiter = request.app.state.insight_limiter = RateLimiter(
            rate_per_s=INSIGHT_RATE_PER_S, burst=INSIGHT_BURST
        )
    wait_s = limiter.take(uid)
    if wait_s > 0:
        retry_after = max(1, int(wait_s + 0.999))
        raise ApiError(
            429,
            f"Too many insight requests; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


Uid = Annotated[str, Depends(current_uid)]
Runtime = Annotated[Backend, Depends(current_backend)]
Desk = Annotated[InsightDesk, Depends(current_desk)]


@router.post("/v1/insights", status_code=201, responses=ERRORS)
async def ask_insight(
    body: InsightIn, uid: Uid, backend: Runtime, desk: Desk, request: Request
) -> InsightOut:
    """A short read of the market for `symbol`: trend, volatility, recent signals, sentiment and the
    reasoning, from the configured provider (`provider` says which answered; `fallback` why a remote
    one did not). Stored in the caller's `insights`."""
    _rate_limit(request, uid)
    try:
        candles = await backend.feed.candles(body.symbol, body.timeframe, limit=CANDLES_PER_INSIGHT)
    except UnknownSymbol:
        raise ApiError(
            404, f"Unknown symbol {body.symbol}; see GET /v1/markets for what can be read"
        ) from None
    except MarketDataError:
        raise ApiError(503, "Market data is unavailable right now; try again shortly") from None
    context = MarketContext(
        symbol=body.symbol,
        timeframe=body.timeframe,
        candles=tuple(candles),
        signals=tuple(SignalEvent(s.name, s.detail, s.timestamp, s.direction) for s in body.signals),
        question=body.question or None,
    )
    try:
        insight = await desk.ask(context)
    except NotEnoughData as exc:
        raise ApiError(422, f"Not enough market data for {body.symbol} yet: {exc}") from None
    insight_id = uuid.uuid4().hex
    doc = insight_document(insight, insight_id=insight_id, timestamp_ms=int(time.time() * 1000))
    await backend.store.transact(uid, [Put(INSIGHTS, insight_id, doc)])
    return InsightOut.model_validate(doc)


@router.get("/v1/insights", responses=ERRORS)
async def list_insights(
    uid: Uid,
    backend: Runtime,
    symbol: Annotated[str | None, Query(max_length=64, description="only this symbol")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[InsightOut]:
    """The caller's insights, newest first."""
    docs = await backend.store.list(uid, INSIGHTS)
    if symbol:
        docs = [d for d in docs if d.get("symbol") == symbol]
    docs.sort(key=lambda d: (d.get("timestamp", 0), d.get("id", "")), reverse=True)
    return [InsightOut.model_validate(d) for d in docs[:limit]]
