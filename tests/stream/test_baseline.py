"""Baselines: built from training files, validated against the model, versioned in Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream.baseline import BaselineError, BaselineStore, build_baseline
from stream.cli import main
from stream.config import RedisSettings
from stream.keys import Keys
from stream.redis_client import connect
from stream.table import read_table


def training(n: int = 3000, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n)
    age[::37] = np.nan
    return {
        "age": age,
        "plan": rng.choice(["basic", "pro", "team"], n).tolist(),
        "is_new": (rng.random(n) < 0.2).tolist(),
        "y": rng.integers(0, 2, n).astype(float),
    }


def test_kinds_are_inferred_and_sketches_match_the_data() -> None:
    cols = training()
    b = build_baseline("churn", cols, label_column="y", version="v1")
    assert b.kinds() == {"age": "numeric", "plan": "categorical", "is_new": "boolean"}
    age = np.asarray(cols["age"])
    fb = b.features["age"]
    assert fb.histogram is not None and fb.moments is not None and fb.quantiles is not None
    assert fb.histogram.count == int((~np.isnan(age)).sum())
    assert fb.histogram.missing == int(np.isnan(age).sum())
    assert fb.moments.mean == pytest.approx(np.nanmean(age), rel=1e-12)
    cats = b.features["plan"].categories
    assert cats is not None
    assert cats.frequencies() == {p: cols["plan"].count(p) for p in set(cols["plan"])}
    flags = b.features["is_new"].categories
    assert flags is not None
    assert flags.frequencies() == {
        "true": sum(cols["is_new"]),
        "false": len(cols["is_new"]) - sum(cols["is_new"]),
    }
    assert b.prediction is not None and b.prediction.kind == "numeric"


def test_columns_that_do_not_match_the_model_are_listed() -> None:
    kinds: Any = {"age": "numeric", "plan": "categorical", "tenure": "numeric"}
    with pytest.raises(BaselineError) as err:
        build_baseline("churn", training(), kinds, label_column="y")
    msg = str(err.value)
    assert "missing ['tenure']" in msg and "unexpected ['is_new']" in msg
    with pytest.raises(BaselineError, match=r"\['label'\] not in the file"):
        build_baseline("churn", training(), label_column="label")


def test_csv_and_parquet_read_the_same(tmp_path: Path) -> None:
    cols = training(200)
    table = pa.table(cols)
    pq.write_table(table, tmp_path / "t.parquet")
    lines = ["age,plan,is_new,y"]
    for a, p, f, y in zip(cols["age"], cols["plan"], cols["is_new"], cols["y"], strict=True):
        lines.append(f"{'' if np.isnan(a) else repr(float(a))},{p},{str(f).lower()},{y}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    a, b = read_table(tmp_path / "t.parquet"), read_table(tmp_path / "t.csv")
    np.testing.assert_array_equal(a["age"], b["age"])
    assert a["plan"] == b["plan"] and a["is_new"] == b["is_new"]
    with pytest.raises(BaselineError, match="not found"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(BaselineError, match=r"expected a \.csv or \.parquet"):
        read_table(tmp_path / "x.json")


@pytest.mark.integration
def test_cli_registers_versions_and_rejects_mismatched_files(
    tmp_path: Path, redis_url: str, key_prefix: str, capsys: Any
) -> None:
    pq.write_table(pa.table(training()), tmp_path / "train.parquet")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[kafka]\n"bootstrap.servers" = "127.0.0.1:1"\n[redis]\nurl = "{redis_url}"\n'
        f'prefix = "{key_prefix}"\n[models.churn]\n'
        '[models.churn.drift]\nage = { method = "psi" }\n'
        '[models.strict]\nfeatures = { age = "numeric", income = "numeric" }\n'
    )
    args = ["baseline", "register", "-c", str(cfg), "--data", str(tmp_path / "train.parquet")]
    assert main([*args, "--model", "churn", "--label-column", "y", "--version", "v1"]) == 0
    assert main([*args, "--model", "churn", "--label-column", "y", "--version", "v2"]) == 0
    out = capsys.readouterr()
    assert "registered baseline 'v2' for model 'churn': 3000 rows, 3 features" in out.out
    assert "3/3" in out.err  # progress
    store = BaselineStore(connect(RedisSettings(url=redis_url)), Keys(key_prefix))
    assert store.versions("churn") == ["v1", "v2"] and store.current_version("churn") == "v2"
    loaded = store.load("churn", "v1")
    assert loaded is not None and loaded.kinds()["plan"] == "categorical"
    # noise floors are stored for the default method and the one configured
    assert set(loaded.features["age"].null) == {"wasserstein_norm", "psi"}
    assert set(loaded.features["plan"].null) == {"js"}
    assert main([*args, "--model", "strict", "--label-column", "y"]) == 2
    err = capsys.readouterr().err
    assert "missing ['income']" in err and "unexpected ['is_new', 'plan']" in err
    assert store.current_version("strict") is None
    assert main([*args, "--model", "nope"]) == 2
    assert "'nope' is not in the configuration" in capsys.readouterr().err
