"""Strict reading of the toolkit's YAML input files (workload, sweep), checked with pydantic.

:func:`read_yaml` reads a file as the schemas need it:

- UTF-8 only (a BOM is allowed); anything else is one line naming the byte;
- YAML 1.2 scalars: only ``true`` / ``false`` are booleans (``yes``, ``no``, ``on``, ``off`` and
  ``NO``, Norway's code, stay text), ``1e6`` is a number (YAML 1.1 read it as text), and a
  quoted value is always text: ``cfg: "false"`` is the text ``false``, which a boolean field
  refuses (it is never read as true);
- a key given twice in one mapping is refused, with both lines;
- a file over 1 MiB, or one whose aliases expand to over 100,000 nodes, is refused;
- the composed node tree is kept, so that :func:`schema_error` can give the line of the value a
  pydantic error points at: ``workload.yaml:7: job 2: `cfg` is 'false' (text); rule: ...``.

:data:`WholeNumber` and :data:`FiniteNumber` are the number types of the schemas: a whole number
also reads from an integral float (``count: 1e6`` is 1,000,000, and a note says so); NaN,
infinities, booleans and text are refused. :func:`whole_number` and :func:`finite_number` are the
same rules for the CLI's number arguments.
"""

from __future__ import annotations

import math
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Callable

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError, ValidationInfo

from scaling.errors import ScalingError

__all__ = ["FiniteNumber", "WholeNumber", "boolean", "checked", "finite_number", "one_or_list", "precision_name",
           "read_yaml", "resolution", "schema_error", "text", "validate", "whole_number"]

MAX_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_WHOLE = 10 ** 15
"""The largest whole number a count may be (a quadrillion outputs): beyond it a figure is a typo."""


# -- the loader ------------------------------------------------------------------------------------

class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and floats, refusing duplicate keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _DuplicateKey(None, None, f"key `{key}` is given twice (lines {seen[key]} and {line}); "
                                        "rule: each key once", key_node.start_mark)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


_BOOL, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:float"
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
StrictLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the tree with every alias expanded (memoised: a billion laughs costs nothing)."""
    memo: dict[int, int] = {}

    def size(node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        memo[key] = 1  # a recursive alias counts once
        if isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(c) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            n = 1
        memo[key] = min(n, MAX_NODES + 1)
        return memo[key]

    return size(root)


def read_yaml(path: str | os.PathLike, *, what: str, error: type[ScalingError]) -> tuple[Any, yaml.Node | None]:
    """Read a YAML file strictly; returns ``(data, root node)`` (both None for an empty file).

    Any fault is one ``error`` line: ``path:line: ...``.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise error(f"{p}: no such {what} file") from None
    except IsADirectoryError:
        raise error(f"{p}: a folder, not a {what} file") from None
    except OSError as exc:
        raise error(f"{p}: cannot read the {what} file ({(exc.strerror or str(exc)).lower()})") from None
    if len(raw) > MAX_BYTES:
        raise error(f"{p}: {len(raw):,} bytes; rule: a {what} file is at most {MAX_BYTES:,} bytes of YAML")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise error(f"{p}:{line}: byte 0x{raw[exc.start]:02x} is not UTF-8; rule: a {what} file is UTF-8 text "
                    "(re-save it as UTF-8)") from None
    if "\x00" in text:
        raise error(f"{p}: holds a NUL byte; rule: a {what} file is UTF-8 text")
    loader = StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None and _expanded_size(root) > MAX_NODES:
            raise error(f"{p}: its aliases expand to over {MAX_NODES:,} values; rule: a {what} file is small")
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "not valid YAML"
        rule = "" if isinstance(exc, _DuplicateKey) else "not valid YAML: "
        raise error(f"{p}{where}: {rule}{' '.join(str(problem).split())}") from None
    except yaml.YAMLError as exc:
        raise error(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise error(f"{p}: nested too deeply; rule: a {what} file is a flat mapping of lists") from None
    finally:
        loader.dispose()
    return data, root


# -- values ----------------------------------------------------------------------------------------
# Each rule takes the value (and the field name) and returns it checked, or raises ValueError with
# the rule in words; :func:`checked` makes a pydantic field type of one, :func:`one_or_list` a
# field of a sweep grid (one value or a non-empty list of them). ``None`` passes: it means unset.

def _note(info: ValidationInfo | None, text: str) -> None:
    notes = (info.context or {}).get("notes") if info is not None else None
    if notes is not None:
        notes.append(text)


def _kind_of(value: Any) -> str:
    return {str: "text", bool: "true/false", list: "a list", dict: "a mapping", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def whole_number(value: Any, name: str = "value", info: ValidationInfo | None = None, *, lo: int | None = 1) -> int:
    """``value`` as a whole number >= ``lo``: an int, or an integral finite float (1e6 -> 1000000).

    Booleans, text, NaN, infinities, fractions and numbers over :data:`MAX_WHOLE` raise ``ValueError``.
    """
    floor = f" >= {lo}" if lo is not None else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a whole number{floor}, not {_kind_of(value)}" + (" (unquoted)" if isinstance(value, str)
                                                                            else ""))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a finite whole number{floor} (not .inf or .nan)")
        if not value.is_integer():
            raise ValueError(f"a whole number{floor} (no fraction)")
        if abs(value) <= MAX_WHOLE:
            _note(info, f"`{name}` {value:g} read as the whole number {int(value):,}")
        value = int(value)
    if lo is not None and value < lo:
        raise ValueError(f"a whole number{floor}")
    if abs(value) > MAX_WHOLE:
        raise ValueError(f"a whole number up to {MAX_WHOLE:.0e} (a larger one is a typo)")
    return value


def finite_number(value: Any, name: str = "value", info: ValidationInfo | None = None, *,
                  gt: float | None = None, ge: float | None = None, le: float | None = None) -> float:
    """``value`` as a finite float within the bounds; booleans, text, NaN and infinities raise ``ValueError``."""
    bounds = " ".join(b for b in (f"> {gt:g}" if gt is not None else "", f">= {ge:g}" if ge is not None else "",
                                  f"<= {le:g}" if le is not None else "") if b)
    rule = f"a finite number{' ' + bounds if bounds else ''}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{rule}, not {_kind_of(value)}" + (" (unquoted)" if isinstance(value, str) else ""))
    if not math.isfinite(value):
        raise ValueError(f"{rule} (not .inf or .nan)")
    if (gt is not None and not value > gt) or (ge is not None and value < ge) or (le is not None and value > le):
        raise ValueError(rule)
    return float(value)


def text(value: Any, name: str = "value", info: ValidationInfo | None = None) -> str:
    """Non-empty text (surrounding spaces dropped); a number, a boolean or a list raises ``ValueError``."""
    if not isinstance(value, str):
        raise ValueError(f"a name (text), not {_kind_of(value)}")
    if not value.strip():
        raise ValueError("a name (non-empty text)")
    return value.strip()


def resolution(value: Any, name: str = "res", info: ValidationInfo | None = None) -> str | int:
    """A resolution as written: text (``480p``, ``832x480``) or one whole number (a square side)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return whole_number(value, name, info)
    raise ValueError(f"a resolution: 480p, 720p, WxH (832x480, width first) or one whole number, not {_kind_of(value)}")


def precision_name(value: Any, name: str = "precision", info: ValidationInfo | None = None) -> str:
    """A precision name of :data:`scaling.precision.PRECISIONS` (case ignored), canonical."""
    from scaling.precision import PRECISIONS, normalize_precision

    rule = f"a precision name, one of {', '.join(PRECISIONS)}"
    if not isinstance(value, str):
        raise ValueError(f"{rule} (text), not {_kind_of(value)}")
    try:
        return normalize_precision(value)
    except ScalingError:
        raise ValueError(rule) from None


def boolean(value: Any, name: str = "value", info: ValidationInfo | None = None) -> bool:
    """``true`` or ``false``; text (a quoted "false") and numbers raise ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"true or false, unquoted (a quoted \"false\" is text), not {_kind_of(value)}")
    return value


def checked(rule: Callable[..., Any], **bounds: Any) -> Any:
    """A pydantic field type that runs ``rule(value, name, info, **bounds)`` (``None`` passes)."""
    def run(value: Any, info: ValidationInfo) -> Any:
        return None if value is None else rule(value, info.field_name or "value", info, **bounds)

    return Annotated[Any, BeforeValidator(run)]


def one_or_list(rule: Callable[..., Any], **bounds: Any) -> Any:
    """A sweep-grid field: one value or a non-empty list of values, each checked by ``rule``;
    read as a list. A list inside the list is refused."""
    def run(value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        name = info.field_name or "value"
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError("one value or a non-empty list of values")
        out = []
        for i, v in enumerate(values, 1):
            if isinstance(v, (list, dict)):
                raise ValueError(f"one value or a list of values; item {i} is {_kind_of(v)}")
            try:
                out.append(rule(v, name, info, **bounds) if v is not None else None)
            except ValueError as exc:
                raise ValueError(f"{exc}" + (f" (item {i} is {_show(v)})" if isinstance(value, list) else "")) from None
        return out

    return Annotated[Any, BeforeValidator(run)]


WholeNumber = checked(whole_number)
FiniteNumber = checked(finite_number)


# -- errors ----------------------------------------------------------------------------------------

def node_line(root: yaml.Node | None, loc: tuple) -> int:
    """The 1-based line of the value at ``loc`` (or of the key, for an unknown key), or of the
    deepest node found on the way there."""
    node, line = root, (root.start_mark.line + 1 if root is not None else 1)
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            hit = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 1, hit[1]
            if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
                line = node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``list[M]``, ``M | None``, ``Annotated[M, ...]``, ..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The model whose field ``loc[-1]`` is (for the allowed keys of an unknown key)."""
    for part in loc[:-1]:
        if isinstance(part, str):
            field = model.model_fields.get(part)
            inner = _unwrap_model(field.annotation) if field is not None else None
            if inner is None:
                break
            model = inner
    return model


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_RULES = {
    "bool_type": "true or false, unquoted (a quoted \"false\" is text)",
    "string_type": "text (a name; quote it if it looks like a number)",
    "int_type": "a whole number",
    "float_type": "a number",
    "finite_number": "a finite number (not .inf or .nan)",
    "list_type": "a list, as [a, b] or one `- item` per line",
    "too_short": "a non-empty list",
    "dict_type": "a mapping of `key: value` lines",
    "model_type": "a mapping of `key: value` lines",
    "model_attributes_type": "a mapping of `key: value` lines",
}


def schema_error(exc: ValidationError, *, source: str | os.PathLike, root: yaml.Node | None,
                 model: type[BaseModel], where: Callable[[tuple], str] | None = None,
                 unknown: str = "unknown key") -> str:
    """One line for the first error of ``exc``: ``source:line: where `key` is value; rule: ...``.

    ``where(loc)`` names the part of the document (``job 2``); default: the dotted path.
    """
    err = exc.errors(include_url=False)[0]
    loc, kind = tuple(err["loc"]), err["type"]
    line = node_line(root, loc)
    key_loc = tuple(p for p in loc if isinstance(p, str))
    key = loc[-1] if loc else None
    part = where(loc) if where is not None else ".".join(str(p) for p in loc[:-1])
    prefix = f"{source}:{line}: " + (f"{part}: " if part else "")
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(f.alias or n for n, f in model_at(model, key_loc).model_fields.items()))
        return f"{prefix}{unknown} `{key}`; allowed: {allowed}"
    if kind == "missing":
        return f"{prefix}`{key}` is missing; rule: it is required"
    if kind == "value_error":
        rule = str(err.get("ctx", {}).get("error") or err["msg"].removeprefix("Value error, "))
        if isinstance(err.get("input"), dict):  # a rule across the keys of one mapping
            return f"{prefix}{rule}"
    else:
        rule = _RULES.get(kind) or err["msg"].removeprefix("Input should be ").rstrip(".")
    label = f"`{key}`" if isinstance(key, str) else f"item {key + 1}" if isinstance(key, int) else "the file"
    if isinstance(key, int) and len(loc) >= 2 and isinstance(loc[-2], str):
        label = f"`{loc[-2]}` item {key + 1}"
    shown = _show(err.get("input"))
    if isinstance(err.get("input"), str):
        shown += " (text)"
    return f"{prefix}{label} is {shown}; rule: {rule}"


def validate(model: type[BaseModel], data: Any, *, source: str | os.PathLike, root: yaml.Node | None,
             error: type[ScalingError], where: Callable[[tuple], str] | None = None,
             notes: list[str] | None = None, unknown: str = "unknown key") -> BaseModel:
    """``model.model_validate(data)``; the first error as one ``error`` line with its file line."""
    try:
        return model.model_validate(data, context={"notes": notes if notes is not None else []})
    except ValidationError as exc:
        raise error(schema_error(exc, source=source, root=root, model=model, where=where,
                                 unknown=unknown)) from None

