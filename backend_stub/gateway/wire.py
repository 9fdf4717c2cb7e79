"""Websocket messages framed once and written to many connections: the market stream's fan-out path.

A server's frames are not masked, so a message framed (and compressed) once is the same bytes for every
connection that negotiated the same permessage-deflate parameters. `GatewayWebSocketProtocol` (uvicorn's
websockets protocol, which `backend_stub.server.uvicorn_config` selects) declares that capability: it puts a
`FrameSink` for the connection in the ASGI scope's extensions under `SINK`, and the gateway writes framed
bytes through it without a Python coroutine per connection. Without the extension (another server) the
route sends through ASGI as before.

Compression keeps its ratio: a group's messages go through one deflate stream with context takeover, as a
connection's own compressor would. A connection that joined the group recently has other bytes in its
decoder's window, so until it has received a window's worth (`2**bits`) of the group's stream it gets the
same messages compressed on their own (`Encoding.fresh`), which any permessage-deflate decoder reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

SINK = "skeet.frame_sink"  # the ASGI scope extension's name


@dataclass(frozen=True, slots=True)
class Encoding:
    """How a connection's data messages are compressed: `bits` None is no permessage-deflate; `context`
    False: each message compressed on its own (the peer asked for server_no_context_takeover)."""

    bits: int | None = None
    context: bool = True

    @property
    def fresh(self) -> Encoding:
        return Encoding(self.bits, context=False)


PLAIN = Encoding()


class FrameSink:
    """One connection as the gateway writes to it: whole framed messages, never a partial frame."""

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def encoding(self) -> Encoding | None:
        """The negotiated compression (after the handshake); None if the connection has another extension
        whose framing these shared bytes would not match."""
        exts = self._protocol.conn.extensions
        if not exts:
            return PLAIN
        if len(exts) == 1 and isinstance(exts[0], PerMessageDeflate):
            ext = exts[0]
            return Encoding(ext.local_max_window_bits, context=not ext.local_no_context_takeover)
        return None

    def write(self, data: bytes) -> int | None:
        """Write `data` if the connection is still open; the bytes the transport then holds (written but
        not yet taken by the kernel: how far the client is behind), or None if it is closing."""
        p = self._protocol
        transport = p.transport
        # A close from the peer closes the transport at once (uvicorn answers it); ours sets close_sent.
        if p.close_sent or transport.is_closing():
            return None
        transport.write(data)
        return transport.get_write_buffer_size()


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol plus a `FrameSink` in every websocket scope's extensions."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            scope["extensions"][SINK] = FrameSink(self)  # the app's task has not started yet


class GroupEncoder:
    """One group's outgoing messages, framed once per encoding among its connections.

    `encode(messages, encodings)` is called for every message batch the group sends, in order, so the
    deflate stream with context (one per window size) sees exactly what every connection of the group got.
    """

    def __init__(self, compress_settings: dict[str, Any] | None = None) -> None:
        self._settings = compress_settings or {"memLevel": 5}
        self._streams: dict[int, PerMessageDeflate] = {}

    def encode(self, messages: Sequence[str], encodings: set[Encoding]) -> dict[Encoding, bytes]:
        """`messages` (text) framed for each of `encodings`; bytes of the context streams are produced
        for every window size present, fresh or not, to keep those streams whole."""
        raw = [m.encode() for m in messages]
        out: dict[Encoding, bytes] = {}
        bits_seen = {e.bits for e in encodings if e.bits is not None}
        for bits in bits_seen:
            stream = self._streams.get(bits)
            if stream is None:
                stream = self._streams[bits] = self._deflate(bits, context=True)
            out[Encoding(bits)] = b"".join(
                Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[stream]) for data in raw)
            if Encoding(bits, context=False) in encodings:
                out[Encoding(bits, context=False)] = b"".join(
                    Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[self._deflate(bits, context=False)])
                    for data in raw)
        for bits in list(self._streams):
            if bits not in bits_seen:
                del self._streams[bits]  # nobody left who follows that stream: a newcomer starts afresh
        if PLAIN in encodings:
            out[PLAIN] = b"".join(Frame(Opcode.TEXT, data).serialize(mask=False) for data in raw)
        return out

    def _deflate(self, bits: int, *, context: bool) -> PerMessageDeflate:
        # Only the local (server → client) side is used: no decoder.
        return PerMessageDeflate(True, not context, bits, bits, dict(self._settings))


def window_bytes(encoding: Encoding) -> int:
    """Bytes of a group's stream a connection must receive before it can read the context stream."""
    return 0 if encoding.bits is None else 1 << encoding.bits


