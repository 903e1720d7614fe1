"""Relative paths in scenario documents, made absolute against the file that wrote them.

A scenario names files in a few places: an empirical length distribution's `file`, a demand
curve's or trace's `file`, a derived prefix cache's `trace`, an estimate profile's `model` when
it is a config.json path, and the same fields reached by `overrides:`
and `sweep:` keys. Each is relative to the document that wrote it, which after `extends:` may
not be the file the user ran; so every document is rewritten as it is read
(`pdopt.scenario.variants.read_with_extends`), and values given on the command line
(`--set`) are rewritten against the working directory. Malformed data is left alone: the schema
reports it with its location.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the last key of a dotted override / sweep key whose value is a file path
_FILE_KEYS = ("file",)


def _bundled(model: str) -> bool:
    from pdopt.profiles.catalog import bundled_models  # package data, read once

    return model.lower() in bundled_models()


def _is_model_path(model: str, base: Path) -> bool:
    """A `profile.estimate.model` value that names a file (not a bundled model name)."""
    if _bundled(model):
        return False
    return model.endswith(".json") or "/" in model or "\\" in model or (base / model).exists()


def absolute(value: str, base: Path) -> str:
    """`value` made absolute against `base` (unchanged when it is already absolute)."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _length_distribution(dist: Any, base: Path) -> None:
    if isinstance(dist, dict) and isinstance(dist.get("file"), str) and dist["file"]:
        dist["file"] = absolute(dist["file"], base)


def _demand(demand: Any, base: Path) -> None:
    """A demand curve's or trace's `file`."""
    if isinstance(demand, dict):
        _length_distribution(demand.get("curve"), base)
        _length_distribution(demand.get("trace"), base)


def _prefix_cache(block: Any, base: Path) -> None:
    """A derived prefix cache's `trace` file."""
    if isinstance(block, dict) and isinstance(block.get("trace"), str) and block["trace"]:
        block["trace"] = absolute(block["trace"], base)


def _estimate_block(block: Any, base: Path) -> None:
    if not isinstance(block, dict):
        return
    model = block.get("model")
    if isinstance(model, str) and model and _is_model_path(model, base):
        block["model"] = absolute(model, base)
    files = block.get("calibrate_from")
    if isinstance(files, list):
        block["calibrate_from"] = [absolute(f, base) if isinstance(f, str) and f else f
                                   for f in files]
    elif isinstance(files, str) and files:
        block["calibrate_from"] = absolute(files, base)


def _items(node: Any) -> list[Any]:
    """The entries of a list section, or of a mapping section written by name."""
    if isinstance(node, list):
        return node
    if isinstance(node, dict):
        return list(node.values())
    return []


def absolutize_document(data: dict[str, Any], base: Path) -> None:
    """Rewrite, in place, the relative paths of one document read from a file in `base`."""
    for workload in _items(data.get("workloads")):
        if isinstance(workload, dict):
            _length_distribution(workload.get("length_distribution"), base)
            _demand(workload.get("demand"), base)
            _prefix_cache(workload.get("prefix_cache"), base)
    for instance in _items(data.get("instances")):
        if isinstance(instance, dict) and isinstance(instance.get("profile"), dict):
            _estimate_block(instance["profile"].get("estimate"), base)
    overrides = data.get("overrides")
    if isinstance(overrides, dict):
        for key, value in list(overrides.items()):
            overrides[key] = absolutize_value(str(key), value, base)
    sweep = data.get("sweep")
    if isinstance(sweep, dict):
        for key, axis in sweep.items():
            if isinstance(axis, dict) and isinstance(axis.get("values"), list):
                axis["values"] = [absolutize_value(str(key), v, base) for v in axis["values"]]


def absolutize_value(key: str, value: Any, base: Path) -> Any:
    """A value set at dotted `key` (an override, a sweep value, `--set`) with its paths made
    absolute against `base`."""
    last = key.replace("]", "").replace("[", ".").split(".")
    if isinstance(value, str) and value:
        if last[-1] in _FILE_KEYS and ("length_distribution" in last or "curve" in last
                                       or "trace" in last):
            return absolute(value, base)
        if last[-2:] == ["prefix_cache", "trace"]:
            return absolute(value, base)
        if last[-2:] == ["estimate", "model"] and _is_model_path(value, base):
            return absolute(value, base)
        return value
    if isinstance(value, dict):
        value = dict(value)
        if last[-1] in ("length_distribution", "curve") or last[-2:] == ["demand", "trace"]:
            _length_distribution(value, base)
        elif last[-1] == "demand":
            _demand(value, base)  # the curve's or trace's `file`
        elif last[-1] == "prefix_cache":
            _prefix_cache(value, base)
        elif last[-1] == "estimate":
            _estimate_block(value, base)
        elif last[-1] == "profile":
            _estimate_block(value.get("estimate"), base)
        elif last[-1] in ("workloads", "instances") or len(last) >= 2 and last[-2] in (
                "workloads", "instances"):
            absolutize_document({last[-1] if last[-1] in ("workloads", "instances")
                                 else last[-2]: [value]}, base)
    elif isinstance(value, list) and last[-1] in ("workloads", "instances"):
        absolutize_document({last[-1]: value}, base)
    return value
