"""Lookup cost (issue 10, section 4): a TPOT table of 100,000 entries took ~14 minutes to solve
because every batch size re-sorted the table; it is sorted once per curve now. The speed figure is
in benchmarks/table_lookup.py; here, generous bounds only and the values themselves."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pdopt.capacity import instance_decode_curve
from pdopt.decode import MeasuredTable, decode_capacity, decode_curve, interpolate
from pdopt.scenario.loading import scenario_from_data

ENTRIES = 100_000


def big_table(scale: float = 1.0) -> dict[int, float]:
    return {b: scale * (10.0 + 0.001 * b) for b in range(1, ENTRIES + 1)}


def test_a_100k_entry_table_gives_capacities_quickly() -> None:
    tables = [MeasuredTable(1000.0, big_table()), MeasuredTable(3000.0, big_table(1.2))]
    started = time.perf_counter()
    curve = decode_curve(tables, 2000.0, "nearest")
    capacity = decode_capacity(curve, 50.0)
    assert time.perf_counter() - started < 60  # minutes before; about a second now
    # TPOT at context 2000 is the mean of the two tables: 1.1 x (10 + 0.001 b) <= 50 ms
    assert capacity.batch == 35454
    assert capacity.tpot_ms == pytest.approx(1.1 * (10.0 + 0.001 * 35454))


def test_sorting_once_gives_the_values_of_a_lookup_per_batch() -> None:
    """The curve equals the per-batch lookups of the measured points, below, inside and beyond
    the tables (a table with fewer batches, extrapolated linearly)."""
    a = {4: 10.0, 16: 13.0, 64: 20.0}
    b = {4: 12.0, 8: 13.0, 32: 18.0}
    curve = decode_curve([MeasuredTable(1000.0, a), MeasuredTable(2000.0, b)], 1500.0, "linear")

    def per_batch(t: dict[int, float], x: int) -> float:
        xs = sorted(t)
        if x <= xs[0]:
            return t[xs[0]]
        return interpolate(xs, [t[k] for k in xs], x, extrapolation="linear")

    for batch, tpot in zip(curve.batches, curve.tpot_ms, strict=True):
        assert tpot == pytest.approx((per_batch(a, int(batch)) + per_batch(b, int(batch))) / 2)


def test_a_scenario_with_a_100k_entry_table_validates_and_gives_a_curve(
        paper_data: dict[str, Any]) -> None:
    paper_data["instances"][1]["tpot_ms_by_batch"] = {b: round(10.0 + 0.0002 * b, 4)
                                                      for b in range(1, ENTRIES + 1)}
    paper_data["instances"][1].pop("measured_at")
    started = time.perf_counter()
    scenario = scenario_from_data(paper_data)
    curve = instance_decode_curve(scenario.instances[1], 6400.0)
    assert time.perf_counter() - started < 60
    assert len(curve.batches) == ENTRIES and curve.max_batch(20.0) == 50_000
