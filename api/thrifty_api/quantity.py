"""Kubernetes resource quantities ("500m", "2Gi", "4e9"): the CRD's pattern and the parser that reads what it
admits, in one place so the two cannot disagree.

The grammar is apimachinery's (k8s.io/apimachinery/pkg/api/resource): a number with an optional `+`, then a
binary suffix (Ki … Ei), a decimal suffix (n, u, m, k, M, G, T, P, E) or a decimal exponent (`e3`, `E-2`).
Negative quantities are left out: no request is negative.
"""

from __future__ import annotations

import re
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal

PATTERN = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
_QUANTITY = re.compile(r"^[+]?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][-+]?[0-9]+)?$")
# Exponents as large as the pattern admits stay exact (and then fit no node) rather than overflow.
_WIDE = Context(prec=64, Emax=MAX_EMAX, Emin=MIN_EMIN)
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse(value: str) -> Decimal:
    """A quantity as a Decimal (exact, however large its exponent); ValueError for anything the pattern does
    not admit."""
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"not a resource quantity: {value!r}")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix in _SUFFIX:
        return _WIDE.multiply(number, _SUFFIX[suffix])
    try:
        return number.scaleb(int(suffix[1:]), context=_WIDE)
    except ArithmeticError as err:
        raise ValueError(f"resource quantity out of range: {value!r}") from err
