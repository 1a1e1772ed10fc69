"""What the runtime shows of stored evaluation results (``model list``, ``model evaluate``, the
admin's models page): the headline figures of a version and one line per target.

Kept apart from ``offline/`` so that the admin views and the CLI read evaluation results without
importing the evaluation code itself.
"""
from __future__ import annotations


def headline(metrics: dict | None) -> dict[str, float | None]:
    """The few figures people compare across model versions (``model list``, the admin's
    models page): LightFM's precision@10 and nDCG@10 per user, then the default strategy's
    group figures. None where a version was not evaluated."""
    ev = (metrics or {}).get("evaluation") or {}
    lightfm = ev.get("per_user", {}).get("lightfm", {})
    out: dict[str, float | None] = {"precision@10": lightfm.get("precision@10"),
                                    "nDCG@10": lightfm.get("ndcg@10")}
    default = ev.get("default_strategy")
    for key, value in (ev.get("groups", {}).get(default) or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and not key.endswith("_ci95"):
            out[f"groups: {key.replace('_', ' ')}"] = value
    return out


# What each target of offline.evaluation.check_targets means, for results whose targets are bare values.
TARGET_DESCRIPTIONS = {
    "lightfm_beats_popularity_and_base": "LightFM scores above popularity and the base model on "
                                         "every per-user ranking metric",
}


def format_targets(result: dict) -> list[str]:
    """One line per target: met or not, what it means, its value, the interval and the sample.

    A target is either a bare value (bool or number) or a dict with any of ``met``,
    ``description``, ``value``, ``interval`` ([low, high]), ``threshold`` and ``n`` (groups or
    users it was measured on). With an interval, a reader can tell a miss that is within noise
    from a real failure.
    """
    targets = result.get("targets", {})
    if not targets:
        return []
    groups = result.get("protocol", {}).get("groups")
    lines = [f"targets (measured on {groups} groups; a miss whose interval reaches the "
             f"threshold is within noise — run more groups to decide)" if groups else "targets"]
    for key, target in targets.items():
        t = target if isinstance(target, dict) else {"value": target}
        value = t.get("value", t.get("met"))
        met = t.get("met", value if isinstance(value, bool) else None)
        status = "" if met is None else ("met" if met else "NOT met")
        text = t.get("description") or TARGET_DESCRIPTIONS.get(key, "")
        parts = [f"target {key}: {status or _fmt(value)}"]
        if text:
            parts.append(f" — {text}")
        details = []
        if status and value is not None and not isinstance(value, bool):
            details.append(f"value {_fmt(value)}")
        if t.get("threshold") is not None:
            details.append(f"threshold {_fmt(t['threshold'])}")
        if t.get("interval"):
            low, high = t["interval"]
            details.append(f"95% interval {_fmt(low)} to {_fmt(high)}")
        if t.get("n") is not None:
            details.append(f"n = {t['n']}")
        if details:
            parts.append(" (" + ", ".join(details) + ")")
        lines.append("".join(parts))
    return lines


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
