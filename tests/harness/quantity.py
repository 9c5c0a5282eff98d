"""Kubernetes resource quantities ("500m", "1.5Gi", "2e3") as exact fractions.

Same grammar as k8s.io/apimachinery/pkg/api/resource: a signed decimal number followed by a binary suffix
(Ki..Ei), a decimal suffix (n, u, m, "", k, M, G, T, P, E) or a decimal exponent (e3, E-2).
"""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))((?:[eE][+-]?[0-9]+)|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


class QuantityError(ValueError):
    pass


def parse_quantity(value: object) -> Fraction:
    """Parse a quantity; ints and floats are accepted as JSON numbers are."""
    if isinstance(value, bool):
        raise QuantityError(f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    if not isinstance(value, str):
        raise QuantityError(f"quantity must be a string, got {type(value).__name__}")
    m = _QUANTITY.match(value.strip())
    if not m or value != value.strip():
        raise QuantityError("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, suffix = m.group(1), m.group(2) or ""
    base = Fraction(number)
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    if suffix in _DECIMAL:
        return base * _DECIMAL[suffix]
    return base * Fraction(10) ** int(suffix[1:])


def is_quantity(value: object) -> bool:
    try:
        parse_quantity(value)
    except QuantityError:
        return False
    return True


def format_quantity(value: Fraction, binary: bool = False) -> str:
    """A short canonical-ish rendering used in messages: 2, 500m, 1Gi, 1500M."""
    if value == 0:
        return "0"
    if binary and value.denominator == 1:
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            if value.numerator % _BINARY[suffix] == 0:
                return f"{value.numerator // _BINARY[suffix]}{suffix}"
    if value.denominator == 1:
        n = value.numerator
        for suffix in ("E", "P", "T", "G", "M", "k"):
            if n % _DECIMAL[suffix] == 0 and abs(n) >= _DECIMAL[suffix]:
                return f"{n // _DECIMAL[suffix]}{suffix}"
        return str(n)
    milli = value * 1000
    if milli.denominator == 1:
        return f"{milli.numerator}m"
    micro = value * 10**6
    if micro.denominator == 1:
        return f"{micro.numerator}u"
    return f"{-(-value.numerator * 10**9 // value.denominator)}n"
