"""Click parameter types shared by the commands: finite numbers within documented ranges.

click.FloatRange lets `nan` through (every comparison with NaN is false) and accepts `inf`;
a solver time limit of NaN or a simulated duration of 1e9 s must be a usage error (exit 2, one
line), never a traceback or a run that cannot finish. Bounds come from pdopt.scenario.ranges and
pdopt.simulate.limits (docs/scenario-format.md#ranges, docs/simulation.md).
"""

from __future__ import annotations

import math
from typing import Any

import click

from pdopt.scenario import ranges as r
from pdopt.simulate.limits import MAX_RATE_SCALE, MAX_SIMULATED_S


class FiniteFloatRange(click.FloatRange):
    """A float within [min, max] (open ends as click.FloatRange), refusing NaN and infinities."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def positive(maximum: float) -> FiniteFloatRange:
    """A finite number > 0 and <= maximum."""
    return FiniteFloatRange(min=0, min_open=True, max=maximum)


def non_negative(maximum: float) -> FiniteFloatRange:
    """A finite number >= 0 and <= maximum."""
    return FiniteFloatRange(min=0, max=maximum)


#: Solver settings (as options.time_limit_s and options.mip_gap in a scenario).
TIME_LIMIT_S = positive(r.MAX_TIME_LIMIT_S)
MIP_GAP = FiniteFloatRange(0, 1, max_open=True)
#: Simulation settings.
SIMULATED_S = positive(MAX_SIMULATED_S)
SIMULATED_S_OR_ZERO = non_negative(MAX_SIMULATED_S)
RATE_SCALE = positive(MAX_RATE_SCALE)
#: A seed for numpy's SeedSequence: a non-negative 64-bit integer.
SEED = click.IntRange(0, 2**64 - 1)
#: GPUs of one instance (and its parallel sizes), decode batch sizes, tokens per decode step.
GPUS = click.IntRange(1, r.MAX_GPUS_PER_INSTANCE)
BATCH = click.IntRange(1, r.MAX_BATCH)
TOKENS_PER_STEP = FiniteFloatRange(1, r.MAX_TOKENS_PER_STEP)
#: Numbers of the scenario format, for commands that take them as flags (pdopt ratio).
TOKENS = positive(r.MAX_TOKENS)
MILLISECONDS = positive(r.MAX_MS)
OVERHEAD_MS = non_negative(r.MAX_MS)
INSTANCE_TOKENS_PER_S = positive(r.MAX_INSTANCE_TOKENS_PER_S)
REQUESTS_PER_S = positive(r.MAX_REQUESTS_PER_S)
TOKENS_PER_S = positive(r.MAX_TOKENS_PER_S)
TOKENS_PER_MINUTE = positive(60 * r.MAX_TOKENS_PER_S)
SCV = non_negative(r.MAX_SCV)
PERCENTILE = FiniteFloatRange(0, 100, min_open=True, max_open=True)
