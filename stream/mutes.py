"""Muting alerts of a model, a feature or a rule for a while, kept in Redis.

A mute is a hash field ``<rule>|<feature>`` of ``P:{m:<model>}:mute`` (``*``
matches any rule or feature, so ``*|*`` mutes the whole model) holding its
expiry in epoch seconds. A muted alert still advances its lifecycle; only its
events are held back (see :mod:`alerting.lifecycle`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.keys import Keys, quote_name, unquote_name

__all__ = ["MuteStore"]

ANY = "*"


def _field(rule: str | None, feature: str | None) -> str:
    return f"{rule or ANY}|{ANY if feature is None else quote_name(feature)}"


class MuteStore:
    """Set, list and check mutes (``now`` is passed in: no clock is read here)."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def mute(
        self, model: str, until: float, feature: str | None = None, rule: str | None = None
    ) -> None:
        """Mute ``model`` (or one feature / rule of it) until ``until``."""
        self.client.hset(self.keys.mutes(model), _field(rule, feature), repr(float(until)))

    def unmute(self, model: str, feature: str | None = None, rule: str | None = None) -> bool:
        """Remove a mute; ``True`` if there was one."""
        return bool(self.client.hdel(self.keys.mutes(model), _field(rule, feature)))

    def active(self, model: str, now: float) -> dict[tuple[str | None, str | None], float]:
        """``(rule, feature) -> expiry`` of the mutes still running (``None`` = any)."""
        out: dict[tuple[str | None, str | None], float] = {}
        expired = []
        for raw_key, raw_until in self.client.hgetall(self.keys.mutes(model)).items():
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            until = float(raw_until)
            if until <= now:
                expired.append(key)
                continue
            rule, _, feature = key.partition("|")
            out[
                (None if rule == ANY else rule, None if feature == ANY else unquote_name(feature))
            ] = until
        if expired:
            self.client.hdel(self.keys.mutes(model), *expired)
        return out

    def matcher(self, model: str, now: float) -> Callable[[tuple[str, str | None]], bool]:
        """A predicate telling whether a ``(rule, feature)`` pair is muted now."""
        mutes = self.active(model, now)

        def muted(pair: tuple[str, str | None]) -> bool:
            rule, feature = pair
            return any((r is None or r == rule) and (f is None or f == feature) for r, f in mutes)

        return muted
