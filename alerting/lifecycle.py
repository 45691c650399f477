"""The alert lifecycle: when a breaching condition fires, repeats and resolves.

A *pair* is ``(rule, feature)`` of one model (``feature`` is ``None`` for
model-level rules). Each window, every pair either breaches its rule or not;
:func:`advance` turns that into events, with hysteresis so that a condition
flapping around its threshold does not page anyone every other window:

* a pair **fires** after ``for_windows`` consecutive breaching windows;
* while it keeps breaching, the firing event is **repeated** every
  ``repeat_every`` windows (``1``: every window; ``0``: never repeated);
* it **resolves** after ``resolve_after`` consecutive clean windows (one
  ``resolved`` event); a breach in between resets that count;
* a **muted** pair advances its state as usual but emits nothing; its state
  is kept, so an alert that was firing before the mute resolves (or keeps
  firing) normally once the mute expires.

The state is small and JSON-ready (:meth:`PairState.to_list`): the window
closer stores it with each window's result and hands it to the next window.

Example:
    >>> lc = Lifecycle(for_windows=2, resolve_after=2)
    >>> state, out = {}, []
    >>> for breaching in [{"d"}, {"d"}, {"d"}, set(), {"d"}, set(), set()]:
    ...     state, events = advance(state, {(k, None) for k in breaching}, lc)
    ...     out.append([s for _, s in events])
    >>> out
    [[], ['firing'], ['firing'], [], ['firing'], [], ['resolved']]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DEFAULT_LIFECYCLE",
    "Lifecycle",
    "Pair",
    "PairState",
    "advance",
    "dump_state",
    "load_state",
]

Pair = tuple[str, str | None]
Emit = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Lifecycle:
    """Hysteresis settings (see the module docstring)."""

    for_windows: int = 1
    resolve_after: int = 1
    repeat_every: int = 1

    def __post_init__(self) -> None:
        for name in ("for_windows", "resolve_after"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.repeat_every, int) and self.repeat_every >= 0):
            raise ValueError(f"repeat_every must be an integer >= 0, got {self.repeat_every!r}")


DEFAULT_LIFECYCLE = Lifecycle()


@dataclass
class PairState:
    """Where one pair stands: consecutive breaches and clean windows, firing or not."""

    breaches: int = 0
    clean: int = 0
    firing: bool = False
    since_sent: int = 0

    def to_list(self) -> list[int]:
        return [self.breaches, self.clean, int(self.firing), self.since_sent]

    @classmethod
    def from_list(cls, raw: Iterable[Any]) -> PairState:
        b, c, f, s = (int(x) for x in raw)
        return cls(b, c, bool(f), s)


def advance(
    state: Mapping[Pair, PairState],
    breaching: Iterable[Pair],
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
    muted: Callable[[Pair], bool] = lambda pair: False,
) -> tuple[dict[Pair, PairState], list[tuple[Pair, Emit]]]:
    """One window: the new state and the ``(pair, "firing" | "resolved")`` to emit.

    Pairs neither breaching nor firing are dropped from the state. Events come
    in a stable order: firing ones, then resolved ones, each sorted by pair.
    """
    now = set(breaching)
    new: dict[Pair, PairState] = {}
    fired: list[Pair] = []
    resolved: list[Pair] = []
    for pair in sorted(set(state) | now, key=lambda p: (p[0], p[1] or "")):
        old = state.get(pair) or PairState()
        st = PairState(old.breaches, old.clean, old.firing, old.since_sent)
        if pair in now:
            st.breaches += 1
            st.clean = 0
            if not st.firing and st.breaches >= lifecycle.for_windows:
                st.firing, st.since_sent = True, 0
                fired.append(pair)
            elif st.firing:
                st.since_sent += 1
                if lifecycle.repeat_every and st.since_sent >= lifecycle.repeat_every:
                    st.since_sent = 0
                    fired.append(pair)
        else:
            st.breaches = 0
            if st.firing:
                st.clean += 1
                if st.clean >= lifecycle.resolve_after:
                    st.firing, st.clean = False, 0
                    resolved.append(pair)
        if st.firing or st.breaches:
            new[pair] = st
    events: list[tuple[Pair, Emit]] = [(p, "firing") for p in fired if not muted(p)]
    events += [(p, "resolved") for p in resolved if not muted(p)]
    return new, events


def dump_state(state: Mapping[Pair, PairState]) -> list[list[Any]]:
    """JSON-ready form: ``[[rule, feature, breaches, clean, firing, since_sent], ...]``."""
    return [[rule, feature, *st.to_list()] for (rule, feature), st in state.items()]


def load_state(raw: Iterable[Any]) -> dict[Pair, PairState]:
    """Inverse of :func:`dump_state`; malformed entries are skipped."""
    out: dict[Pair, PairState] = {}
    for row in raw or []:
        try:
            rule, feature, *rest = row
            out[(str(rule), None if feature is None else str(feature))] = PairState.from_list(rest)
        except (TypeError, ValueError):
            continue
    return out
