"""ClassificationQuality against scikit-learn on the same labelled rows.

Counts-based metrics (confusion matrix, accuracy, precision / recall / F1 and their
averages) and log loss must equal scikit-learn's to float rounding; ROC-AUC and
PR-AUC are checked in ``test_ranking.py`` for binary models and here for
one-vs-rest multiclass; ECE against a direct numpy computation. Merges of random
splits, vector addition and the encodings must reproduce the state of the whole.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import label_binarize

from sketches import OTHER, ClassificationQuality, DecodeError, IncompatibleSketchError
from sketches.categorical import category_name
from sketches.classification import LOG_LOSS_EPS

settings.register_profile("classification", max_examples=60, deadline=None, database=None)
settings.load_profile("classification")

Array = NDArray[np.float64]
REL = 1e-12  # "exact": equal to float rounding


# -- data ------------------------------------------------------------------------------
@cache
def model_scores(k: int, model: str = "logistic") -> tuple[NDArray[np.int64], Array]:
    """Held-out labels 0..k-1 and predict_proba of a model on a k-class problem."""
    x, y = make_classification(
        12_000,
        20,
        n_informative=10,
        n_classes=k,
        n_clusters_per_class=1,
        class_sep=0.8,
        weights=None if k > 2 else [0.8],
        flip_y=0.02,
        random_state=k,
    )
    est = LogisticRegression(max_iter=2000) if model == "logistic" else GaussianNB()
    est.fit(x[::2], y[::2])
    return y[1::2], est.predict_proba(x[1::2])


def quality(k: int, **kw: Any) -> ClassificationQuality:
    return ClassificationQuality([str(i) for i in range(k)], **kw)


def direct_ece(conf: Array, correct: Array, bins: int = 10) -> float:
    """ECE straight from its definition, one bin at a time."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for i in range(bins):
        inside = (conf > edges[i]) & (conf <= edges[i + 1])
        if i == 0:
            inside |= conf == 0.0
        if inside.any():
            total += inside.sum() * abs(conf[inside].mean() - correct[inside].mean())
    return total / conf.size


# -- counts: exact -----------------------------------------------------------------------
LABELS = st.one_of(
    st.sampled_from(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]),
    st.sampled_from(["x", "zz"]),  # outside the classes
    st.none(),
)


def expected_counts(classes: list[str], yt: list[Any], yp: list[Any]) -> dict[str, Any]:
    keep = [i for i in range(len(yt)) if yt[i] is not None and yp[i] is not None]
    t = [category_name(yt[i]) for i in keep]
    p = [category_name(yp[i]) for i in keep]
    present = [c for c in classes if c in set(t) | set(p)]
    out: dict[str, Any] = {"n": len(keep), "present": present}
    if keep:
        out["accuracy"] = accuracy_score(t, p)
        boxed = [OTHER if v not in classes else v for v in t]
        boxed_p = [OTHER if v not in classes else v for v in p]
        out["cm"] = confusion_matrix(boxed, boxed_p, labels=[*classes, OTHER])
    if present:
        out["per_class"] = precision_recall_fscore_support(t, p, labels=present, zero_division=0)
        for avg in ("macro", "weighted"):
            out[avg] = precision_recall_fscore_support(
                t, p, labels=present, average=avg, zero_division=0
            )
    return out


@given(
    k=st.integers(2, 10),
    rows=st.lists(st.tuples(LABELS, LABELS), max_size=60),
)
def test_counts_equal_sklearn(k: int, rows: list[tuple[Any, Any]]) -> None:
    classes = [str(i) for i in range(k)]
    yt, yp = [r[0] for r in rows], [r[1] for r in rows]
    q = ClassificationQuality(classes)
    q.update_many(np.array(yt, dtype=object), np.array(yp, dtype=object))
    m = q.metrics()
    exp = expected_counts(classes, yt, yp)
    assert m["n"] == exp["n"] and m["missing"] == len(rows) - exp["n"]
    if exp["n"] == 0:
        assert m["accuracy"] is None and m["macro"]["f1"] is None
        return
    assert m["accuracy"] == pytest.approx(exp["accuracy"], rel=REL)
    assert np.array_equal(np.array(m["confusion_matrix"]), exp["cm"])
    if not exp["present"]:
        assert m["macro"] == {"precision": None, "recall": None, "f1": None}
        return
    prec, rec, f1, support = exp["per_class"]
    for i, c in enumerate(exp["present"]):
        got = m["classes"][c]
        assert got["support"] == support[i]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(
            (prec[i], rec[i], f1[i]), rel=REL
        )
    for c in set(classes) - set(exp["present"]):
        assert m["classes"][c]["precision"] is None and m["classes"][c]["support"] == 0
    for avg in ("macro", "weighted"):
        want = exp[avg][:3]
        assert tuple(m[avg].values()) == pytest.approx(want, rel=REL, abs=1e-15)


def test_averages_equal_sklearn_default_when_every_label_is_a_class() -> None:
    rng = np.random.default_rng(5)
    yt, yp = rng.integers(0, 6, 3000), rng.integers(0, 6, 3000)
    yp[yp == 5] = 4  # class 5 is never predicted: its precision is 0 (zero_division)
    q = quality(8)  # classes 6 and 7 never appear: left out, as sklearn leaves them
    q.update_many(yt, yp)
    m = q.metrics()
    for avg in ("macro", "weighted"):
        want = precision_recall_fscore_support(yt, yp, average=avg, zero_division=0)[:3]
        assert tuple(m[avg].values()) == pytest.approx(want, rel=REL)
    assert m["classes"]["6"] == {
        "support": 0,
        "predicted": 0,
        "precision": None,
        "recall": None,
        "f1": None,
        "roc_auc": None,
        "roc_auc_bound": None,
        "pr_auc": None,
        "pr_auc_bound": None,
    }


def test_labels_outside_the_classes_are_counted_and_agree() -> None:
    q = ClassificationQuality(["cat", "dog"])
    q.update_many(["cat", "cow", "cow", "emu", None], ["cat", "cow", "emu", "dog", "cat"])
    m = q.metrics()
    assert m["n"] == 4 and m["missing"] == 1
    assert m["other"] == {"support": 3, "predicted": 2, "agree": 1}
    want = accuracy_score(["cat", "cow", "cow", "emu"], ["cat", "cow", "emu", "dog"])
    assert m["accuracy"] == want
    assert m["labels"] == ["cat", "dog", OTHER]
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 0, 0], [0, 1, 2]]


@pytest.mark.parametrize(
    ("classes", "y_true", "y_pred"),
    [
        (["0", "1"], np.array([0, 1, 1, 2]), np.array([0.0, 1.0, 0.0, 2.0])),
        (["0", "1"], [0, 1, 1, 2], ["0", "1", "0", "2"]),
        (["false", "true"], np.array([False, True, True, False]), [False, True, False, None]),
        (["0.5", "a"], np.array([0.5, np.nan, 0.25]), np.array(["0.5", "a", "0.25"])),
        (["-1", "1"], np.array([-1, 1, 7], dtype=np.int8), np.array([255, 1, 7], dtype=np.uint8)),
        (["α", "β"], np.array([b"\xce\xb1", b"x"]), ["α", "x"]),
    ],
)
def test_labels_match_by_category_name(classes: list[str], y_true: Any, y_pred: Any) -> None:
    q = ClassificationQuality(classes)
    q.update_many(y_true, y_pred)
    names_t = [category_name(v.decode() if isinstance(v, bytes) else v) for v in list(y_true)]
    names_p = [category_name(v) for v in list(y_pred)]
    keep = [i for i in range(len(names_t)) if names_t[i] is not None and names_p[i] is not None]
    t = [names_t[i] for i in keep]
    p = [names_p[i] for i in keep]
    m = q.metrics()
    assert m["n"] == len(keep)
    assert m["accuracy"] == pytest.approx(accuracy_score(t, p), rel=REL)


# -- probabilities: log loss, ranking, calibration ------------------------------------------
@pytest.mark.parametrize("model", ["logistic", "naive_bayes"])
@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_probabilistic_metrics_equal_sklearn(k: int, model: str) -> None:
    y, proba = model_scores(k, model)
    pred = proba.argmax(axis=1)
    q = quality(k)
    q.update_many(y, pred, proba)
    m = q.metrics()
    assert m["scored"] == y.size and m["bad_proba"] == 0
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), rel=REL)
    assert m["log_loss"] == pytest.approx(log_loss(y, proba, labels=range(k)), rel=1e-11)
    if k == 2:
        auc = roc_auc_score(y, proba[:, 1])
        ap = average_precision_score(y, proba[:, 1])
        conf, correct = proba[:, 1], (y == 1).astype(float)
    else:
        auc = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=range(k))
        onehot = label_binarize(y, classes=range(k))
        ap = average_precision_score(onehot, proba, average="macro")
        per_class_ap = average_precision_score(onehot, proba, average=None)
        for i in range(k):
            got = m["classes"][str(i)]
            assert got["pr_auc"] == pytest.approx(per_class_ap[i], abs=0.005)
            assert got["roc_auc"] == pytest.approx(roc_auc_score(y == i, proba[:, i]), abs=0.005)
            assert abs(got["pr_auc"] - per_class_ap[i]) <= got["pr_auc_bound"] + 1e-12
        conf, correct = proba.max(axis=1), (pred == y).astype(float)
    assert m["roc_auc"] == pytest.approx(auc, abs=0.005)
    assert m["pr_auc"] == pytest.approx(ap, abs=0.005)
    assert abs(m["roc_auc"] - auc) <= m["roc_auc_bound"] + 1e-12
    assert abs(m["pr_auc"] - ap) <= m["pr_auc_bound"] + 1e-12
    assert m["ece"] == pytest.approx(direct_ece(conf, correct), rel=1e-9)
    full = [b for b in m["calibration"] if b["count"]]
    assert sum(b["count"] for b in m["calibration"]) == y.size
    if k == 2:  # the reliability bins are calibration_curve's
        prob_true, prob_pred = calibration_curve(y, proba[:, 1], n_bins=10)
        assert [b["accuracy"] for b in full] == pytest.approx(prob_true.tolist(), rel=1e-12)
        assert [b["confidence"] for b in full] == pytest.approx(prob_pred.tolist(), rel=1e-12)


def test_binary_one_column_and_two_columns_agree() -> None:
    y, proba = model_scores(2)
    a, b = quality(2), quality(2)
    a.update_many(y, proba.argmax(axis=1), proba[:, 1])
    b.update_many(y, proba.argmax(axis=1), proba)
    ma, mb = a.metrics(), b.metrics()
    for key in ("log_loss", "roc_auc", "pr_auc", "ece", "accuracy"):
        assert ma[key] == pytest.approx(mb[key], rel=1e-12), key


def test_log_loss_clips_like_sklearn() -> None:
    y = np.array([0, 1, 1, 0, 2])
    proba = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])
    q = quality(3)
    q.update_many(y, proba.argmax(axis=1), proba)
    assert q.metrics()["log_loss"] == pytest.approx(log_loss(y, proba), rel=REL)
    assert np.finfo(np.float64).eps == LOG_LOSS_EPS
    binary = quality(2)
    binary.update_many([0, 1, 1], [0, 1, 0], np.array([0.0, 1.0, 0.0]))
    assert binary.metrics()["log_loss"] == pytest.approx(
        log_loss([0, 1, 1], [0.0, 1.0, 0.0]), rel=REL
    )


def test_rows_of_other_labels_are_not_scored() -> None:
    q = quality(3)
    proba = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]])
    q.update_many(["2", "7", "0"], ["2", "0", "2"], proba)
    m = q.metrics()
    assert (m["n"], m["scored"], m["unscored"]) == (3, 2, 1)
    keep = [0, 2]
    assert m["log_loss"] == pytest.approx(log_loss([2, 0], proba[keep], labels=[0, 1, 2]), rel=REL)


def test_classes_without_positives_are_left_out_of_the_macro_auc() -> None:
    y, proba = model_scores(3)
    keep = y != 2
    q = quality(3)
    q.update_many(y[keep], proba[keep].argmax(axis=1), proba[keep])
    m = q.metrics()
    assert m["classes"]["2"]["roc_auc"] is None and m["classes"]["2"]["pr_auc"] is None
    per = [roc_auc_score(y[keep] == i, proba[keep, i]) for i in (0, 1)]
    assert m["roc_auc"] == pytest.approx(np.mean(per), abs=0.005)


def test_without_probabilities_the_probabilistic_metrics_are_none() -> None:
    q = quality(3)
    q.update_many([0, 1, 2], [0, 2, 2])
    m = q.metrics()
    assert m["scored"] == 0
    for key in ("log_loss", "roc_auc", "roc_auc_bound", "pr_auc", "pr_auc_bound", "ece"):
        assert m[key] is None, key
    assert all(b["accuracy"] is None for b in m["calibration"])


def test_empty_state_answers_none_everywhere() -> None:
    for q in (quality(2), quality(4, score_bins=0, calibration_bins=0)):
        m = q.metrics()
        assert q.is_empty and m["n"] == 0
        for key in ("accuracy", "log_loss", "roc_auc", "pr_auc", "ece"):
            assert m[key] is None
        assert m["macro"]["f1"] is None and m["weighted"]["precision"] is None
        assert not any(isinstance(v, float) and math.isnan(v) for v in m.values())


def test_no_score_bins_keeps_no_ranking() -> None:
    y, proba = model_scores(3)
    q = quality(3, score_bins=0, calibration_bins=0)
    q.update_many(y, proba.argmax(axis=1), proba)
    m = q.metrics()
    assert m["roc_auc"] is None and m["ece"] is None and m["calibration"] == []
    assert m["log_loss"] == pytest.approx(log_loss(y, proba), rel=REL)
    assert q.to_vector().size == 6 + 16


# -- bad inputs --------------------------------------------------------------------------
def test_bad_probability_rows_are_counted_not_scored() -> None:
    q = quality(3)
    proba = np.array(
        [
            [0.2, 0.3, 0.5],  # fine
            [0.2, 0.3, np.nan],  # NaN
            [0.2, 0.3, 0.4],  # sums to 0.9: rejected, not normalised
            [-0.1, 0.6, 0.5],  # negative
            [np.nan, np.nan, np.nan],  # no probabilities: not scored, not bad
            [0.2, 0.3, 0.5 + 5e-6],  # within the tolerance
            [np.inf, 0.0, 0.0],
        ]
    )
    q.update_many([2, 2, 2, 1, 0, 2, 0], [2, 2, 2, 1, 0, 2, 0], proba)
    m = q.metrics()
    assert (m["n"], m["scored"], m["bad_proba"]) == (7, 2, 4)
    assert m["accuracy"] == 1.0  # the labels of every row still count


def test_binary_probability_out_of_range_is_counted() -> None:
    q = quality(2)
    q.update_many([0, 1, 1, 0], [0, 1, 1, 0], np.array([0.1, 1.5, np.nan, -0.0]))
    m = q.metrics()
    assert (m["scored"], m["bad_proba"]) == (2, 1)


@pytest.mark.parametrize(
    ("k", "shape"),
    [(3, (4,)), (3, (4, 2)), (3, (4, 4)), (3, (5, 3)), (2, (5,)), (2, (4, 3)), (2, (4, 1, 2))],
)
def test_proba_of_the_wrong_shape_raises_naming_it(k: int, shape: tuple[int, ...]) -> None:
    q = quality(k)
    before = q.to_vector()
    with pytest.raises(ValueError, match=r"proba has shape \(" + str(shape[0])):
        q.update_many([0, 1, 1, 0], [0, 1, 1, 0], np.full(shape, 1.0 / k))
    assert np.array_equal(q.to_vector(), before)


def test_label_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="3 labels but y_pred has 2"):
        quality(2).update_many([0, 1, 1], [0, 1])


@pytest.mark.parametrize(
    ("classes", "kw", "word"),
    [
        ([str(i) for i in range(65)], {}, "got 65"),
        ([str(i) for i in range(11)], {"max_classes": 10}, "got 11"),
        (["only"], {}, "got 1"),
        (["a", "b", "a"], {}, "'a' is listed twice"),
        (["a", 1], {}, "strings"),
        ("ab", {}, "strings"),
        (["a", "b"], {"score_bins": 1}, "1"),
        (["a", "b"], {"calibration_bins": -1}, "-1"),
        (["a", "b"], {"score_scale": "probit"}, "probit"),
        (["a", "b"], {"max_classes": 1}, "1"),
    ],
)
def test_bad_configuration_raises_naming_the_value(
    classes: Any, kw: dict[str, Any], word: str
) -> None:
    with pytest.raises(ValueError, match=word):
        ClassificationQuality(classes, **kw)


def test_more_classes_with_a_larger_bound() -> None:
    q = ClassificationQuality([str(i) for i in range(100)], max_classes=100, score_bins=0)
    q.update_many(np.arange(100), np.arange(100))
    assert q.metrics()["accuracy"] == 1.0


# -- merge, vectors, encodings ----------------------------------------------------------
def split_states(
    k: int, y: NDArray[Any], pred: NDArray[Any], proba: Array, cuts: list[int]
) -> list[ClassificationQuality]:
    bounds = [0, *sorted(cuts), y.size]
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        q = quality(k)
        q.update_many(y[lo:hi], pred[lo:hi], proba[lo:hi])
        parts.append(q)
    return parts


def same_metrics(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key
        elif key not in ("classes", "calibration", "macro", "weighted"):
            assert a[key] == b[key], key


@given(
    k=st.sampled_from([2, 3, 10]),
    cuts=st.lists(st.integers(0, 3000), max_size=6),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=25)
def test_merge_and_vector_addition_equal_the_whole(k: int, cuts: list[int], seed: int) -> None:
    y, proba = model_scores(k)
    rng = np.random.default_rng(seed)
    rows = rng.choice(y.size, 3000, replace=False)
    yy, pp = y[rows].astype(object), proba[rows]
    yy[rng.random(3000) < 0.02] = "other"
    pred = pp.argmax(axis=1).astype(object)
    pred[rng.random(3000) < 0.02] = None
    pp[rng.random(3000) < 0.02, 0] = 2.0
    whole = quality(k)
    whole.update_many(yy, pred, pp)
    parts = split_states(k, yy, pred, pp, cuts)
    merged = quality(k)
    for p in parts[::-1]:
        merged.merge(p)
    added = sum((p.to_vector() for p in parts), np.zeros_like(whole.to_vector()))
    from_sum = ClassificationQuality.from_vector([str(i) for i in range(k)], added)
    for state in (merged, from_sum):
        assert state == whole
        same_metrics(state.metrics(), whole.metrics())


def test_merge_leaves_its_argument_untouched_and_refuses_other_layouts() -> None:
    y, proba = model_scores(3)
    a, b = quality(3), quality(3)
    a.update_many(y[:100], y[:100], proba[:100])
    b.update_many(y[100:], y[100:], proba[100:])
    before = b.to_bytes()
    a.merge(b)
    assert b.to_bytes() == before
    for other in (quality(4), quality(3, score_bins=32), ClassificationQuality(["0", "1", "x"])):
        with pytest.raises(IncompatibleSketchError, match="score_bins") as info:
            a.merge(other)
        assert str(list(a.classes)) in str(info.value)
    with pytest.raises(TypeError):
        a.merge(object())  # type: ignore[arg-type]


def test_layout_lengths_for_typical_configurations() -> None:
    assert quality(2).to_vector().size == 685
    assert quality(10).to_vector().size == 6557
    q = quality(10)
    layout = q.layout()
    offsets = sorted((off, math.prod(shape)) for off, shape in layout.values())
    assert offsets[0][0] == 0 and sum(n for _, n in offsets) == q.to_vector().size
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(offsets))
    assert layout["confusion"][1] == (11, 11) and layout["score_count"][1] == (10, 160)
    assert quality(2).layout()["score_pos"][1] == (1, 160)


def sample_state() -> ClassificationQuality:
    y, proba = model_scores(3)
    q = ClassificationQuality(["0", "1", "ünï"], score_bins=24, calibration_bins=5)
    labels = y.astype(object)
    labels[:50] = "ünï"
    labels[50:60] = "unknown"
    q.update_many(labels[:600], proba[:600].argmax(axis=1), proba[:600])
    q.update_many([None], [1])
    return q


def test_round_trips_through_bytes_and_vectors() -> None:
    for q in (sample_state(), quality(2), quality(5, score_scale="uniform", score_bins=7)):
        data = q.to_bytes()
        back = ClassificationQuality.from_bytes(data)
        assert back == q and back.to_bytes() == data
        assert back.metrics() == q.metrics()
        v = q.to_vector()
        for form in (v, v.astype("<f8").tobytes()):
            again = ClassificationQuality.from_vector(q.classes, form, **q.params())
            assert again == q
    q = sample_state()
    assert len(q.to_bytes()) < 8 * q.to_vector().size


def test_bad_vectors_raise_decode_error() -> None:
    q = sample_state()
    v = q.to_vector()
    params = q.params()
    bad: list[Any] = [v[:-1], np.append(v, 0.0), v.tobytes()[:-3]]
    for i, value in ((0, -1.0), (7, 0.5), (3, np.nan), (5, -2.0)):
        w = v.copy()
        w[i] = value
        bad.append(w)
    for vec in bad:
        with pytest.raises(DecodeError):
            ClassificationQuality.from_vector(q.classes, vec, **params)
    with pytest.raises(DecodeError, match="does not fit"):
        ClassificationQuality.from_vector(["a", "b"], v, **params)


def test_every_truncation_and_random_bytes_raise_only_decode_error() -> None:
    data = sample_state().to_bytes()
    for n in range(0, len(data), 7):
        with pytest.raises(DecodeError):
            ClassificationQuality.from_bytes(data[:n])
    with pytest.raises(DecodeError):
        ClassificationQuality.from_bytes(data + b"\x00")
    rng = np.random.default_rng(0)
    for i in range(1500):
        noise = rng.integers(0, 256, int(rng.integers(0, 200))).astype(np.uint8).tobytes()
        blob = data[:4] + noise if i % 2 else noise
        try:
            q = ClassificationQuality.from_bytes(blob)
        except DecodeError:
            continue
        assert ClassificationQuality.from_bytes(q.to_bytes()) == q
    for pos in range(0, len(data), 3):
        corrupt = bytearray(data)
        corrupt[pos] ^= 0x5A
        with contextlib.suppress(DecodeError):
            ClassificationQuality.from_bytes(bytes(corrupt))


def test_single_updates_equal_update_many() -> None:
    y, proba = model_scores(3)
    many, one = quality(3), quality(3)
    many.update_many(y[:40], proba[:40].argmax(axis=1), proba[:40])
    for i in range(40):
        p = proba[i]
        form: Any = {str(j): float(p[j]) for j in range(3)} if i % 2 else p
        one.update(int(y[i]), int(p.argmax()), form)
    assert one == many
    b_many, b_one = quality(2), quality(2)
    b_many.update_many([0, 1], [1, 1], np.array([0.7, 0.9]))
    b_one.update(0, 1, 0.7)
    b_one.update(1, 1, 0.9)
    assert b_one == b_many
    assert quality(3).proba_matrix([None, {"1": 1.0}]).tolist()[1] == [0.0, 1.0, 0.0]


def test_copy_and_empty_like() -> None:
    q = sample_state()
    c = q.copy()
    assert c == q and c is not q and c.vector is not q.vector
    e = q.empty_like()
    assert e.is_empty and e.layout() == q.layout()
    assert "ClassificationQuality(" in repr(q)
