"""Mutes in Redis: set from the CLI, matched by rule and feature, expiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream.cli import main
from stream.keys import Keys
from stream.mutes import MuteStore

pytestmark = pytest.mark.integration


def test_mutes_match_and_expire(redis_client: Any, key_prefix: str) -> None:
    store = MuteStore(redis_client, Keys(key_prefix))
    store.mute("churn", until=100.0, feature="in|come")
    store.mute("churn", until=50.0, rule="volume")
    muted = store.matcher("churn", now=10.0)
    assert muted(("feature_drift", "in|come")) and muted(("drift_share", "in|come"))
    assert muted(("volume", None)) and not muted(("feature_drift", "age"))
    later = store.matcher("churn", now=60.0)  # the volume mute ran out
    assert not later(("volume", None)) and later(("feature_drift", "in|come"))
    assert store.active("churn", 60.0) == {(None, "in|come"): 100.0}
    assert store.unmute("churn", feature="in|come") and store.active("churn", 0.0) == {}
    store.mute("churn", until=100.0)  # the whole model
    assert store.matcher("churn", 10.0)(("latency_p99", None))
    assert not store.matcher("fraud", 10.0)(("latency_p99", None))


def test_cli_mutes_and_unmutes(
    tmp_path: Path, redis_url: str, key_prefix: str, redis_client: Any, capsys: Any
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[kafka]\n"bootstrap.servers" = "127.0.0.1:1"\n[redis]\nurl = "{redis_url}"\n'
        f'prefix = "{key_prefix}"\n[models.churn]\n'
    )
    args = ["mute", "-c", str(cfg), "--model", "churn", "--feature", "income"]
    assert main([*args, "--for", "2h"]) == 0
    assert "muted model 'churn' feature 'income' for 2h" in capsys.readouterr().out
    store = MuteStore(redis_client, Keys(key_prefix))
    import time

    [(key, until)] = store.active("churn", time.time()).items()
    assert key == (None, "income") and 7000 < until - time.time() <= 7200
    assert main([*args, "--off"]) == 0
    assert "unmuted" in capsys.readouterr().out
    assert main([*args, "--for", "soon"]) == 2
    assert "--for" in capsys.readouterr().err
