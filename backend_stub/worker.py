"""`python -m backend_stub.worker`: the workers of `SKEET_ROLE=api` deployments — matching and alert
watching, owned per symbol by lease (`backend_stub/workers`) — serving only `GET /healthz` on
$HOST:$PORT (Cloud Run wants a listener; it says which symbols this worker holds)."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from backend_stub.app import build_feed, check_store_configured, open_store
from backend_stub.brokers.paper import PaperBroker
from backend_stub.bus.base import open_bus
from backend_stub.settings import Settings, SettingsError
from backend_stub.workers import AlertWorker, MatchingWorker

log = logging.getLogger(__name__)


def create_worker_app(settings: Settings) -> FastAPI:
    """The worker process as an app: its lifespan runs the workers, `/healthz` reports them."""
    check_store_configured(settings)
    worker_id = settings.worker_id or f"worker-{secrets.token_hex(4)}"
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = await stack.enter_async_context(open_store(settings))
            feed = build_feed(settings)
            stack.push_async_callback(feed.aclose)
            bus = await stack.enter_async_context(
                open_bus(settings.bus, project=settings.gcp_project, topic=settings.pubsub_topic)
            )
            broker = PaperBroker(
                store=store, feed=feed, starting_balance=settings.starting_balance,
                quote_currency=settings.quote_currency, taker_fee=settings.taker_fee,
                maker_fee=settings.maker_fee, slippage=settings.slippage,
                max_open_orders=settings.max_open_orders, role="worker",
            )  # fmt: skip
            matching = MatchingWorker(
                broker=broker, store=store, feed=feed, bus=bus, worker_id=worker_id,
                lease_ttl_s=settings.lease_ttl_s, reconcile_s=settings.reconcile_s,
            )  # fmt: skip
            alerts = AlertWorker(
                store=store, feed=feed, worker_id=worker_id, bus=bus,
                lease_ttl_s=settings.lease_ttl_s, reconcile_s=settings.reconcile_s,
            )  # fmt: skip
            await matching.start()
            stack.push_async_callback(matching.aclose)
            await alerts.start()
            stack.push_async_callback(alerts.aclose)
            state.update(matching=matching, alerts=alerts)
            log.info("worker %s ready: state=%s bus=%s feed=%s", worker_id, settings.state, bus.mode, feed.mode)
            yield

    app = FastAPI(title="Skeet worker", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        matching: MatchingWorker = state["matching"]
        alerts: AlertWorker = state["alerts"]
        return {"status": "ok", "worker": worker_id, "symbols": matching.symbols, "alerts": alerts.book is not None}

    return app


def main() -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = dataclasses.replace(Settings.from_env(), role="worker")
        app = create_worker_app(settings)
    except SettingsError as exc:
        print(f"backend_stub.worker: {exc}", file=sys.stderr)
        return 2
    from backend_stub.server import uvicorn_config

    uvicorn.Server(uvicorn_config(app, settings)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
