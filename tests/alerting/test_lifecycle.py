"""The alert lifecycle: for, resolve_after, repeat, mute, and the stored state."""

from __future__ import annotations

import orjson
import pytest

from alerting.lifecycle import Lifecycle, Pair, PairState, advance, dump_state, load_state

D: Pair = ("feature_drift", "income")
V: Pair = ("volume", None)


def run(lc: Lifecycle, windows: list[set[Pair]], muted: set[Pair] | None = None) -> list[list[str]]:
    state: dict[Pair, PairState] = {}
    out = []
    for breaching in windows:
        # the state goes through JSON between windows, as it does through Redis
        state = load_state(orjson.loads(orjson.dumps(dump_state(state))))
        state, events = advance(state, breaching, lc, lambda p: p in (muted or set()))
        out.append([f"{p[0]}:{e}" for p, e in events])
    return out


def test_default_fires_every_breaching_window_and_resolves_at_once() -> None:
    got = run(Lifecycle(), [{D}, {D}, set(), set()])
    assert got == [["feature_drift:firing"]] * 2 + [["feature_drift:resolved"], []]


def test_for_needs_consecutive_breaches() -> None:
    got = run(Lifecycle(for_windows=3), [{D}, {D}, set(), {D}, {D}, {D}, {D}])
    assert got == [[], [], [], [], [], ["feature_drift:firing"], ["feature_drift:firing"]]


def test_resolve_after_needs_consecutive_clean_windows() -> None:
    got = run(Lifecycle(resolve_after=2), [{D}, set(), {D}, set(), set(), set()])
    assert got == [
        ["feature_drift:firing"],
        [],
        ["feature_drift:firing"],
        [],
        ["feature_drift:resolved"],
        [],
    ]


def test_repeat_interval_and_never_repeat() -> None:
    five = [{D}] * 5
    assert run(Lifecycle(repeat_every=2), five) == [
        ["feature_drift:firing"],
        [],
        ["feature_drift:firing"],
        [],
        ["feature_drift:firing"],
    ]
    assert run(Lifecycle(repeat_every=0), five) == [["feature_drift:firing"], [], [], [], []]


def test_mute_silences_but_keeps_the_state() -> None:
    lc = Lifecycle()
    state, events = advance({}, {D, V}, lc, lambda p: p == D)
    assert [p for p, _ in events] == [V] and state[D].firing
    state, events = advance(state, set(), lc)  # mute over: the drift that fired resolves
    assert sorted(events) == [(D, "resolved"), (V, "resolved")]


def test_pairs_are_independent_and_the_state_stays_small() -> None:
    state, _ = advance({}, {D}, Lifecycle(for_windows=2))
    state, _ = advance(state, {V}, Lifecycle(for_windows=2))
    assert set(state) == {V}  # D's breach streak ended and it never fired: dropped


def test_bad_settings_and_malformed_state() -> None:
    with pytest.raises(ValueError, match="for_windows must be an integer >= 1, got 0"):
        Lifecycle(for_windows=0)
    with pytest.raises(ValueError, match="repeat_every"):
        Lifecycle(repeat_every=-1)
    assert load_state([["r", None, 1, 0, 1, 0], ["bad"], None, ["r2", "f", "x", 0, 0, 0]]) == {
        ("r", None): PairState(1, 0, True, 0)
    }
