"""`MarketGateway`: one upstream trade stream per symbol, shared by every client of the backend.

Each symbol has a channel. Its pump reads `feed.ticks([symbol])`, numbers every frame it publishes with a
per-symbol `seq` (rising for the gateway's life: `epoch` names that life), keeps the last `replay_frames`
frames, and pends each frame, encoded once. A flush (at most one per `flush_s`) hands the pending frames to
every group of subscribers that asked for the same symbols the same way: the group joins and frames them
once and writes the same bytes to each live member's connection (`wire.py`); a member still owed its hello
or resumed frames gets them in its bounded queue instead. Publishing never waits on a client: one whose
queue or connection holds more than `client_queue` frames is marked too slow and dropped (it reconnects and
resumes from its last seq). A channel whose last subscriber left keeps running `idle_keep_s`, so a phone that loses its
network for a moment resumes with no gap; when it stops, its next start skips one seq, so a resume from
before the stop gets an explicit reset instead of a silent hole.

Frames (JSON text): `trade` {symbol, price, amount, timestamp, side, seq}; `candle` {symbol, timeframe "1m",
candle [ts, o, h, l, c, v], closed, seq}: the forming bar at most once per `candle_interval_s` and each bar as
it closes; `status` {symbol, status "live" | "reconnecting", seq} when the upstream drops or recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from backend_stub.gateway.wire import PLAIN, Encoding, FrameSink, GroupEncoder, window_bytes
from services.backoff import Backoff
from services.market.types import TIMEFRAME_MS, Candle, MarketDataError, MarketFeed, Tick, UnknownSymbol

log = logging.getLogger(__name__)

_MINUTE_MS = TIMEFRAME_MS["1m"]


class TooManyStreams(Exception):
    """The user already has `max_streams_per_user` market streams open."""


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    replay_frames: int = 4096  # per symbol: how far back a reconnecting client can resume
    client_queue: int = 2048  # frames waiting for one client before it counts as too slow
    max_streams_per_user: int = 4
    max_symbols: int = 50  # per stream
    idle_keep_s: float = 60.0
    candle_interval_s: float = 1.0
    flush_s: float = 0.02  # how long frames gather between two flushes to the clients (at most one per this)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayLimits:
        """`SKEET_GATEWAY_REPLAY_FRAMES`, `_CLIENT_QUEUE`, `_MAX_STREAMS` (per user), `_MAX_SYMBOLS`,
        `_IDLE_KEEP_S`, `_FLUSH_S`; unset ones keep their defaults."""
        e = os.environ if env is None else env
        out = cls()
        for field, name in (("replay_frames", "REPLAY_FRAMES"), ("client_queue", "CLIENT_QUEUE"),
                            ("max_streams_per_user", "MAX_STREAMS"), ("max_symbols", "MAX_SYMBOLS"),
                            ("idle_keep_s", "IDLE_KEEP_S"), ("flush_s", "FLUSH_S")):
            raw = e.get(f"SKEET_GATEWAY_{name}")
            if raw:
                try:
                    value = type(getattr(out, field))(raw)
                except ValueError:
                    raise ValueError(f"SKEET_GATEWAY_{name} must be a number, got {raw!r}") from None
                if value <= 0:
                    raise ValueError(f"SKEET_GATEWAY_{name} must be above 0, got {raw!r}")
                out = replace(out, **{field: value})
        return out


def _encode(message: dict[str, object]) -> str:
    return json.dumps(message, separators=(",", ":"))


MAX_LINES = 1024  # frames per `frames=lines` message: well under a client's 1 MiB message limit


def message_texts(frames: list[str], *, lines: bool) -> list[str]:
    """`frames` as websocket text messages: one a frame, or (`lines`) up to `MAX_LINES` a message."""
    if not lines:
        return frames
    return ["\n".join(frames[i:i + MAX_LINES]) for i in range(0, len(frames), MAX_LINES)]


class Subscriber:
    """One client connection. Until its route has written what it was owed at the start (hello, resumed
    frames), frames wait in a bounded queue; then (`go_live`), when the server offers a `FrameSink`, its
    group's flushes write the shared bytes straight to the connection, and the bound is on what the
    connection's transport still holds."""

    def __init__(self, uid: str, *, limit: int, lines: bool) -> None:
        self.uid = uid
        self.lines = lines
        self._limit = limit
        self._frames: deque[str] = deque()
        self._backlog = 0  # replayed frames still queued: a resume may exceed the live bound by that much
        self._ready = asyncio.Event()
        self.too_slow = False
        self.ended = False
        self.start_seq: dict[str, int] = {}  # per full-rate symbol: the seq after which its frames follow
        self.sink: FrameSink | None = None
        self._encoding = PLAIN
        self._received = 0  # bytes of the group's stream written since going live
        self._frames_sent = 0
        self._bytes_sent = 0

    def put(self, frame: str) -> None:
        self.put_many([frame])

    def put_many(self, frames: list[str]) -> None:
        if self.too_slow:
            return
        if len(self._frames) + len(frames) > self._limit + self._backlog:
            # Dropping frames silently would leave a gap; dropping the client lets it resume from its seq.
            self._fall_behind()
            self._frames.clear()
        else:
            self._frames.extend(frames)
        self._ready.set()

    def put_backlog(self, frame: str) -> None:
        self._frames.append(frame)
        self._backlog += 1
        self._ready.set()

    def put_first(self, frame: str) -> None:
        self._frames.appendleft(frame)
        self._ready.set()

    def end(self) -> None:
        """The client left: wake the writer so it stops."""
        self.ended = True
        self._ready.set()

    def _fall_behind(self) -> None:
        self.too_slow = True
        self._ready.set()

    async def next_batch(self) -> list[str]:
        """Every frame waiting (at least one); empty once the subscriber is too slow or has ended."""
        while not self._frames and not (self.too_slow or self.ended):
            self._ready.clear()
            await self._ready.wait()
        if self.too_slow or self.ended:
            return []
        batch = list(self._frames)
        self._frames.clear()
        self._backlog = 0
        return batch

    def go_live(self, sink: FrameSink) -> bool:
        """From the next flush on, frames go straight to `sink`. False (nothing changes) while frames still
        wait in the queue (send them first: they come before), or if the connection's framing is not one
        the shared bytes match. Synchronous, so no flush falls between the last queued frame and the first
        written one."""
        if self._frames or self.too_slow or self.ended:
            return False
        encoding = sink.encoding()
        if encoding is None:
            return False
        self.sink, self._encoding = sink, encoding
        return True

    def wanted(self) -> Encoding:
        """The encoding this subscriber can read now (see `wire`: a newcomer's first window is fresh)."""
        e = self._encoding
        return e.fresh if e.context and self._received < window_bytes(e) else e

    def write(self, data: bytes, *, frames: int, stream_bytes: int) -> None:
        """Write a flush's bytes (`frames` frames, `stream_bytes` before framing and compression)."""
        assert self.sink is not None
        try:
            buffered = self.sink.write(data)
        except (OSError, RuntimeError):  # the transport broke under us: the client is gone
            buffered = None
        if buffered is None:
            self.end()
            return
        self._received += stream_bytes
        self._frames_sent += frames
        self._bytes_sent += len(data)
        # Frames not yet taken by the kernel, at this connection's average frame size: past the queue's
        # bound the client is dropped, as a queued one would be.
        if buffered * self._frames_sent > self._limit * self._bytes_sent:
            self._fall_behind()

    async def finished(self) -> None:
        """Until the client leaves or falls behind (a live subscriber's writer has nothing else to do)."""
        while not (self.too_slow or self.ended):
            self._ready.clear()
            await self._ready.wait()


class _Group:
    """The subscribers that asked for the same symbols the same way: each flush's frames for them are
    selected, joined and framed once."""

    def __init__(self, full: frozenset[str], watch: frozenset[str], *, lines: bool) -> None:
        self.full = full
        self.watch = watch
        self.lines = lines
        self.members: set[Subscriber] = set()
        self._encoder = GroupEncoder()

    def send(self, frames: list[str]) -> None:
        live: list[tuple[Subscriber, Encoding]] = []
        for sub in self.members:
            if sub.too_slow or sub.ended:
                continue
            if sub.sink is None:
                sub.put_many(frames)
            else:
                live.append((sub, sub.wanted()))
        if not live:
            return
        texts = message_texts(frames, lines=self.lines)
        encoded = self._encoder.encode(texts, {e for _, e in live})
        stream_bytes = sum(map(len, texts))  # the frames are ASCII JSON: characters are bytes
        for sub, encoding in live:
            sub.write(encoded[encoding], frames=len(frames), stream_bytes=stream_bytes)


class _Channel:
    """One symbol: the upstream pump, the seq counter, the replay buffer and the subscribers."""

    def __init__(self, gateway: MarketGateway, symbol: str) -> None:
        self.symbol = symbol
        self._gateway = gateway
        self.seq = 0
        self.sent = 0  # the last seq a flush handed out: later ones are still pending (reach joiners too)
        self.base = 0  # resumes from a seq below this cross a stop of the pump: they get a reset
        self.buffer: deque[tuple[int, str]] = deque(maxlen=gateway.limits.replay_frames)
        self.full: set[Subscriber] = set()
        self.watch: set[Subscriber] = set()
        self.status = "reconnecting"
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._candle: Candle | None = None
        self._candle_dirty = False
        self._candle_sent_s = 0.0

    # -- subscribers ---------------------------------------------------------------------------------
    def join(self, sub: Subscriber, *, full: bool, since: int | None) -> None:
        """Add `sub`; with `since`, first queue every buffered frame after it (or a reset if they are gone).
        `sub.start_seq[symbol]` is then where its frames of this symbol start (the next is that + 1).

        Runs without awaiting, so no frame can be published between the backlog and the live frames.
        """
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._ensure_running()
        if not full:
            self.watch.add(sub)
            if self._candle is not None:
                sub.put(self._candle_frame(self._candle, closed=False, seq=self.seq))
            return
        # Frames still pending reach `sub` with the next flush, as they reach everyone: they are not backlog.
        start = sent = self.sent
        if since is not None and since != sent:
            oldest = self.buffer[0][0] if self.buffer else sent + 1
            if self.base <= since < sent and oldest <= since + 1:
                start = since
                for seq, frame in self.buffer:
                    if since < seq <= sent:
                        sub.put_backlog(frame)
            else:
                reason = "too far behind" if since < sent else "unknown resume point"
                sub.put(_encode({"type": "reset", "symbol": self.symbol, "seq": sent, "reason": reason}))
        sub.start_seq[self.symbol] = start
        self.full.add(sub)

    def leave(self, sub: Subscriber) -> None:
        self.full.discard(sub)
        self.watch.discard(sub)
        if not self.full and not self.watch and self._idle is None:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self._gateway.limits.idle_keep_s, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._idle = None
        if not self.full and not self.watch and self._task is not None:
            self._task.cancel()
            self._task = None

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            if self.seq:
                self.seq += 1  # a skipped number: nobody can resume across the stop
            self.base = self.sent = self.seq
            self.buffer.clear()
            self._candle = None
            self._task = asyncio.create_task(self._pump(), name=f"gateway-{self.symbol}")

    # -- publishing ----------------------------------------------------------------------------------
    def _publish(self, message: dict[str, object], *, to_watchers: bool) -> None:
        self.seq += 1
        message["seq"] = self.seq
        frame = _encode(message)
        self.buffer.append((self.seq, frame))
        self._gateway.pend(self, self.seq, frame, to_watchers=to_watchers)

    def _candle_frame(self, candle: Candle, *, closed: bool, seq: int) -> str:
        row = [candle.timestamp_ms, candle.open, candle.high, candle.low, candle.close, candle.volume]
        return _encode(
            {"type": "candle", "symbol": self.symbol, "timeframe": "1m", "candle": row, "closed": closed,
             "seq": seq}
        )

    def _publish_candle(self, candle: Candle, *, closed: bool) -> None:
        row = [candle.timestamp_ms, candle.open, candle.high, candle.low, candle.close, candle.volume]
        self._publish(
            {"type": "candle", "symbol": self.symbol, "timeframe": "1m", "candle": row, "closed": closed},
            to_watchers=True,
        )
        self._candle_dirty = False
        self._candle_sent_s = self._gateway.clock()

    def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self._publish({"type": "status", "symbol": self.symbol, "status": status}, to_watchers=True)

    def _on_tick(self, tick: Tick) -> None:
        self._publish(
            {"type": "trade", "symbol": self.symbol, "price": tick.price, "amount": tick.amount,
             "timestamp": tick.timestamp_ms, "side": tick.side},
            to_watchers=False,
        )
        open_ms = tick.timestamp_ms // _MINUTE_MS * _MINUTE_MS
        bar = self._candle
        if bar is not None and open_ms < bar.timestamp_ms:
            return  # a late trade of a closed bar: it went out as a trade, the bar is already sent
        if bar is None or open_ms > bar.timestamp_ms:
            if bar is not None:
                self._publish_candle(bar, closed=True)
            bar = Candle(open_ms, tick.price, tick.price, tick.price, tick.price, tick.amount)
        else:
            bar = Candle(bar.timestamp_ms, bar.open, max(bar.high, tick.price), min(bar.low, tick.price),
                         tick.price, bar.volume + tick.amount)
        self._candle = bar
        self._candle_dirty = True
        if self._gateway.clock() - self._candle_sent_s >= self._gateway.limits.candle_interval_s:
            self._publish_candle(bar, closed=False)

    async def _pump(self) -> None:
        feed = self._gateway.feed
        attempt = 0
        flusher = asyncio.create_task(self._flush_candles(), name=f"gateway-candles-{self.symbol}")
        try:
            while True:
                try:
                    bars = await feed.candles(self.symbol, "1m", limit=1)
                    if bars and self._candle is None:
                        self._candle = bars[-1]
                    ticks = feed.ticks([self.symbol])
                    async with contextlib.aclosing(ticks):  # type: ignore[type-var]
                        async for tick in ticks:
                            if self.status != "live":
                                self._set_status("live")
                            attempt = 0
                            self._on_tick(tick)
                    return  # the feed ended (closed): nothing more will come
                except MarketDataError as exc:
                    log.warning("gateway upstream %s dropped: %s", self.symbol, exc)
                except OSError as exc:
                    log.warning("gateway upstream %s dropped: %r", self.symbol, exc)
                self._set_status("reconnecting")
                await asyncio.sleep(self._gateway.backoff.delay(attempt))
                attempt += 1
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            self.status = "reconnecting"

    async def _flush_candles(self) -> None:
        """Send the forming bar when trades changed it but none came after the interval to carry it."""
        interval = self._gateway.limits.candle_interval_s
        while True:
            await asyncio.sleep(interval)
            if self._candle is not None and self._candle_dirty:
                self._publish_candle(self._candle, closed=False)

    async def aclose(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class MarketGateway:
    """The shared market channels over `feed`. An async context manager; `aclose` stops every pump."""

    def __init__(
        self,
        feed: MarketFeed,
        *,
        limits: GatewayLimits | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feed = feed
        self.limits = limits or GatewayLimits()
        self.backoff = backoff or Backoff(initial_s=0.5, max_s=15.0)
        self.clock = clock
        # Names this gateway's life: seqs from another life (a restart, another instance) cannot resume.
        self.epoch = secrets.token_hex(6)
        self._channels: dict[str, _Channel] = {}
        self._groups: dict[tuple[frozenset[str], frozenset[str], bool], _Group] = {}
        self._pending: list[tuple[_Channel, int, str, bool]] = []  # published, not yet flushed, in order
        self._flush_at: asyncio.TimerHandle | None = None
        self._next_flush_s = 0.0  # loop time before which no flush starts (see `_flush`)
        self._streams: dict[str, int] = {}
        self._group_of: dict[Subscriber, _Group] = {}
        self._markets: dict[str, dict[str, object]] | None = None

    async def __aenter__(self) -> MarketGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            await channel.aclose()

    async def markets(self) -> dict[str, dict[str, object]]:
        if self._markets is None:
            self._markets = await self.feed.markets()
        return self._markets

    async def check_symbols(self, symbols: Iterable[str]) -> list[str]:
        """`symbols` without repeats; `UnknownSymbol` (with a trader's sentence) for one the market lacks."""
        chosen = list(dict.fromkeys(s.strip() for s in symbols if s.strip()))
        markets = await self.markets()
        for symbol in chosen:
            if symbol not in markets:
                raise UnknownSymbol(f"{symbol} is not traded on this market ({self.feed.mode}).")
        return chosen

    def status(self, symbol: str) -> str:
        channel = self._channels.get(symbol)
        return channel.status if channel is not None and channel.full | channel.watch else "idle"

    def seq(self, symbol: str) -> int:
        channel = self._channels.get(symbol)
        return channel.seq if channel is not None else 0

    def open_stream(
        self, uid: str, *, full: list[str], watch: list[str], since: dict[str, int], epoch: str | None,
        lines: bool = True,
    ) -> Subscriber:
        """A subscriber for `uid` on `full` (every frame) and `watch` (candles and status only); `lines`:
        its messages carry every frame of a flush, one a line (else one frame a message).

        `since` resumes each full symbol after that seq if `epoch` is this gateway's; otherwise a symbol
        named in `since` gets a reset first. Raises `TooManyStreams` past the per-user limit.
        """
        if self._streams.get(uid, 0) >= self.limits.max_streams_per_user:
            raise TooManyStreams(
                f"Too many market streams open for this account (at most {self.limits.max_streams_per_user}); "
                "close another device or tab and try again."
            )
        self._streams[uid] = self._streams.get(uid, 0) + 1
        sub = Subscriber(uid, limit=self.limits.client_queue, lines=lines)
        resuming = epoch == self.epoch
        for symbol in full:
            start = since.get(symbol)
            # A seq from another epoch means nothing here: -1 is below every channel's base, so a reset.
            self._channel(symbol).join(sub, full=True, since=(start if resuming else -1) if start is not None
                                       else None)
        for symbol in watch:
            if symbol not in full:
                self._channel(symbol).join(sub, full=False, since=None)
        # First frame: where each symbol's frames start, so a client that receives none can still resume.
        sub.put_first(_encode({"type": "hello", "epoch": self.epoch, "market": self.feed.mode,
                               "seq": sub.start_seq, "watch": watch}))
        key = (frozenset(full), frozenset(s for s in watch if s not in full), lines)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key[0], key[1], lines=lines)
        group.members.add(sub)
        self._group_of[sub] = group
        return sub

    def close_stream(self, sub: Subscriber) -> None:
        group = self._group_of.pop(sub, None)
        if group is not None:
            group.members.discard(sub)
            if not group.members:
                self._groups.pop((group.full, group.watch, group.lines), None)
        for channel in self._channels.values():
            if sub in channel.full or sub in channel.watch:
                channel.leave(sub)
        left = self._streams.get(sub.uid, 0) - 1
        if left > 0:
            self._streams[sub.uid] = left
        else:
            self._streams.pop(sub.uid, None)

    # -- the shared flush ----------------------------------------------------------------------------
    def pend(self, channel: _Channel, seq: int, frame: str, *, to_watchers: bool) -> None:
        """`frame` (seq `seq` of `channel`) goes out with the next flush: at most one per `flush_s`, so a
        flush that runs late carries more frames rather than queueing more flushes."""
        self._pending.append((channel, seq, frame, to_watchers))
        if self._flush_at is None:
            loop = asyncio.get_running_loop()
            self._flush_at = loop.call_later(max(0.0, self._next_flush_s - loop.time()), self._flush)

    def _flush(self) -> None:
        """Every pending frame to every group that asked for its symbol, in publication order."""
        loop = asyncio.get_running_loop()
        self._flush_at = None
        started = loop.time()
        self._write_pending()
        ended = loop.time()
        # The next flush starts `flush_s` after this one started or, when this one took long (many clients, or
        # a process starved of CPU), twice its length after it ended: the fan-out keeps to a bounded share of
        # the loop, the pumps and new connections keep the rest, and each later flush carries more lines
        # instead of the loop falling further behind with a flush every `flush_s`.
        self._next_flush_s = max(started + self.limits.flush_s, ended + 2 * (ended - started))

    def _write_pending(self) -> None:
        pending, self._pending = self._pending, []
        for channel, seq, _, _ in pending:
            channel.sent = seq
        for group in list(self._groups.values()):
            full, watch = group.full, group.watch
            frames = [frame for channel, _, frame, to_watchers in pending
                      if channel.symbol in full or (to_watchers and channel.symbol in watch)]
            if frames:
                group.send(frames)

    def _channel(self, symbol: str) -> _Channel:
        channel = self._channels.get(symbol)
        if channel is None:
            channel = self._channels[symbol] = _Channel(self, symbol)
        return channel
