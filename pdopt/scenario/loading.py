"""Reading scenario files (YAML, JSON, TOML) into validated `Scenario` objects.

YAML is read with a safe loader; a document whose expanded size is absurd (alias bombs, the
"billion laughs") is refused before validation walks it. Every problem comes back as a
`ScenarioError` whose lines read `FILE: location: message`.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from pdopt.inputfiles import FileTooLargeError, InputFileError, read_limited
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.ranges import RANGES_DOC, format_number
from pdopt.scenario.schema import FIELD_PROBLEMS, Scenario, StrictModel, check_references

MAX_FILE_BYTES = 16 * 1024 * 1024
# A hand-written scenario of 50 models x 8 GPU types x 4 sizes has ~100k nodes; 2M is far beyond
# any real file and far below what takes noticeable time or memory to walk.
MAX_EXPANDED_NODES = 2_000_000
SCENARIO_SUFFIXES = (".yaml", ".yml", ".json", ".toml")


class _DuplicateKeyError(ValueError):
    """A JSON object names the same key twice."""


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


class _SafeUniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names the same key twice (PyYAML would keep
    the last value silently). Keys brought in by a merge (`<<: *base`) may still be overridden."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key '{key}'", key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def parse_text(text: str, suffix: str) -> Any:
    """Parse text as the format its suffix names (YAML for anything else). Raises ScenarioError.

    A key given twice in one mapping is an error in every format (TOML says so itself)."""
    suffix = suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text, object_pairs_hook=_json_object)
        if suffix == ".toml":
            return tomllib.loads(text)
        return yaml.load(text, Loader=_SafeUniqueKeyLoader)  # a SafeLoader: no Python tags
    except _DuplicateKeyError as e:
        raise ScenarioError([Problem("", f"not valid JSON: duplicate key '{e}'")]) from None
    except RecursionError:
        # The JSON and YAML parsers recurse once per nesting level; no scenario nests deeply.
        raise ScenarioError(
            [Problem("", "document is nested too deeply to be a scenario")]
        ) from None
    except json.JSONDecodeError as e:
        raise ScenarioError([Problem("", f"not valid JSON: {e.msg} (line {e.lineno})")]) from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError([Problem("", f"not valid TOML: {e}")]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioError([Problem("", f"not valid YAML: {what}{where}")]) from None
    except ValueError as e:
        # Python refuses to convert an integer of more than sys.get_int_max_str_digits() digits
        # (CVE-2020-10735); no number of a scenario has a tenth as many (docs/scenario-format.md).
        kind = _KINDS.get(suffix, "YAML")
        if "integer string conversion" in str(e):
            raise ScenarioError([Problem("", (
                f"not valid {kind}: a number has more than {sys.get_int_max_str_digits()} "
                f"digits (see {RANGES_DOC})"))]) from None
        raise ScenarioError([Problem("", f"not valid {kind}: {e}")]) from None


def expanded_size(data: Any, limit: int = MAX_EXPANDED_NODES) -> int:
    """Count the nodes of `data` as if every alias were expanded; stop early past `limit`."""
    count = 0
    stack = [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return count


_KINDS = {".json": "JSON", ".toml": "TOML"}


def has_huge_integer(data: Any) -> bool:
    """Whether an integer anywhere in `data` (keys too) has more decimal digits than Python
    converts to text (sys.get_int_max_str_digits(); 0: no limit): such a number fits no range,
    and every message or log line that showed it would fail. Walk `data` only once its expanded
    size is known to be sane."""
    limit = sys.get_int_max_str_digits()
    if not limit:
        return False
    bits = int(limit / 0.30103)  # an integer of this many bits has about `limit` digits
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, int) and node.bit_length() > bits:
            return True
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False


def read_document(path: str | Path) -> dict[str, Any]:
    """Read a scenario file into plain data (no validation); errors name the file."""
    path = Path(path)
    source = str(path)
    try:  # a regular file, its size checked before reading: not /dev/zero, not a FIFO
        raw = read_limited(path, MAX_FILE_BYTES, "scenario files")
    except FileTooLargeError as e:
        raise ScenarioError([Problem("", str(e))], source) from None
    except InputFileError as e:
        raise ScenarioError([Problem("", f"cannot read file: {e}")], source) from None
    if b"\x00" in raw:
        raise ScenarioError(
            [Problem("", "binary file (contains NUL bytes), not a scenario")], source
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ScenarioError(
            [Problem("", f"not UTF-8 text (bad byte at offset {e.start})")], source
        ) from None
    if not text.strip():
        raise ScenarioError([Problem("", "empty file, expected a scenario")], source)
    try:
        data = parse_text(text, path.suffix)
    except ScenarioError as e:
        raise e.with_source(source) from None
    if expanded_size(data) > MAX_EXPANDED_NODES:
        raise ScenarioError(
            [Problem("", f"document expands to more than {MAX_EXPANDED_NODES} nodes "
                     "(YAML alias bomb?); refused")], source
        )
    if has_huge_integer(data):  # YAML's 0x... integers escape Python's digit limit
        raise ScenarioError([Problem("", (
            f"not valid {_KINDS.get(path.suffix.lower(), 'YAML')}: a number has more than "
            f"{sys.get_int_max_str_digits()} digits (see {RANGES_DOC})"))], source)
    if not isinstance(data, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping of scenario fields at the top level, "
                     f"got {type(data).__name__}")], source
        )
    return data


def _location(loc: tuple[Any, ...]) -> str:
    """Pydantic error location -> dotted path with [i] for list indices and integer table keys
    (JSON and TOML write those keys as text: `tpot_ms_by_batch["10"]` reads `[10]` as in YAML)."""
    out = ""
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _is_union_branch(part: Any) -> bool:
    # pydantic adds the union member's type name ('constrained-float', 'dict[int,float]',
    # 'function-after[...]') to the location of an error inside one branch of a union.
    return isinstance(part, str) and part != "[key]" and (
        "[" in part or part in {"float", "int", "str", "dict", "list", "bool"}
        or part.startswith("constrained-")
    )


#: A field path opening a validator's message: `tpot_ms_by_batch`, `tpot_tables[1].measured_at`.
_FIELD_PATH = re.compile(r"[A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_]\w*)*")
#: Pydantic error types that only say "the value has the wrong type".
_TYPE_ERRORS: dict[str, str] = {
    "float_type": "a number", "float_parsing": "a number",
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "string_type": "text", "dict_type": "a mapping", "list_type": "a list",
    "bool_type": "true or false", "bool_parsing": "true or false", "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "finite_number": "a finite number", "int_parsing_size": "an integer",
}
#: Pydantic's number-bound errors, in the format's own words (`must be > 0`).
_BOUND_ERRORS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
                 "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}


def _field_names() -> list[str]:
    """Every field name of the scenario format, to suggest a correction for a typo."""
    names: set[str] = set()
    stack: list[type[StrictModel]] = [Scenario]
    seen: set[type] = set()
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        names.update(model.model_fields)
        stack.extend(StrictModel.__subclasses__())
    return sorted(names)


def _message(e: ErrorDetails) -> str:
    """One pydantic error in the scenario format's words."""
    etype, ctx = e["type"], e.get("ctx") or {}
    if etype == "extra_forbidden":
        field = e["loc"][-1] if e["loc"] else ""
        names = _field_names()
        close = difflib.get_close_matches(str(field), names, n=1, cutoff=0.75) or [
            n for n in names if len(str(field)) >= 4 and n.startswith(str(field))
        ][:1]
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown field{hint} (see docs/scenario-format.md)"
    if etype == "missing":
        return "required field is missing"
    if etype in _BOUND_ERRORS:
        key, op = _BOUND_ERRORS[etype]
        bound = ctx.get(key)
        text = format_number(bound) if isinstance(bound, float | int) else str(bound)
        ranged = op == "<=" and isinstance(bound, float | int) and bound > 1  # ranges.py's
        return f"must be {op} {text}" + (f" (see {RANGES_DOC})" if ranged else "")
    if etype == "float_type" and isinstance(e.get("input"), int):  # beyond a float's range
        return f"must be a number within its range, got {_describe(e.get('input'))} " \
            f"(see {RANGES_DOC})"
    if etype in _TYPE_ERRORS:
        return f"must be {_TYPE_ERRORS[etype]}, got {_describe(e.get('input'))}"
    if etype == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {_describe(e.get('input'))}"
    if etype == "union_tag_invalid":
        return (f"{ctx.get('discriminator', 'kind')} must be one of {ctx.get('expected_tags')}, "
                f"got '{ctx.get('tag')}'")
    if etype == "string_too_short":
        return "must not be empty"
    if etype == "too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else e["msg"]
    msg = str(e["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg[:1].lower() + msg[1:]


def _describe(value: Any) -> str:
    """A short description of a wrong input value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, int) and value.bit_length() > 64:  # repr() of a huge int is refused
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _without_tags(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop the tags pydantic inserts for tagged unions (`length_distribution.lognormal.input_cv`):
    a part before the last that is not a key of the input mapping at that point."""
    out: list[Any] = []
    node = data
    for k, part in enumerate(loc):
        if isinstance(node, dict):
            if part in node:
                node = node[part]
            elif isinstance(part, str) and k < len(loc) - 1:
                continue
            else:
                node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        out.append(part)
    return tuple(out)


def problems_from_validation(err: ValidationError, data: Any = None) -> list[Problem]:
    """Turn a pydantic ValidationError into one Problem per thing wrong, deduplicated.

    Errors in the branches of a union (e.g. `prefill_tokens_per_s`: a number or a table) are merged:
    a value of the wrong type for every branch gives one line (`must be a number or a mapping`);
    otherwise the branch whose type matched explains what is wrong. With the validated `data`,
    the tags of tagged unions are left out of locations."""
    raw = err.errors(include_url=False)
    entries: list[tuple[str, bool, ErrorDetails]] = []
    for e in raw:
        in_branch = any(_is_union_branch(p) for p in e["loc"])
        loc = tuple(p for p in e["loc"] if not _is_union_branch(p) and p != "[key]")
        if data is not None:
            loc = _without_tags(loc, data)
        entries.append((_location(loc), in_branch, e))

    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()

    def add(location: str, message: str) -> None:
        if (location, message) not in seen:
            seen.add((location, message))
            problems.append(Problem(location, message))

    for location, in_branch, e in entries:
        if in_branch and e["type"] in _TYPE_ERRORS:
            siblings = [x for x in entries if x[1] and x[0].startswith(location) and x[2] is not e]
            if any(x[2]["type"] not in _TYPE_ERRORS or x[0] != location for x in siblings):
                continue  # another branch matched the value's type and says what is wrong
            kinds = sorted({_TYPE_ERRORS[x[2]["type"]] for x in [*siblings, (location, True, e)]})
            add(location, f"must be {' or '.join(kinds)}, got {_describe(e.get('input'))}")
            continue
        if e["type"] == FIELD_PROBLEMS:  # a model validator's problems, each at its field
            for field, message in (e.get("ctx") or {}).get("problems", []):
                add(f"{location}.{field}" if location else field, message)
            continue
        msg = _message(e)
        if "[key]" in e["loc"]:
            msg = f"key {msg}"
        if e["type"] != "value_error":
            add(location, msg)
            continue
        # A validator's one message may name a field of the model: "field: message".
        head, sep, tail = msg.partition(": ")
        if sep and _FIELD_PATH.fullmatch(head):
            add(f"{location}.{head}" if location else head, tail)
        else:
            add(location, msg[:1].lower() + msg[1:])
    return problems


def scenario_from_data(data: dict[str, Any], source: str | None = None) -> Scenario:
    """Validate plain data as a Scenario, including cross-references. Raises ScenarioError."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(problems_from_validation(e, data), source) from None
    problems = check_references(scenario)
    if problems:
        raise ScenarioError(problems, source)
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file. Raises ScenarioError with `FILE: loc: msg` lines.

    `extends:` and `overrides:` are resolved first (pdopt.scenario.variants, docs/batch.md); a file
    with a `sweep:` stands for many scenarios and is an error here (it points to `pdopt batch`)."""
    from pdopt.scenario.variants import (
        resolve_scenario_data,  # pdopt.scenario.variants reads files through here
    )

    return scenario_from_data(resolve_scenario_data(path), str(path))
