"""Batch inputs: scenario files and folders -> entries with safe ids, and their content hashes.

Every id becomes a file name under `--output` (plans/<id>.json, plans/<id>.sha256): ids are made
of letters, digits and `. _ -` (plus the `[ ] = , : +` of a sweep point and `/` between the
folders of a folder argument), no part begins with a dot, and the last part leaves room for the
file suffixes and write_atomic's temporary names within NAME_MAX (docs/batch.md, "Variant ids").
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pdopt.errors import PdoptError
from pdopt.fileio import NAME_MAX, TEMP_NAME_EXTRA
from pdopt.scenario.loading import SCENARIO_SUFFIXES
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.variants import expand_file

# The longest file suffix an id gets (plans/<id>.sha256) and the temporary name around it.
ID_SUFFIXES = (".json", ".sha256")
MAX_ID_BYTES = NAME_MAX - max(len(s) for s in ID_SUFFIXES) - TEMP_NAME_EXTRA  # 234
_UNSAFE_STEM_CHAR = re.compile(r"[^A-Za-z0-9._-]")
# one part of an id: no leading dot (so neither `.`, `..` nor a hidden or temporary name)
_ID_PART = r"[A-Za-z0-9_\-+:=,\[\]][A-Za-z0-9._\-+:=,\[\]]*"
_SAFE_ID = re.compile(rf"{_ID_PART}(?:/{_ID_PART})*")


class BatchSetupError(PdoptError):
    """The batch cannot start: no files match a PATH, two variants share an id, no Dask, ..."""


@dataclass
class Entry:
    """One row of the batch: a variant to solve, or a file that failed before it had variants."""

    id: str
    source: str
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None  # plain scenario data; None when `error` says why
    error: str | None = None


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def safe_stem(stem: str) -> str:
    """A file's id stem (`eu/fleet`) with every part made of letters, digits and `. _ -` only,
    not beginning with a dot."""
    parts = []
    for part in stem.split("/"):
        part = _UNSAFE_STEM_CHAR.sub("_", part) or "_"
        parts.append("_" + part[1:] if part.startswith(".") else part)
    return "/".join(parts)


def check_id(variant_id: str) -> None:
    """Raise BatchSetupError unless `variant_id` is a safe relative file name (see the module
    docstring): the guard that keeps every file of a batch inside its output folder."""
    if not isinstance(variant_id, str) or not _SAFE_ID.fullmatch(variant_id):
        raise BatchSetupError(f"the id {variant_id!r} is not a safe file name: use letters, "
                              "digits and . _ - (no leading dot, no '..')")
    last = variant_id.rsplit("/", 1)[-1]
    if len(last.encode()) > MAX_ID_BYTES:
        raise BatchSetupError(f"the id '{variant_id}' is too long for a file name (at most "
                              f"{MAX_ID_BYTES} bytes after the last /); give the sweep axes "
                              "shorter labels (label: ...)")


def _is_hidden_or_base(rel: Path) -> bool:
    return any(part.startswith((".", "_")) for part in rel.parts)


def scenario_files(paths: Iterable[str], exclude: Path | None = None) -> list[tuple[Path, str]]:
    """PATH arguments -> (file, id stem), in argument order, each folder sorted by path.

    A folder gives every *.yaml|*.yml|*.json|*.toml under it, recursively, except names beginning
    with `.` or `_` (keep shared bases as `_base.yaml`) and anything under `exclude` (the output
    folder); the id stem is the path relative to the folder, without suffix (`eu/fleet`). A glob
    (expanded here, skipping the same names) or a file named explicitly (always taken) gives its
    own name without suffix. A file given twice is taken once. Stems are made safe
    (`safe_stem`); two different stems that become one get a short hash each.
    """
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    skip = exclude.resolve() if exclude is not None else None

    def add(file: Path, stem: str) -> None:
        real = file.resolve()
        if real in seen or (skip is not None and real.is_relative_to(skip)):
            return
        seen.add(real)
        out.append((file, stem))

    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found = sorted(
                (p for p in path.rglob("*") if p.suffix.lower() in SCENARIO_SUFFIXES
                 and p.is_file() and not _is_hidden_or_base(p.relative_to(path))),
                key=lambda p: p.relative_to(path).as_posix(),
            )
            if not found:
                raise BatchSetupError(f"{arg}: no scenario files (*.yaml, *.yml, *.json, *.toml)")
            for p in found:
                add(p, p.relative_to(path).with_suffix("").as_posix())
        elif path.is_file():
            add(path, path.stem)
        elif glob.has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True)
                             if Path(m).is_file() and Path(m).suffix.lower() in SCENARIO_SUFFIXES
                             and not _is_hidden_or_base(Path(Path(m).name)))
            if not matches:
                raise BatchSetupError(f"{arg}: no scenario files match")
            for p in matches:
                add(p, p.stem)
        else:
            raise BatchSetupError(f"{arg}: no such file or folder")
    return _safe_stems(out)


def _safe_stems(files: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    safe = [safe_stem(stem) for _, stem in files]
    raw_of: dict[str, set[str]] = {}
    for (_, stem), s in zip(files, safe, strict=True):
        raw_of.setdefault(s, set()).add(stem)
    # equal raw stems stay equal (collect_entries reports them); different ones made equal by
    # the sanitising are told apart by a hash of the raw stem
    return [(file, s if len(raw_of[s]) == 1 else f"{s}-{short_hash(stem)}")
            for (file, stem), s in zip(files, safe, strict=True)]


def collect_entries(paths: Iterable[str], exclude: Path | None = None) -> list[Entry]:
    """Every variant of every scenario file, in a stable order. Raises BatchSetupError for usage
    problems (missing PATH, two variants with one id, an id too long); a bad file is an entry
    with an error."""
    entries: list[Entry] = []
    for file, stem in scenario_files(paths, exclude):
        try:
            variants = expand_file(file, stem)
        except ScenarioError as e:
            entries.append(Entry(stem, str(file), error="; ".join(e.lines())))
            continue
        entries += [Entry(v.id, v.source, v.params, v.data) for v in variants]
    check_entry_ids(entries)
    return entries


def check_entry_ids(entries: list[Entry]) -> None:
    """Every id safe (`check_id`) and used once; raises BatchSetupError."""
    owner: dict[str, str] = {}
    for e in entries:
        try:
            check_id(e.id)
        except BatchSetupError as err:
            raise BatchSetupError(f"{e.source}: {err}") from None
        other = owner.setdefault(e.id, e.source)
        if other != e.source:
            raise BatchSetupError(f"two scenarios have the id '{e.id}' ({other} and {e.source}); "
                                  "rename one or give their folder instead")


@cache
def _pdopt_version() -> str:
    try:
        return version("pdopt")
    except PackageNotFoundError:
        return "unknown"


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    return obj


def content_hash(data: dict[str, Any], time_limit_s: float | None, mip_gap: float | None) -> str:
    """SHA-256 of what decides a variant's plan: its data, the solver settings, pdopt's version."""
    payload = {"scenario": _canonical(data), "time_limit_s": time_limit_s, "mip_gap": mip_gap,
               "pdopt": _pdopt_version()}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
