"""Budget annotations, their parsing, namespace splits and the spend rate a budget allows.

Annotations (decimal strings in the price table's currency), on an OptimizedModel or on a Namespace
as one cap shared by all its OptimizedModels:

* `thrifty.dev/budget-per-hour`: billed spend in any rolling hour must stay at or below it;
* `thrifty.dev/budget-per-month`: billed spend in a UTC calendar month must stay at or below it.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import math
from collections.abc import Mapping

BUDGET_PER_HOUR = "thrifty.dev/budget-per-hour"
BUDGET_PER_MONTH = "thrifty.dev/budget-per-month"

# Upper bound keeps a typo such as a pasted timestamp from reading as an unlimited budget.
_MAX_BUDGET = decimal.Decimal("1e9")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Budget:
    """Spend caps; `None` means no cap of that kind."""

    per_hour: float | None = None
    per_month: float | None = None

    @property
    def unlimited(self) -> bool:
        """True when neither cap is set."""
        return self.per_hour is None and self.per_month is None


UNLIMITED = Budget()


class BudgetErrorReason(enum.Enum):
    """Why a budget annotation was rejected; values are condition/Event reasons."""

    NOT_A_NUMBER = "BudgetNotANumber"
    NEGATIVE = "BudgetNegative"
    NOT_FINITE = "BudgetNotFinite"
    TOO_LARGE = "BudgetTooLarge"


@dataclasses.dataclass(frozen=True, kw_only=True)
class BudgetError:
    """A malformed budget annotation: the operator reports it as a condition and an Event.

    Attributes:
        annotation: The annotation key.
        value: The raw value, truncated.
        reason: CamelCase reason.
        message: One-line human message.
    """

    annotation: str
    value: str
    reason: BudgetErrorReason
    message: str


def _parse_amount(key: str, raw: str) -> float | BudgetError:
    shown = raw[:40]

    def error(reason: BudgetErrorReason, why: str) -> BudgetError:
        return BudgetError(
            annotation=key, value=shown, reason=reason, message=f"`{key}` {why}, got {shown!r}"
        )

    try:
        amount = decimal.Decimal(raw.strip())
    except decimal.InvalidOperation:
        return error(BudgetErrorReason.NOT_A_NUMBER, "must be a decimal number such as 2.50")
    if not amount.is_finite():
        return error(BudgetErrorReason.NOT_FINITE, "must be a finite number")
    if amount < 0:
        return error(BudgetErrorReason.NEGATIVE, "must not be negative")
    if amount > _MAX_BUDGET:
        return error(BudgetErrorReason.TOO_LARGE, f"must be at most {_MAX_BUDGET}")
    return float(amount)


def parse_budget(annotations: Mapping[str, str]) -> tuple[Budget, tuple[BudgetError, ...]]:
    """Read the budget annotations of an object.

    A malformed annotation is ignored (that cap is left unset) and reported; it never raises.

    Args:
        annotations: The object's metadata.annotations (may lack the budget keys).

    Returns:
        The budget from the well-formed annotations and one error per malformed annotation.
    """
    values: dict[str, float | None] = {BUDGET_PER_HOUR: None, BUDGET_PER_MONTH: None}
    errors: list[BudgetError] = []
    for key in values:
        raw = annotations.get(key)
        if raw is None:
            continue
        parsed = _parse_amount(key, raw)
        if isinstance(parsed, BudgetError):
            errors.append(parsed)
        else:
            values[key] = parsed
    return Budget(per_hour=values[BUDGET_PER_HOUR], per_month=values[BUDGET_PER_MONTH]), tuple(errors)


def _tighter(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def combine(*budgets: Budget) -> Budget:
    """Return the tightest of several budgets, cap by cap (a model's own and its namespace share)."""
    result = UNLIMITED
    for b in budgets:
        result = Budget(
            per_hour=_tighter(result.per_hour, b.per_hour), per_month=_tighter(result.per_month, b.per_month)
        )
    return result


def split_namespace_budget(
    namespace_budget: Budget,
    demand: Mapping[str, float],
    month_to_date: Mapping[str, float] | None = None,
) -> dict[str, Budget]:
    """Split a namespace's shared cap across its models in proportion to their demand.

    The hourly cap is split by demand share. For the monthly cap, what the namespace has not spent yet
    is split by demand share and added to each model's own month-to-date spend, so the shares add up to
    the namespace cap and nobody is charged again for what it already spent. With no demand at all the
    split is equal.

    Args:
        namespace_budget: The namespace's caps.
        demand: Model name → demand (e.g. requests per second, or the billed rate it wants); >= 0.
        month_to_date: Model name → spend so far this month (missing means 0).

    Returns:
        Model name → that model's share of the namespace budget.
    """
    if not demand:
        return {}
    spent = dict(month_to_date or {})
    total_demand = sum(max(0.0, d) for d in demand.values())
    if total_demand > 0 and math.isfinite(total_demand):
        shares = {name: max(0.0, d) / total_demand for name, d in demand.items()}
    else:
        shares = {name: 1.0 / len(demand) for name in demand}
    remaining = None
    if namespace_budget.per_month is not None:
        remaining = max(0.0, namespace_budget.per_month - sum(spent.get(n, 0.0) for n in demand))
    result = {}
    for name, share in shares.items():
        per_hour = None if namespace_budget.per_hour is None else namespace_budget.per_hour * share
        per_month = None if remaining is None else spent.get(name, 0.0) + remaining * share
        result[name] = Budget(per_hour=per_hour, per_month=per_month)
    return result


def allowed_rate_per_hour(budget: Budget, month_to_date: float, hours_left: float) -> float:
    """Highest billed rate that keeps projected spend within every cap.

    Hourly cap: a rate at or below the cap at every instant keeps every rolling hour within it. Monthly
    cap: `month_to_date + rate * hours_left <= per_month` (pacing); underspending early raises the
    allowed rate later.

    Args:
        budget: The effective budget.
        month_to_date: Spend so far in the budget period.
        hours_left: Hours until the period ends (> 0).

    Returns:
        The allowed rate per hour; `math.inf` when no cap is set.
    """
    allowed = math.inf
    if budget.per_hour is not None:
        allowed = budget.per_hour
    if budget.per_month is not None:
        allowed = min(allowed, max(0.0, budget.per_month - month_to_date) / max(hours_left, 1e-6))
    return allowed
