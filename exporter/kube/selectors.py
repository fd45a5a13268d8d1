"""Kubernetes label and field selector parsing and matching.

Mirrors the grammar of k8s.io/apimachinery ``labels.Parse`` and ``fields.ParseSelector`` closely enough
that every selector a real kube-apiserver accepts is accepted here, and malformed ones are rejected.
The API test server filters with it, and so does the `devices` command reading a dump: one parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SELECTABLE_FIELDS",
    "FieldRequirement",
    "FieldSelector",
    "LabelRequirement",
    "LabelSelector",
    "SelectorError",
    "object_matches",
    "parse_field_selector",
    "parse_label_selector",
]

_META_FIELDS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
}

# Field selector label -> path inside the object: what the real API server supports per resource.
SELECTABLE_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "configmaps": _META_FIELDS,
    "events": {
        **_META_FIELDS,
        **{
            f"involvedObject.{name}": ("involvedObject", name)
            for name in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        },
        "reason": ("reason",),
        "reportingComponent": ("reportingComponent",),
        "source": ("source", "component"),
        "type": ("type",),
    },
}


def field_of(obj: Mapping[str, Any], path: tuple[str, ...]) -> str:
    """A selectable field's value as the API server compares it ("" when absent)."""
    value: Any = obj
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


class SelectorError(ValueError):
    """A selector string that a real API server would reject with 400 BadRequest."""


_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INTEGER = re.compile(r"-?[0-9]+")


def _validate_key(key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise SelectorError(f"invalid label key {key!r}: prefix must be a DNS-1123 subdomain")
    if len(name) > 63 or not _NAME.fullmatch(name):
        raise SelectorError(f"invalid label key {key!r}: name part must be a qualified name")


def _validate_value(value: str) -> None:
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        raise SelectorError(f"invalid label value: {value!r}")


# -- label selectors ------------------------------------------------------------------------------------

_SPECIAL = "!=<>(),"
_OPERATORS = ("!=", "==", "=", "!", "<", ">", "(", ")", ",")
_IDENT = "ident"
_END = "end"


def _tokenize(text: str) -> list[tuple[str, str]]:
    """Split a label selector into (kind, text) tokens; kind is an operator string, _IDENT or _END."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        if char in _SPECIAL:
            op = next(op for op in _OPERATORS if text.startswith(op, pos))
            tokens.append((op, op))
            pos += len(op)
            continue
        end = pos
        while end < len(text) and not text[end].isspace() and text[end] not in _SPECIAL:
            end += 1
        word = text[pos:end]
        # "in"/"notin" are keywords only as operators; the parser also accepts them as plain words.
        tokens.append((word if word in ("in", "notin") else _IDENT, word))
        pos = end
    tokens.append((_END, ""))
    return tokens


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One comma-separated term. ``op`` is one of ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``,
    ``gt`` and ``lt`` (``==`` is normalised to ``=``)."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return value in self.values
        if self.op in ("!=", "notin"):
            # Like Kubernetes: an object without the label satisfies a negative requirement.
            return value not in self.values
        if self.op == "exists":
            return value is not None
        if self.op == "!":
            return value is None
        if value is None or not _INTEGER.fullmatch(value):
            return False
        (bound,) = self.values
        return int(value) > int(bound) if self.op == "gt" else int(value) < int(bound)


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


class _LabelParser:
    def __init__(self, text: str) -> None:
        self._tokens = _tokenize(text)
        self._pos = 0

    def _peek(self) -> str:
        return self._tokens[self._pos][0]

    def _next(self) -> tuple[str, str]:
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def _expect_word(self, what: str) -> str:
        kind, text = self._next()
        if kind not in (_IDENT, "in", "notin"):
            raise SelectorError(f"found {text!r}, expected: {what}")
        return text

    def parse(self) -> LabelSelector:
        requirements: list[LabelRequirement] = []
        if self._peek() == _END:
            return LabelSelector()
        while True:
            requirements.append(self._requirement())
            kind, text = self._next()
            if kind == _END:
                return LabelSelector(tuple(requirements))
            if kind != ",":
                raise SelectorError(f"found {text!r}, expected: ',' or end of string")

    def _requirement(self) -> LabelRequirement:
        negated = self._peek() == "!"
        if negated:
            self._next()
        key = self._expect_word("identifier")
        _validate_key(key)
        if negated:
            return LabelRequirement(key, "!")
        if self._peek() in (",", _END):
            return LabelRequirement(key, "exists")
        op, text = self._next()
        if op in ("in", "notin"):
            return LabelRequirement(key, op, self._value_set())
        if op not in ("=", "==", "!=", "<", ">"):
            raise SelectorError(f"found {text!r}, expected: in, notin, =, ==, !=, gt, lt")
        value = "" if self._peek() in (",", _END) else self._expect_word("identifier")
        if op in ("<", ">"):
            if not _INTEGER.fullmatch(value):
                raise SelectorError(f"for 'gt', 'lt' operators, the value must be an integer: {value!r}")
            return LabelRequirement(key, "gt" if op == ">" else "lt", frozenset((value,)))
        _validate_value(value)
        return LabelRequirement(key, "!=" if op == "!=" else "=", frozenset((value,)))

    def _value_set(self) -> frozenset[str]:
        kind, text = self._next()
        if kind != "(":
            raise SelectorError(f"found {text!r}, expected: '('")
        values: list[str] = []
        expect_value = True
        while True:
            kind, text = self._next()
            if kind == ")":
                break
            if kind == ",":
                if expect_value:  # "(a,,b)" and "(,a)" contribute an empty value, as in Kubernetes
                    values.append("")
                expect_value = True
            elif kind in (_IDENT, "in", "notin") and expect_value:
                values.append(text)
                expect_value = False
            else:
                raise SelectorError(f"found {text!r}, expected: ',', ')' or identifier")
        if expect_value:
            values.append("")
        for value in values:
            _validate_value(value)
        return frozenset(values)


def parse_label_selector(text: str) -> LabelSelector:
    """Parse ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``, ``k>1``,
    ``k<1`` terms joined by commas (AND)."""
    return _LabelParser(text).parse()


# -- field selectors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    value: str
    negated: bool


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def fields(self) -> set[str]:
        return {req.field for req in self.requirements}

    def matches(self, field_value: Callable[[str], str]) -> bool:
        """``field_value`` maps a field label (``metadata.name``) to the object's value for it."""
        return all((field_value(req.field) == req.value) != req.negated for req in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` except where backslash-escaped; escapes are kept for the next stage."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _field_term(term: str) -> FieldRequirement:
    # Find the first unescaped operator: "!=", "==" or "=".
    index = 0
    while index < len(term):
        if term[index] == "\\":
            index += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, index):
                field = _unescape(term[:index]).strip()
                value = _unescape(term[index + len(op) :])
                if not field:
                    break
                return FieldRequirement(field, value, negated=op == "!=")
        index += 1
    raise SelectorError(f"invalid selector: {term!r}; can't understand '{term}'")


def parse_field_selector(text: str) -> FieldSelector:
    """Parse ``field=value``, ``field==value`` and ``field!=value`` terms joined by commas."""
    if not text.strip():
        return FieldSelector()
    return FieldSelector(tuple(_field_term(term) for term in _split_unescaped(text, ",")))


def object_matches(obj: Mapping[str, Any], resource: str, label_selector: str, field_selector: str) -> bool:
    """Whether a LIST of `resource` with these selectors returns `obj` (selectors as the API server
    parses them; a field the resource cannot be selected by matches nothing)."""
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if label_selector and not parse_label_selector(label_selector).matches(
        labels if isinstance(labels, dict) else {}
    ):
        return False
    if not field_selector:
        return True
    fields = SELECTABLE_FIELDS.get(resource, _META_FIELDS)
    selector = parse_field_selector(field_selector)
    if not selector.fields <= fields.keys():
        return False
    return selector.matches(lambda label: field_of(obj, fields[label]))
