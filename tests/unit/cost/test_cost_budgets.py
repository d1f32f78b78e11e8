"""Budget annotations: parsing, malformed values, namespace split, allowed rate."""

import math

import pytest

from thrifty_operator.cost import budgets


def test_parse_budget_reads_both_annotations() -> None:
    budget, errors = budgets.parse_budget(
        {budgets.BUDGET_PER_HOUR: "1.50", budgets.BUDGET_PER_MONTH: " 700 ", "other": "x"}
    )
    assert budget == budgets.Budget(per_hour=1.5, per_month=700.0)
    assert errors == ()


def test_parse_budget_without_annotations_is_unlimited() -> None:
    budget, errors = budgets.parse_budget({})
    assert budget.unlimited
    assert errors == ()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("two dollars", budgets.BudgetErrorReason.NOT_A_NUMBER),
        ("", budgets.BudgetErrorReason.NOT_A_NUMBER),
        ("-1", budgets.BudgetErrorReason.NEGATIVE),
        ("NaN", budgets.BudgetErrorReason.NOT_FINITE),
        ("Infinity", budgets.BudgetErrorReason.NOT_FINITE),
        ("1e12", budgets.BudgetErrorReason.TOO_LARGE),
    ],
)
def test_parse_budget_reports_malformed_value_without_raising(
    raw: str, reason: budgets.BudgetErrorReason
) -> None:
    budget, errors = budgets.parse_budget({budgets.BUDGET_PER_HOUR: raw, budgets.BUDGET_PER_MONTH: "10"})
    assert budget == budgets.Budget(per_hour=None, per_month=10.0)
    assert len(errors) == 1
    assert errors[0].reason is reason
    assert errors[0].annotation == budgets.BUDGET_PER_HOUR
    assert "\n" not in errors[0].message
    assert errors[0].reason.value[0].isupper()


def test_combine_takes_the_tighter_cap_of_each_kind() -> None:
    own = budgets.Budget(per_hour=2.0)
    share = budgets.Budget(per_hour=3.0, per_month=100.0)
    assert budgets.combine(own, share) == budgets.Budget(per_hour=2.0, per_month=100.0)


def test_split_namespace_budget_by_demand_adds_up_to_the_namespace_cap() -> None:
    ns = budgets.Budget(per_hour=10.0, per_month=1000.0)
    shares = budgets.split_namespace_budget(ns, {"a": 300.0, "b": 100.0}, {"a": 100.0, "b": 300.0})
    assert shares["a"].per_hour == pytest.approx(7.5)
    assert shares["b"].per_hour == pytest.approx(2.5)
    # 600 left: a gets 450 on top of its 100 spent, b 150 on top of its 300.
    assert shares["a"].per_month == pytest.approx(550.0)
    assert shares["b"].per_month == pytest.approx(450.0)
    assert sum(s.per_month or 0 for s in shares.values()) == pytest.approx(1000.0)


def test_split_namespace_budget_without_demand_is_equal() -> None:
    shares = budgets.split_namespace_budget(budgets.Budget(per_hour=4.0), {"a": 0.0, "b": 0.0})
    assert shares["a"].per_hour == shares["b"].per_hour == pytest.approx(2.0)
    assert shares["a"].per_month is None


def test_allowed_rate_paces_the_monthly_cap_over_the_hours_left() -> None:
    budget = budgets.Budget(per_hour=5.0, per_month=1000.0)
    assert budgets.allowed_rate_per_hour(budget, month_to_date=800.0, hours_left=100.0) == pytest.approx(2.0)
    assert budgets.allowed_rate_per_hour(budget, month_to_date=0.0, hours_left=100.0) == pytest.approx(5.0)
    assert budgets.allowed_rate_per_hour(budget, month_to_date=1200.0, hours_left=10.0) == 0.0
    assert budgets.allowed_rate_per_hour(budgets.UNLIMITED, 0.0, 1.0) == math.inf
