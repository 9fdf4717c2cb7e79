"""Errors raised by the signal engine: one small hierarchy a caller can catch precisely."""

from __future__ import annotations

from pathlib import Path


class SignalsError(Exception):
    """Base of every error `services.signals` raises; the message is written for a trader."""


class RuleError(SignalsError, ValueError):
    """A rule (or rule dict) is malformed: unknown operator, bad operand, wrong direction..."""


class RuleNotFound(SignalsError, KeyError):
    """No rule with that id in the rule book."""

    def __str__(self) -> str:  # KeyError would quote the message; we want it readable
        return str(self.args[0]) if self.args else "rule not found"


class RuleBookCorrupt(SignalsError):
    """The rules file could not be read; it was moved aside (never deleted) to `moved_to`."""

    def __init__(self, path: Path, moved_to: Path, reason: str) -> None:
        super().__init__(
            f"Saved rules in {path} could not be read ({reason}); the file was kept as {moved_to} "
            f"and the rule book starts empty."
        )
        self.path = path
        self.moved_to = moved_to
        self.reason = reason
