"""Routing policies of the simulator: which flow (prefill pool -> decode pool) a request takes and
which instance of a pool serves it (docs/simulation.md, section "Routing").

- `round-robin`: flows by smooth weighted round-robin on their planned shares; instances in turn.
- `random`: flows drawn with probability equal to their share; instances uniformly at random.
- `least-loaded`: flows as round-robin; the instance with the least outstanding work (prefill:
  input tokens queued or in service; decode: KV tokens held plus waiting or in transit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

RoutingPolicy = Literal["round-robin", "random", "least-loaded"]
ROUTING_POLICIES: tuple[str, ...] = ("round-robin", "random", "least-loaded")


class FlowPicker:
    """Chooses a flow index for each request of one workload in proportion to the flows' shares."""

    def __init__(self, shares: Sequence[float], policy: RoutingPolicy, rng: np.random.Generator):
        total = float(sum(shares))
        if not shares or total <= 0:
            raise ValueError("a workload needs at least one flow with a positive share")
        self.weights = [s / total for s in shares]
        self.cumulative = np.cumsum(self.weights).tolist()
        self.current = [0.0] * len(shares)
        self.random = policy == "random"
        self.rng = rng

    def pick(self) -> int:
        if len(self.weights) == 1:
            return 0
        if self.random:
            u = float(self.rng.random())
            for k, c in enumerate(self.cumulative):
                if u < c:
                    return k
            return len(self.cumulative) - 1
        # Smooth weighted round-robin: every flow gains its weight, the largest is chosen and
        # pays back the total (1). Over n picks each flow gets its share within one request.
        best = 0
        for k, w in enumerate(self.weights):
            self.current[k] += w
            if self.current[k] > self.current[best]:
                best = k
        self.current[best] -= 1.0
        return best


class InstancePicker:
    """Chooses one instance (by global index) among the members of a pool."""

    def __init__(self, members: Sequence[int], policy: RoutingPolicy, rng: np.random.Generator):
        if not members:
            raise ValueError("a pool needs at least one instance")
        self.members = list(members)
        self.policy = policy
        self.rng = rng
        self.next = 0

    def pick(self, load: Sequence[float]) -> int:
        members = self.members
        if len(members) == 1:
            return members[0]
        if self.policy == "round-robin":
            k = self.next
            self.next = (k + 1) % len(members)
            return members[k]
        if self.policy == "random":
            return members[int(self.rng.integers(len(members)))]
        # least-loaded: the smallest load; ties go to the instance after the last one chosen so
        # that an idle pool is filled in turn rather than always from its first member.
        n = len(members)
        best = members[self.next % n]
        best_load = load[best]
        for k in range(1, n):
            m = members[(self.next + k) % n]
            if load[m] < best_load:
                best, best_load = m, load[m]
        self.next = (members.index(best) + 1) % n
        return best
