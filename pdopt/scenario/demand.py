"""A workload's demand in each period of the horizon (docs/method.md, Eq. H1).

`period_rates(scenario)` gives every workload's requests/s per period (headroom not applied):
the workload's rate times a multiplier, the rates listed, or a CSV curve binned into the periods
(consecutive rows averaged, the same number per period). Without `demand`, the rate holds in
every period. A curve file that cannot be read or does not fit the periods is a ScenarioError
naming the field.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from pdopt.inputfiles import InputFileError, open_regular
from pdopt.scenario.horizon import MAX_MULTIPLIER, DemandCurveFile
from pdopt.scenario.problems import Problem, ScenarioError
from pdopt.scenario.ranges import MAX_REQUESTS_PER_S
from pdopt.scenario.schema import Scenario, Workload

#: A curve file holds at most this many rows (a year of one-minute windows is 525,600).
MAX_CURVE_ROWS = 1_000_000
#: Bytes of a demand curve file: a row is well under 256 bytes, with room for rows `where` skips.
MAX_CURVE_BYTES = 256 * 1024 * 1024


def period_rates(scenario: Scenario) -> dict[str, list[float]]:
    """Workload name -> requests/s in each period of the horizon (Eq. H1)."""
    count = len(scenario.horizon_hours)
    return {w.name: workload_rates(w, count, f"workloads[{j}].demand")
            for j, w in enumerate(scenario.workloads)}


def workload_rates(workload: Workload, count: int, location: str) -> list[float]:
    """One workload's requests/s in each of `count` periods."""
    rate = workload.rate_requests_per_s
    demand = workload.demand
    if demand is None:
        return [rate] * count
    if demand.requests_per_s is not None:
        return _checked(list(demand.requests_per_s), count, f"{location}.requests_per_s")
    if demand.multipliers is not None:
        return _checked([rate * m for m in demand.multipliers], count, f"{location}.multipliers")
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
