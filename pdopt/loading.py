"""Reading scenario files (YAML, JSON, TOML) into validated `Scenario` objects.

YAML is read with a safe loader; a document whose expanded size is absurd (alias bombs, the
"billion laughs") is refused before validation walks it. Every problem comes back as a
`ScenarioError` whose lines read `FILE: location: message`.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pdopt.errors import Problem, ScenarioError
from pdopt.schema import Scenario, check_references

MAX_FILE_BYTES = 16 * 1024 * 1024
# A hand-written scenario of 50 models x 8 GPU types x 4 sizes has ~100k nodes; 2M is far beyond
# any real file and far below what takes noticeable time or memory to walk.
MAX_EXPANDED_NODES = 2_000_000
SCENARIO_SUFFIXES = (".yaml", ".yml", ".json", ".toml")


def parse_text(text: str, suffix: str) -> Any:
    """Parse text as the format its suffix names (YAML for anything else). Raises ScenarioError."""
    suffix = suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            return tomllib.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise ScenarioError([Problem("", f"not valid JSON: {e.msg} (line {e.lineno})")]) from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError([Problem("", f"not valid TOML: {e}")]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioError([Problem("", f"not valid YAML: {what}{where}")]) from None


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


def read_document(path: str | Path) -> dict[str, Any]:
    """Read a scenario file into plain data (no validation). Raises ScenarioError naming the file."""
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ScenarioError([Problem("", f"cannot read file: {e.strerror or e}")], source) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(
            [Problem("", f"file is {len(raw)} bytes; scenario files are limited to "
                     f"{MAX_FILE_BYTES} bytes")], source
        )
    if b"\x00" in raw:
        raise ScenarioError([Problem("", "binary file (contains NUL bytes), not a scenario")], source)
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
    if not isinstance(data, dict):
        raise ScenarioError(
            [Problem("", f"expected a mapping of scenario fields at the top level, "
                     f"got {type(data).__name__}")], source
        )
    return data


def _location(loc: tuple[Any, ...]) -> str:
    """Pydantic error location -> dotted path with [i] for list indices."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _is_union_branch(part: Any) -> bool:
    # pydantic adds the union member's type name ('float', 'dict[int,float]', 'function-after[...]')
    return isinstance(part, str) and ("[" in part or part in {"float", "int", "str", "dict"})


def problems_from_validation(err: ValidationError) -> list[Problem]:
    """Turn a pydantic ValidationError into one Problem per error, deduplicated."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not _is_union_branch(p))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        etype = e["type"]
        if etype == "extra_forbidden":
            msg = "unknown field (not part of the scenario format; see docs/scenario-format.md)"
        elif etype == "missing":
            msg = "required field is missing"
        location = _location(loc)
        # Validators report "field: message" for a field of the model they check.
        for chunk in msg.split("; "):
            head, sep, tail = chunk.partition(": ")
            if sep and head.isidentifier():
                key = (f"{location}.{head}" if location else head, tail)
            else:
                key = (location, chunk[:1].lower() + chunk[1:])
            if key not in seen:
                seen.add(key)
                problems.append(Problem(*key))
    return problems


def scenario_from_data(data: dict[str, Any], source: str | None = None) -> Scenario:
    """Validate plain data as a Scenario, including cross-references. Raises ScenarioError."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(problems_from_validation(e), source) from None
    problems = check_references(scenario)
    if problems:
        raise ScenarioError(problems, source)
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file. Raises ScenarioError with `FILE: loc: msg` lines."""
    return scenario_from_data(read_document(path), str(path))
