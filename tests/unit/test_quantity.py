"""Resource quantities: the CRD's pattern admits exactly what the operator parses, and the parse agrees with
the Kubernetes client's own parser (apimachinery's grammar) on everything the pattern admits."""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

import hypothesis
import pytest
from hypothesis import strategies as st
from kubernetes.utils import quantity as k8s_quantity

from thrifty_api import quantity


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(text=st.from_regex(quantity.PATTERN, fullmatch=True))
def test_every_admitted_quantity_parses_as_kubernetes_parses_it(text: str) -> None:
    hypothesis.assume(len(text) <= 32)  # the CRD's maxLength
    try:
        ours = quantity.parse(text)
    except ValueError as err:  # an exponent beyond any Decimal: the planner reports InvalidResources
        assert "out of range" in str(err)
        hypothesis.assume(False)
    try:
        theirs = k8s_quantity.parse_quantity(text)
    except (ValueError, ArithmeticError):  # the client refuses exponents it cannot represent; ours is exact
        hypothesis.assume(False)
    # The client computes in Decimal's default 28 digits; ours is exact: equal to that precision.
    with decimal.localcontext(decimal.Context(prec=64, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)):
        assert abs(ours - Decimal(theirs)) <= abs(Decimal(theirs)) * Decimal("1e-26")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("+1", "1"),
        ("4e9", "4000000000"),
        ("250u", "0.00025"),
        ("1P", "1e15"),
        ("500m", "0.5"),
        ("2Gi", 2**31),
    ],
)
def test_quantities_users_write(text: str, value: str | int) -> None:
    assert quantity.parse(text) == Decimal(value)


@pytest.mark.parametrize("text", ["5mi", "-1", "1.5.0", "", "1 Gi", "Gi", "1e", "0x10", "nan", "inf"])
def test_what_kubernetes_refuses_the_pattern_refuses_too(text: str) -> None:
    assert not re.match(quantity.PATTERN, text)
    with pytest.raises(ValueError, match="quantity"):
        quantity.parse(text)
