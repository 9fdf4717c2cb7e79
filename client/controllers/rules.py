"""`RulesController`: the trader's signal rules — loaded from the rule book into the engine, added, switched
on and off, deleted — and the state the rules editor shows."""

from __future__ import annotations

from typing import Any

from client.context import SessionContext
from services.api import new_client_order_id
from services.signals import Rule
from services.signals.errors import SignalsError


class RulesController:
    def __init__(self, ctx: SessionContext) -> None:
        self._ctx = ctx

    def load(self) -> None:
        """At start: the rule book's rules into the engine (without a book, the engine's own)."""
        state, book, engine = self._ctx.state, self._ctx.services.rulebook, self._ctx.services.engine
        state.indicator_keys = tuple(engine.keys())
        if book is not None:
            engine.set_rules(book.rules)
        state.set_rules(list(engine.rules))

    def save(self, fields: dict[str, Any]) -> None:
        state, book = self._ctx.state, self._ctx.services.rulebook
        if book is None:
            return
        name = str(fields.get("name") or "").strip()
        if not name:
            state.set_rules(book.rules, error="Give the rule a name")
            return
        rule_id = _slug(name)
        while rule_id in book:
            rule_id = _slug(name) + "-" + new_client_order_id()[-4:]
        try:
            book.add(Rule.from_dict({**fields, "name": name, "id": rule_id}))
        except (SignalsError, ValueError, TypeError, KeyError) as exc:
            state.set_rules(book.rules, error=str(exc))
            return
        self._apply()
        state.rule_saved += 1
        state.notify(f"Rule “{name}” added", "success")

    def toggle(self, rule_id: str, enabled: bool) -> None:
        book = self._ctx.services.rulebook
        if book:
            (book.enable if enabled else book.disable)(rule_id)
            self._apply()

    def delete(self, rule_id: str) -> None:
        book = self._ctx.services.rulebook
        if book:
            book.delete(rule_id)
            self._apply()

    def _apply(self) -> None:
        book = self._ctx.services.rulebook
        if book is not None:
            self._ctx.services.engine.set_rules(book.rules)
            self._ctx.state.set_rules(book.rules)


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())[:40] or "rule"
