"""Scenario variants: `extends:` (a base file), `overrides:` (dotted keys) and `sweep:` (a grid).

Pure data, no solver (docs/batch.md). A scenario file may carry three keys that are not part of the
scenario format and are resolved here, before pydantic validation:

- `extends: base.yaml` (a path relative to the file that says it): the base file, itself resolved
  the same way, is deep-merged with this file. Mappings merge key by key, recursively; any other
  value (numbers, strings, *lists*) in this file replaces the base's; `null` removes the key (the
  field falls back to its default). A cycle of `extends:` is an error.
- `overrides: {DOTTED.KEY: value, ...}`: values set at dotted paths after the merge.
- `sweep: {DOTTED.KEY: [values] | {start, stop, num, scale, label} | {values, label}}`: the file
  stands for the cartesian product of the axes, one variant per grid point, axes in file order
  (the first axis varies slowest).

Dotted paths address mapping keys and list items by their `name` (`workloads.chat.slo.tpot_ms`,
`gpus.H200.cost_per_hour`), a list index when the items have no names (`kv_transfer.links.0`),
every key or item with `*` (`workloads.*.slo.tpot_ms`); `[...]` quotes a part that contains a dot
(`models[deepseek-v3.1].weight_gib`). Two keys (overrides or sweep axes) that reach the same value
are an error, as in Calliope. Each applied key is recorded as `key: old -> new`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pdopt.scenario.paths import absolutize_document
from pdopt.scenario.problems import Problem, ScenarioError

log = logging.getLogger(__name__)

VARIANT_KEYS = ("extends", "overrides", "sweep")
MAX_EXTENDS_DEPTH = 32
MAX_VARIANTS_PER_FILE = 100_000
_ABSENT = object()


class PathError(ValueError):
    """A dotted path that does not fit the document (no such item, a value in the way)."""
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_LABEL = re.compile(r"[A-Za-z0-9_.:+-]+")
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.:+-]")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_VALUE_TEXT = 64  # characters of one swept value in an id
_PATH = re.compile(r"(?:[^.\[\]]+|\[[^\[\]]+\])(?:\.[^.\[\]]+|\.?\[[^\[\]]+\])*")
_PART = re.compile(r"\[([^\[\]]+)\]|([^.\[\]]+)")


# --- extends ------------------------------------------------------------------------------------


def deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """`child` over `base`: mappings merge recursively, other values replace, `None` removes."""
    out = dict(base)
    for key, value in child.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_with_extends(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a file and merge it over the file its `extends:` names (recursively).

    The result is plain data without `extends`; `overrides` and `sweep` are left in it (they merge
    like any mapping, so a child may add sweep axes to its base's or remove one with `null`).
    """
    from pdopt.inputfiles import describe_path
    from pdopt.scenario.loading import (
        read_document,  # pdopt.scenario.loading calls back into this module
    )

    path = Path(path)
    source = str(path)
    data = read_document(path)
    absolutize_document(data, path.resolve().parent)  # relative to the file that wrote them
    ref = data.pop("extends", None)
    if ref is None:
        return data
    if not isinstance(ref, str) or not ref.strip():
        raise ScenarioError(
            [Problem("extends", "must be the path of a base scenario file")], source
        )
    me = path.resolve()
    base_path = (path.parent / ref).resolve()
    chain = (*_chain, me)
    if base_path in chain:
        cycle = " -> ".join(str(p) for p in (*chain[chain.index(base_path):], base_path))
        raise ScenarioError([Problem("extends", f"cycle: {cycle}")], source)
    if len(chain) > MAX_EXTENDS_DEPTH:
        raise ScenarioError(
            [Problem("extends", f"more than {MAX_EXTENDS_DEPTH} levels of extends")], source
        )
    kind = describe_path(base_path)  # stat only: a FIFO or a device is never opened here
    if kind == "not found":
        raise ScenarioError([Problem("extends", f"base file not found: {base_path}")], source)
    if kind is not None:
        what = kind if kind.startswith("cannot") else f"is {kind}, not a scenario file"
        raise ScenarioError([Problem("extends", f"{base_path}: {what}")], source)
    return deep_merge(read_with_extends(base_path, chain), data)


# --- dotted paths -------------------------------------------------------------------------------


def parse_path(text: str) -> tuple[str, ...]:
    """'workloads.chat.slo.tpot_ms' -> ('workloads', 'chat', 'slo', 'tpot_ms'); [..] quotes."""
    if not isinstance(text, str) or not _PATH.fullmatch(text):
        raise ValueError(f"'{text}' is not a dotted path such as workloads.chat.slo.tpot_ms")
    return tuple(q or p for q, p in _PART.findall(text))


def format_path(parts: tuple[str, ...]) -> str:
    out = ""
    for part in parts:
        if "." in part or not part:
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


@dataclass(frozen=True)
class Target:
    """One concrete place a dotted path reaches: `container[key]` (key may not exist yet)."""

    container: dict[Any, Any] | list[Any]
    key: Any
    location: tuple[str, ...]

    @property
    def old(self) -> Any:
        if isinstance(self.container, list):
            return self.container[self.key]
        return self.container.get(self.key, _ABSENT)


def _dict_key(node: dict[Any, Any], part: str) -> Any:
    for k in node:
        if str(k) == part:
            return k
    if part.isdigit() and any(isinstance(k, int) for k in node):
        return int(part)  # a new entry of an int-keyed table (tpot_ms_by_batch)
    return part


def _names(node: Any) -> list[str]:
    """The keys of a mapping, the names of a list's items, as a dotted path sees them."""
    if isinstance(node, dict):
        return [str(k) for k in node]
    if isinstance(node, list):
        return [str(it["name"]) for it in node if isinstance(it, dict) and "name" in it]
    return []


def _name_parts(node: Any, parts: tuple[str, ...], i: int) -> int:
    """How many parts from `i` on name one key or item of `node`: 1, or more for a name with dots
    written without brackets (`models.llama-3.1-8b.kv_bytes_per_token` reaches the key
    `llama-3.1-8b`: the longest run of parts that names one when `parts[i]` alone does not)."""
    names = set(_names(node))
    if parts[i] == "*" or parts[i] in names:
        return 1
    for n in range(len(parts) - i, 1, -1):
        if ".".join(parts[i:i + n]) in names:
            return n
    return 1


def _bracket_hint(node: Any, part: str, where: tuple[str, ...]) -> str:
    dotted = [n for n in _names(node) if "." in n]
    if not dotted:
        return ""
    example = format_path((*where, dotted[0]))
    return f"; names with dots can be written as they are or in brackets: {example}"


def _list_index(node: list[Any], part: str, where: tuple[str, ...]) -> int:
    for i, item in enumerate(node):
        if isinstance(item, dict) and str(item.get("name")) == part:
            return i
    if part.isdigit() and int(part) < len(node):
        return int(part)
    names = _names(node)
    has = f" (it has: {', '.join(names)})" if names else f" (it has {len(node)} items)"
    raise PathError(f"no item named '{part}' in {format_path(where)}{has}"
                    + _bracket_hint(node, part, where))


def resolve(data: dict[str, Any], parts: tuple[str, ...]) -> list[Target]:
    """Every place `parts` reaches in `data`; creates missing intermediate mappings.

    A name with dots may be written without brackets: where `parts[i]` names nothing, the longest
    run `parts[i].parts[i+1]...` that names a key or item is taken."""
    nodes: list[tuple[Any, tuple[str, ...], int]] = [(data, (), 0)]
    targets: list[Target] = []
    while nodes:
        next_nodes: list[tuple[Any, tuple[str, ...], int]] = []
        for node, where, i in nodes:
            n = _name_parts(node, parts, i)
            part = ".".join(parts[i:i + n])
            last = i + n == len(parts)
            steps: list[tuple[Any, Any, tuple[str, ...]]]  # (container, key or index, where)
            if isinstance(node, dict):
                if part == "*":
                    keys = list(node)
                else:
                    keys = [_dict_key(node, part)]
                    if not last and keys[0] not in node:
                        _refuse_partial_name(node, part, ".".join(parts[i:]), where)
                steps = [(node, k, (*where, str(k))) for k in keys]
            elif isinstance(node, list):
                idx = list(range(len(node))) if part == "*" else [_list_index(node, part, where)]
                steps = [(node, k, (*where, _item_name(node[k], k))) for k in idx]
            else:
                raise PathError(f"{format_path(where) or 'the scenario'} is a value, not a mapping "
                               f"or a list, so it has no '{part}'")
            if not steps:
                raise PathError(f"'*' matches nothing: {format_path(where)} is empty")
            for container, key, loc in steps:
                if last:
                    targets.append(Target(container, key, loc))
                    continue
                if isinstance(container, dict) and key not in container:
                    container[key] = {}
                next_nodes.append((container[key], loc, i + n))
        nodes = next_nodes
    return targets


def _refuse_partial_name(node: dict[Any, Any], part: str, rest: str,
                         where: tuple[str, ...]) -> None:
    """A missing key that begins a name with dots (`llama-3` of `llama-3.1-8bx`) is a typo in
    that name, not a new mapping to create."""
    names = _names(node)
    if any(name.startswith(part + ".") for name in names):
        raise PathError(f"no key of {format_path(where) or 'the scenario'} begins '{rest}' (it "
                        f"has: {', '.join(names)})" + _bracket_hint(node, part, where))


def _item_name(item: Any, index: int) -> str:
    return str(item["name"]) if isinstance(item, dict) and "name" in item else str(index)


def set_path(data: dict[str, Any], key: str, value: Any) -> list[str]:
    """Set `value` at every place the dotted `key` reaches; returns 'loc: old -> new' lines."""
    changes = []
    for t in resolve(data, parse_path(key)):
        old = t.old
        t.container[t.key] = copy.deepcopy(value)
        changes.append(f"{format_path(t.location)}: "
                       f"{'(absent)' if old is _ABSENT else _show(old)} -> {_show(value)}")
    return changes


def _show(value: Any) -> str:
    return format_value(value) if isinstance(value, int | float | str | bool) else repr(value)


# --- sweep axes ---------------------------------------------------------------------------------


class SweepAxis(BaseModel):
    """One sweep axis written as a mapping: `values`, or a range `start`/`stop`/`num`/`scale`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[Any] | None = Field(default=None, description="The values, in order.")
    start: float | None = Field(default=None, allow_inf_nan=False, description="Range: first.")
    stop: float | None = Field(default=None, allow_inf_nan=False, description="Range: last.")
    num: int | None = Field(default=None, ge=1, description="Range: how many values.")
    scale: Literal["linear", "log"] = Field(default="linear", description="Range: spacing.")
    label: str | None = Field(default=None, description="Short name of the axis in variant ids.")

    @model_validator(mode="after")
    def _one_form(self) -> SweepAxis:
        ranged = (self.start, self.stop, self.num)
        if self.values is not None and any(v is not None for v in ranged):
            raise ValueError("give values or start/stop/num, not both")
        if self.values is None and any(v is None for v in ranged):
            raise ValueError("give values, or all of start, stop and num")
        if self.values is not None and not self.values:
            raise ValueError("values: must list at least one value")
        if self.scale == "log" and self.start is not None and self.stop is not None \
                and (self.start <= 0 or self.stop <= 0):  # a range (no values)
            raise ValueError("a log range needs start > 0 and stop > 0")
        if self.label is not None and not _LABEL.fullmatch(self.label):
            raise ValueError(f"label: '{self.label}' may use letters, digits and _ . : + - only")
        return self

    def grid(self) -> list[Any]:
        if self.values is not None:
            return [_number_or_value(v) for v in self.values]
        assert self.start is not None and self.stop is not None and self.num is not None
        if self.num == 1:
            return [self.start]
        space = np.geomspace if self.scale == "log" else np.linspace
        points = [float(v) for v in space(self.start, self.stop, self.num)]
        points[0], points[-1] = self.start, self.stop  # exact ends, whatever the float rounding
        return points


def _number_or_value(value: Any) -> Any:
    """YAML 1.1 reads `2e6` as a string: such strings in a sweep's values are numbers."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        return float(text) if any(c in text for c in ".eE") else int(text)
    return value


def format_value(value: Any, digits: int = 6) -> str:
    """A value as it appears in a variant id: 20, 2e6, 3.99, 0.5, mm1, true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        text = f"{value:.{digits}g}"
        mantissa, e, exponent = text.partition("e")
        return mantissa + (f"e{int(exponent)}" if e else "")
    return _safe_text(str(value))


def _safe_text(text: str) -> str:
    """A string value as it may appear in an id (and so in a file name): letters, digits and
    `. _ -` only (anything else, NUL and `/` included, becomes `_`; `..` becomes `__`), at most
    MAX_VALUE_TEXT characters (a longer one is cut and ends in a hash of the whole)."""
    safe = _ID_UNSAFE.sub("_", text).replace("..", "__")
    if len(safe) > MAX_VALUE_TEXT:
        safe = safe[:MAX_VALUE_TEXT - 9] + "-" + _hash(text)
    return safe


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _formatted(values: list[Any]) -> list[str]:
    """The shortest formatting (>= 6 significant digits) that tells the axis's values apart;
    values that still look alike (strings that differ only in characters an id cannot hold)
    get a short hash of the value each."""
    for digits in range(6, 18):
        texts = [format_value(v, digits) for v in values]
        if len(set(texts)) == len(texts):
            return texts
    counts: dict[str, int] = {}
    for t in texts:
        counts[t] = counts.get(t, 0) + 1
    return [f"{t}-{_hash(repr(v))}" if counts[t] > 1 else t
            for t, v in zip(texts, values, strict=True)]


def _has_duplicates(values: list[Any]) -> bool:
    try:
        return len(set(values)) != len(values)
    except TypeError:  # unhashable values (a whole table per grid point)
        return any(a == b for i, a in enumerate(values) for b in values[i + 1:])


@dataclass(frozen=True)
class Axis:
    key: str  # the dotted path as written
    label: str
    values: list[Any]
    texts: list[str]  # values as they appear in ids


def _default_labels(keys: list[str]) -> list[str]:
    """Last part of each path; more parts where two axes would share a label."""
    parts = [parse_path(k) for k in keys]
    depth = [1] * len(keys)
    while True:
        labels = [".".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        clash = {lab for lab in labels if labels.count(lab) > 1}
        grow = [i for i, lab in enumerate(labels) if lab in clash and depth[i] < len(parts[i])]
        if not grow:
            return [_LABEL_UNSAFE.sub("_", lab.replace("*", "all")).replace("..", "__")
                    for lab in labels]
        for i in grow:
            depth[i] += 1


def parse_sweep(sweep: Any) -> list[Axis]:
    """The `sweep:` block -> axes with labels and values. Raises ScenarioError (no source)."""
    if not isinstance(sweep, dict) or not sweep:
        raise ScenarioError([Problem("sweep", "must map dotted keys to lists of values or ranges")])
    problems: list[Problem] = []
    specs: list[tuple[str, SweepAxis]] = []
    for key, spec in sweep.items():
        loc = f"sweep.{key}"
        try:
            parse_path(key)
            if isinstance(spec, list):
                axis = SweepAxis(values=spec)
            elif isinstance(spec, dict):
                axis = SweepAxis.model_validate(spec)
            else:
                raise ValueError("must be a list of values or a mapping {start, stop, num, scale}")
        except ValidationError as e:
            problems += [Problem(loc, err["msg"].removeprefix("Value error, ")) for err in
                         e.errors(include_url=False)]
            continue
        except ValueError as e:
            problems.append(Problem(loc, str(e)))
            continue
        specs.append((key, axis))
    if problems:
        raise ScenarioError(problems)
    # the size first, by arithmetic: a range of 10**9 points must not be built to be refused
    size = math.prod(len(spec.values) if spec.values is not None else spec.num or 1
                     for _, spec in specs)
    if size > MAX_VARIANTS_PER_FILE:
        raise ScenarioError([Problem("sweep", f"{size} variants; at most "
                                     f"{MAX_VARIANTS_PER_FILE} per file (split the sweep over "
                                     "several files)")])
    defaults = _default_labels([k for k, _ in specs])
    axes = []
    for (key, spec), default in zip(specs, defaults, strict=True):
        values = spec.grid()
        texts = _formatted(values)
        if _has_duplicates(values):
            problems.append(Problem(f"sweep.{key}", "lists the same value twice"))
        axes.append(Axis(key, spec.label or default, values, texts))
    labels = [a.label for a in axes]
    for a in axes:
        if labels.count(a.label) > 1:
            problems.append(Problem(f"sweep.{a.key}", f"label '{a.label}' is used by another axis"))
    if problems:
        raise ScenarioError(problems)
    return axes


# --- variants -----------------------------------------------------------------------------------


@dataclass
class Variant:
    """One scenario to solve: its id, the file it came from, the swept values and the data."""

    id: str
    source: str
    data: dict[str, Any]  # plain scenario data, ready for pdopt.scenario.loading.scenario_from_data
    params: dict[str, Any] = field(default_factory=dict)  # axis label -> value
    changes: list[str] = field(default_factory=list)  # 'loc: old -> new', overrides then sweep


def _check_overlaps(data: dict[str, Any], keys: list[tuple[str, str]]) -> None:
    """Two keys (overrides or sweep axes) reaching one value is an error (Calliope's rule)."""
    probe = copy.deepcopy(data)
    owner: dict[tuple[str, ...], str] = {}
    problems = []
    for where, key in keys:
        try:
            targets = resolve(probe, parse_path(key))
        except ValueError as e:
            problems.append(Problem(f"{where}.{key}", str(e)))
            continue
        for t in targets:
            other = owner.setdefault(t.location, f"{where}.{key}")
            if other != f"{where}.{key}":
                problems.append(Problem(f"{where}.{key}", f"sets {format_path(t.location)}, "
                                        f"which {other} also sets"))
    if problems:
        raise ScenarioError(problems)


def _apply_overrides(data: dict[str, Any], overrides: Any) -> list[str]:
    if not isinstance(overrides, dict):
        raise ScenarioError([Problem("overrides", "must map dotted keys to values")])
    changes = []
    for key, value in overrides.items():
        changes += set_path(data, key, value)
    return changes


def split_document(data: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """Plain data -> (scenario data, overrides or None, sweep or None)."""
    rest = {k: v for k, v in data.items() if k not in VARIANT_KEYS}
    return rest, data.get("overrides"), data.get("sweep")


def resolve_file(path: str | Path) -> tuple[dict[str, Any], list[str], list[Axis]]:
    """A file with extends merged and overrides applied -> (data, changes, sweep axes)."""
    source = str(path)
    try:
        data, overrides, sweep = split_document(read_with_extends(path))
        axes = parse_sweep(sweep) if sweep is not None else []
        keys = [("overrides", k) for k in (overrides or {})] if isinstance(overrides, dict) else []
        _check_overlaps(data, keys + [("sweep", a.key) for a in axes])
        changes = _apply_overrides(data, overrides) if overrides is not None else []
    except ScenarioError as e:
        raise (e if e.source else e.with_source(source)) from None
    return data, changes, axes


def variant_id(stem: str, axes: list[Axis], point: tuple[int, ...]) -> str:
    return stem + "[" + ",".join(f"{a.label}={a.texts[i]}" for a, i in zip(axes, point,
                                                                            strict=True)) + "]"


def expand_file(path: str | Path, stem: str | None = None) -> list[Variant]:
    """Every variant a file stands for: itself, or one per point of its sweep grid.

    `stem` (default: the file name without suffix) starts each id: `stem` alone for a file
    without a sweep, `stem[label=value,...]` for each grid point. Raises ScenarioError for a
    problem with the file as a whole (unreadable, bad extends, bad sweep or overrides key); the
    variants' data are not validated here.
    """
    source = str(path)
    stem = stem or Path(path).stem
    data, changes, axes = resolve_file(path)
    for line in changes:
        log.info("%s: %s", source, line)
    if not axes:
        return [Variant(stem, source, data, {}, changes)]
    size = math.prod(len(a.values) for a in axes)
    if size > MAX_VARIANTS_PER_FILE:
        raise ScenarioError([Problem("sweep", f"{size} variants; at most {MAX_VARIANTS_PER_FILE} "
                                     "per file (split the sweep over several files)")], source)
    return list(_grid(stem, source, data, changes, axes))


def _grid(stem: str, source: str, data: dict[str, Any], changes: list[str],
          axes: list[Axis]) -> Iterator[Variant]:
    name = data.get("name")
    for point in itertools.product(*(range(len(a.values)) for a in axes)):
        vid = variant_id(stem, axes, point)
        variant_data = copy.deepcopy(data)
        variant_changes = list(changes)
        try:
            for axis, i in zip(axes, point, strict=True):
                variant_changes += set_path(variant_data, axis.key, axis.values[i])
        except ValueError as e:  # a path through a value an earlier axis replaced
            raise ScenarioError([Problem("sweep", f"{vid}: {e}")], source) from None
        if isinstance(name, str):
            variant_data["name"] = name + vid[len(stem):]
        yield Variant(vid, source, variant_data,
                      {a.label: a.values[i] for a, i in zip(axes, point, strict=True)},
                      variant_changes)


def resolve_scenario_data(path: str | Path) -> dict[str, Any]:
    """One scenario's plain data (extends merged, overrides applied); a sweep file is an error."""
    return resolve_scenario_data_with_changes(path)[0]


def resolve_scenario_data_with_changes(path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """`resolve_scenario_data` and the `key: old -> new` lines of the overrides it applied."""
    data, changes, axes = resolve_file(path)
    for line in changes:
        log.info("%s: %s", path, line)
    if axes:
        n = math.prod(len(a.values) for a in axes)
        raise ScenarioError([Problem("sweep", f"this file is a sweep of {n} variants; run it with "
                                     f"`pdopt batch {path}` (or `pdopt batch --dry-run` to check "
                                     "every variant)")], str(path))
    return data, changes
