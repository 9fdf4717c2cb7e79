"""`SlowLink`: a loopback TCP proxy that can turn into a slow network link, for `bench/ui_latency.py --link`.

Every connection to its port is relayed to the target port. Once `throttle(kb_per_s, delay_ms)` is called,
bytes from the server to the browser leave at most `kb_per_s` kilobytes a second and arrive `delay_ms` after
they left (bytes the other way only take the delay): a phone on a slow cellular link. What cannot leave yet
waits in the proxy's buffer, which is as deep as the link's (a cellular link's buffers hold seconds), so a
server that sends faster than the link carries sees its messages arrive later and later. `throttle(None)`
makes it a plain relay again (the page and its assets load through it unthrottled)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class SlowLink:
    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._rate: float | None = None  # bytes a second, server → browser (None: no limit)
        self._delay_s = 0.0
        self.port = 0
        self.queued_max = 0  # the most bytes waiting for the link at once, since the last throttle()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-link", daemon=True)

    def start(self) -> SlowLink:
        self._thread.start()
        self._ready.wait(10)
        return self

    def throttle(self, kb_per_s: float | None, delay_ms: float = 0.0) -> None:
        def apply() -> None:
            self._rate = None if kb_per_s is None else kb_per_s * 1024
            self._delay_s = delay_ms / 1000
            self.queued_max = 0
        self._loop.call_soon_threadsafe(apply)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _relay(self, browser_r: asyncio.StreamReader, browser_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            browser_w.close()
            return
        down = asyncio.ensure_future(self._pump(server_r, browser_w, limited=True))
        up = asyncio.ensure_future(self._pump(browser_r, server_w, limited=False))
        await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        for task in (down, up):
            task.cancel()
        for writer in (browser_w, server_w):
            with contextlib.suppress(Exception):
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, limited: bool) -> None:
        """Read as fast as the sender sends; deliver each chunk when the link has carried it."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        waiting = [0]  # bytes read and not yet delivered

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                at, data = item
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                writer.write(data)
                await writer.drain()
                waiting[0] -= len(data)

        delivering = asyncio.ensure_future(deliver())
        free_at = 0.0  # when the link has carried everything read so far
        try:
            while data := await reader.read(65536):
                now = time.monotonic()
                rate = self._rate if limited else None
                free_at = max(now, free_at) + (len(data) / rate if rate else 0.0)
                waiting[0] += len(data)
                if limited:
                    self.queued_max = max(self.queued_max, waiting[0])
                queue.put_nowait((free_at + self._delay_s, data))
            queue.put_nowait(None)
            await delivering
        finally:
            delivering.cancel()
