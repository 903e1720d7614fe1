"""The sane range of every number a scenario (or a command-line flag) may hold.

Each bound is far beyond any real deployment, and far inside the range where the arithmetic stops
meaning anything: a float that overflows, a demand the solver's tolerances (1e-7) round to zero, a
simulation that cannot fit in memory. The reasons are in docs/scenario-format.md, "Ranges"; the
schema (pdopt.scenario.schema, pdopt.scenario.profile_spec) and the CLI's parameter types
(pdopt.cli.params) take their bounds from here. No I/O, no imports from the rest of pdopt.
"""

from __future__ import annotations

from typing import Any

from pydantic import AfterValidator

#: Token lengths (prompt, output, a measured length, a table's input length): the longest context
#: window of any released model is 10M tokens (Llama 4 Scout, April 2025).
MAX_TOKENS = 10_000_000
#: Demand of one workload, requests/s. 1e6/s is the order of all of Google Search (~1e5/s) times
#: ten; below 1e-3/s (fewer than 4 requests an hour) there is no serving load to size a fleet for,
#: and the load per instance falls under the solver's feasibility tolerance.
MIN_REQUESTS_PER_S = 1e-3
MAX_REQUESTS_PER_S = 1e6
#: Token rates: the request bounds times the longest requests.
MAX_TOKENS_PER_S = MAX_REQUESTS_PER_S * 2 * MAX_TOKENS
#: Throughput of one instance, tokens/s: today's fastest 8-GPU prefill is ~1e5 tokens/s.
MIN_INSTANCE_TOKENS_PER_S = 1e-3
MAX_INSTANCE_TOKENS_PER_S = 1e9
#: Times in milliseconds (targets, TPOT, overheads): 1 µs is below any network round trip or decode
#: step; 1e8 ms is 28 hours.
MIN_MS = 1e-3
MAX_MS = 1e8
#: Decode batch sizes (table keys, max_batch): today's engines run at most a few thousand.
MAX_BATCH = 1_000_000
#: Prices, USD per GPU-hour: the dearest on-demand GPU is ~$15/h; $1e-4/h is free for all purposes.
MIN_COST_PER_HOUR = 1e-4
MAX_COST_PER_HOUR = 1e6
#: GPUs: an inventory of 10M GPUs is 100x the largest cluster built (~1e5 GPUs).
MAX_GPU_COUNT = 10_000_000
#: Whole-fleet budget: every GPU of the largest inventory at the highest price.
MAX_BUDGET_PER_HOUR = MAX_COST_PER_HOUR * MAX_GPU_COUNT
#: GPUs in one instance (one engine): a rack is 72 today (GB200 NVL72).
MAX_GPUS_PER_INSTANCE = 100_000
#: Instances of one type (min_count, max_count).
MAX_INSTANCE_COUNT = 1_000_000
#: HBM per GPU, GiB: 288 GiB today (B300); 1 MiB to 100 TiB.
MIN_MEMORY_GIB = 1e-3
MAX_MEMORY_GIB = 1e5
#: Weights of a model, GiB: the largest released models are ~2 TB.
MAX_WEIGHT_GIB = 1e6
#: KV-cache bytes per token: at least one byte; Llama 3.1 405B in bf16 needs 516,096 bytes.
MIN_KV_BYTES_PER_TOKEN = 1.0
MAX_KV_BYTES_PER_TOKEN = 1e9
#: KV-cache tokens of one instance: 1e5 GiB of HBM at one byte per token is ~1e14; 1e12 tokens is
#: 1e5 times the largest caches engines report today (~1e7 tokens).
MAX_KV_CACHE_TOKENS = 1_000_000_000_000
#: Model shape (layers, KV heads, head dimension).
MAX_LAYERS = 10_000
MAX_KV_HEADS = 10_000
MAX_HEAD_DIM = 100_000
#: Squared coefficient of variation of a service time, and coefficients of variation of lengths:
#: an SCV of 1e4 (CV 100) is heavier-tailed than any measured length distribution (ShareGPT's
#: prompt CV is ~1.5; the Azure traces' below 3).
MAX_SCV = 1e4
MAX_CV = 100.0
#: Demand multiplier: 100x is a plan for a different workload.
MAX_HEADROOM = 100.0
#: Link bandwidth, Gbit/s: NVLink 5 is 14,400 Gbit/s per GPU; 1 Mbit/s is a modem.
MIN_GBIT_PER_S = 1e-3
MAX_GBIT_PER_S = 1e6
#: Solver time limit: a week.
MAX_TIME_LIMIT_S = 7 * 24 * 3600.0
#: Tokens a decode step emits per sequence (1 + accepted draft tokens): drafts are < 10 today.
MAX_TOKENS_PER_STEP = 64.0
#: Fixed time per layer per decode step, microseconds (the estimator's factor).
MAX_LAYER_OVERHEAD_US = 1e6

#: Rows of a demand-curve file (a minute per row for two years).
MAX_CURVE_ROWS = 1_000_000

RANGES_DOC = "docs/scenario-format.md#ranges"


def format_number(value: float) -> str:
    """A bound as a reader writes it: 1e6, 0.001, 1e-9, 10000000."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = f"{value:g}"
    mantissa, e, exponent = text.partition("e")
    return mantissa + (f"e{int(exponent)}" if e else "")


def at_least(minimum: float, reason: str) -> Any:
    """A validator refusing a value below `minimum` with the reason (used with `gt=0`, so that
    zero and negatives keep the plain `must be > 0`)."""

    def check(value: float) -> float:
        if value < minimum:
            raise ValueError(f"must be >= {format_number(minimum)} ({reason})")
        return value

    return AfterValidator(check)
