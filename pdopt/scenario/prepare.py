"""The prepared scenario: the one stage between a scenario file and everything that uses it.

    prepared = prepare("scenarios/paper-deepseek-v31-h200.yaml", overrides={"options.mip_gap": 0})
    plan = pdopt.solve(prepared)

`prepare` reads a file (or takes plain data or a validated Scenario), merges `extends:` and
`overrides:`, applies command-line overrides (`--set`), makes every relative path absolute
against the file that wrote it, validates, and resolves every `profile:` block into numbers. It
is the only place where a scenario's folder matters: `solve`, `simulate_plan`, `verify_plan`,
`ratio`, batch workers and the Python API take a PreparedScenario (or a path, prepared once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.schema import EstimatedBy, Instance, Scenario

if TYPE_CHECKING:
    from pdopt.scenario.prefix_cache import PrefixCacheEstimate

log = logging.getLogger(__name__)

Overrides = Mapping[str, Any] | Sequence[tuple[str, Any]]


@dataclass(frozen=True)
class PreparedScenario:
    """A validated scenario whose instance types all carry numbers (no `profile:` block left) and
    whose file paths are absolute."""

    scenario: Scenario
    source: str | None = None  # the file it was read from (None: data or an object)
    changes: tuple[str, ...] = ()  # overrides applied, `key: old -> new`
    estimated: Mapping[str, EstimatedBy] = field(default_factory=dict)  # instance -> estimator
    overridden: tuple[str, ...] = ()  # those of `changes` that `overrides=` (--set) made
    # prefix-cache hit rates derived from traces (docs/method.md, Eq. H14), by workload
    prefix_caches: tuple[PrefixCacheEstimate, ...] = ()

    @property
    def name(self) -> str:
        return self.scenario.name

    def is_estimated(self, instance: str) -> bool:
        return instance in self.estimated

    def estimated_sources(self) -> dict[str, str]:
        """Instance name -> the `source` line of its estimated numbers."""
        return {i.name: str(i.source or i.estimated_by) for i in self.scenario.instances
                if i.estimated_by is not None}

    def with_scenario(self, scenario: Scenario) -> PreparedScenario:
        """The same preparation around a changed (already resolved) scenario, e.g. options
        changed by a command-line flag."""
        return PreparedScenario(scenario, self.source, self.changes,
                                _estimated(scenario.instances), self.overridden,
                                self.prefix_caches)

    def derived_notes(self) -> list[str]:
        """One line per value the preparation derived from data (a prefix-cache hit rate)."""
        return [e.note() for e in self.prefix_caches]


def _estimated(instances: Sequence[Instance]) -> dict[str, EstimatedBy]:
    return {i.name: i.estimated_by for i in instances if i.estimated_by is not None}


def _as_pairs(overrides: Overrides | None) -> list[tuple[str, Any]]:
    if not overrides:
        return []
    return list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides)


def apply_overrides(data: dict[str, Any], overrides: Overrides | None,
                    source: str | None = None) -> list[str]:
    """Set dotted keys (as `overrides:` does) on plain scenario data, in place; paths in the
    values are relative to the working directory. Returns the `key: old -> new` lines."""
    from pdopt.scenario.paths import absolutize_value
    from pdopt.scenario.variants import set_path

    changes: list[str] = []
    for key, value in _as_pairs(overrides):
        try:
            changes += set_path(data, key, absolutize_value(key, value, Path.cwd()))
        except ValueError as e:
            raise ScenarioError([Problem(f"--set {key}", str(e))], source) from None
    return changes


def prepare(source: str | Path | Mapping[str, Any] | Scenario | PreparedScenario, *,
            overrides: Overrides | None = None, source_name: str | None = None,
            use_cache: bool = True) -> PreparedScenario:
    """Prepare a scenario from a file path, plain data, a Scenario or a PreparedScenario (returned
    as it is when there is nothing to override).

    Plain data and Scenario objects have their relative paths read from the working directory
    (data read through `pdopt.scenario.variants` already has them absolute). `overrides` are
    dotted keys as in `overrides:` (`workloads.chat.slo.tpot_ms: 40`), applied last and logged.
    Raises ScenarioError naming the file and field."""
    from pdopt.scenario.loading import scenario_from_data

    if isinstance(source, PreparedScenario):
        if not overrides:
            return source
        source = source.scenario
    changes: list[str] = []
    name: str | None
    if isinstance(source, str | Path):
        name = source_name or str(source)
        from pdopt.scenario.variants import resolve_scenario_data_with_changes

        data, changes = resolve_scenario_data_with_changes(Path(source))
    elif isinstance(source, Scenario):
        name = source_name
        if not overrides:
            return _resolved(source, name, changes, use_cache)
        data = source.model_dump(mode="json", exclude_none=True)
    else:
        name = source_name
        data = dict(source)
    extra = apply_overrides(data, overrides, name)
    for line in extra:
        log.info("%s: %s", name or "scenario", line)
    changes += extra
    scenario = scenario_from_data(data, name)
    return _resolved(scenario, name, changes, use_cache, extra)


def _profiles_resolved(scenario: Scenario, use_cache: bool) -> Scenario:
    """`resolve_profiles`, imported only when an instance has a `profile:` block (the
    estimators and their catalogs cost start-up time)."""
    if all(inst.profile is None for inst in scenario.instances):
        return scenario
    from pdopt.profiles.resolve import resolve_profiles

    return resolve_profiles(scenario, use_cache=use_cache)


def _resolved(scenario: Scenario, name: str | None, changes: list[str],
              use_cache: bool, overridden: Sequence[str] = ()) -> PreparedScenario:
    from pdopt.scenario.prefix_cache import resolve_prefix_caches

    try:
        resolved = _profiles_resolved(scenario, use_cache)
        resolved, caches = resolve_prefix_caches(resolved)
    except ScenarioError as e:
        raise (e if e.source or name is None else e.with_source(name)) from None
    for cache in caches:
        log.info("%s: %s", name or "scenario", cache.note())
    return PreparedScenario(resolved, name, tuple(changes), _estimated(resolved.instances),
                            tuple(overridden), tuple(caches))
