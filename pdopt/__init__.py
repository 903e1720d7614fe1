"""pdopt: sizing prefill/decode disaggregated LLM serving fleets.

The Python API a planner imports:

    from pdopt import load_scenario, solve
    plan = solve(load_scenario("scenarios/paper-deepseek-v31-h200.yaml"))

`solve` (the optimizer and highspy behind it) is imported on first use, so light commands start
fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pdopt.plan import Plan
from pdopt.ratio import RatioResult, ratio_from_numbers, ratio_from_scenario
from pdopt.scenario.loading import load_scenario
from pdopt.scenario.schema import Scenario

if TYPE_CHECKING:
    from pdopt.optimize import solve

__all__ = ["Plan", "RatioResult", "Scenario", "load_scenario", "ratio_from_numbers",
           "ratio_from_scenario", "solve"]


def __getattr__(name: str) -> Any:
    if name == "solve":
        from pdopt.optimize import solve

        return solve
    raise AttributeError(f"module 'pdopt' has no attribute {name!r}")
