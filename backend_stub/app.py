"""`create_app(settings)`: the FastAPI app — auth gate, routes, stream, and the lifespan that owns the
store, the market feed, the broker and the alert watcher (everything it opens, it closes).

`SKEET_ROLE=all` (the default) matches orders and watches alerts in this process; `api` keeps no state:
the broker reads what it needs from the store, and announces resting orders, alerts and strategies on the
bus to the workers (`python -m backend_stub.worker`, `backend_stub/workers`), which match, watch and run
them."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from backend_stub.alerts import AlertBook
from backend_stub.auth import (
    AuthNotConfigured,
    FirebaseVerifier,
    LocalVerifier,
    TokenVerifier,
    require_google_credentials,
)
from backend_stub.brokers.base import Broker
from backend_stub.bus.base import Bus, OrderEvent, open_bus
from backend_stub.errors import install_error_handlers
from backend_stub.gateway import build_router as build_gateway_router
from backend_stub.middleware import AccessLog, Admission, BearerAuth, BodyLimit
from backend_stub.orders import OrderDesk
from backend_stub.ratelimit import RateLimiter
from backend_stub.routes import router
from backend_stub.runtime import Backend
from backend_stub.settings import Settings, SettingsError
from backend_stub.store.base import StateStore
from backend_stub.strategies import StrategyBook
from backend_stub.strategies import router as strategies_router
from backend_stub.strategies_runner import StrategyRunner
from backend_stub.stream import build_router
from services.auth import devtoken
from services.market.types import MarketFeed

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz"})
SQLITE_POLL_S = 0.2


def create_app(
    settings: Settings,
    *,
    store: StateStore | None = None,
    feed: MarketFeed | None = None,
    broker: Broker | None = None,
    verifier: TokenVerifier | None = None,
    bus: Bus | None = None,
) -> FastAPI:
    """The API. Parts not passed in are built from `settings` at startup and closed at shutdown;
    parts passed in belong to the caller (who closes them). `bus`: role api only (tests share one
    in-process bus with workers)."""
    verifier = verifier or build_verifier(settings)
    if store is None:
        check_store_configured(settings)
    read_limiter = RateLimiter(rate_per_s=settings.read_rate_per_s, burst=settings.read_burst)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            the_store = store if store is not None else await stack.enter_async_context(open_store(settings))
            the_feed = feed
            if the_feed is None:
                the_feed = build_feed(settings)
                stack.push_async_callback(the_feed.aclose)
            the_broker = broker
            publish = None
            if the_broker is None:
                if settings.role == "api":
                    the_bus = bus
                    if the_bus is None:
                        the_bus = await stack.enter_async_context(
                            open_bus(settings.bus, project=settings.gcp_project, topic=settings.pubsub_topic)
                        )
                    publish = the_bus.publish
                the_broker = build_broker(settings, store=the_store, feed=the_feed, publish=publish)
                stack.push_async_callback(the_broker.aclose)
            await the_broker.start()
            alerts = AlertBook(store=the_store, feed=the_feed, publish=publish)
            stack.push_async_callback(alerts.aclose)
            if settings.role == "all":  # otherwise the alert worker watches (told by our events)
                await alerts.start()
            desk = OrderDesk(broker=the_broker, store=the_store)
            # A strategy never trades real money from here. In the split (SKEET_ROLE=api) the strategy
            # worker runs them (backend_stub/workers/strategies.py): the book announces each change to it.
            paper = settings.broker == "paper"
            strategies = StrategyBook(store=the_store, markets=the_broker.markets,
                                      publish=publish if paper and settings.role == "api" else None)
            if paper and settings.role == "all":
                runner = StrategyRunner(store=the_store, feed=the_feed, desk=desk, broker=the_broker,
                                        book=strategies, fee=settings.taker_fee, slippage=settings.slippage)
                stack.push_async_callback(runner.aclose)
                await runner.start()
            app.state.backend = Backend(
                settings=settings,
                store=the_store,
                feed=the_feed,
                broker=the_broker,
                desk=desk,
                limiter=RateLimiter(rate_per_s=settings.rate_per_s, burst=settings.rate_burst),
                alerts=alerts,
                strategies=strategies,
            )
            log.info(
                "backend ready: auth=%s state=%s broker=%s feed=%s",
                settings.auth,
                settings.state,
                the_broker.mode,
                the_feed.mode,
            )
            yield

    app = FastAPI(
        title="Skeet API",
        version="1.0",
        summary="Orders, positions and live state for the Skeet trading client",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # The core routes (orders, account, alerts) are the app's own, not an included router: FastAPI
        # matches an included router's routes through a layer of per-request bookkeeping (its routes'
        # version, scope keys), about 5% of an order's CPU. The other packages' routers are included.
        routes=list(router.routes),
        # Skeet emits no OpenTelemetry. FastAPI's native telemetry, on by default, looked up the global
        # tracer, meter and logger providers on every request to find them unconfigured (environment
        # reads included): ~8 us, about 1% of an order's CPU, for nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.include_router(build_router(verifier))
    app.include_router(strategies_router)
    app.include_router(build_gateway_router(verifier))
    _include_insights(app)
    # Outermost last: the log sees every answer; admission comes before any work; an oversized body is
    # refused before the token is checked; the token before the body is read.
    app.add_middleware(
        BearerAuth, verifier=verifier, public_paths=PUBLIC_PATHS, read_limiter=read_limiter
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, read_timeout_s=settings.read_timeout_s)
    app.add_middleware(
        Admission,
        max_in_flight=settings.max_in_flight,
        max_queued=settings.max_queued,
        wait_s=settings.queue_wait_s,
        exempt=PUBLIC_PATHS,
    )
    app.add_middleware(AccessLog)
    return app


def build_verifier(settings: Settings) -> TokenVerifier:
    """The settings' verifier. Raises `SettingsError` when it could never work (Firebase without
    credentials, a weak dev key), so the server stops at start with the reason instead of answering
    every request with an error."""
    if settings.auth == "firebase":
        firebase = FirebaseVerifier()
        try:
            firebase.check_configured()
        except AuthNotConfigured as exc:
            raise SettingsError(str(exc)) from None
        return firebase
    try:
        return LocalVerifier(key=settings.dev_key or devtoken.dev_key())
    except devtoken.WeakKey as exc:
        raise SettingsError(str(exc)) from None


def check_store_configured(settings: Settings) -> None:
    """`SettingsError` now, not a failed start-up later, when Firestore could not be reached."""
    if settings.state == "firestore" and not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        try:
            require_google_credentials("SKEET_STATE=firestore", "the Firestore emulator: FIRESTORE_EMULATOR_HOST")
        except AuthNotConfigured as exc:
            raise SettingsError(str(exc)) from None


def open_store(settings: Settings) -> AbstractAsyncContextManager[StateStore]:
    """A store to open with `async with`."""
    if settings.state == "firestore":
        from backend_stub.firestore_store import FirestoreStore

        return FirestoreStore(change_log_days=settings.change_log_days)
    from backend_stub.store.sqlite import SqliteStore

    # Split roles share the file between processes: streams also poll it for the others' commits.
    poll_s = None if settings.role == "all" else SQLITE_POLL_S
    return SqliteStore(settings.data_dir / "state.db", keep_changes=settings.change_log_keep, poll_s=poll_s)


def build_feed(settings: Settings) -> MarketFeed:
    """The backend's market data (paper fills, price alerts): the replay, or an exchange through ccxt."""
    from services.market import open_feed

    return open_feed(settings.feed, speed=settings.replay_speed)


def build_broker(
    settings: Settings,
    *,
    store: StateStore,
    feed: MarketFeed,
    publish: Callable[[OrderEvent], Awaitable[None]] | None = None,
) -> Broker:
    if settings.broker == "ccxt":
        from backend_stub.brokers.ccxt_broker import (
            CcxtBroker,
            KeyringExchangeKeys,
            SecretManagerExchangeKeys,
        )

        keys = (
            SecretManagerExchangeKeys(project=settings.gcp_project)
            if settings.gcp_project
            else KeyringExchangeKeys()
        )
        return CcxtBroker(
            store=store,
            keys=keys,
            exchange_id=settings.exchange,
            quote_currency=settings.quote_currency,
            sync_s=settings.live_sync_s or None,  # 0 turns the follower off
        )
    from backend_stub.brokers.paper import PaperBroker

    return PaperBroker(
        store=store,
        feed=feed,
        starting_balance=settings.starting_balance,
        quote_currency=settings.quote_currency,
        taker_fee=settings.taker_fee,
        maker_fee=settings.maker_fee,
        slippage=settings.slippage,
        max_open_orders=settings.max_open_orders,
        role=settings.role,
        publish=publish,
    )


def _include_insights(app: FastAPI) -> None:
    """Mount `/v1/insights` (the insights package's router, with its own lifespan for the desk)."""
    # Only a missing module is optional; an import error inside it must fail loudly, not drop the route.
    if importlib.util.find_spec("backend_stub.insights.routes") is None:
        return
    from backend_stub.insights.routes import router as insights_router

    app.include_router(insights_router)
