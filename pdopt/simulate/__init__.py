"""Discrete-event simulation of a P/D fleet, to check a plan's predictions (docs/simulation.md).

Pure Python + numpy: it uses only the scenario's measured tables (prefill throughput by input
length, TPOT by batch and context, KV-cache capacity), never the analytic queueing or capacity
formulas it is meant to check, and no Pyomo.

The names below are imported on first use, so that importing `pdopt.simulate.limits` (the
command line's option ranges) does not load the simulator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pdopt.simulate.fleet import SimulationError, build_fleet, plan_counts, plan_from_counts
    from pdopt.simulate.simulator import SimulationOptions, SimulationResult, simulate_plan
    from pdopt.simulate.traces import (
        TRACE_FORMATS,
        Requests,
        TraceError,
        poisson_requests,
        read_trace,
        write_simple_csv,
    )

_MODULE_OF = {
    "SimulationError": "fleet", "build_fleet": "fleet", "plan_counts": "fleet",
    "plan_from_counts": "fleet", "SimulationOptions": "simulator",
    "SimulationResult": "simulator", "simulate_plan": "simulator", "TRACE_FORMATS": "traces",
    "Requests": "traces", "TraceError": "traces", "poisson_requests": "traces",
    "read_trace": "traces", "write_simple_csv": "traces",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'pdopt.simulate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pdopt.simulate.{module}"), name)


__all__ = [
    "TRACE_FORMATS",
    "Requests",
    "SimulationError",
    "SimulationOptions",
    "SimulationResult",
    "TraceError",
    "build_fleet",
    "plan_counts",
    "plan_from_counts",
    "poisson_requests",
    "read_trace",
    "simulate_plan",
    "write_simple_csv",
]
