"""The app's session on a phone, over the real gateway on loopback: the badge shows the link and its freshness,
an app resume and a network change reconnect at once (not after the backoff) and the stream resumes with no
trade lost or repeated; only the rows on screen and the selected symbol stream every trade."""

from __future__ import annotations

import asyncio

import flet as ft
from flet.controls.context import _context_page
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

from client.app import SessionServices, SkeetSession
from client.state import AppState
from services.api import SkeetApi
from services.auth.local import LocalIdentity
from services.backoff import Backoff
from services.live.stream import StreamLive
from services.market import FeedLink
from services.market.gateway_feed import GatewayFeed
from services.signals import SignalEngine
from tests.backend.conftest import Running
from tests.backend.listfeed import ListFeed
from tests.client.test_live_confirmation import RecordingConnection
from tests.gateway.netcut import NetCut
from tests.gateway.test_gateway_feed import take, token_for, until
from views.common import Intents
from views.mode_badge import link_words
from views.watchlist import WatchlistView, rows_in_view


def phone_session(gateway: GatewayFeed) -> tuple[Session, SkeetSession]:
    conn = RecordingConnection()
    conn.pubsubhub = PubSubHub()
    flet_session = Session(conn)  # kept referenced: the page holds its session weakly
    conn.session = flet_session  # its client answers the session's calls
    flet_session.get_page_patch()
    # What Flet does before it runs the app's main or an event handler: services made in `start()` (the
    # network watcher) register with the current page.
    _context_page.set(flet_session.page)
    identity = LocalIdentity("phone", key=b"k")
    services = SessionServices(
        feed=gateway, engine=SignalEngine(), modes={}, backend_url="http://127.0.0.1:9", market_source="gateway",
        api=SkeetApi(base_url="http://127.0.0.1:9", token=identity.token, retries=0),
        live=StreamLive(base_url="http://127.0.0.1:9", token=identity.token),
    )
    app = SkeetSession(flet_session.page, services, watchlist=["BTC/USDT", "ETH/USDT"])
    app.state.resize(390)  # a phone
    return flet_session, app


async def test_an_app_resume_and_a_network_change_reconnect_at_once_with_no_gap(
    gateway_backend: Running, feed: ListFeed
) -> None:
    host, port = gateway_backend.base_url.removeprefix("http://").split(":")
    async with NetCut(host, int(port)) as net:
        # A minute of backoff after a drop: only the app's own events can bring the stream back within the test.
        gateway = GatewayFeed(net.url, token=token_for("phone"), backoff=Backoff(initial_s=60.0, max_s=60.0))
        flet_session, app = phone_session(gateway)
        page = flet_session.page
        await app.start()
        ticks = gateway.ticks(["BTC/USDT"])  # every trade the phone's feed delivers, to check for gaps
        first = asyncio.create_task(anext(ticks))
        await feed.until_followed("BTC/USDT", 2)  # the paper broker and the gateway's channel
        await until(lambda: app.market.subscription is not None and app.market.subscription.on_screen is not None)
        assert app.market.subscription is not None
        assert app.market.subscription.on_screen == {"BTC/USDT", "ETH/USDT"}  # the selected symbol and the rows
        await until(lambda: gateway.connection == "connected")
        prices = [float(p) for p in range(1, 26)]
        for price in prices[:4]:
            await feed.trade("BTC/USDT", price)
        got = [await first, *await take(ticks, 3)]
        await until(lambda: "Live via gateway · " in (app.shell.badge.control.label or ""))
        # A quick switch away and back with the link delivering: nothing to repair, the socket is kept.
        asked = gateway.reconnects_asked
        await feed.trade("BTC/USDT", prices[4])
        got += await take(ticks, 1)
        await flet_session.dispatch_event(page._i, "app_lifecycle_state_change", {"state": "hide"})  # noqa: SLF001
        await flet_session.dispatch_event(page._i, "app_lifecycle_state_change", {"state": "show"})  # noqa: SLF001
        assert gateway.reconnects_asked == asked

        await flet_session.dispatch_event(page._i, "app_lifecycle_state_change", {"state": "hide"})  # noqa: SLF001
        net.cut()  # the phone sleeps and its socket dies with it
        await until(lambda: gateway.connection == "reconnecting")  # ... now waiting out a minute of backoff
        await until(lambda: app.state.market_link is not None and not app.state.market_link.connected)
        reconnects = gateway.reconnects
        for price in prices[5:15]:  # the market goes on meanwhile
            await feed.trade("BTC/USDT", price)
        net.restore()
        await flet_session.dispatch_event(page._i, "app_lifecycle_state_change", {"state": "show"})  # noqa: SLF001
        assert gateway.reconnects_asked == asked + 1
        got += await take(ticks, 10)  # within seconds, not the minute of backoff
        for price in prices[15:20]:
            await feed.trade("BTC/USDT", price)
        got += await take(ticks, 5)
        assert gateway.reconnects == reconnects + 1 and gateway.resets == 0
        await until(lambda: (q := app.state.quotes.get("BTC/USDT")) is not None and q.last == 20.0)
        await until(lambda: "Live via gateway · " in (app.shell.badge.control.label or ""))

        net.cut()  # Wi-Fi gone: the phone moves to mobile data
        await until(lambda: gateway.connection == "reconnecting")
        for price in prices[20:25]:
            await feed.trade("BTC/USDT", price)
        net.restore()
        assert app._network is not None  # noqa: SLF001
        await flet_session.dispatch_event(app._network._i, "change", {"connectivity": ["mobile"]})  # noqa: SLF001
        got += await take(ticks, 5)
        assert [t.price for t in got] == prices  # nothing lost or repeated across both
        assert gateway.reconnects == reconnects + 2 and gateway.resets == 0
        await ticks.aclose()

        # The trader picks ETH and scrolls BTC out of view: BTC's trades stop streaming (its candle still comes).
        both = gateway.ticks(["BTC/USDT", "ETH/USDT"])
        following = asyncio.create_task(anext(both))
        app.state.select("ETH/USDT")
        app.intents.show_rows(["ETH/USDT"])
        await until(lambda: app.market.subscription is not None
                    and app.market.subscription.on_screen == {"ETH/USDT"})
        await until(lambda: gateway.connection == "connected" and "BTC/USDT" not in gateway._seq)  # noqa: SLF001
        await feed.trade("BTC/USDT", 99.0)
        await feed.trade("ETH/USDT", 3_100.0)
        assert (await following).price == 3_100.0  # the hidden symbol's trade did not come through
        await both.aclose()
        await app.close()  # (closes the session's own hub and its feed)


def test_the_badge_says_how_fresh_the_gateway_is_or_that_it_reconnects() -> None:
    assert link_words("Live via gateway · Synthetic", FeedLink(connected=True, age_s=0.42)) == "Live via gateway · 0.4 s"
    assert link_words("Live via gateway", FeedLink(connected=True, age_s=None)) == "Live via gateway"
    assert link_words("Live via gateway", FeedLink(connected=False, age_s=3.0)) == "Reconnecting…"


def test_a_watchlist_scroll_says_which_rows_are_on_screen() -> None:
    symbols = [f"S{i}/USDT" for i in range(20)]  # 20 rows of 50 px in a 200 px view: 1,000 px of content
    assert rows_in_view(symbols, 0, 200, 800) == symbols[:4]
    assert rows_in_view(symbols, 800, 200, 800) == symbols[16:]
    shown: list[list[str]] = []
    view = WatchlistView(Intents(show_rows=shown.append))
    view.render(AppState(watchlist=symbols, selected=symbols[0]))
    assert view.list.on_scroll is not None
    view.list.on_scroll(ft.OnScrollEvent(name="scroll", control=view.list, event_type=ft.ScrollType.UPDATE,
                                         pixels=125, min_scroll_extent=0, max_scroll_extent=800,
                                         viewport_dimension=200))
    assert shown == [symbols[2:7]]  # rows cut at either edge count as shown
