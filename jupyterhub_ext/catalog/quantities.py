"""Kubernetes-style quantities for CPU and memory, parsed strictly.

Memory suffixes follow JupyterHub's ``ByteSpecification`` (which KubeSpawner and the z2jh chart use), so
``8G`` in our catalog means what it means in ``singleuser.memory.limit``: 8 GiB. The binary spellings
``Ki/Mi/Gi/Ti`` are accepted too and mean the same. Values are returned as plain numbers (cores, bytes), so
nothing downstream re-interprets a suffix.
"""

from __future__ import annotations

import re

_MEM_UNITS = {
    "": 1,
    "K": 2**10, "Ki": 2**10,
    "M": 2**20, "Mi": 2**20,
    "G": 2**30, "Gi": 2**30,
    "T": 2**40, "Ti": 2**40,
}
_MEM_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>[KMGT]i?)?")
_CPU_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<milli>m)?")


class QuantityError(ValueError):
    pass


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_cpu(value: object) -> float:
    """``2``, ``0.5``, ``"500m"``, ``"1.5"`` -> cores (float > 0)."""
    if _is_number(value):
        cores = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str) and (m := _CPU_RE.fullmatch(value.strip())):
        cores = float(m["num"]) / (1000 if m["milli"] else 1)
    else:
        raise QuantityError(
            f"expected a CPU quantity such as 2, 0.5 or \"500m\", got {value!r}"
        )
    if not cores > 0:
        raise QuantityError(f"expected a CPU quantity above zero, got {value!r}")
    return cores


def parse_memory(value: object) -> int:
    """``"8G"``, ``"512Mi"``, ``1073741824`` -> bytes (int > 0)."""
    if _is_number(value) and float(value) == int(value):  # type: ignore[arg-type]
        size = int(value)  # type: ignore[arg-type]
    elif isinstance(value, str) and (m := _MEM_RE.fullmatch(value.strip())):
        size = int(float(m["num"]) * _MEM_UNITS[m["unit"] or ""])
    else:
        raise QuantityError(
            f"expected a memory quantity such as \"8G\", \"512Mi\" or a number of bytes, got {value!r}"
        )
    if size <= 0:
        raise QuantityError(f"expected a memory quantity above zero, got {value!r}")
    return size


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
