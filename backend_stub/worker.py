"""`python -m backend_stub.worker`: the workers of `SKEET_ROLE=api` deployments — matching (owned per
symbol by lease), alert watching and the paper strategy runner (one lease each; `backend_stub/workers`) —
serving only `GET /healthz` on $HOST:$PORT (Cloud Run wants a listener; it says what this worker holds)."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from backend_stub.app import build_broker, build_feed, check_store_configured, open_store
from backend_stub.brokers.paper import PaperBroker
from backend_stub.bus.base import Bus, open_bus
from backend_stub.settings import Settings, SettingsError
from backend_stub.workers import AlertWorker, MatchingWorker, StrategyWorker
from services.market.types import MarketFeed

log = logging.getLogger(__name__)


def create_worker_app(settings: Settings, *, feed: MarketFeed | None = None, bus: Bus | None = None) -> FastAPI:
    """The worker process as an app: its lifespan runs the workers, `/healthz` reports them. A feed or
    bus passed in belongs to the caller (tests: one in-process bus shared with an API app)."""
    check_store_configured(settings)
    worker_id = settings.worker_id or f"worker-{secrets.token_hex(4)}"
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = await stack.enter_async_context(open_store(settings))
            the_feed = feed
            if the_feed is None:
                the_feed = build_feed(settings)
                stack.push_async_callback(the_feed.aclose)
            the_bus = bus
            if the_bus is None:
                the_bus = await stack.enter_async_context(
                    open_bus(settings.bus, project=settings.gcp_project, topic=settings.pubsub_topic)
                )
            broker = PaperBroker(
                store=store, feed=the_feed, starting_balance=settings.starting_balance,
                quote_currency=settings.quote_currency, taker_fee=settings.taker_fee,
                maker_fee=settings.maker_fee, slippage=settings.slippage,
                max_open_orders=settings.max_open_orders, role="worker",
            )  # fmt: skip
            matching = MatchingWorker(
                broker=broker, store=store, feed=the_feed, bus=the_bus, worker_id=worker_id,
                lease_ttl_s=settings.lease_ttl_s, reconcile_s=settings.reconcile_s,
            )  # fmt: skip
            alerts = AlertWorker(
                store=store, feed=the_feed, worker_id=worker_id, bus=the_bus,
                lease_ttl_s=settings.lease_ttl_s, reconcile_s=settings.reconcile_s,
            )  # fmt: skip
            await matching.start()
            stack.push_async_callback(matching.aclose)
            await alerts.start()
            stack.push_async_callback(alerts.aclose)
            state.update(matching=matching, alerts=alerts, strategies=None)
            if settings.broker == "paper":  # a strategy never trades real money from the backend
                # Its orders take the API's path (an api-role broker): resting ones are announced to matching.
                order_broker = build_broker(dataclasses.replace(settings, role="api"), store=store, feed=the_feed,
                                            publish=the_bus.publish)
                stack.push_async_callback(order_broker.aclose)
                await order_broker.start()
                strategies = StrategyWorker(
                    store=store, feed=the_feed, broker=order_broker, bus=the_bus, worker_id=worker_id,
                    lease_ttl_s=settings.lease_ttl_s, reconcile_s=settings.reconcile_s,
                    fee=settings.taker_fee, slippage=settings.slippage,
                )  # fmt: skip
                await strategies.start()
                stack.push_async_callback(strategies.aclose)
                state["strategies"] = strategies
            log.info("worker %s ready: state=%s bus=%s feed=%s", worker_id, settings.state, the_bus.mode,
                     the_feed.mode)
            yield

    app = FastAPI(title="Skeet worker", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        matching: MatchingWorker = state["matching"]
        alerts: AlertWorker = state["alerts"]
        strategies: StrategyWorker | None = state["strategies"]
        return {"status": "ok", "worker": worker_id, "symbols": matching.symbols, "alerts": alerts.book is not None,
                "strategies": strategies is not None and strategies.holds}

    return app


def main() -> int:
    from backend_stub.server import log_lines, run

    log_lines()
    try:
        settings = dataclasses.replace(Settings.from_env(), role="worker")
        app = create_worker_app(settings)
    except SettingsError as exc:
        print(f"backend_stub.worker: {exc}", file=sys.stderr)
        return 2
    run(app, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
