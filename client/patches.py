"""`PatchSender`: a repaint's changed controls sent to the client in one Flet message, not one each.

Flet 1.0.5 sends one PATCH_CONTROL message per `update(control)`: a desk repaint at 50 symbols × 20 trades/s
patched ~38 controls (a watchlist row's node and each of its changed texts) and sent ~38 messages, each one
encoded, queued, framed and compressed on the server and decoded on the client. A patch message names a root
control and paths below it (`flet/controls/object_patch.py`; the client walks each path from the root and
notifies only the control at its end, as it does for a parent's patch reaching into its children), so the
same operations fit in one message rooted at a common ancestor: here each control is diffed by Flet's own
`ObjectPatch.from_diff`, its paths prefixed with where it sits under the root, and the operations of all of
them go out together. What the client ends up with is what the per-control messages gave it.

A diff that adds or removes controls is sent at once (with what was gathered before it), so the session's
control index is kept as `Session.patch_control` keeps it and Flet's encoder takes the new controls'
snapshots before the next diff reads them. One that carries values other than plain ones (a style, a canvas
shape's paint or path) is sent before the next diff, for the same snapshots, but not before the plain
controls that follow it (texts, isolated nodes: their patch reads only their own snapshots), so the chart's
live layer and the legends and rows after it go in one message. A control outside the root (a dialog, a sheet)
goes through Flet's own `update`."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, NamedTuple

import flet as ft
from flet.controls.object_patch import ObjectPatch, Operation
from flet.messaging.protocol import Message, MessageAction, PatchControlBody

Path = list[str | int]
_PLAIN = (str, int, float, bool, type(None), enum.Enum)
_NOT_CHILDREN = frozenset({"_i", "_c", "_internals"})


class PatchSender:
    """Sends controls' pending changes to `page`'s client, in as few messages as it can: one per call when
    every change is to plain values of controls under `root`. Keeps where each control sits under `root`
    (checked on every use, found again when the tree moved). A control that is not on the page (a phone's
    ticket while its sheet is shut) is left with its changes, for when it is shown."""

    def __init__(self, page: ft.Page, root: ft.Control) -> None:
        self._page = page
        self._root = root
        self._paths: dict[int, Path] = {}  # control id → its path under the root, as last found
        self.messages = 0  # what it sent (the bench's and the tests' count)

    def send(self, controls: Iterable[ft.Control]) -> None:
        session = self._page.session
        if not _mounted(self._root):
            return
        ops: list[dict[str, Any] | Replaces] = []
        added: list[Any] = []
        removed: list[Any] = []
        seen: set[int] = set()
        unpacked = False  # gathered ops hold values (a style, a paint) whose snapshots Flet's encoder takes
        for control in controls:
            if control._i in seen:  # noqa: SLF001  (Flet's control id)
                continue
            seen.add(control._i)  # noqa: SLF001
            path = self._path(control)  # under the root, so on the page as the root is: no climb to the page
            if path is None:  # not under the root: Flet's own message, if it is on the page
                if not _mounted(control):
                    continue
                self._flush(session, ops, added, removed)
                unpacked = False
                self._page.update(control)
                self.messages += 1
                continue
            plain = _leaf_ops(control, path)
            if plain is not None:  # reads no snapshot but the control's own and its isolated children's
                ops += plain
                continue
            if unpacked:  # encoded now: this diff may read the snapshots their packing takes
                self._flush(session, ops, added, removed)
                unpacked = False
            patch, new, gone = ObjectPatch.from_diff(control, control, control_cls=ft.BaseControl, path=path)
            ops += patch.patch
            if new or gone:
                added += new
                removed += gone
                self._flush(session, ops, added, removed)  # encoded and indexed now, as `patch_control` does
            elif not all(_plain_deep(op.get("value")) for op in patch.patch):
                unpacked = True  # sent with what follows, unless a diff comes first
        self._flush(session, ops, added, removed)

    def _flush(self, session: Any, ops: list[dict[str, Any] | Replaces], added: list[Any], removed: list[Any]) -> None:
        """Send what was gathered as one message, then index and mount (unmount) as `patch_control` does."""
        if ops:
            message = Message(MessageAction.PATCH_CONTROL,
                              PatchControlBody(self._root._i, to_message(ops)))  # noqa: SLF001
            connection = session.connection
            if connection is not None:  # None: the client is away; it gets the whole page when it is back
                connection.send_message(message)
                self.messages += 1
        index = session.index
        for control in removed:
            index.pop(control._i, None)  # noqa: SLF001
        for control in added:
            index[control._i] = control  # noqa: SLF001
        added_ids = {c._i for c in added}  # noqa: SLF001
        removed_ids = {c._i for c in removed}  # noqa: SLF001
        for control in removed:
            if control._i not in added_ids:  # noqa: SLF001
                control.will_unmount()
        for control in added:
            if control._i not in removed_ids:  # noqa: SLF001
                control.did_mount()
        ops.clear()
        added.clear()
        removed.clear()

    def _path(self, control: ft.Control) -> Path | None:
        """Where `control` sits under the root (fields and list positions), or None if it is not under it."""
        known = self._paths.get(control._i)  # noqa: SLF001
        if known is not None and _follow(self._root, known) is control:
            return known
        path = _path_up(self._root, control)
        if path is None:
            self._paths.pop(control._i, None)  # noqa: SLF001
        else:
            self._paths[control._i] = path  # noqa: SLF001
        return path


def _leaf_ops(control: Any, path: Path) -> list[Replaces] | None:
    """Flet's diff of `control`, without the walk, where it would find nothing but plain values to send: the
    same replace operations, in the same order, for the properties set since it was last sent (Flet's
    `_dirty`), after the same `before_update` and validation. That is a control holding only plain values (a
    Text), or one whose children are isolated controls it still holds (a watchlist row's node and its box):
    Flet's diff sends such a child's own set properties and stops at its children, and so does this. None
    when the diff would have more to do (a list or a style to walk, a child replaced, an event handler
    changed): then Flet's diff runs. A watchlist text's diff took ~20 µs, most of it building a map of its ~70
    fields; a row node's (with its box) ~70 µs."""
    children = _children_unwalked(control, root=True)
    if children is None:
        return None
    reached = [(control, path), *((child, [*path, name]) for name, child in children)]
    for node, _ in reached:
        if node._dirty or _has_hook(type(node)):  # noqa: SLF001
            node._before_update_safe()  # noqa: SLF001  (as the diff does: the control's hook, then validation)
            if not _dirty_plain(node):
                return None  # the hook set something the diff must walk: Flet's diff (it runs the hook again)
        # else: nothing set since it was sent and validated, and no hook to set anything: validating the
        # same values again finds what it found then (a child box, reached with its row's node, mostly)
    ops = []
    for node, at in reached:
        dirty = node._dirty  # noqa: SLF001
        if dirty:
            values, defaults = node._values, type(node)._prop_defaults  # noqa: SLF001
            ops.append(Replaces(at, [(name, values.get(name, defaults[name])) for name in dirty]))
            dirty.clear()
    return ops


class Replaces(NamedTuple):
    """Replace operations on one control's properties, as Flet's diff gives them one by one (`as_ops`): the
    control's path is walked once for the message, not once per property."""

    at: Path
    props: list[tuple[str, Any]]


def as_ops(ops: Iterable[dict[str, Any] | Replaces]) -> list[dict[str, Any]]:
    """The operations as Flet's `ObjectPatch` holds them."""
    out: list[dict[str, Any]] = []
    for op in ops:
        if isinstance(op, Replaces):
            out += [{"op": "replace", "path": [*op.at, name], "value": value} for name, value in op.props]
        else:
            out.append(op)
    return out


_HOOKED: dict[type, bool] = {}


def _has_hook(cls: type) -> bool:
    """Whether `cls` has a `before_update` of its own (one that may set properties before a diff)."""
    hooked = _HOOKED.get(cls)
    if hooked is None:
        hooked = _HOOKED[cls] = cls.before_update is not ft.BaseControl.before_update  # type: ignore[attr-defined]
    return hooked


_STRUCTURAL: dict[type, tuple[str, ...]] = {}


def _structural(cls: Any) -> tuple[str, ...]:
    """`cls`'s structural fields (lists, dicts, dataclasses: no Prop) but the control's id and kind."""
    names = _STRUCTURAL.get(cls)
    if names is None:
        names = _STRUCTURAL[cls] = tuple(n for n in cls._structural_fields if n not in ("_i", "_c"))  # noqa: SLF001
    return names


def _children_unwalked(control: Any, *, root: bool) -> list[tuple[str, Any]] | None:
    """The isolated children of `control` whose own properties Flet's diff would send (for the diff's root),
    or [] (for such a child: the diff stops at its children); None where the diff has anything else to do.
    (Its properties set since the last diff are checked after `before_update`, by `_leaf_ops`.)"""
    if getattr(control, "__changes", None):
        return None
    lists = getattr(control, "__prev_lists", None) or {}
    dicts = getattr(control, "__prev_dicts", None) or {}
    for snapshot in (lists, dicts):  # lists and dicts as sent: the diff finds them equal
        for name, old in snapshot.items():
            new = getattr(control, name, None)
            if (old or new) and not (old == new and _plain_deep(new)):
                return None
    for name in _structural(type(control)):
        if name not in lists and name not in dicts and getattr(control, name, None):
            return None  # a value the diff has never sent (no snapshot): it restores it
    classes = getattr(control, "__prev_classes", None) or {}
    children = []
    for name, old in classes.items():
        if getattr(control, name, None) is not old:  # replaced since it was sent: Flet's diff sends the new one
            return None
        if root:
            if not (isinstance(old, ft.BaseControl) and old.is_isolated()):  # a style, a plain child: walked
                return None
            if _children_unwalked(old, root=False) is None:
                return None
            children.append((name, old))
    for name, value in control._values.items():  # noqa: SLF001  (Flet's set properties)
        if not isinstance(value, _PLAIN) and not name.startswith("on_") and classes.get(name) is not value:
            return None  # a value the diff has never sent (no snapshot); an unchanged handler it leaves alone
    return children


def _plain_deep(value: Any) -> bool:
    """Whether `value` is plain, or a list or dict of plain values (a control's `_internals`)."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain_deep(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_deep(v) for k, v in value.items())
    return False


def _dirty_plain(control: Any) -> bool:
    """Whether every property set since the last diff holds a plain value, and none is an event handler."""
    values = control._values  # noqa: SLF001
    return all(not name.startswith("on_") and isinstance(values.get(name), _PLAIN)
               for name in control._dirty)  # noqa: SLF001  (what Flet's property setter marked since then)


def to_message(ops: list[dict[str, Any] | Replaces]) -> list[Any]:
    """`ObjectPatch(ops).to_message()`, the same message (its path table numbered alike), with each distinct
    path to a changed control walked once rather than once per operation: a repaint's ~65 controls sit ~15
    levels deep, and Flet's walk per operation was a third of what sending a repaint cost."""
    table: list[Any] = [0]
    count = 1
    nodes: dict[tuple[Any, ...], list[Any]] = {(): table}

    def node_of(prefix: list[Any]) -> list[Any]:
        nonlocal count
        key = tuple(prefix)
        node = nodes.get(key)
        if node is None:
            node = table
            for part in prefix:  # as Flet's `encode_path` walks: the nodes numbered in the order it makes them
                if len(node) == 1:
                    node.append({})
                child = node[1].get(part)
                if child is None:
                    child = node[1][part] = [count]
                    count += 1
                node = child
            nodes[key] = node
        return node

    def at(path: list[Any]) -> list[Any]:
        return [0, 0] if not path else [node_of(path[:-1])[0], path[-1]]

    message: list[Any] = [table]
    for op in ops:
        if isinstance(op, Replaces):
            node = node_of(op.at)[0]
            message += [[Operation.Replace, node, name, value] for name, value in op.props]
            continue
        kind = op["op"]
        if kind == "replace":
            message.append([Operation.Replace, *at(op["path"]), op["value"]])
        elif kind == "add":
            message.append([Operation.Add, *at(op["path"]), op["value"]])
        elif kind == "remove":
            message.append([Operation.Remove, *at(op["path"])])
        elif kind == "move":
            message.append([Operation.Move, *at(op["from"]), *at(op["path"])])
        else:
            raise ValueError(f"unknown patch operation: {kind}")
    return message


def _mounted(control: ft.Control) -> bool:
    """Whether `control` is on the page now (Flet raises, rather than answers None, when it is not)."""
    try:
        return control.page is not None
    except RuntimeError:
        return False


def _follow(root: Any, path: Path) -> Any:
    """What is at `path` under `root` now (None where the path no longer leads)."""
    node = root
    for part in path:
        if isinstance(part, str):
            node = getattr(node, part, None)
        elif isinstance(node, list) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def _path_up(root: Any, control: Any) -> Path | None:
    """The path from `root` down to `control`, found by climbing its parents (None: not under `root`)."""
    path: Path = []
    node = control
    while node is not root:
        parent = node.parent
        if parent is None:
            return None
        step = _place(parent, node)
        if step is None:  # held inside a value object (a style, a segment list of another kind): not followed
            return None
        path[:0] = step
        node = parent
    return path


def _place(parent: Any, child: Any) -> Path | None:
    """The field (and list position) of `parent` that holds `child`."""
    fields = list(parent._values.items())  # noqa: SLF001  (Flet's set properties: content, label, ...)
    fields += [(name, getattr(parent, name, None)) for name in type(parent)._structural_fields  # noqa: SLF001
               if name not in _NOT_CHILDREN]
    for name, value in fields:
        if value is child:
            return [name]
        if isinstance(value, list):
            for i, item in enumerate(value):
                if item is child:
                    return [name, i]
    return None
