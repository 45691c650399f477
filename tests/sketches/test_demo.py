"""The sketches demo catches exactly the drift it injects."""

from sketches import demo


def test_demo_flags_exactly_the_injected_features(capsys: object) -> None:
    assert demo.main() == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "income   drifted in windows [4, 5, 6, 7, 8]" in out
    assert "plan     drifted in windows [4, 5, 6, 7, 8]" in out
    assert "age      stable" in out and "visits   stable" in out
