"""The status at the kopf boundary: the API's dicts in, the typed `OptimizedModelStatus` inside, dicts out."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

import pydantic

from thrifty_api import optimized_model as models

log = logging.getLogger(__name__)
_FIELDS = {field.alias or name for name, field in models.OptimizedModelStatus.model_fields.items()}


def read(raw: Mapping[str, Any]) -> models.OptimizedModelStatus:
    """The stored status, typed. A part that does not validate (written by another version, or edited by
    hand) is dropped and logged rather than failing the reconcile: the planner recomputes it."""
    kept = {key: value for key, value in raw.items() if key in _FIELDS}
    while True:
        try:
            return models.OptimizedModelStatus.model_validate(kept)
        except pydantic.ValidationError as err:
            bad = {str(e["loc"][0]) for e in err.errors() if e["loc"]}
            if not bad & kept.keys():
                raise
            log.warning(
                "stored status: dropping invalid %s: %s", ", ".join(sorted(bad)), err.errors()[0]["msg"]
            )
            kept = {key: value for key, value in kept.items() if key not in bad}


def dump(status: models.OptimizedModelStatus) -> dict[str, Any]:
    """The status as the API stores it: camelCase, no nulls, only the parts the planner set."""
    return status.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)


# Parts of cost and scaling a reader watches; the rest (month-to-date spend, the decision's message, the
# policy's memory) changes every pass and is written at most every accounting interval.
_WATCHED = {"cost": ("ratePerHour", "budget"), "scaling": ("replicas", "variant", "pool", "reason")}


def _due(
    stored: Mapping[str, Any], new: Mapping[str, Any], key: str, now: datetime.datetime, every: float
) -> bool:
    before, after = stored.get(key) or {}, new.get(key) or {}
    if any(before.get(k) != after.get(k) for k in _WATCHED[key]):
        return True
    last = (stored.get("cost") or {}).get("lastAccounted")
    if not last:
        return True
    age = now - datetime.datetime.fromisoformat(str(last).replace("Z", "+00:00"))
    return age.total_seconds() >= every


def changes(
    stored: Mapping[str, Any], new: Mapping[str, Any], now: datetime.datetime, every: float
) -> dict[str, Any]:
    """The status parts to patch: those that changed, cost and scaling only when a watched field moved or
    the last accounting is `every` seconds old (the operator keeps the policy's memory in between)."""
    out = {}
    for key, value in new.items():
        if stored.get(key) == value:
            continue
        if key in _WATCHED and not _due(stored, new, key, now, every):
            continue
        out[key] = value
    return out
