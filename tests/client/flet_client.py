"""What a Flet client holds, built from what a session sends it: each message encoded as the web server
encodes it (msgpack, Flet's encoder, which also takes the snapshots the next diff reads), decoded, and
applied as Flet's Dart client applies it (`Control.applyPatch` in packages/flet/lib/src/models/control.dart:
a patch names a control, a table of paths below it, and operations on the objects at those paths; the
control nearest the end of a path is the one notified). Tests read the screen's texts from it."""

from __future__ import annotations

import asyncio
from typing import Any

import flet as ft
import msgpack
from flet.messaging.connection import Connection
from flet.messaging.protocol import MessageAction, configure_encode_object_for_msgpack
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

ENCODE = configure_encode_object_for_msgpack(ft.BaseControl)
REPLACE, ADD, REMOVE, MOVE = 0, 1, 2, 3


def wire(obj: Any) -> Any:
    """`obj` as the client decodes it."""
    return msgpack.unpackb(msgpack.packb(obj, default=ENCODE), raw=False, strict_map_key=False)


class ClientTree:
    """The client's controls (dicts with `_i` and `_c`, as decoded), by id."""

    def __init__(self, page: dict[str, Any]) -> None:
        self.controls: dict[int, dict[str, Any]] = {}
        self._index(page)

    def _index(self, value: Any) -> None:
        if isinstance(value, dict):
            if "_c" in value and "_i" in value:
                self.controls[value["_i"]] = value
            for v in value.values():
                self._index(v)
        elif isinstance(value, list):
            for v in value:
                self._index(v)

    def apply(self, control_id: int, patch: list[Any]) -> tuple[set[int], set[int]]:
        """Apply one PATCH_CONTROL body; returns the ids of the controls it notified (each path's last) and
        of every control its paths went through (the root, the panels, ... down to those)."""
        paths: dict[int, list[Any]] = {}

        def table(node: list[Any], path: list[Any]) -> None:
            paths[node[0]] = path
            if len(node) > 1 and isinstance(node[1], dict):
                for key, child in node[1].items():
                    table(child, [*path, key])

        table(patch[0], [])
        root = self.controls[control_id]

        reached: set[int] = {control_id}

        def target(index: int) -> tuple[Any, int]:
            obj: Any = root
            control = root
            for part in paths[index]:
                obj = obj[part]
                if isinstance(obj, dict) and "_c" in obj:
                    control = obj
                    reached.add(obj["_i"])
            return obj, control["_i"]

        notified: set[int] = set()
        for op in patch[1:]:
            kind = op[0]
            if kind == MOVE:
                (src, src_id), (dst, dst_id) = target(op[1]), target(op[3])
                item = src.pop(op[2])
                if isinstance(dst, list):
                    dst.insert(op[4], item)
                else:
                    dst[op[4]] = item
                notified |= {src_id, dst_id}
                continue
            obj, owner = target(op[1])
            if kind == REPLACE:
                obj[op[2]] = op[3]
                self._index(op[3])
            elif kind == ADD:
                if isinstance(obj, list):
                    obj.insert(op[2], op[3])
                else:
                    obj[op[2]] = op[3]
                self._index(op[3])
            elif kind == REMOVE:
                obj.pop(op[2])
            else:
                raise AssertionError(f"unknown patch operation {op!r}")
            notified.add(owner)
        return notified, reached


class AnsweringConnection(Connection):
    """A connection whose client answers the session's method calls as Flet's Dart client answers them,
    after the messages sent before them (`_onInvokeMethod`): `get_capture` of a canvas with nothing
    captured is null (the session's repaints wait for that answer); any other call is an error, as for a
    control whose widget has no such method. Set `session` to the `Session` on this connection."""

    def __init__(self) -> None:
        super().__init__()
        self.session: Session | None = None
        self.calls: list[str] = []

    def send_message(self, message: Any) -> None:
        if message.action != MessageAction.INVOKE_METHOD or self.session is None:
            return
        body = message.body
        self.calls.append(body.name)
        error = None if body.name == "get_capture" else f"Unknown method: {body.name}"
        asyncio.get_running_loop().call_soon(
            self.session.handle_invoke_method_results, body.control_id, body.call_id, None, error)


class ClientConnection(AnsweringConnection):
    """A connection with a client at its end: every message encoded and decoded as on the wire; patches
    applied to `tree` once the page is registered (`register`); `patches` counts the PATCH_CONTROL messages,
    `notified` holds the controls each one notified and `reached` those its paths went through, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tree: ClientTree | None = None
        self.patches = 0
        self.notified: list[set[int]] = []
        self.reached: list[set[int]] = []

    def register(self, page_patch: Any) -> None:
        """What a client's registration gets: the page as it is (`Session.get_page_patch()`)."""
        self.tree = ClientTree(wire(page_patch))

    def send_message(self, message: Any) -> None:
        super().send_message(message)
        action, body = wire([message.action, message.body])
        if action == MessageAction.PATCH_CONTROL.value:
            self.patches += 1
            assert self.tree is not None, "a patch before the page was registered"
            notified, reached = self.tree.apply(body["id"], body["patch"])
            self.notified.append(notified)
            self.reached.append(reached)

    def text(self, control: ft.Control) -> Any:
        """A control's `value` as the client shows it."""
        assert self.tree is not None
        return self.tree.controls[control._i].get("value")  # noqa: SLF001  (Flet's control id)


def connected_session() -> tuple[ClientConnection, Session]:
    """A Flet session on a `ClientConnection` whose client has registered the page. Keep the session: the
    page holds it weakly."""
    conn = ClientConnection()
    conn.pubsubhub = PubSubHub()
    session = Session(conn)
    conn.session = session
    conn.register(session.get_page_patch())
    return conn, session
