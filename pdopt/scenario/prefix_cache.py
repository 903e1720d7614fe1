"""The prefix-cache hit rate of a workload derived from a Mooncake trace's `hash_ids`
(docs/method.md, Eq. H14).

A Mooncake trace gives every request its prompt as a list of block hashes (`hash_ids`, one per
`block_tokens` tokens, the last block partly filled); a block's hash covers its whole prefix, so
equal hashes are equal prefixes. The cache model: one cache shared by all of the workload's
requests, holding blocks (infinite, or the `capacity_blocks` least recently used), requests in
the file's order. A request reads from the cache the longest run of its first blocks that are
all in the cache before it arrives (a prefix match stops at the first miss, as vLLM's and
SGLang's prefix caches do); then all its blocks are put in the cache as most recently used. The
derived rate is the share of input tokens read from the cache.

`cache_hits` is the model (no I/O); `derive_prefix_cache` reads a trace; `resolve_prefix_caches`
is the prepared-scenario step that puts the derived rate into `prefix_cache_hit_rate`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pdopt.scenario.horizon import MAX_CACHE_BLOCKS
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.schema import Scenario, Workload


@dataclass(frozen=True)
class CacheHits:
    """What a replay of the requests through the cache counted."""

    requests: int
    input_tokens: int
    cached_tokens: int

    @property
    def hit_rate(self) -> float:
        """Share of input tokens read from the cache (Eq. H14)."""
        return self.cached_tokens / self.input_tokens if self.input_tokens else 0.0


class TooManyBlocksError(ValueError):
    """An infinite cache would hold more distinct blocks than MAX_CACHE_BLOCKS."""


def cache_hits(requests: Iterable[tuple[int, Sequence[Hashable]]], block_tokens: int,
               capacity_blocks: int | None = None) -> CacheHits:
    """Replay (input_length, hash_ids) requests, in order, through the cache (Eq. H14).

    Block k of a request of L input tokens holds c_k = max(0, min(B, L - k B)) of them (tokens
    past its last block have no hash and are never cached). The request reads c_0 + ... +
    c_{m-1} tokens from the cache, m the number of its first blocks all in the cache; then each
    of its blocks is made most recently used, and the least recently used are evicted beyond
    `capacity_blocks` (None: never)."""
    cache: OrderedDict[Hashable, None] = OrderedDict()
    limit = capacity_blocks if capacity_blocks is not None else MAX_CACHE_BLOCKS
    count = total = cached = 0
    for length, hashes in requests:
        count += 1
        total += length
        hit = True
        for k, h in enumerate(hashes):
            if hit and h in cache:
                cached += max(0, min(block_tokens, length - k * block_tokens))
            else:
                hit = False
        for h in hashes:
            if h in cache:
                cache.move_to_end(h)
            else:
                cache[h] = None
                if len(cache) > limit:
                    if capacity_blocks is None:
                        raise TooManyBlocksError(
                            f"more than {MAX_CACHE_BLOCKS} distinct blocks: an infinite cache "
                            "of them is not kept in memory (set capacity_blocks)")
                    cache.popitem(last=False)
    return CacheHits(count, total, cached)


@dataclass(frozen=True)
class PrefixCacheEstimate:
    """A workload's derived prefix-cache hit rate and where it comes from."""

    workload: str
    trace: str
    block_tokens: int
    capacity_blocks: int | None
    hits: CacheHits

    @property
    def hit_rate(self) -> float:
        return self.hits.hit_rate

    def note(self) -> str:
        cache = "an infinite cache" if self.capacity_blocks is None else \
            f"an LRU cache of {self.capacity_blocks} blocks"
        return (f"workload '{self.workload}': prefix_cache_hit_rate {self.hit_rate:.4f} derived "
                f"from {self.trace} ({self.hits.cached_tokens} of {self.hits.input_tokens} input "
                f"tokens of {self.hits.requests} requests in cached {self.block_tokens}-token "
                f"blocks, {cache}; docs/method.md, Eq. H14)")

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "trace": self.trace, "hit_rate": self.hit_rate,
                "block_tokens": self.block_tokens, "capacity_blocks": self.capacity_blocks,
                "requests": self.hits.requests, "input_tokens": self.hits.input_tokens,
                "cached_tokens": self.hits.cached_tokens}


def _trace_of(workload: Workload) -> str:
    spec = workload.prefix_cache
    assert spec is not None
    if spec.trace is not None:
        return spec.trace
    assert workload.demand is not None and workload.demand.trace is not None  # the schema checks
    return workload.demand.trace.file


def derive_prefix_cache(workload: Workload, location: str) -> PrefixCacheEstimate:
    """The workload's hit rate from its `prefix_cache` trace; a problem with the trace is a
    one-line ScenarioError naming `location` (the workload's `prefix_cache` field)."""
    from pdopt.simulate.traces import TraceError, read_mooncake_blocks

    spec = workload.prefix_cache
    assert spec is not None
    path = _trace_of(workload)
    field = f"{location}.trace" if spec.trace is not None else location
    try:
        hits = cache_hits(((n, h) for _, n, h in read_mooncake_blocks(path)),
                          spec.block_tokens, spec.capacity_blocks)
    except TraceError as e:
        raise ScenarioError([Problem(field, str(e))]) from None
    except TooManyBlocksError as e:
        raise ScenarioError([Problem(location, f"{path}: {e}")]) from None
    if not hits.input_tokens or hits.hit_rate >= 1:
        raise ScenarioError([Problem(field, f"{path}: {hits.cached_tokens} of "
                                     f"{hits.input_tokens} input tokens cached: no prompt work "
                                     "left to size prefill for")])
    return PrefixCacheEstimate(workload.name, path, spec.block_tokens, spec.capacity_blocks,
                               hits)


def derive_prefix_caches(scenario: Scenario) -> list[PrefixCacheEstimate]:
    """Every workload's derived hit rate (workloads with `prefix_cache`)."""
    return [derive_prefix_cache(w, f"workloads[{j}].prefix_cache")
            for j, w in enumerate(scenario.workloads) if w.prefix_cache is not None]


def resolve_prefix_caches(scenario: Scenario) -> tuple[Scenario, list[PrefixCacheEstimate]]:
    """The scenario with each derived rate as the workload's `prefix_cache_hit_rate` (and its
    `prefix_cache` block removed, as `profile:` blocks are), and the estimates."""
    estimates = derive_prefix_caches(scenario)
    if not estimates:
        return scenario, []
    rates = {e.workload: e.hit_rate for e in estimates}
    workloads = [w.model_copy(update={"prefix_cache_hit_rate": rates[w.name],
                                      "prefix_cache": None}) if w.name in rates else w
                 for w in scenario.workloads]
    return scenario.model_copy(update={"workloads": workloads}), estimates
