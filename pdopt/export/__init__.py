"""Deployment manifests of a plan (`pdopt export`, docs/cli.md): plain Kubernetes, NVIDIA Dynamo,
llm-d and SGLang's P/D router, one module per target.

    from pdopt.export import ExportOptions, export_plan, write_export
    files = export_plan(plan, "kubernetes", ExportOptions(image="vllm/vllm-openai:v0.11.0"),
                        scenario=prepared.scenario)
    write_export(files, "deploy/")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from pdopt.export import dynamo, kubernetes, llmd, sglang_router
from pdopt.export.common import (
    ENGINES,
    PLACEHOLDER,
    Engine,
    ExportError,
    ExportFile,
    ExportOptions,
    ModelFacts,
    plan_facts,
    slug,
)
from pdopt.fileio import write_atomic
from pdopt.plan import Plan
from pdopt.scenario.schema import Scenario

Exporter = Callable[[Plan, list[ModelFacts], ExportOptions], list[ExportFile]]

TARGETS: dict[str, Exporter] = {
    "kubernetes": kubernetes.export,
    "dynamo": dynamo.export,
    "llm-d": llmd.export,
    "sglang-router": sglang_router.export,
}
#: the engine each target runs, where it has only one
TARGET_ENGINE: dict[str, Engine] = {"llm-d": "vllm", "sglang-router": "sglang"}

__all__ = ["ENGINES", "PLACEHOLDER", "TARGETS", "ExportError", "ExportFile", "ExportOptions",
           "export_plan", "slug", "write_export"]


def export_plan(plan: Plan, target: str, options: ExportOptions | None = None, *,
                scenario: Scenario | None = None, raw: Scenario | None = None
                ) -> list[ExportFile]:
    """The files of `target` for a plan. `scenario`: the prepared scenario the plan was solved
    from (engine arguments; optional), `raw`: the same scenario before its profiles were resolved
    (KV dtypes and model ids of `profile:` blocks; optional). Raises ExportError."""
    if target not in TARGETS:
        raise ExportError(f"unknown target '{target}' (choose from {', '.join(TARGETS)})")
    options = options or ExportOptions()
    engine = TARGET_ENGINE.get(target)
    if engine is not None and options.engine != engine:
        options = replace(options, engine=engine)
    return TARGETS[target](plan, plan_facts(plan, options, scenario, raw), options)


def write_export(files: Sequence[ExportFile], folder: str | Path) -> list[Path]:
    """Write the files into `folder` (created if missing), each atomically. A file name that is
    not a bare name inside the folder is refused (ExportError) before anything is written."""
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise ExportError(f"{folder}: not a folder")
    resolved_root = root.resolve()
    for f in files:
        if (Path(f.name).name != f.name or f.name.startswith(".")
                or (resolved_root / f.name).resolve().parent != resolved_root):
            raise ExportError(f"refusing to write '{f.name}' outside {folder}")
    paths = [root / f.name for f in files]
    try:
        root.mkdir(parents=True, exist_ok=True)
        for f, path in zip(files, paths, strict=True):
            write_atomic(path, f.text)
    except OSError as e:
        raise ExportError(f"{folder}: cannot write: {e.strerror or e}") from None
    return paths
