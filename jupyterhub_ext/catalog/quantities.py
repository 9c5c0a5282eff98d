"""Kubernetes-style quantities for CPU and memory, parsed strictly.

Memory suffixes follow JupyterHub's ``ByteSpecification`` (which KubeSpawner and the z2jh chart use), so
``8G`` in our catalog means what it means in ``singleuser.memory.limit``: 8 GiB. The binary spellings
``Ki/Mi/Gi/Ti`` are accepted too and mean the same. Values are returned as plain numbers (cores, bytes), so
nothing downstream re-interprets a suffix.
"""

from __future__ import annotations

import re

# One grammar for every quantity we read: a plain decimal number and an optional suffix. Each kind of quantity
# gives the suffixes it accepts their meaning.
_QUANTITY_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>[a-zA-Z]{0,2})")

# JupyterHub's ByteSpecification: K/M/G/T are binary, as the Ki/Mi/Gi/Ti spellings
_MEM_UNITS = {
    "": 1,
    "K": 2**10, "Ki": 2**10,
    "M": 2**20, "Mi": 2**20,
    "G": 2**30, "Gi": 2**30,
    "T": 2**40, "Ti": 2**40,
}
_CPU_UNITS = {"": 1.0, "m": 0.001}
# Kubernetes' own meaning, for sizes that go to Kubernetes as they are written (a claim's capacity)
_STORAGE_UNITS = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


class QuantityError(ValueError):
    pass


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse(value: object, units: dict, example: str) -> float:
    """A positive number of base units; QuantityError naming ``example`` otherwise."""
    if _is_number(value):
        number = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str) and (m := _QUANTITY_RE.fullmatch(value.strip())) and m["unit"] in units:
        number = float(m["num"]) * units[m["unit"]]
    else:
        raise QuantityError(f"expected {example}, got {value!r}")
    if not number > 0:
        raise QuantityError(f"expected {example.split(' such as ')[0]} above zero, got {value!r}")
    return number


def parse_cpu(value: object) -> float:
    """``2``, ``0.5``, ``"500m"``, ``"1.5"`` -> cores (float > 0)."""
    return _parse(value, _CPU_UNITS, 'a CPU quantity such as 2, 0.5 or "500m"')


def parse_memory(value: object) -> int:
    """``"8G"``, ``"512Mi"``, ``1073741824`` -> bytes (int > 0)."""
    example = 'a memory quantity such as "8G", "512Mi" or a number of bytes'
    if _is_number(value) and not float(value).is_integer():  # type: ignore[arg-type]
        raise QuantityError(f"expected {example}, got {value!r}")
    return int(_parse(value, _MEM_UNITS, example))


def parse_storage(value: object) -> int:
    """A Kubernetes storage size (``"1Gi"``, ``"500M"``, ``"10G"``) -> bytes, with Kubernetes' suffixes."""
    if not isinstance(value, str):
        raise QuantityError(f"expected a storage size such as '1Gi', got {value!r}")
    return int(_parse(value, _STORAGE_UNITS, "a storage size such as '1Gi'"))


def format_memory(size: int) -> str:
    """Bytes -> the shortest exact binary spelling (``8589934592`` -> ``8Gi``)."""
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        if size % _MEM_UNITS[unit] == 0:
            return f"{size // _MEM_UNITS[unit]}{unit}"
    return str(size)


def format_cpu(cores: float) -> str:
    """Cores -> ``"2"`` or ``"500m"``."""
    if float(cores).is_integer():
        return str(int(cores))
    return f"{round(cores * 1000)}m"
