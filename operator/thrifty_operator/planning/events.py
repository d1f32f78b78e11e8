"""Events for condition transitions only, so a steady state posts nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from thrifty_api import optimized_model as models

from .. import conditions

EventType = Literal["Normal", "Warning"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    """A Kubernetes Event to post on the OptimizedModel."""

    type: EventType
    reason: str
    message: str


_REASONS: dict[tuple[str, str], tuple[EventType, str]] = {
    ("Converted", "True"): ("Normal", "ConversionSucceeded"),
    ("Converted", "False"): ("Warning", "ConversionFailed"),
    ("Optimized", "True"): ("Normal", "VariantSelected"),
    ("Optimized", "False"): ("Warning", "NoFeasibleVariant"),
    ("Deployed", "True"): ("Normal", "Deployed"),
    ("Ready", "True"): ("Normal", "Ready"),
    ("Suspended", "True"): ("Normal", "Suspended"),
}
# Ready=False reasons that need a person (or say that serving stopped); the others are progress.
_WARN_NOT_READY = frozenset(
    {"UnknownPool", "NoCPUPool", "ReplicasUnavailable", "InvalidSpec", "InvalidResources", "RequestsDoNotFit"}
)


def transitions(before: Sequence[models.Condition], after: Sequence[models.Condition]) -> list[Event]:
    """An Event for each condition whose status or reason changed."""
    events: list[Event] = []
    for cond in after:
        previous = conditions.find(before, cond.type)
        if previous and (previous.status, previous.reason) == (cond.status, cond.reason):
            continue
        if cond.type == "Ready" and cond.status == "False":
            if cond.reason in _WARN_NOT_READY:
                events.append(Event(type="Warning", reason=cond.reason, message=cond.message))
            continue
        kind = _REASONS.get((cond.type, cond.status))
        if kind:
            events.append(Event(type=kind[0], reason=kind[1], message=cond.message))
    return events
