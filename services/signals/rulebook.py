"""`RuleBook`: the user's rules persisted in a JSON file, surviving restarts and crashes.

Every change is written atomically (temp file in the same directory, fsync, os.replace), so a
crash leaves either the old file or the new one. A file that cannot be read is moved aside to
`<name>.corrupt-<timestamp>` and reported with `RuleBookCorrupt`, never silently dropped. A rule an
earlier version saved that names an operand that does not exist (`rsi_14 is above banana`) is set
aside alone in `<name>.refused-<timestamp>` with the reason, listed in `RuleBook.refused`; the
others load.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from services.signals.errors import RuleBookCorrupt, RuleError, RuleNotFound
from services.signals.operands import OperandError
from services.signals.rules import Rule

_FORMAT_VERSION = 1


class RuleBook:
    """Rules by id, in the order they were added; each mutation saves the file.

    `RuleBook(path, defaults=...)` loads `path`; a missing file starts from `defaults` (not
    written until the first change). A corrupt file raises `RuleBookCorrupt` after moving it
    aside; constructing the book again then starts from `defaults`.
    """

    def __init__(self, path: str | os.PathLike[str], *, defaults: Iterable[Rule] = ()) -> None:
        self.path = Path(path)
        self._rules: dict[str, Rule] = {}
        # (rule id, reason) of saved rules refused on load, and the file they were kept in.
        self.refused: list[tuple[str, str]] = []
        self.refused_to: Path | None = None
        if self.path.exists():
            self._rules = self._load()
        else:
            for rule in defaults:
                self._rules[rule.id] = rule

    # -- reading ------------------------------------------------------------------------------
    @property
    def rules(self) -> list[Rule]:
        return list(self._rules.values())

    def get(self, rule_id: str) -> Rule:
        try:
            return self._rules[rule_id]
        except KeyError:
            raise RuleNotFound(f"no rule with id {rule_id!r}") from None

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def __len__(self) -> int:
        return len(self._rules)

    # -- changes (each one saved) ---------------------------------------------------------------
    def add(self, rule: Rule) -> Rule:
        if rule.id in self._rules:
            raise RuleError(f"a rule with id {rule.id!r} already exists")
        self._commit({**self._rules, rule.id: rule})
        return rule

    def edit(self, rule_id: str, **changes: Any) -> Rule:
        """Change fields of a rule (`name=`, `when=`, `cooldown_ms=`...); the id cannot change."""
        if "id" in changes and changes["id"] != rule_id:
            raise RuleError("a rule's id cannot be changed; delete it and add a new one")
        rule = self.get(rule_id).with_changes(**changes)
        self._commit({**self._rules, rule_id: rule})
        return rule

    def replace(self, rule: Rule) -> Rule:
        self.get(rule.id)
        self._commit({**self._rules, rule.id: rule})
        return rule

    def enable(self, rule_id: str) -> Rule:
        return self.edit(rule_id, enabled=True)

    def disable(self, rule_id: str) -> Rule:
        return self.edit(rule_id, enabled=False)

    def delete(self, rule_id: str) -> None:
        self.get(rule_id)
        self._commit({k: v for k, v in self._rules.items() if k != rule_id})

    def save(self) -> None:
        """Write the current rules (e.g. to persist the defaults of a fresh install)."""
        self._write(self._rules)

    # -- file -------------------------------------------------------------------------------------
    def _commit(self, rules: dict[str, Rule]) -> None:
        self._write(rules)  # file first: if it fails, memory still matches the disk
        self._rules = rules

    def _write(self, rules: dict[str, Rule]) -> None:
        doc = {"version": _FORMAT_VERSION, "rules": [r.to_dict() for r in rules.values()]}
        _write_atomically(self.path, json.dumps(doc, indent=2, allow_nan=False).encode())

    def _load(self) -> dict[str, Rule]:
        try:
            doc = json.loads(self.path.read_bytes())
            if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
                raise ValueError("expected an object with a 'rules' list")
            if doc.get("version") != _FORMAT_VERSION:
                raise ValueError(f"unsupported format version {doc.get('version')!r}")
            rules: dict[str, Rule] = {}
            refused: list[tuple[Any, str]] = []
            for d in doc["rules"]:
                try:
                    rule = Rule.from_dict(d)
                except OperandError as exc:  # well-formed, but names what does not exist
                    refused.append((d, str(exc)))
                    continue
                if rule.id in rules:
                    raise ValueError(f"duplicate rule id {rule.id!r}")
                rules[rule.id] = rule
            if refused:
                self._set_aside(refused)
            return rules
        except (ValueError, RuleError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            moved_to = self._move_aside()
            raise RuleBookCorrupt(self.path, moved_to, str(exc)) from exc

    def _set_aside(self, refused: list[tuple[Any, str]]) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.refused-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.refused-{stamp}-{n}")
            n += 1
        doc = {"version": _FORMAT_VERSION, "refused": [{"rule": d, "reason": why} for d, why in refused]}
        _write_atomically(target, json.dumps(doc, indent=2).encode())
        self.refused = [(str(d.get("id")) if isinstance(d, dict) else "?", why) for d, why in refused]
        self.refused_to = target

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():  # two corruptions in the same second keep both files
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        os.replace(self.path, target)
        return target


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, os.replace: the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
