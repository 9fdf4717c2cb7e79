"""One market feed and one signal engine per process and source, shared by every session: ticks reach the
sessions watching their symbol, each trader's rules fire for that trader alone, and leaving lets go of the
feed. Runs a real `MarketHub` over `ListFeed` (trades the test pushes; each returns once consumed)."""

from __future__ import annotations

from client.hub import MarketHub, rule_key
from services.market import MarketDataError, MarketFeed, Tick
from services.signals import Rule, Signal, SignalEngine
from tests.backend.listfeed import ListFeed
from tests.client.test_alerts import until


class Trader:
    """A session as the hub sees it: what reached it."""

    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.signals: list[Signal] = []
        self.errors: list[MarketDataError] = []

    def on_tick(self, tick: Tick, snapshot: dict[str, float], signals: list[Signal]) -> None:
        self.ticks.append(tick)
        self.signals.extend(signals)

    def on_feed_error(self, error: MarketDataError) -> None:
        self.errors.append(error)


def above(rule_id: str, name: str, level: float) -> Rule:
    return Rule.from_dict({"id": rule_id, "name": name, "direction": "buy",
                           "when": {"op": "gt", "left": "price", "right": level}})


class Counting:
    """`open_feed` for the hub, counting the feeds and engines it is asked for."""

    def __init__(self) -> None:
        self.feeds: list[ListFeed] = []
        self.engines = 0

    def feed(self, source: str) -> tuple[MarketFeed, str]:
        feed = ListFeed({"BTC/USDT": 90.0, "ETH/USDT": 3_000.0})
        self.feeds.append(feed)
        return feed, feed.mode

    def engine(self) -> SignalEngine:
        self.engines += 1
        return SignalEngine()


async def test_ten_sessions_share_one_feed_and_one_engine() -> None:
    opened = Counting()
    async with MarketHub(opened.feed, engine=opened.engine) as hub:
        traders = [Trader() for _ in range(10)]
        subs = [await hub.join("list", trader) for trader in traders]
        for i, sub in enumerate(subs):
            await sub.watch(["BTC/USDT"] if i % 2 else ["ETH/USDT"])
        assert (len(opened.feeds), opened.engines) == (1, 1)
        assert hub.counts() == {"markets": 1, "market_subscriptions": 10}
        feed = opened.feeds[0]
        await feed.until_consumers(1)  # one tick stream for everyone
        await feed.trade("BTC/USDT", 95.0)
        await feed.trade("ETH/USDT", 3_001.0)
        for i, trader in enumerate(traders):
            assert [t.symbol for t in trader.ticks] == (["BTC/USDT"] if i % 2 else ["ETH/USDT"])


async def test_each_trader_hears_only_their_own_rules_under_their_own_names() -> None:
    opened = Counting()
    async with MarketHub(opened.feed, engine=opened.engine) as hub:
        alice, bob, carol = Trader(), Trader(), Trader()
        subs = {t: await hub.join("list", t) for t in (alice, bob, carol)}
        subs[alice].set_rules([above("a1", "Alice's breakout", 100.0)])
        subs[bob].set_rules([above("b7", "Bob's line", 100.0)])  # the same rule as Alice's: one runner
        subs[carol].set_rules([above("c1", "Carol's high bar", 200.0)])
        for sub in subs.values():
            await sub.watch(["BTC/USDT"])
        engine_rules = [r.id for r in subs[alice]._market.engine.rules]  # noqa: SLF001  (the shared engine)
        assert sorted(engine_rules) == sorted({rule_key(above("x", "x", 100.0)), rule_key(above("x", "x", 200.0))})

        feed = opened.feeds[0]
        await feed.until_consumers(1)
        await feed.trade("BTC/USDT", 99.0)
        await feed.trade("BTC/USDT", 101.0)  # crosses 100, not 200
        assert [(s.rule_id, s.rule_name) for s in alice.signals] == [("a1", "Alice's breakout")]
        assert [(s.rule_id, s.rule_name) for s in bob.signals] == [("b7", "Bob's line")]
        assert carol.signals == [] and len(carol.ticks) == 2


async def test_the_last_session_to_leave_lets_the_feed_go() -> None:
    opened = Counting()
    async with MarketHub(opened.feed, engine=opened.engine, linger_s=0.0) as hub:
        first, second = await hub.join("list", Trader()), await hub.join("list", Trader())
        await first.watch(["BTC/USDT", "ETH/USDT"])
        await second.watch(["BTC/USDT"])
        feed = opened.feeds[0]
        await first.aclose()  # ETH was first's alone: it stops streaming, BTC goes on
        await feed.until_followed("ETH/USDT", count=0)
        await feed.until_followed("BTC/USDT", count=1)
        await second.aclose()
        await feed.until_followed("BTC/USDT", count=0)
        await until(lambda: hub.counts() == {"markets": 0, "market_subscriptions": 0})
        third = Trader()  # a reload after everyone left: a fresh market, and it works
        sub = await hub.join("list", third)
        await sub.watch(["BTC/USDT"])
        assert len(opened.feeds) == 2
        await opened.feeds[1].until_consumers(1)
        await opened.feeds[1].trade("BTC/USDT", 91.0)
        assert [t.price for t in third.ticks] == [91.0]
