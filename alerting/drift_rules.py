"""Drift rules: per feature, of the prediction, share of features, and k of m.

A feature's ``drift`` entry (:func:`stream.results.drift_dict`) says whether it
drifted against its threshold — for distances the configured effect plus the
window's noise floor. These rules grade drifted features by severity tier
(:mod:`alerting.settings`), apply the optional Benjamini–Hochberg correction
to the p-value methods across the window's features, and count drifted
features for ``drift_share`` and the k-of-m groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerting.check import Check, Context, enough, features_of, fmt, num
from alerting.events import SEVERITIES, Severity
from alerting.multiplicity import benjamini_hochberg
from alerting.settings import Tiers, tier_of

__all__ = ["drift_share", "feature_drift", "k_of_m", "mark_drifted", "prediction_drift"]


def _tiers(d: Mapping[str, Any], ctx: Context, feature: str | None) -> Tiers:
    method = str(d.get("method"))
    tiers = ctx.settings.tiers(method, feature)
    if tiers is not None:
        return tiers
    effect = num(d.get("effect"))
    effect = effect if effect is not None else num(d.get("threshold"))
    if effect is None:
        return {"medium": 0.0}
    return {"medium": effect, "high": 2 * effect}


def _threshold_text(d: Mapping[str, Any]) -> str:
    """``0.14`` or ``0.14 = effect 0.10 + noise floor 0.04``."""
    thr, effect, floor = num(d.get("threshold")), num(d.get("effect")), num(d.get("floor"))
    if floor and effect is not None:
        return f"{fmt(thr)} = effect {fmt(effect)} + noise floor {fmt(floor)}"
    return fmt(thr)


def _check(
    ctx: Context, rule: str, feature: str | None, subject: str, d: Mapping[str, Any]
) -> Check:
    method = str(d.get("method", "drift"))
    is_test = d.get("p_value") is not None
    value = num(d.get("p_value") if is_test else d.get("value"))
    thr = num(d.get("threshold"))
    drifted = bool(d.get("drifted"))
    corrected = is_test and ctx.fdr_cutoff is not None and feature is not None
    if corrected:
        drifted, thr = ctx.drifted.get(feature or "", False), ctx.fdr_cutoff
    if value is None and not drifted:
        detail = f"{method}: {d.get('reason') or 'undefined'}"
    elif corrected:
        op = "≤" if drifted else ">"
        fdr = ctx.settings.fdr
        detail = (
            f"{method} p={fmt(value)} {op} Benjamini–Hochberg cutoff {fmt(thr)} "
            f"(FDR {fmt(fdr)} over {ctx.fdr_tests} tests)"
        )
    elif is_test:
        detail = f"{method} p={fmt(value)} {'<' if drifted else '≥'} {fmt(thr)}"
    else:
        shown = fmt(value) if value is not None else "inf"
        detail = f"{method} {shown} {'≥' if drifted else '<'} {_threshold_text(d)}"
    severity: Severity = "medium"
    if drifted:
        tiers = _tiers(d, ctx, feature)
        floor = num(d.get("floor")) or 0.0
        raw = num(d.get("value"))
        severity = tier_of(
            raw if raw is not None else float("inf"), num(d.get("p_value")), tiers, floor
        )
    state = "drifted" if drifted else "not drifted"
    msg = f"{subject} {state} vs baseline ({detail})"
    return Check(rule, feature, method, value, thr, severity, drifted, msg)


def mark_drifted(ctx: Context) -> None:
    """Fill ``ctx.drifted`` (feature → drifted), Benjamini–Hochberg-corrected
    across the p-value features when ``fdr`` is set."""
    s = ctx.settings
    drifts = {n: f["drift"] for n, f in features_of(ctx.result) if f.get("drift")}
    ctx.drifted = {n: bool(d.get("drifted")) for n, d in drifts.items()}
    if s.fdr is None:
        return
    tested = [
        (n, float(d["p_value"]))
        for n, d in drifts.items()
        if num(d.get("p_value")) is not None and s.enabled("feature_drift", n)
    ]
    rejected, cutoff = benjamini_hochberg([p for _, p in tested], s.fdr)
    for (name, _), hit in zip(tested, rejected, strict=True):
        ctx.drifted[name] = hit
    ctx.fdr_cutoff, ctx.fdr_tests = cutoff, len(tested)


def feature_drift(ctx: Context) -> list[Check]:
    s = ctx.settings
    return [
        _check(ctx, "feature_drift", name, f"feature {name!r}", feat["drift"])
        for name, feat in features_of(ctx.result)
        if feat.get("drift") and enough(feat, s.for_feature(name))
    ]


def prediction_drift(ctx: Context) -> list[Check]:
    pred = ctx.result.get("prediction") or {}
    d = pred.get("drift")
    if not d or not enough(pred, ctx.settings):
        return []
    return [_check(ctx, "prediction_drift", None, "prediction", d)]


def drift_share(ctx: Context) -> list[Check]:
    r, s = ctx.result, ctx.settings
    share = num(r.get("drift_share"))
    if share is None:
        return []
    k = len(r.get("drifted_features") or [])
    if ctx.fdr_cutoff is not None:  # the corrected count over the same defined features
        defined = [
            n
            for n, f in features_of(r)
            if f.get("drift") and (f["drift"].get("value") is not None or f["drift"].get("drifted"))
        ]
        k = sum(ctx.drifted.get(n, False) for n in defined)
        share = k / len(defined) if defined else share
    firing = k > 0 and share >= s.drift_share
    op = "≥" if firing else "<"
    msg = f"{k} features drifted vs baseline (share {fmt(share)} {op} {fmt(s.drift_share)})"
    return [
        Check("drift_share", None, "drift_share", share, s.drift_share, "critical", firing, msg)
    ]


def k_of_m(ctx: Context) -> list[Check]:
    """Each configured group: at least ``k`` of its features drifted (with enough samples)."""
    out = []
    feats = dict(features_of(ctx.result))
    for g in ctx.settings.k_of_m:
        names = list(g.features) or sorted(feats)
        hits = [
            n
            for n in names
            if n in feats
            and ctx.drifted.get(n, False)
            and enough(feats[n], ctx.settings.for_feature(n))
        ]
        firing = len(hits) >= g.k
        shown = ", ".join(hits[:5]) + (", …" if len(hits) > 5 else "")
        group = f"group {g.name!r}" if g.features else "features"
        msg = (
            f"{len(hits)} of {len(names)} {group} drifted"
            + (f" ({shown})" if hits else "")
            + f" {'≥' if firing else '<'} k = {g.k}"
        )
        sev: Severity = g.severity if g.severity in SEVERITIES else "high"
        out.append(
            Check(g.name, None, "drifted_features", float(len(hits)), float(g.k), sev, firing, msg)
        )
    return out
