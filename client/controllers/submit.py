"""`RetrySafeSubmit`: one form sent to the backend (an order, a price alert) so that a retry never doubles it.

The idempotency key is fixed before the first attempt and kept while the outcome is unknown (the backend
could not be reached): pressing again resends the same key, and the backend answers with the first one's
result instead of making a second. A definite answer (accepted or refused) clears the key, so the next
press is a new order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from client.context import SessionContext
from services.api import ApiError, BackendUnreachable


class RetrySafeSubmit:
    """`edit` changes the form's draft in `AppState` (`edit_ticket`, `edit_alert_draft`); `key_field` names the
    draft's key (`client_order_id`, ...); `current` reads (submitting, key) from it; `promise` ends the retry
    hint ("the order will not be placed twice")."""

    def __init__(self, ctx: SessionContext, *, key_field: str, current: Callable[[], tuple[bool, str | None]],
                 edit: Callable[..., None], new_key: Callable[[], str], promise: str) -> None:
        self._ctx = ctx
        self._key_field = key_field
        self._current = current
        self._edit = edit
        self._new_key = new_key
        self._promise = promise

    @property
    def busy(self) -> bool:
        return self._current()[0]

    def submit(self, send: Callable[[str], Awaitable[dict[str, Any]]], *, sent: Callable[[dict[str, Any]], None],
               refused: Callable[[ApiError], None] | None = None) -> None:
        """Send with the draft's key (a new one if it has none); `sent` gets the backend's document,
        `refused` the error of a definite no. A press while one is in flight does nothing."""
        if self.busy:
            return  # a double tap is one submission
        key = self._current()[1] or self._new_key()
        self._edit(submitting=True, error=None, **{self._key_field: key})
        self._ctx.spawn(self._send(send, key, sent, refused), name=f"submit-{self._key_field}")

    async def _send(self, send: Callable[[str], Awaitable[dict[str, Any]]], key: str,
                    sent: Callable[[dict[str, Any]], None], refused: Callable[[ApiError], None] | None) -> None:
        try:
            document = await send(key)
        except BackendUnreachable as exc:
            self._edit(submitting=False, error=f"{exc.message}. Press again to retry: {self._promise}.")
            return
        except ApiError as exc:
            self._edit(submitting=False, error=exc.message, **{self._key_field: None})
            if refused is not None:
                refused(exc)
            return
        self._edit(submitting=False, **{self._key_field: None})
        sent(document)
