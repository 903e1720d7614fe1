"""Discrete-event simulation of a P/D fleet, to check a plan's predictions (docs/simulation.md).

Pure Python + numpy: it uses only the scenario's measured tables (prefill throughput by input
length, TPOT by batch and context, KV-cache capacity), never the analytic queueing or capacity
formulas it is meant to check, and no Pyomo.
"""

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
