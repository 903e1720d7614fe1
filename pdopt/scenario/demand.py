"""A workload's demand in each period of the horizon (docs/method.md, Eqs. H1, H13).

`period_rates(scenario)` gives every workload's requests/s per period (headroom not applied):
the workload's rate times a multiplier, the rates listed, a CSV curve binned into the periods
(consecutive rows averaged, the same number per period), or a request trace's arrivals counted in
each period and divided by its length. Without `demand`, the rate holds in every period. A curve
or trace file that cannot be read or does not fit the periods is a ScenarioError naming the
field.

`TracePlacement` lays a trace's time line on the horizon (fit `exact`, `repeat` or
`scale_to_horizon`); the binning and `pdopt simulate --trace` of a day plan share it.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pdopt.inputfiles import InputFileError, open_regular
from pdopt.scenario.horizon import MAX_MULTIPLIER, DemandCurveFile, DemandTrace
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.ranges import MAX_REQUESTS_PER_S
from pdopt.scenario.schema import Scenario, Workload

if TYPE_CHECKING:
    from pdopt.simulate.traces import Requests

#: A curve file holds at most this many rows (a year of one-minute windows is 525,600).
MAX_CURVE_ROWS = 1_000_000
#: Bytes of a demand curve file: a row is well under 256 bytes, with room for rows `where` skips.
MAX_CURVE_BYTES = 256 * 1024 * 1024


def period_rates(scenario: Scenario) -> dict[str, list[float]]:
    """Workload name -> requests/s in each period of the horizon (Eqs. H1, H13)."""
    hours = scenario.horizon_hours
    cyclic = scenario.periods is None or scenario.periods.cyclic
    return {w.name: workload_rates(w, hours, f"workloads[{j}].demand", cyclic=cyclic)
            for j, w in enumerate(scenario.workloads)}


def workload_rates(workload: Workload, hours: list[float] | int, location: str, *,
                   cyclic: bool = True) -> list[float]:
    """One workload's requests/s in each period (`hours`: the periods' lengths; a count of
    periods is enough for every form but a trace)."""
    count = hours if isinstance(hours, int) else len(hours)
    rate = workload.rate_requests_per_s
    demand = workload.demand
    if demand is None:
        return [rate] * count
    if demand.requests_per_s is not None:
        return _checked(list(demand.requests_per_s), count, f"{location}.requests_per_s")
    if demand.multipliers is not None:
        return _checked([rate * m for m in demand.multipliers], count, f"{location}.multipliers")
    if demand.trace is not None:
        if isinstance(hours, int):
            raise TypeError("a trace's rates need the periods' lengths")
        rates = trace_rates(demand.trace, hours, f"{location}.trace", cyclic=cyclic)
        if demand.trace.values == "shape":
            mean = sum(rates) / len(rates)
            if mean <= 0:
                raise ScenarioError([Problem(f"{location}.trace", "no arrival in any period")])
            rates = [rate * v / mean for v in rates]
        return _rates_in_range(rates, f"{location}.trace")
    assert demand.curve is not None
    values = binned(read_curve(demand.curve, f"{location}.curve"), count,
                    f"{location}.curve")
    if demand.curve.values == "requests_per_s":
        return _rates_in_range(values, f"{location}.curve")
    if demand.curve.values == "shape":
        mean = sum(values) / len(values)
        if mean <= 0:
            raise ScenarioError([Problem(f"{location}.curve", "the curve's mean is 0")])
        values = [v / mean for v in values]
    if max(values) > MAX_MULTIPLIER:
        raise ScenarioError([Problem(f"{location}.curve", f"a multiplier of {max(values):g} "
                                     f"(at most {MAX_MULTIPLIER:g})")])
    return _rates_in_range([rate * v for v in values], f"{location}.curve")


def _checked(values: list[float], count: int, location: str) -> list[float]:
    if len(values) != count:
        raise ScenarioError([Problem(location, f"{len(values)} values for {count} periods")])
    return _rates_in_range(values, location)


def _rates_in_range(values: list[float], location: str) -> list[float]:
    if any(not 0 <= v <= MAX_REQUESTS_PER_S for v in values):
        raise ScenarioError([Problem(location, f"rates must be within 0..{MAX_REQUESTS_PER_S:g} "
                                     "requests/s")])
    if not any(v > 0 for v in values):
        raise ScenarioError([Problem(location, "no demand in any period")])
    return values


def binned(values: list[float], count: int, location: str) -> list[float]:
    """`values` averaged in `count` runs of consecutive rows (as many rows in each)."""
    if len(values) % count:
        raise ScenarioError([Problem(location, f"{len(values)} rows do not split into {count} "
                                     "periods of equal rows (set `rows` to a multiple)")])
    step = len(values) // count
    return [sum(values[k * step:(k + 1) * step]) / step for k in range(count)]


def read_curve(curve: DemandCurveFile, location: str) -> list[float]:
    """The curve's column, rows filtered by `where`, then `first_row` and `rows` applied."""
    path = Path(curve.file)
    values: list[float] = []
    try:  # a regular file (a FIFO is refused without blocking) of at most MAX_CURVE_BYTES
        fh, size = open_regular(path)
    except InputFileError as e:
        raise ScenarioError([Problem(f"{location}.file", f"cannot read {path}: {e}")]) from None
    if size > MAX_CURVE_BYTES:
        fh.close()
        raise ScenarioError([Problem(f"{location}.file", f"{path}: file is {size} bytes; demand "
                                     f"curves are limited to {MAX_CURVE_BYTES} bytes")])
    try:
        with io.TextIOWrapper(fh, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            missing = [c for c in [curve.column, *(curve.where or {})] if c not in columns]
            if missing:
                raise ScenarioError([Problem(f"{location}.column", f"{path}: no column "
                                             f"{', '.join(repr(c) for c in missing)} (has "
                                             f"{', '.join(columns) or 'none'})")])
            for line, row in enumerate(reader, start=2):
                if curve.where and any(row.get(k) != v for k, v in curve.where.items()):
                    continue
                if len(values) >= MAX_CURVE_ROWS:
                    raise ScenarioError([Problem(location, f"{path}: more than "
                                                 f"{MAX_CURVE_ROWS} rows")])
                try:
                    value = float(row[curve.column])
                except (TypeError, ValueError):
                    raise ScenarioError([Problem(location, f"{path} line {line}: "
                                                 f"{curve.column} is not a number "
                                                 f"({row[curve.column]!r})")]) from None
                if not math.isfinite(value) or value < 0:
                    raise ScenarioError([Problem(location, f"{path} line {line}: "
                                                 f"{curve.column} must be >= 0 ({value:g})")])
                values.append(value)
    except OSError as e:
        raise ScenarioError([Problem(f"{location}.file", f"cannot read {path}: "
                                     f"{e.strerror or e}")]) from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ScenarioError([Problem(f"{location}.file", f"{path}: not a CSV file ({e})")]) \
            from None
    end = len(values) if curve.rows is None else curve.first_row + curve.rows
    if end > len(values) or curve.first_row >= len(values):
        raise ScenarioError([Problem(location, f"rows {curve.first_row}..{end - 1} asked, "
                                     f"{len(values)} rows match")])
    return values[curve.first_row:end]


# --- a request trace binned into the periods (docs/method.md, Eq. H13) ---------------------------

#: Arrivals one placement hands out at once (a simulated period's; `pdopt simulate`'s limit).
MAX_PLACED_ARRIVALS = 5_000_000


@dataclass(frozen=True)
class TracePlacement:
    """A trace's arrival times (s from its first arrival, sorted) laid on a horizon of
    `horizon_s` seconds (Eq. H13).

    Trace time u = (arrival - first arrival) - start_s; only arrivals with 0 <= u < duration_s
    are used. `exact`: horizon time u; `repeat`: u + j duration_s for j = 0, 1, ...;
    `scale_to_horizon`: u horizon_s / duration_s. Horizon times outside [0, horizon_s) (a
    simulation's warm-up before the first period, its cool-down after the last) wrap around the
    horizon when it is `cyclic` and have no arrivals otherwise."""

    arrival_s: np.ndarray  # trace times u of the arrivals used, sorted, in [0, duration_s)
    duration_s: float
    horizon_s: float
    fit: str
    cyclic: bool
    index: np.ndarray  # position of each used arrival in the trace's (sorted) requests

    @classmethod
    def of(cls, spec: DemandTrace, arrival_s: np.ndarray, horizon_s: float, *, cyclic: bool,
           location: str) -> TracePlacement:
        """Validated placement: the trace must reach its start and, with fit `exact`, last the
        horizon."""
        times = np.asarray(arrival_s, dtype=np.float64) - spec.start_s
        last = float(times[-1]) if times.size else -1.0
        if last < 0:
            raise ScenarioError([Problem(f"{location}.start_s", f"{spec.file}: the trace ends "
                                         f"{last + spec.start_s:g} s after its first arrival, "
                                         f"before start_s ({spec.start_s:g} s)")])
        duration = spec.duration_s if spec.duration_s is not None else last
        if duration <= 0:
            raise ScenarioError([Problem(f"{location}.file", f"{spec.file}: every arrival is at "
                                         "the same time: the trace lasts 0 s (set duration_s)")])
        if spec.fit == "exact" and duration < horizon_s:
            raise ScenarioError([Problem(f"{location}.fit", f"{spec.file}: the trace lasts "
                                         f"{duration:g} s from start_s, the horizon "
                                         f"{horizon_s:g} s (use fit: repeat or scale_to_horizon, "
                                         "or a longer duration_s)")])
        keep = np.flatnonzero((times >= 0) & (times < duration))
        return cls(times[keep], float(duration), float(horizon_s), spec.fit, cyclic, keep)

    def _pieces(self, start: float, end: float) -> list[tuple[float, float, float]]:
        """[start, end) cut at multiples of the horizon: (from, to, offset) with from/to inside
        [0, horizon_s) and horizon time = piece time + offset. Pieces shorter than a billionth
        of the horizon are rounding (a period's end summed another way), not time."""
        out = []
        h = self.horizon_s
        m = math.floor(start / h)
        while m * h < end:
            lo, hi = max(start, m * h), min(end, (m + 1) * h)
            if hi - lo > 1e-9 * h and (m == 0 or self.cyclic):
                out.append((lo - m * h, hi - m * h, m * h))
            m += 1
        return out

    def _spans(self, lo: float, hi: float) -> list[tuple[float, float, float]]:
        """The trace-time intervals [a, b) a piece [lo, hi) of the horizon covers, each with the
        shift of its copy (repeat)."""
        d, h = self.duration_s, self.horizon_s
        if self.fit == "scale_to_horizon":
            return [(lo * d / h, hi * d / h, 0.0)]
        if self.fit == "repeat":
            return [(max(lo - j * d, 0.0), min(hi - j * d, d), j * d)
                    for j in range(math.floor(lo / d), math.ceil(hi / d))]
        return [(lo, hi, 0.0)]

    def _before(self, x: float) -> int:
        """Arrivals at horizon times in [0, x), 0 <= x <= horizon_s (whole copies counted at
        once: a short trace repeated over a long horizon costs no more than a long one)."""
        u, d = self.arrival_s, self.duration_s
        if self.fit == "scale_to_horizon":
            x = x * d / self.horizon_s
        elif self.fit == "repeat":
            copies = math.floor(x / d)
            return copies * u.size + int(np.searchsorted(u, x - copies * d, side="left"))
        return int(np.searchsorted(u, x, side="left"))

    def count(self, start_s: float, end_s: float) -> int:
        """The number of arrivals at horizon times in [start_s, end_s) (as `arrivals` gives)."""
        return sum(self._before(hi) - self._before(lo)
                   for lo, hi, _ in self._pieces(start_s, end_s))

    def arrivals(self, start_s: float, end_s: float) -> tuple[np.ndarray, np.ndarray]:
        """The arrivals at horizon times in [start_s, end_s): (their horizon times, sorted;
        their positions in the trace's requests). At most MAX_PLACED_ARRIVALS of them."""
        total = self.count(start_s, end_s)
        if total > MAX_PLACED_ARRIVALS:
            raise ScenarioError([Problem("trace", f"{total} arrivals between horizon seconds "
                                         f"{start_s:g} and {end_s:g}, more than "
                                         f"{MAX_PLACED_ARRIVALS} (a shorter window)")])
        times: list[np.ndarray] = []
        picks: list[np.ndarray] = []
        u, d, h = self.arrival_s, self.duration_s, self.horizon_s
        for lo, hi, offset in self._pieces(start_s, end_s):
            for a, b, shift in self._spans(lo, hi):
                i, k = np.searchsorted(u, [a, b], side="left")
                part = u[i:k]
                placed = part * (h / d) if self.fit == "scale_to_horizon" else part + shift
                times.append(placed + offset)
                picks.append(self.index[i:k])
        if not times:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate(times), np.concatenate(picks).astype(np.int64)

    def counts(self, hours: list[float]) -> list[int]:
        """Arrivals in each period of `hours` (hour lengths, consecutive from horizon time 0)."""
        bounds = period_starts_s(hours)
        return [self.count(float(a), float(b))
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def period_starts_s(hours: list[float]) -> np.ndarray:
    """Horizon seconds at which each period starts, and the horizon's end last (one sum, so a
    period's end is the next one's start and the last one's is the horizon's, to the bit)."""
    return np.concatenate([[0.0], np.cumsum(np.asarray(hours, dtype=np.float64) * 3600.0)])


#: Traces kept in memory between reads (binning, the comparison plans, the report and simulate
#: read the same trace): at most this many, the least recently used dropped.
_TRACE_CACHE_SIZE = 2
_trace_cache: OrderedDict[tuple[str, str, int, int], Requests] = OrderedDict()


def read_demand_trace(spec: DemandTrace, location: str) -> Requests:
    """The trace's requests (sorted, times from the first arrival), read with the bounds of
    `pdopt simulate --trace` (docs/simulation.md, "Limits"); a problem is a one-line
    ScenarioError naming the field and the file's line."""
    from pdopt.simulate.traces import TraceError, read_trace

    try:
        info = os.stat(spec.file)
        key = (spec.file, spec.format, info.st_mtime_ns, info.st_size)
    except OSError:
        key = None
    if key is not None and key in _trace_cache:
        _trace_cache.move_to_end(key)
        return _trace_cache[key]
    try:
        requests = read_trace(spec.file, spec.format)
    except TraceError as e:
        text = str(e)
        raise ScenarioError([Problem(f"{location}.file", text if text.startswith(spec.file)
                                     else f"{spec.file}: {text}")]) from None
    if key is not None:
        _trace_cache[key] = requests
        while len(_trace_cache) > _TRACE_CACHE_SIZE:
            _trace_cache.popitem(last=False)
    return requests


def trace_placement(spec: DemandTrace, hours: list[float], location: str, *,
                    cyclic: bool = True) -> tuple[Requests, TracePlacement]:
    """The trace's requests and their placement on the horizon of `hours`."""
    requests = read_demand_trace(spec, location)
    placement = TracePlacement.of(spec, requests.arrival_s, float(period_starts_s(hours)[-1]),
                                  cyclic=cyclic, location=location)
    return requests, placement


def trace_rates(spec: DemandTrace, hours: list[float], location: str, *,
                cyclic: bool = True) -> list[float]:
    """Requests/s in each period: the trace's arrivals placed in it / its length (Eq. H13)."""
    _, placement = trace_placement(spec, hours, location, cyclic=cyclic)
    return [n / (h * 3600.0) for n, h in zip(placement.counts(hours), hours, strict=True)]
