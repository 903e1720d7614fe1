"""The bundled GPU catalog and model architectures (package data in pdopt/data/).

`gpu_spec("H200")` and `model_arch("deepseek-v3.1")` look names up case-insensitively, aliases
included; `model_arch` also takes the path of a Hugging Face config.json (or of the folder that
holds one). Unknown names raise ScenarioError listing what the catalog has.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pdopt.profiles.architecture import ModelArch, arch_from_config, read_config_file
from pdopt.scenario.problems import Problem, ScenarioError

TERA = 1e12
GIGA = 1e9


@dataclass(frozen=True)
class GpuSpec:
    """One GPU type of the catalog: peak dense tensor FLOP/s per dtype, memory, bandwidths."""

    name: str
    description: str
    dense_tflops: dict[str, float]
    memory_gb: float
    hbm_tb_per_s: float
    interconnect: str
    interconnect_gb_per_s: float
    sources: dict[str, str]
    aiconfigurator_system: str | None = None
    nvlink_domain_gpus: int = 8  # GPUs one NVLink (or Infinity Fabric) switch domain joins
    scale_out_gb_per_s: float = 50.0  # per GPU per direction beyond the domain (InfiniBand/RoCE)

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * GIGA

    @property
    def hbm_bytes_per_s(self) -> float:
        return self.hbm_tb_per_s * TERA

    @property
    def link_bytes_per_s(self) -> float:
        return self.interconnect_gb_per_s * GIGA

    def link_bytes_per_s_for(self, gpus: int) -> float:
        """Per-direction bandwidth per GPU of a collective over `gpus` GPUs: the NVLink figure
        within one NVLink domain, the scale-out network's beyond it (Eq. E11a)."""
        if gpus <= self.nvlink_domain_gpus:
            return self.link_bytes_per_s
        return self.scale_out_gb_per_s * GIGA

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s at a compute dtype; ScenarioError when the GPU lacks it."""
        if dtype not in self.dense_tflops:
            raise ScenarioError([Problem(
                "weight_dtype", f"{self.name} has no {dtype} tensor cores (it supports "
                f"{', '.join(sorted(self.dense_tflops))})")])
        return self.dense_tflops[dtype] * TERA


@dataclass(frozen=True)
class BundledModel:
    name: str
    source: str
    aiconfigurator: str | None
    config: dict[str, Any]


def _data_text(name: str) -> str:
    return resources.files("pdopt").joinpath("data", name).read_text(encoding="utf-8")


# libyaml's loader when PyYAML was built with it (10x faster than the pure-Python one).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def data_yaml(name: str) -> Any:
    """A YAML file of pdopt/data, parsed once per process (callers must not mutate it)."""
    return yaml.load(_data_text(name), Loader=_YAML_LOADER)  # noqa: S506 - a safe loader


@functools.cache
def gpu_catalog() -> dict[str, GpuSpec]:
    """Every GPU of pdopt/data/gpu_catalog.yaml by its canonical name."""
    raw = data_yaml("gpu_catalog.yaml")["gpus"]
    out: dict[str, GpuSpec] = {}
    for name, g in raw.items():
        out[name] = GpuSpec(
            name=name, description=g["description"],
            dense_tflops={k: float(v) for k, v in g["dense_tflops"].items()},
            memory_gb=float(g["memory_gb"]), hbm_tb_per_s=float(g["hbm_tb_per_s"]),
            interconnect=g["interconnect"],
            interconnect_gb_per_s=float(g["interconnect_gb_per_s"]),
            sources=dict(g["sources"]), aiconfigurator_system=g.get("aiconfigurator_system"),
            nvlink_domain_gpus=int(g.get("nvlink_domain_gpus", 8)),
            scale_out_gb_per_s=float(g.get("scale_out_gb_per_s", 50.0)),
        )
    return out


@functools.cache
def _gpu_aliases() -> dict[str, str]:
    raw = data_yaml("gpu_catalog.yaml")["gpus"]
    aliases = {}
    for name, g in raw.items():
        for alias in [name, *g.get("aliases", []), g.get("aiconfigurator_system") or name]:
            aliases[alias.lower()] = name
    return aliases


def gpu_spec(name: str) -> GpuSpec:
    """The catalog entry of a GPU type (case-insensitive, aliases allowed)."""
    canonical = _gpu_aliases().get(name.lower())
    if canonical is None:
        raise ScenarioError([Problem("gpu", f"unknown GPU type '{name}' (the catalog has: "
                                     f"{', '.join(gpu_catalog())})")])
    return gpu_catalog()[canonical]


@functools.cache
def bundled_models() -> dict[str, BundledModel]:
    """Every model of pdopt/data/model_configs.yaml by name, aliases included."""
    raw = data_yaml("model_configs.yaml")["models"]
    out: dict[str, BundledModel] = {}
    for name, m in raw.items():
        entry = BundledModel(name, m["source"], m.get("aiconfigurator"), dict(m["config"]))
        for alias in [name, *m.get("aliases", [])]:
            out[alias.lower()] = entry
    return out


def looks_like_path(model: str) -> bool:
    return model.endswith(".json") or "/" in model or "\\" in model or Path(model).exists()


def model_config(model: str) -> tuple[str, dict[str, Any], str]:
    """(display name, config mapping, source) for a bundled name or a config.json path.

    A relative path is read from the working directory: scenarios reach here prepared, their
    paths already absolute (pdopt.scenario.prepare)."""
    bundled = bundled_models().get(model.lower())
    if bundled is not None:
        return bundled.name, bundled.config, bundled.source
    if not looks_like_path(model):
        names = sorted({m.name for m in bundled_models().values()})
        raise ScenarioError([Problem("model", f"unknown model '{model}': give a bundled name "
                                     f"({', '.join(names)}) or the path of a config.json")])
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    return path.parent.name or path.stem, read_config_file(path), str(path)


def model_arch(model: str) -> ModelArch:
    """The architecture of a bundled model or of a config.json file."""
    name, config, source = model_config(model)
    return arch_from_config(config, name, source)


def config_digest(config: dict[str, Any]) -> str:
    """A stable hash of a model config (part of the estimate cache key)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
