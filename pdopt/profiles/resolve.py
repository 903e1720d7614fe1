"""Replace `profile:` blocks of scenario instance types by numbers (docs/profiles.md).

`resolve_profiles(scenario)` returns the scenario with every profiled instance type carrying a
prefill table or decode TPOT tables (at the scenario's workload lengths for its model), its KV
capacity, and `source: estimate ...` / `source: aiconfigurator ...`; identity when no instance
has a profile. Results are cached on disk by a hash of everything they depend on, so a batch of
variants computes each profile once. `check_profiles` validates the blocks without computing them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

from pydantic import ValidationError

from pdopt.errors import PdoptError
from pdopt.fileio import write_atomic
from pdopt.inputfiles import InputFileError, read_limited
from pdopt.profiles import aiconfigurator as aic
from pdopt.profiles.catalog import config_digest, gpu_spec, model_arch, model_config
from pdopt.profiles.estimate import (
    Estimate,
    EstimateFactors,
    InstanceShape,
    engine_factors,
    estimate_tables,
)
from pdopt.profiles.measurements import RunDefaults
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.profile_spec import AiconfiguratorProfile, EstimateProfile
from pdopt.scenario.schema import (
    EmpiricalLengths,
    EstimatedBy,
    Instance,
    LognormalLengths,
    ModelSpec,
    Scenario,
    Workload,
)
from pdopt.simulate.traces import lognormal_params, read_length_pairs

# Bump when the estimator's equations change, so cached estimates are recomputed.
ESTIMATOR_VERSION = "2"
CACHE_ENV = "PDOPT_CACHE_DIR"
#: An estimated profile's tables are tens of kB; a larger entry is not one of ours.
MAX_CACHE_ENTRY_BYTES = 64 * 1024 * 1024


def cache_dir() -> Path:
    """$PDOPT_CACHE_DIR, else $XDG_CACHE_HOME/pdopt/profiles, else ~/.cache/pdopt/profiles."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pdopt" / "profiles"


def _cached(key: dict[str, Any], compute: Callable[[], dict[str, Any]],
            use_cache: bool) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    path = cache_dir() / f"{digest[:32]}.json"
    if use_cache and path.is_file():
        try:
            raw = read_limited(path, MAX_CACHE_ENTRY_BYTES, "cache entries")
            return json.loads(raw.decode("utf-8"))["result"]
        except (InputFileError, OSError, ValueError, KeyError, TypeError):
            pass  # a damaged (or replaced) cache entry is recomputed and rewritten
    result = compute()
    if use_cache:
        with contextlib.suppress(OSError):  # a read-only cache folder costs recomputation only
            write_atomic(path, json.dumps({"key": key, "result": result}, default=str))
    return result


def _workload_lengths(scenario: Scenario, model: str) -> list[tuple[int, int]]:
    return sorted({(w.input_tokens, w.output_tokens) for w in scenario.workloads
                   if w.model == model})


def _run_defaults(spec: EstimateProfile, gpu: str, gpus: int) -> RunDefaults:
    """How `calibrate_from` runs were deployed where their files do not say: as this block."""
    return RunDefaults(model=spec.model, gpu=gpu, gpus=gpus, weight_dtype=spec.weight_dtype,
                       kv_dtype=spec.kv_dtype, attention=spec.attention, moe_ep=spec.moe_ep,
                       engine=spec.engine)


def _calibration(spec: EstimateProfile, base: EstimateFactors, gpu: str, gpus: int
                 ) -> tuple[EstimateFactors, int]:
    """The engine's factors refitted to the block's `calibrate_from` runs (Eq. C2)."""
    from pdopt.profiles.calibration import fit_to_measurements  # scipy: only when asked

    assert spec.calibrate_from
    return fit_to_measurements(tuple(spec.calibrate_from), base,
                               _run_defaults(spec, gpu, gpus))


def _factors(spec: EstimateProfile, scenario: Scenario, gpu: str = "",
             gpus: int = 1) -> EstimateFactors:
    """The engine's calibrated factors (generic without `engine`), refitted to `calibrate_from`
    runs, with the scenario's memory utilisation and the block's overrides."""
    f = replace(engine_factors(spec.engine),
                memory_utilization=scenario.options.gpu_memory_utilization)
    if spec.calibrate_from:
        f = _calibration(spec, f, gpu, gpus)[0]
    if spec.factors is not None:
        f = replace(f, **spec.factors.model_dump(exclude_none=True))
    return f


def build_estimate(spec: EstimateProfile, instance: Instance, scenario: Scenario) -> Estimate:
    """The estimator for an instance's `profile.estimate` block (reads the model config)."""
    try:
        gpu = gpu_spec(spec.gpu or instance.gpu)
    except ScenarioError as e:
        if spec.gpu is not None:
            raise
        raise ScenarioError([Problem("gpu", f"{e.problems[0].message}; the instance's gpu "
                                     f"'{instance.gpu}' is not a catalog name, so give gpu here")]
                            ) from None
    shape = InstanceShape(gpu, instance.gpus_per_instance, spec.weight_dtype, spec.kv_dtype,
                          spec.attention, spec.tokens_per_step, spec.moe_ep)
    return Estimate(model_arch(spec.model), shape,
                    _factors(spec, scenario, gpu.name, instance.gpus_per_instance))


def estimate_source(est: Estimate, spec: EstimateProfile | None = None) -> str:
    """The `source` line of an estimate: model, shape, engine and factors, and the measured runs
    the factors were refitted to, if any."""
    f, s = est.factors, est.shape
    mtp = f", {s.tokens_per_step:g} tokens per step" if s.tokens_per_step != 1 else ""
    ep = f", MoE EP {s.expert_parallel}" if est.arch.is_moe else ""
    engine = "generic"
    if spec is not None and spec.engine:
        engine = spec.engine + (f" {spec.engine_version}" if spec.engine_version else "")
    calibrated = ""
    if spec is not None and spec.calibrate_from:
        base = replace(engine_factors(spec.engine), memory_utilization=f.memory_utilization)
        runs = _calibration(spec, base, s.gpu.name, s.gpus)[1]
        calibrated = (f"; calibrated to {runs} measured run(s) of "
                      f"{', '.join(Path(p).name for p in spec.calibrate_from)}")
    return (f"estimate pdopt {est.arch.name} on {s.gpus} x {s.gpu.name}, weights {s.weight_dtype}, "
            f"KV {s.kv_dtype}, attention {s.attention}{ep}{mtp}; {engine} factors compute "
            f"{f.compute_efficiency:g} (MoE x {f.moe_gemm_efficiency:g}"
            + (f", prefill MoE x {f.prefill_efficiencies[1]:g}" if est.arch.is_moe else "")
            + (f", FP4 GEMMs x {f.fp4_efficiency:g}, in prefill x "
               f"{f.prefill_fp4_efficiency:g}" if s.weight_dtype == "fp4" else "")
            + f"), bandwidth "
            f"{f.bandwidth_efficiency:g}, overhead {f.step_overhead_us:g} us/step + "
            f"{f.layer_overhead_us:g} us/layer + "
            + (f"{f.moe_layer_overhead_us:g} us/MoE layer + " if est.arch.is_moe else "")
            + (f"{f.mla_layer_overhead_us:g} us/MLA layer + " if est.arch.is_mla else "")
            + f"{f.sequence_overhead_us:g} us/sequence"
            f"{calibrated} (docs/profiles.md)")


#: Upper-tail probability of an unbounded (lognormal) input-length distribution that an estimated
#: prefill table leaves out: one request in 10^12, beyond any simulation's request cap.
UNCOVERED_TAIL = 1e-12
#: Input lengths per decade in an estimated prefill table between its shortest and longest.
GRID_POINTS_PER_DECADE = 8


def input_length_range(workload: Workload) -> tuple[int, int]:
    """Shortest and longest input length the workload's `length_distribution` can produce as the
    simulator samples it (docs/profiles.md, "Estimated tables cover the length distribution")."""
    dist, mean = workload.length_distribution, workload.input_tokens
    if isinstance(dist, LognormalLengths) and dist.input_cv > 0:
        mu, sigma = lognormal_params(mean, dist.input_cv)
        z = NormalDist().inv_cdf(1.0 - UNCOVERED_TAIL)
        return 1, max(mean, math.ceil(math.exp(mu + z * sigma)) + 1)
    if isinstance(dist, EmpiricalLengths):
        inputs, _ = read_length_pairs(dist.file)
        if inputs.size == 0:
            return mean, mean
        scale = mean / max(float(inputs.mean()), 1e-9) if dist.scale_to_means else 1.0
        return (max(1, math.floor(float(inputs.min()) * scale)),
                max(1, math.ceil(float(inputs.max()) * scale)))
    return mean, mean


def log_grid(shortest: int, longest: int) -> list[int]:
    """Integers from `shortest` to `longest`, GRID_POINTS_PER_DECADE per decade, ends included."""
    if longest <= shortest:
        return [shortest]
    steps = max(1, math.ceil(GRID_POINTS_PER_DECADE * math.log10(longest / shortest)))
    ratio = (longest / shortest) ** (1.0 / steps)
    return sorted({shortest, longest, *(round(shortest * ratio ** k) for k in range(1, steps))})


def _prefill_inputs(scenario: Scenario, model: str) -> list[int]:
    """The workloads' mean input lengths and a grid over every length they can produce."""
    inputs: set[int] = set()
    for w in scenario.workloads:
        if w.model == model:
            inputs.add(w.input_tokens)
            inputs.update(log_grid(*input_length_range(w)))
    return sorted(inputs)


def _lengths_for(instance: Instance, scenario: Scenario, input_tokens: list[int] | None,
                 *, cover_distribution: bool = False
                 ) -> tuple[list[int], list[tuple[int, int]]]:
    lengths = _workload_lengths(scenario, instance.model)
    if input_tokens:
        inputs = sorted(set(input_tokens))
    elif cover_distribution:
        inputs = _prefill_inputs(scenario, instance.model)
    else:
        inputs = sorted({i for i, _ in lengths})
    if instance.role == "prefill" and not inputs:
        raise ScenarioError([Problem("input_tokens", f"no workload uses model "
                                     f"'{instance.model}'; give input_tokens")])
    if instance.role == "decode" and not lengths:
        raise ScenarioError([Problem("profile", f"no workload uses model '{instance.model}', so "
                                     "there are no lengths to estimate decode at")])
    return inputs, lengths


def estimate_numbers(est: Estimate, role: str, inputs: list[int], lengths: list[tuple[int, int]],
                     max_batch: int) -> dict[str, Any]:
    """The instance fields of one role: a prefill table, or decode tables and KV capacity."""
    if role == "prefill":
        return {"prefill_tokens_per_s": est.prefill_table(inputs)}
    full = estimate_tables(est, [], lengths, max_batch)
    return {k: full[k] for k in ("tpot_tables", "kv_cache_tokens")}


def aiconfigurator_numbers(run: aic.AicRun, role: str, inputs: list[int],
                           lengths: list[tuple[int, int]], batches: list[int]
                           ) -> tuple[dict[str, Any], str]:
    """The instance fields of one role from AIConfigurator, and their `source` line."""
    if role == "prefill":
        table, version = aic.prefill_table(run, inputs)
        return {"prefill_tokens_per_s": table}, aic.source_line(run, version)
    tables = []
    for i, o in lengths:
        t, version = aic.tpot_table(run, i, o, batches)
        tables.append({"measured_at": {"input_tokens": i, "output_tokens": o},
                       "tpot_ms_by_batch": t})
    return {"tpot_tables": tables}, aic.source_line(run, version)


def _resolve_estimate(spec: EstimateProfile, instance: Instance, scenario: Scenario,
                      use_cache: bool) -> dict[str, Any]:
    est = build_estimate(spec, instance, scenario)
    inputs, lengths = _lengths_for(instance, scenario, spec.input_tokens,
                                   cover_distribution=instance.role == "prefill")
    _, config, _ = model_config(spec.model)
    key = {"kind": "estimate", "version": ESTIMATOR_VERSION, "role": instance.role,
           "config": config_digest(config), "gpu": asdict(est.shape.gpu),
           "gpus": est.shape.gpus, "spec": spec.model_dump(mode="json", exclude={"model"}),
           "factors": est.factors.to_dict(), "inputs": inputs, "lengths": lengths}

    def compute() -> dict[str, Any]:
        return {"numbers": estimate_numbers(est, instance.role, inputs, lengths, spec.max_batch),
                "source": estimate_source(est, spec), "kv_bytes_per_token": est.kv_bytes}

    return _cached(key, compute, use_cache)


def _resolve_aiconfigurator(spec: AiconfiguratorProfile, instance: Instance, scenario: Scenario,
                            use_cache: bool) -> dict[str, Any]:
    run = aic.resolve_run(spec, instance.gpu, instance.gpus_per_instance)
    version = aic.installed_version()
    if version is None:
        raise aic.AiconfiguratorMissing()
    inputs, lengths = _lengths_for(instance, scenario, spec.input_tokens)
    batches = list(spec.batches or aic.DEFAULT_BATCHES)
    key = {"kind": "aiconfigurator", "version": version, "role": instance.role,
           "model_path": run.model_path, "system": run.system, "gpus": run.gpus,
           "spec": spec.model_dump(mode="json", exclude={"model", "system"}),
           "inputs": inputs, "lengths": lengths, "batches": batches}

    def compute() -> dict[str, Any]:
        numbers, source = aiconfigurator_numbers(run, instance.role, inputs, lengths, batches)
        return {"numbers": numbers, "source": source}

    return _cached(key, compute, use_cache)


def _located(e: ScenarioError, loc: str) -> ScenarioError:
    """Prefix an error's problems with the instance's location (and name a config file)."""
    problems = []
    for p in e.problems:
        where = f"{loc}.{p.location}" if p.location else loc
        problems.append(Problem(where, f"{e.source}: {p.message}" if e.source else p.message))
    return ScenarioError(problems)


def _profile_loc(i: int, instance: Instance) -> str:
    assert instance.profile is not None
    return f"instances[{i}].profile.{instance.profile.kind}"


def resolve_profiles(scenario: Scenario, *, use_cache: bool = True) -> Scenario:
    """The scenario with every `profile:` block replaced by numbers (see the module docstring).

    Called by `pdopt.scenario.prepare`, after relative paths were made absolute against the file
    that wrote them (a path still relative is read from the working directory). Raises
    ScenarioError naming the instance and field."""
    if not any(inst.profile is not None for inst in scenario.instances):
        return scenario
    instances: list[Instance] = []
    kv_bytes: dict[str, float] = {}
    for i, inst in enumerate(scenario.instances):
        if inst.profile is None:
            instances.append(inst)
            continue
        loc = _profile_loc(i, inst)
        try:
            if inst.profile.estimate is not None:
                result = _resolve_estimate(inst.profile.estimate, inst, scenario, use_cache)
                kv_bytes.setdefault(inst.model, result["kv_bytes_per_token"])
            else:
                assert inst.profile.aiconfigurator is not None
                result = _resolve_aiconfigurator(inst.profile.aiconfigurator, inst, scenario,
                                                 use_cache)
        except ScenarioError as e:
            raise _located(e, loc) from None
        except PdoptError as e:
            raise type(e)(f"instance '{inst.name}' ({loc}): {e}") from None
        data = inst.model_dump(exclude_none=True, exclude={"profile", "source"})
        data.update(result["numbers"], source=result["source"],
                    estimated_by=inst.profile.kind)
        try:
            instances.append(Instance.model_validate(data))
        except ValidationError as e:  # estimated numbers that break the format: a bug to report
            raise ScenarioError([Problem(loc, f"estimated numbers are invalid: {e}")]) from None
    models = dict(scenario.models)
    for name, value in kv_bytes.items():
        spec = models.get(name)
        if spec is None:
            models[name] = ModelSpec(kv_bytes_per_token=value)
        elif spec.kv_bytes_per_token_total is None:
            models[name] = spec.model_copy(update={"kv_bytes_per_token": value})
    return scenario.model_copy(update={"instances": instances, "models": models})


def check_profiles(scenario: Scenario) -> list[Problem]:
    """Validate every `profile:` block without computing tables: the model config reads and is
    a supported family, the GPU is in the catalog and has the weight dtype, the weights fit,
    AIConfigurator parallel sizes divide the GPU count. One Problem per thing wrong."""
    problems: list[Problem] = []
    for i, inst in enumerate(scenario.instances):
        if inst.profile is None:
            continue
        loc = _profile_loc(i, inst)
        try:
            if inst.profile.estimate is not None:
                spec = inst.profile.estimate
                est = build_estimate(spec, inst, scenario)
                est.kv_cache_tokens()  # weights fit in memory
                _lengths_for(inst, scenario, spec.input_tokens)
            else:
                spec_a = inst.profile.aiconfigurator
                assert spec_a is not None
                aic.resolve_run(spec_a, inst.gpu, inst.gpus_per_instance)
                _lengths_for(inst, scenario, spec_a.input_tokens)
        except ScenarioError as e:
            problems.extend(_located(e, loc).problems)
        except PdoptError as e:
            problems.append(Problem(loc, str(e)))
    return problems


def _instance_item(name: str, model: str, role: str, gpu: str, gpus: int,
                   numbers: dict[str, Any], source: str, estimated_by: EstimatedBy
                   ) -> dict[str, Any]:
    item: dict[str, Any] = {"name": name, "model": model, "role": role, "gpu": gpu,
                            "gpus_per_instance": gpus}
    item.update(numbers)
    item["source"] = source
    item["estimated_by"] = estimated_by
    Instance.model_validate(item)  # what is printed must load
    return item


def estimated_instances(model: str, gpu: str, gpus: int, *, roles: tuple[str, ...],
                        lengths: list[tuple[int, int]], input_tokens: list[int] | None = None,
                        weight_dtype: str = "bf16", kv_dtype: str = "bf16",
                        attention: str = "tp", max_batch: int = 1024,
                        tokens_per_step: float = 1.0, engine: str | None = None,
                        engine_version: str | None = None, moe_ep: int | None = None,
                        calibrate_from: list[str] | None = None,
                        factors: EstimateFactors | None = None,
                        ) -> tuple[list[dict[str, Any]], Estimate]:
    """Instance-type blocks (plain data) estimated for each role, and the estimator used.
    Factors: `factors` when given, else the engine's (generic without one), refitted to the
    `calibrate_from` runs."""
    spec = EstimateProfile.model_validate(
        {"model": model, "gpu": gpu, "weight_dtype": weight_dtype, "kv_dtype": kv_dtype,
         "attention": attention, "max_batch": max_batch, "tokens_per_step": tokens_per_step,
         "engine": engine, "engine_version": engine_version, "moe_ep": moe_ep,
         "calibrate_from": calibrate_from})
    shape = InstanceShape(gpu_spec(gpu), gpus, spec.weight_dtype, spec.kv_dtype, spec.attention,
                          spec.tokens_per_step, spec.moe_ep)
    if factors is None:
        factors = engine_factors(engine)
        if calibrate_from:
            factors = _calibration(spec, factors, shape.gpu.name, gpus)[0]
    est = Estimate(model_arch(model), shape, factors)
    inputs = sorted(set(input_tokens or [i for i, _ in lengths]))
    items = []
    for role in roles:
        numbers = estimate_numbers(est, role, inputs, lengths, max_batch)
        name = f"{est.arch.name}-{role}-{gpus}x{shape.gpu.name}".lower()
        items.append(_instance_item(name, est.arch.name, role, shape.gpu.name, gpus, numbers,
                                    estimate_source(est, spec), "estimate"))
    return items, est


def aiconfigurator_instances(spec: AiconfiguratorProfile, gpu: str, gpus: int, *,
                             roles: tuple[str, ...], lengths: list[tuple[int, int]],
                             model_name: str) -> list[dict[str, Any]]:
    """Instance-type blocks from AIConfigurator for each role (not cached: a direct request)."""
    run = aic.resolve_run(spec, gpu, gpus)
    if aic.installed_version() is None:
        raise aic.AiconfiguratorMissing()
    inputs = sorted(set(spec.input_tokens or [i for i, _ in lengths]))
    batches = list(spec.batches or aic.DEFAULT_BATCHES)
    items = []
    for role in roles:
        numbers, source = aiconfigurator_numbers(run, role, inputs, lengths, batches)
        name = f"{model_name}-{role}-{gpus}x{gpu}-aic".lower().replace("/", "-")
        items.append(_instance_item(name, model_name, role, gpu, gpus, numbers, source,
                                    "aiconfigurator"))
    return items
