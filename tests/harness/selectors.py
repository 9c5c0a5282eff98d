"""Label and field selectors with the apiserver's grammar and error wording.

Label selectors (k8s.io/apimachinery/pkg/labels): ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``,
``a notin (x,y)``, ``a``, ``!a``, ``a>3``, ``a<3``, comma-separated (AND).
Field selectors (k8s.io/apimachinery/pkg/fields): ``path=value``, ``path==value``, ``path!=value``, comma-separated,
with ``\\,``, ``\\=`` and ``\\\\`` escapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class SelectorError(ValueError):
    """Raised for selectors the apiserver would reject with 400 BadRequest."""


def label_key_errors(key: str) -> list[str]:
    errors = []
    prefix, _, name = key.rpartition("/") if "/" in key else ("", "", key)
    if "/" in key:
        if not prefix:
            errors.append("prefix part must be non-empty")
        elif len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix):
            errors.append("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric character")
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    elif not _QUALIFIED_NAME.match(name):
        errors.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                      "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                      "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return errors


def label_value_errors(value: str) -> list[str]:
    if len(value) > 63:
        return ["must be no more than 63 characters"]
    if not _LABEL_VALUE.match(value):
        return ["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
    return []


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("gt", "lt"):
            if not present:
                return False
            try:
                have, want = int(value), int(self.values[0])
            except ValueError:
                return False
            return have > want if self.op == "gt" else have < want
        raise AssertionError(self.op)


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


_TOKEN = re.compile(r"\s*(==|!=|=|\(|\)|,|!|>|<|[^\s=!(),<>]+)")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the string form, as sent in ``?labelSelector=``."""
    if not text or not text.strip():
        return LabelSelector()
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise SelectorError(f"unable to parse requirement: found '{text[pos:]}', expected: identifier")
        tokens.append(m.group(1))
        pos = m.end()
    reqs: list[Requirement] = []
    i = 0

    def expect_values() -> tuple[tuple[str, ...], int]:
        j = i
        if j >= len(tokens) or tokens[j] != "(":
            raise SelectorError(f"unable to parse requirement: found '{tokens[j] if j < len(tokens) else ''}', "
                                "expected: '('")
        j += 1
        values: list[str] = []
        expect_value = True
        while j < len(tokens) and tokens[j] != ")":
            t = tokens[j]
            if t == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            else:
                if not expect_value:
                    raise SelectorError(f"unable to parse requirement: found '{t}', expected: ',' or ')'")
                values.append(t)
                expect_value = False
            j += 1
        if j >= len(tokens):
            raise SelectorError("unable to parse requirement: found '', expected: ')'")
        return tuple(values), j + 1

    while i < len(tokens):
        t = tokens[i]
        if t == "!":
            i += 1
            if i >= len(tokens):
                raise SelectorError("unable to parse requirement: found '', expected: identifier")
            key = tokens[i]
            _check_key(key)
            reqs.append(Requirement(key, "!"))
            i += 1
        else:
            key = t
            if key in ("=", "==", "!=", "(", ")", ",", ">", "<"):
                raise SelectorError(f"unable to parse requirement: found '{key}', expected: identifier")
            _check_key(key)
            i += 1
            if i >= len(tokens) or tokens[i] == ",":
                reqs.append(Requirement(key, "exists"))
            else:
                op = tokens[i]
                i += 1
                if op in ("=", "==", "!="):
                    value = ""
                    if i < len(tokens) and tokens[i] not in (",",):
                        value = tokens[i]
                        i += 1
                    _check_value(value)
                    reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
                elif op in ("in", "notin"):
                    values, i = expect_values()
                    if not values:
                        raise SelectorError(f"unable to parse requirement: for 'in', 'notin' operators, "
                                            "values set can't be empty")
                    for v in values:
                        _check_value(v)
                    reqs.append(Requirement(key, op, values))
                elif op in (">", "<"):
                    if i >= len(tokens):
                        raise SelectorError("unable to parse requirement: found '', expected: identifier")
                    value = tokens[i]
                    i += 1
                    try:
                        int(value)
                    except ValueError:
                        raise SelectorError(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                                            f"must be an integer") from None
                    reqs.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
                else:
                    raise SelectorError(f"unable to parse requirement: found '{op}', expected: "
                                        "'=', '!=', '==', 'in', notin'")
        if i < len(tokens):
            if tokens[i] != ",":
                raise SelectorError(f"unable to parse requirement: found '{tokens[i]}', expected: ','")
            i += 1
            if i >= len(tokens):
                raise SelectorError("unable to parse requirement: found '', expected: identifier")
    return LabelSelector(tuple(reqs))


def _check_key(key: str) -> None:
    errs = label_key_errors(key)
    if errs:
        raise SelectorError(f"unable to parse requirement: values[0][{key}]: Invalid value: \"{key}\": "
                            + "; ".join(errs))


def _check_value(value: str) -> None:
    errs = label_value_errors(value)
    if errs:
        raise SelectorError(f"unable to parse requirement: values[0][{value}]: Invalid value: \"{value}\": "
                            + "; ".join(errs))


def selector_from_object(spec: Mapping | None) -> LabelSelector:
    """A metav1.LabelSelector object (``matchLabels`` / ``matchExpressions``)."""
    if not spec:
        return LabelSelector()
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (spec.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in spec.get("matchExpressions") or []:
        op = expr.get("operator")
        if op not in ops:
            raise SelectorError(f"\"{op}\" is not a valid label selector operator")
        reqs.append(Requirement(expr["key"], ops[op], tuple(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


# ---------------------------------------------------------------------------------------------- field selectors

@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping, getters: Mapping[str, Callable[[Mapping], str | None]]) -> bool:
        for r in self.requirements:
            got = getters[r.field](obj)
            got = "" if got is None else str(got)
            if (got == r.value) != (r.op == "="):
                return False
        return True

    def fields(self) -> Iterable[str]:
        return (r.field for r in self.requirements)

    def value_of(self, field: str) -> str | None:
        """The value an equality requirement pins ``field`` to, for index lookups."""
        for r in self.requirements:
            if r.field == field and r.op == "=":
                return r.value
        return None


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: {value[i:i + 2]}")
            out.append(value[i + 1])
            i += 2
        else:
            if value[i] in ",=":
                raise SelectorError(f"invalid field selector: unescaped {value[i]} in value")
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_field_selector(text: str | None, supported: Iterable[str]) -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    supported = set(supported)
    reqs = []
    for part in _split_unescaped(text, ","):
        if not part:
            continue
        for op in ("!=", "==", "="):
            idx = _find_unescaped(part, op)
            if idx >= 0:
                field, value = part[:idx].strip(), part[idx + len(op):]
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", _unescape(value)))
    return FieldSelector(tuple(reqs))


def _find_unescaped(text: str, op: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(op, i):
            # "!=" must not be mistaken for "=" and "==" for "="
            if op == "=" and (i > 0 and text[i - 1] == "!"):
                i += 1
                continue
            return i
        i += 1
    return -1
