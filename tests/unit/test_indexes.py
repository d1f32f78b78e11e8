"""The operator's in-memory indexes: what a timer pass reads instead of the API (issue 14 item 4)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from thrifty_api import optimized_model as models
from thrifty_operator import indexes


def test_a_namespace_index_keeps_only_budget_annotations() -> None:
    entry = indexes.namespace_budget(
        "shop", {models.BUDGET_PER_HOUR_ANNOTATION: "2.5", "owner": "team-search", "x": "y"}
    )
    assert entry == {"shop": {models.BUDGET_PER_HOUR_ANNOTATION: "2.5"}}
    assert indexes.namespace_budget("quiet", {}) == {"quiet": {}}
    assert indexes.budget_annotations([entry["shop"]]) == {models.BUDGET_PER_HOUR_ANNOTATION: "2.5"}
    assert indexes.budget_annotations([]) == {}


def test_model_rates_by_namespace_come_from_each_models_status() -> None:
    stores = [
        indexes.model_rate("shop", "search", {"cost": {"ratePerHour": "0.3570"}}),
        indexes.model_rate("shop", "recs", {"cost": {"ratePerHour": "1.2"}}),
        indexes.model_rate("shop", "new", {}),
    ]
    entries = [value for store in stores for value in store.values()]
    assert indexes.rates(entries) == {"search": 0.357, "recs": 1.2, "new": 0.0}


@given(
    st.one_of(
        st.none(),
        st.text(max_size=12),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        st.integers().map(str),
        st.lists(st.integers(), max_size=2),
    )
)
def test_a_rate_is_finite_and_not_negative_whatever_the_status_holds(rate: object) -> None:
    for status in ({"cost": {"ratePerHour": rate}}, {"cost": rate}, rate):
        value = indexes.rate_per_hour(status)  # type: ignore[arg-type]
        assert math.isfinite(value) and value >= 0
