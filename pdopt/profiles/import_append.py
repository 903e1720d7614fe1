"""Appending an imported instance type to a scenario file's `instances:` without disturbing the
rest of the file (comments, order, formatting), and refusing when the result would be worse.

Pure text in, text out; the caller writes the file (atomically).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from pdopt.inputfiles import InputFileError, read_limited
from pdopt.profiles.importers import ProfileImportError
from pdopt.scenario.loading import MAX_FILE_BYTES, parse_text, read_document, scenario_from_data
from pdopt.scenario.problems import ScenarioError

_INSTANCES_BLOCK = re.compile(r"^instances\s*:\s*(#.*)?$")
_INSTANCES_EMPTY_FLOW = re.compile(r"^instances\s*:\s*\[\s*\]\s*(#.*)?$")
_INSTANCES_ANY = re.compile(r"^instances\s*:")


def _problems_at(data: dict[str, Any], prefix: str) -> list[str]:
    """Problems of the scenario located at `prefix` (the appended instance): adding an instance
    can only cause problems there (its fields, its name, its GPU); elsewhere it only removes some
    (a workload that lacked a decode type)."""
    try:
        scenario_from_data(data)
    except ScenarioError as e:
        return [str(p) for p in e.problems
                if p.location == prefix or p.location.startswith((prefix + ".", prefix + "["))]
    return []


class _Flow(dict[str, Any]):
    """A mapping written on one line."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)
# Small tables read best on one line, as in hand-written scenarios.
_FLOW_KEYS = ("measured_at", "tpot_ms_by_batch", "prefill_tokens_per_s")


def _styled(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        inner = {k: _styled(v, k) for k, v in value.items()}
        return _Flow(inner) if key in _FLOW_KEYS else inner
    if isinstance(value, list):
        if key == "points":
            return [_Flow(v) if isinstance(v, dict) else v for v in value]
        return [_styled(v) for v in value]
    return value


def instance_yaml(item: dict[str, Any]) -> str:
    """An instance as a one-item YAML list, ready to sit under `instances:`: block style, with
    one-line tables (`tpot_ms_by_batch: {1: 6.5, 8: 7.9}`) and one line per source point."""
    return yaml.dump([_styled(item)], Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=100, default_flow_style=False)


def _yaml_item(item: dict[str, Any], indent: int) -> list[str]:
    return [" " * indent + line + "\n" for line in instance_yaml(item).splitlines()]


def _insert_yaml(text: str, item: dict[str, Any], path: Path, has_instances: bool) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if _INSTANCES_ANY.match(line)), None)
    if start is None and has_instances:
        raise ProfileImportError([f"{path}: found no top-level 'instances:' line to append to "
                                  "(flow-style document?); paste the printed block instead"])
    if start is None:  # no instances yet: add the key at the end
        return "".join(lines) + "instances:\n" + "".join(_yaml_item(item, 2))
    if _INSTANCES_EMPTY_FLOW.match(lines[start].rstrip("\n")):
        lines[start] = re.sub(r"\[\s*\]", "", lines[start], count=1)  # keeps a comment
    elif not _INSTANCES_BLOCK.match(lines[start].rstrip("\n")):
        raise ProfileImportError([f"{path}: 'instances:' is written in flow style; --append edits "
                                  "block-style lists only (paste the printed block instead)"])
    last = start  # last line that belongs to the instances block
    indent: int | None = None
    for i in range(start + 1, len(lines)):
        line = lines[i]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] not in " \t-":
            break  # the next top-level key
        if indent is None and stripped.startswith("- "):
            indent = len(line) - len(line.lstrip(" "))
        last = i
    block = _yaml_item(item, 2 if indent is None else indent)
    return "".join(lines[: last + 1] + block + lines[last + 1:])


def append_instance(path: str | Path, item: dict[str, Any]) -> str:
    """The scenario file's new text with `item` appended to `instances:`.

    YAML files are edited as text (everything else stays as it was, line endings and a byte-order
    mark too); JSON files are rewritten. Refused with ProfileImportError when the name is taken,
    the format cannot be edited safely, the file's instance types come from its `extends:` base
    (a list here would replace the base's), or the scenario would gain a problem it did not have
    (problems it already had are allowed: a scenario may be built up one instance type at a
    time)."""
    path = Path(path)
    try:
        before = read_document(path)
    except ScenarioError as e:
        raise ProfileImportError([f"{path}: cannot append: {line}" for line in
                                  (str(p) for p in e.problems)]) from None
    instances = before.get("instances")
    if instances is None and before.get("extends") is not None:
        _refuse_inherited_instances(path, before["extends"])
    if instances is not None and not isinstance(instances, list):
        raise ProfileImportError([f"{path}: 'instances' is not a list; cannot append"])
    names = {i.get("name") for i in instances or [] if isinstance(i, dict)}
    if item["name"] in names:
        raise ProfileImportError([f"{path}: an instance named '{item['name']}' already exists "
                                  "(choose another with --name)"])
    suffix = path.suffix.lower()
    try:
        raw = read_limited(path, MAX_FILE_BYTES, "scenario files")
    except InputFileError as e:  # changed since read_document read it
        raise ProfileImportError([f"{path}: cannot append: {e}"]) from None
    text = raw.decode("utf-8-sig")
    # Edit with "\n" line breaks; give the file back the ones it had (CRLF stays CRLF).
    newline = "\r\n" if "\r\n" in text.split("\n", 1)[0] + "\n" else "\n"
    text = text.replace("\r\n", "\n")
    if suffix == ".json":
        after = dict(before)
        after["instances"] = [*(instances or []), json.loads(json.dumps(item))]
        new_text = json.dumps(after, indent=2) + "\n"
    elif suffix == ".toml":
        raise ProfileImportError([f"{path}: --append edits YAML and JSON scenarios, not TOML "
                                  "(paste the printed block instead)"])
    else:
        new_text = _insert_yaml(text, item, path, "instances" in before)
    try:
        after = parse_text(new_text, suffix)
    except ScenarioError:
        raise ProfileImportError([f"{path}: could not append the instance safely (the edited "
                                  "file does not parse); paste the printed block instead"]
                                 ) from None
    expected = dict(before)
    expected["instances"] = [*(instances or []), item]
    if after != json.loads(json.dumps(expected)) and after != expected:
        raise ProfileImportError([f"{path}: could not append the instance without changing "
                                  "other parts of the file; paste the printed block instead"])
    gpus = before.get("gpus")
    if isinstance(gpus, dict) and item.get("gpu") not in gpus:
        raise ProfileImportError([f"{path}: GPU type '{item.get('gpu')}' is not in the scenario's "
                                  f"gpus ({', '.join(map(str, gpus)) or 'none'}); add it first"])
    new_problems = _problems_at(after, f"instances[{len(instances or [])}]")
    if new_problems:
        raise ProfileImportError([f"{path}: appending would make the scenario invalid: {p}"
                                  for p in new_problems])
    bom = "\ufeff" if raw.startswith(b"\xef\xbb\xbf") else ""
    return bom + new_text.replace("\n", newline)


def _refuse_inherited_instances(path: Path, base: object) -> None:
    """A file without `instances:` whose `extends:` base has some: a list appended here would
    replace the base's (lists replace in a merge, docs/batch.md), silently dropping them."""
    from pdopt.scenario.variants import read_with_extends

    try:
        inherited = read_with_extends(path).get("instances")
    except ScenarioError:
        return  # the base's own problems are reported by the validation below
    if inherited:
        raise ProfileImportError([
            f"{path}: extends: its instances come from the base file ({base}); appending here "
            f"would replace the base's {len(inherited)} instance type(s). Append to the base "
            "file instead, or copy its instances into this file first"])
