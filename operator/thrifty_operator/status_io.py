"""The status at the kopf boundary: the API's dicts in, the typed `OptimizedModelStatus` inside, dicts out."""

from __future__ import annotations

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
