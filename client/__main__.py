"""`python -m client`: start Skeet. With no backend URL configured it first starts the local
backend (paper trading, embedded state) on loopback. Without a display it serves the web app."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import flet as ft
from flet.utils.platform_utils import is_mobile

from client.app import SessionServices, make_main
from client.config import ASSETS_DIR, ClientConfig, ConfigError
from client.hub import MarketHub
from client.launcher import local_backend, loopback_exchange
from client.preferences import Preferences, PreferencesFile
from client.sessions import SessionRegistry
from services.api import SkeetApi
from services.auth.devtoken import state_dir
from services.auth.local import LocalIdentity
from services.live.stream import StreamLive
from services.market import MarketDataError
from services.secrets import ExchangeKeyStore


def _has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def build_feed(source: str, config: ClientConfig, *, backend_url: str = "", token: Any = None) -> tuple[Any, str]:
    """The market feed `source` names, and its label for the mode badge. "gateway" is the backend's market
    gateway (httpx + websockets only). Where ccxt cannot be installed (phones), live sources go through the
    gateway when there is a backend, else fall back to the replay, and the badge says why."""
    from services.market import open_feed
    from services.market.sources import FEED_BATCH_S

    if source == "gateway":
        source = f"gateway:{backend_url}"
    try:
        feed = open_feed(source, speed=config.replay_speed, token=token, batch_s=FEED_BATCH_S)
    except ImportError:
        if backend_url and token is not None:
            feed = open_feed(f"gateway:{backend_url}", token=token)
            return feed, feed.mode
        feed = open_feed("synthetic", batch_s=FEED_BATCH_S)
        return feed, f"{feed.mode} (live data needs ccxt, not installed here)"
    return feed, feed.mode


class GatewayToken:
    """The bearer token the process's shared market opens the backend's gateway with. Market data is the
    same for everyone, so the first trader signed in lends theirs (on a phone there is only one)."""

    def __init__(self) -> None:
        self._token: Callable[[], Awaitable[str]] | None = None

    def offer(self, token: Callable[[], Awaitable[str]]) -> None:
        if self._token is None:
            self._token = token

    async def __call__(self) -> str:
        if self._token is None:
            raise MarketDataError("Live prices through the gateway need you to be signed in.")
        return await self._token()


def market_hub(config: ClientConfig, backend_url: str = "", token: GatewayToken | None = None) -> MarketHub:
    """The process's one feed and engine per market source, shared by every session."""
    return MarketHub(lambda source: build_feed(source, config, backend_url=backend_url, token=token))


def build_live(config: ClientConfig, backend_url: str, identity: Any) -> Any:
    """Firestore listeners when configured and installable; else the backend's /v1/stream (phones
    cannot install google-cloud-firestore: the badge says so)."""
    if config.state == "firestore":
        try:
            from services.live.firestore import FirestoreLive
        except ImportError:
            return StreamLive(base_url=backend_url, token=identity.token,
                              mode="Backend stream (Firestore unavailable on this device)")
        emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
        return FirestoreLive(identity.uid, identity.token, project=os.environ.get("GOOGLE_CLOUD_PROJECT", ""),
                             emulator_host=emulator)
    return StreamLive(base_url=backend_url, token=identity.token)


def services_factory(config: ClientConfig, backend_url: str, *, local_backend: bool,  # type: ignore[no-untyped-def]
                     market_source: str, hub: MarketHub, explicit_market: bool = False,
                     gateway_token: GatewayToken | None = None):
    async def build(identity: Any) -> SessionServices:
        if gateway_token is not None:
            gateway_token.offer(identity.token)
        from services.signals import RuleBook, default_rules
        from services.signals.errors import RuleBookCorrupt

        user_dir = state_dir() / "users" / identity.uid
        preferences = PreferencesFile(user_dir / "preferences.json")
        saved = preferences.load(Preferences(watchlist=list(config.watchlist), theme=config.theme))
        # A source picked in Settings wins over flet.toml's, unless one was given on the command line.
        source = market_source if explicit_market else (saved.market or market_source)
        try:
            rulebook = RuleBook(user_dir / "rules.json", defaults=default_rules())
        except RuleBookCorrupt as exc:  # moved aside; start from the defaults and say so
            rulebook = RuleBook(user_dir / "rules.json", defaults=default_rules())
            preferences.problem = "; ".join(p for p in (preferences.problem, str(exc)) if p)
        live = build_live(config, backend_url, identity)
        return SessionServices(
            market=hub,
            api=SkeetApi(base_url=backend_url, token=identity.token),
            live=live,
            modes={  # "market" is the shared market's own words, set when the session joins it
                "orders": "Paper trading" + ("" if local_backend else f" · {backend_url}"),
                "live": live.mode,
                "insights": "Local analyst" if local_backend else "Insights · backend",
                "identity": getattr(identity, "label", identity.mode),
            },
            backend_url=backend_url,
            rulebook=rulebook,
            preferences=preferences,
            keys=ExchangeKeyStore(identity.uid),
            exchange=config.exchange,
            market_source=source,
            saved=saved,
            replay_speed=config.replay_speed,
        )

    return build


def identity_factory(config: ClientConfig):  # type: ignore[no-untyped-def]
    """How a session learns who the user is: the local user at once, or Firebase sign-in."""
    if config.auth == "firebase":
        async def firebase(page: ft.Page) -> Any:
            from client.app import sign_in_with_firebase
            from services.auth.firebase import FirebaseIdentity
            from services.secrets import SecretSlot

            slot = SecretSlot("firebase-refresh-token")
            identity = FirebaseIdentity(api_key=config.firebase_api_key,
                                        emulator_host=os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"),
                                        remember=slot.set)
            await sign_in_with_firebase(page, identity, remembered=await slot.get())
            return identity

        return firebase

    async def local(_page: ft.Page) -> Any:
        return LocalIdentity(config.user_id)

    return local


def announce(url: str, *, open_browser: bool) -> None:
    """Called once the web app answers: before that, the URL would show a browser's error page."""
    print(f"Skeet is running at {url}  (Ctrl+C to stop)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--web", action="store_true", help="serve the web app (default without a display)")
    mode.add_argument("--desktop", action="store_true", help="open a desktop window (needs a display)")
    parser.add_argument("--host", default="127.0.0.1", help="web server address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8550, help="web server port (default 8550)")
    parser.add_argument("--backend-url", default=None, help="use this Skeet API instead of starting one")
    parser.add_argument("--market", default=None,
                        help="synthetic (default), synthetic:SEED, replay, replay:PATH, ccxt:EXCHANGE, or loopback (starts a local "
                             "Binance-compatible exchange: live mode, offline)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = ClientConfig.load()
    except ConfigError as exc:
        print(f"skeet: {exc}", file=sys.stderr)
        return 2

    web = args.web or not (args.desktop or _has_display())
    if web and not is_mobile():
        from client.sessions import use_returning_allocator

        use_returning_allocator(sys.argv[1:] if argv is None else argv)  # may restart the process on jemalloc
    market = args.market or (f"ccxt:{config.exchange}" if config.market == "ccxt" else config.market)
    backend_url = args.backend_url or config.backend_url
    children = []
    backend_feed = market if market.startswith(("synthetic", "replay")) else "replay"
    if market == "loopback":
        exchange = loopback_exchange()
        print("Starting the loopback exchange (Binance wire format, the simulated market)…", flush=True)
        exchange.start()
        children.append(exchange)
        market = f"loopback:127.0.0.1:{exchange.port}"
        backend_feed = "synthetic"  # what that exchange serves: paper fills see the same trades
    if not backend_url and is_mobile():
        # A phone cannot start the local backend (no subprocesses, no FastAPI wheels): it needs the
        # deployed API. Say so rather than fail on the first order.
        print("skeet: set backend_url in flet.toml (or SKEET_BACKEND_URL) to the deployed Skeet API",
              file=sys.stderr)
        return 2
    if is_mobile() and args.market is None:
        market = "gateway"  # a phone has no ccxt: live prices come from the backend it trades with
    # The local backend fills paper orders on the app's market (SKEET_FEED); a live exchange's paper
    # fills stay on the replay, as before.
    backend = None if backend_url else local_backend(replay_speed=config.replay_speed, feed=backend_feed)
    if backend:
        print("Starting the local Skeet backend (paper trading)…", flush=True)
        backend.start()
        children.append(backend)
        backend_url = backend.url
        print(f"Local backend on {backend_url}", flush=True)
    gateway_token = GatewayToken()
    registry, hub = SessionRegistry(), market_hub(config, backend_url, gateway_token)
    try:
        app_main = make_main(services_factory(config, backend_url, local_backend=backend is not None,
                                              market_source=market, hub=hub, gateway_token=gateway_token,
                                              explicit_market=args.market is not None),
                             identity_factory(config),
                             watchlist=list(config.watchlist), timeframe=config.timeframe, theme=config.theme,
                             registry=registry)
        if web:
            from client.web import serve, web_app  # FastAPI and uvicorn: a server's packages, not a phone's

            serve(web_app(app_main, registry=registry, hub=hub, assets_dir=str(ASSETS_DIR)), host=args.host, port=args.port,
                  on_ready=lambda url: announce(url, open_browser=_has_display()))
        else:
            ft.run(app_main, view=ft.AppView.FLET_APP, assets_dir=str(ASSETS_DIR), no_cdn=True)
    finally:
        for child in reversed(children):
            child.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
