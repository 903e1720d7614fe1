"""The discrete-event simulation of a P/D fleet (docs/simulation.md, section "The model").

Events: request arrival, end of a prefill batch, arrival of a request's KV cache at its decode
instance (after the TTFT overhead and any cross-type transfer), start of an idle instance (so
that requests reaching it at the same instant start together), end of a decode step. Each decode
instance runs continuous batching: between two steps finished requests leave and waiting requests
join (FCFS) while the batch cap and the KV cache allow; a step takes TPOT(batch, mean context) from
the instance's measured table. Per decode step the work is O(1) plus the requests that finish
in it: a request's finishing step is known when it joins, and the batch's mean context is kept
from running sums, so nothing is done per request per step.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from pdopt.simulate.fleet import Fleet
from pdopt.simulate.policies import FlowPicker, InstancePicker, RoutingPolicy
from pdopt.simulate.traces import Requests

# Event kinds, in the order ties at the same time are handled (arrivals come before all of them).
# Requests that reach an idle instance at the same instant start together: an idle instance starts
# by a _START event at that instant, handled after the arrivals and the KV arrivals.
_PREFILL_DONE, _PREFILL_START, _DECODE_READY, _DECODE_START, _DECODE_STEP, _SNAPSHOT = range(6)


@dataclass
class RawResult:
    """What one run produced, per request and per instance (metrics.py turns it into a report)."""

    first_token_s: np.ndarray  # NaN: no first token by the end of the run
    finish_s: np.ndarray  # NaN: not finished
    rejected: np.ndarray  # bool: larger than an empty decode instance's KV cache
    prefill_instance: np.ndarray
    decode_instance: np.ndarray  # -1: never routed to decode (output of 1 token or unfinished)
    # Per-instance accumulators over the measurement window (end snapshot - start snapshot).
    prefill_busy_s: np.ndarray
    prefill_queue_area: np.ndarray  # integral of queued requests (excluding in service) over time
    prefill_batches: np.ndarray
    prefill_batched_requests: np.ndarray  # requests started in those batches
    decode_busy_s: np.ndarray
    decode_batch_area: np.ndarray  # integral of running requests over time
    decode_waiting_area: np.ndarray  # integral of waiting requests, sampled at step boundaries
    decode_kv_area: np.ndarray  # integral of reserved KV tokens over time
    decode_steps: np.ndarray
    window_s: float
    total_decode_steps: int  # over the whole run, not only the window
    events: int
    end_s: float


def run(fleet: Fleet, requests: Requests, *, policy: RoutingPolicy, rng: np.random.Generator,
        window: tuple[float, float], stop_s: float, drain_s: float = 0.0,
        max_prefill_tokens_per_batch: int | None = None) -> RawResult:
    """Simulate `requests` on `fleet`.

    `window` (start, end) is the measurement window: its requests are the measured ones, and the
    per-instance accumulators cover it. The run goes on past `stop_s` (the last arrival) only while
    measured requests are unfinished, and at most `drain_s` more."""
    n = len(requests)
    arrival = requests.arrival_s.tolist()
    inp = requests.input_tokens.tolist()
    out = requests.output_tokens.tolist()
    wl = requests.workload.tolist()
    work_share = fleet.prefill_work_share or [1.0] * len(fleet.flows)  # Eq. H9

    pre_pools, dec_pools = fleet.prefill_pools, fleet.decode_pools
    n_pre, n_dec = fleet.prefill_instances, fleet.decode_instances
    flow_pickers = [FlowPicker([f.share for f in fl], policy, rng) for fl in fleet.flows]
    pre_pickers = [InstancePicker(pool.members, policy, rng) for pool in pre_pools]
    dec_pickers = [InstancePicker(pool.members, policy, rng) for pool in dec_pools]
    chunk = max_prefill_tokens_per_batch or 0

    # Per request.
    first_token = [math.nan] * n
    w0, w1 = window
    measured = [w0 <= a < w1 for a in arrival]
    measured_left = sum(measured)
    hard_stop = stop_s + drain_s
    finish = [math.nan] * n
    rejected = [False] * n
    service = [0.0] * n
    flow_of = [0] * n
    p_of = [-1] * n
    d_of = [-1] * n
    join_step = [0] * n
    need_kv = [0] * n

    # Prefill instances.
    p_pool = [0] * n_pre
    for k, pool in enumerate(pre_pools):
        for m in pool.members:
            p_pool[m] = k
    p_queue: list[deque[int]] = [deque() for _ in range(n_pre)]
    p_busy = [False] * n_pre
    p_since = [0.0] * n_pre
    p_batch: list[list[int]] = [[] for _ in range(n_pre)]
    p_load = [0.0] * n_pre  # input tokens queued or in service
    p_busy_s = [0.0] * n_pre
    p_qarea = [0.0] * n_pre
    p_qlast = [0.0] * n_pre
    p_batches = [0] * n_pre
    p_reqs = [0] * n_pre

    # Decode instances.
    d_pool = [0] * n_dec
    for k, dpool in enumerate(dec_pools):
        for m in dpool.members:
            d_pool[m] = k
    d_cap = [dec_pools[d_pool[m]].max_batch for m in range(n_dec)]
    d_kvcap = [dec_pools[d_pool[m]].kv_cache_tokens for m in range(n_dec)]
    d_ctx_free = [len(dec_pools[d_pool[m]].contexts) <= 1 for m in range(n_dec)]
    d_tpot0 = [dec_pools[d_pool[m]].tpot_s[0] for m in range(n_dec)]
    d_waiting: list[deque[int]] = [deque() for _ in range(n_dec)]
    d_run = [0] * n_dec
    d_kv = [0] * n_dec
    d_sum_in = [0] * n_dec
    d_sum_join = [0] * n_dec
    d_step = [0] * n_dec
    d_stepping = [False] * n_dec
    d_finish: list[dict[int, list[int]]] = [{} for _ in range(n_dec)]
    d_load = [0.0] * n_dec  # KV tokens held, waiting or in transit
    d_step_b = [0] * n_dec
    d_step_dt = [0.0] * n_dec
    d_busy_s = [0.0] * n_dec
    d_barea = [0.0] * n_dec
    d_warea = [0.0] * n_dec
    d_kvarea = [0.0] * n_dec
    d_steps = [0] * n_dec

    heap: list[tuple[float, int, int, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    seq = 0
    snapshots: list[list[list[float]]] = []
    for t_snap in window:
        push(heap, (t_snap, _SNAPSHOT, seq, 0))
        seq += 1

    def start_prefill(p: int, t: float) -> float:
        """Start the next batch on idle prefill instance p; returns its end time."""
        q = p_queue[p]
        p_qarea[p] += len(q) * (t - p_qlast[p])
        p_qlast[p] = t
        r = q.popleft()
        batch = [r]
        total = service[r]
        tokens = inp[r]
        while q and tokens + inp[q[0]] <= chunk:
            r = q.popleft()
            batch.append(r)
            total += service[r]
            tokens += inp[r]
        p_batch[p] = batch
        p_busy[p] = True
        p_since[p] = t
        p_batches[p] += 1
        p_reqs[p] += len(batch)
        return t + total

    def admit(d: int) -> None:
        """Move waiting requests into decode instance d's batch (FCFS, head of line blocks)."""
        w = d_waiting[d]
        cap, kvcap = d_cap[d], d_kvcap[d]
        step = d_step[d]
        while w and d_run[d] < cap:
            r = w[0]
            if kvcap is not None and d_kv[d] + need_kv[r] > kvcap:
                break
            w.popleft()
            d_run[d] += 1
            d_kv[d] += need_kv[r]
            d_sum_in[d] += inp[r]
            d_sum_join[d] += step
            join_step[r] = step
            end = step + out[r] - 1
            fin = d_finish[d].get(end)
            if fin is None:
                d_finish[d][end] = [r]
            else:
                fin.append(r)

    def step_time(d: int) -> float:
        b = d_run[d]
        if d_ctx_free[d]:
            return d_tpot0[d][b]
        ctx = (d_sum_in[d] + b * d_step[d] - d_sum_join[d]) / b
        return dec_pools[d_pool[d]].step_s(b, ctx)

    i = 0
    events = 0
    t = 0.0
    while True:
        next_arrival = arrival[i] if i < n else math.inf
        if heap and heap[0][0] < next_arrival:
            t, kind, _, x = pop(heap)
        elif i < n:
            t, kind, x = next_arrival, -1, i
            i += 1
        else:
            break
        if t > stop_s and (measured_left == 0 or t > hard_stop):
            break
        events += 1

        if kind == _DECODE_STEP:
            d = x
            b0, dt = d_step_b[d], d_step_dt[d]
            d_busy_s[d] += dt
            d_barea[d] += b0 * dt
            d_kvarea[d] += d_kv[d] * dt
            d_warea[d] += len(d_waiting[d]) * dt
            d_steps[d] += 1
            step = d_step[d] + 1
            d_step[d] = step
            done = d_finish[d].pop(step, None)
            if done is not None:
                for r in done:
                    finish[r] = t
                    measured_left -= measured[r]
                    d_run[d] -= 1
                    d_kv[d] -= need_kv[r]
                    d_load[d] -= need_kv[r]
                    d_sum_in[d] -= inp[r]
                    d_sum_join[d] -= join_step[r]
            if d_waiting[d]:
                admit(d)
            if d_run[d]:
                dt = step_time(d)
                d_step_b[d], d_step_dt[d] = d_run[d], dt
                push(heap, (t + dt, _DECODE_STEP, seq, d))
                seq += 1
            else:
                d_stepping[d] = False

        elif kind == -1:  # arrival of request x
            r = x
            w = wl[r]
            f = flow_pickers[w].pick()
            flow_of[r] = f
            pk = fleet.flows[w][f].prefill_pool
            p = pre_pickers[pk].pick(p_load)
            p_of[r] = p
            service[r] = pre_pools[pk].service_s(inp[r]) * work_share[w]
            p_load[p] += inp[r]
            q = p_queue[p]
            p_qarea[p] += len(q) * (t - p_qlast[p])
            p_qlast[p] = t
            q.append(r)
            if not p_busy[p]:
                p_busy[p] = True  # starting: the _PREFILL_START event takes the batch
                p_since[p] = t
                push(heap, (t, _PREFILL_START, seq, p))
                seq += 1

        elif kind == _PREFILL_START:
            push(heap, (start_prefill(x, t), _PREFILL_DONE, seq, x))
            seq += 1

        elif kind == _PREFILL_DONE:
            p = x
            p_busy_s[p] += t - p_since[p]
            for r in p_batch[p]:
                p_load[p] -= inp[r]
                spec = fleet.flows[wl[r]][flow_of[r]]
                ready = t + (fleet.overhead_ms[wl[r]] + spec.kv_ms_per_input_token * inp[r]) / 1e3
                first_token[r] = ready
                if out[r] <= 1:
                    finish[r] = ready
                    measured_left -= measured[r]
                    continue
                d = dec_pickers[spec.decode_pool].pick(d_load)
                d_of[r] = d
                need_kv[r] = inp[r] + out[r]
                d_load[d] += need_kv[r]
                push(heap, (ready, _DECODE_READY, seq, r))
                seq += 1
            p_batch[p] = []
            p_busy[p] = False
            if p_queue[p]:
                push(heap, (start_prefill(p, t), _PREFILL_DONE, seq, p))
                seq += 1

        elif kind == _DECODE_READY:
            r = x
            d = d_of[r]
            kvcap = d_kvcap[d]
            if kvcap is not None and need_kv[r] > kvcap:
                rejected[r] = True
                measured_left -= measured[r]
                d_load[d] -= need_kv[r]
                continue
            d_waiting[d].append(r)
            if not d_stepping[d]:
                d_stepping[d] = True
                push(heap, (t, _DECODE_START, seq, d))
                seq += 1

        elif kind == _DECODE_START:  # an idle decode instance starts with what is waiting
            d = x
            admit(d)
            dt = step_time(d)
            d_step_b[d], d_step_dt[d] = d_run[d], dt
            push(heap, (t + dt, _DECODE_STEP, seq, d))
            seq += 1

        else:  # _SNAPSHOT: per-instance accumulators at a window edge
            snap_pre = [p_busy_s[p] + (t - p_since[p] if p_busy[p] else 0.0)
                        for p in range(n_pre)]
            snap_q = [p_qarea[p] + len(p_queue[p]) * (t - p_qlast[p]) for p in range(n_pre)]
            snapshots.append([snap_pre, snap_q, list(map(float, p_batches)),
                              list(map(float, p_reqs)), list(d_busy_s), list(d_barea),
                              list(d_warea), list(d_kvarea), list(map(float, d_steps))])

    end = t
    while len(snapshots) < 2:  # the run stopped before a window edge: close it at the end
        snapshots.append([
            [p_busy_s[p] + (end - p_since[p] if p_busy[p] else 0.0) for p in range(n_pre)],
            [p_qarea[p] + len(p_queue[p]) * (end - p_qlast[p]) for p in range(n_pre)],
            list(map(float, p_batches)), list(map(float, p_reqs)), list(d_busy_s),
            list(d_barea), list(d_warea), list(d_kvarea), list(map(float, d_steps)),
        ])
    diff = [np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64)
            for lo, hi in zip(snapshots[0], snapshots[1], strict=True)]
    return RawResult(
        first_token_s=np.asarray(first_token, dtype=np.float64),
        finish_s=np.asarray(finish, dtype=np.float64),
        rejected=np.asarray(rejected, dtype=bool),
        prefill_instance=np.asarray(p_of, dtype=np.int64),
        decode_instance=np.asarray(d_of, dtype=np.int64),
        prefill_busy_s=diff[0], prefill_queue_area=diff[1], prefill_batches=diff[2],
        prefill_batched_requests=diff[3], decode_busy_s=diff[4], decode_batch_area=diff[5],
        decode_waiting_area=diff[6], decode_kv_area=diff[7], decode_steps=diff[8],
        window_s=window[1] - window[0], total_decode_steps=sum(d_steps), events=events, end_s=end,
    )
