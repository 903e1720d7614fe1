"""Request streams for the simulator: Poisson arrivals with lengths from the scenario, and readers
for the public trace formats (docs/simulation.md, section "Traces").

A stream is a `Requests` object: arrival times (s, from 0, sorted), input and output lengths
(tokens) and the index of the workload each request belongs to. No Pyomo here.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from pdopt.errors import PdoptError
from pdopt.scenario.schema import EmpiricalLengths, LognormalLengths, Workload

TraceFormat = Literal["azure", "mooncake", "csv"]
TRACE_FORMATS: tuple[str, ...] = ("azure", "mooncake", "csv")
#: Columns of the simple CSV trace format (docs/simulation.md).
CSV_COLUMNS = ("arrival_s", "input_tokens", "output_tokens")
#: Columns of an empirical length-distribution file, and the names the Vidur / Sarathi-Serve
#: processed traces use for the same two columns.
LENGTH_COLUMNS = ("input_tokens", "output_tokens")
LENGTH_COLUMN_ALIASES = ("num_prefill_tokens", "num_decode_tokens")


class TraceError(PdoptError):
    """A trace or length file that cannot be read; the message names the file, line and field."""


@dataclass(frozen=True)
class Requests:
    """A request stream, sorted by arrival time."""

    arrival_s: np.ndarray  # float64, seconds from the start
    input_tokens: np.ndarray  # int64, >= 1
    output_tokens: np.ndarray  # int64, >= 1 (the first token comes from prefill)
    workload: np.ndarray  # int64, index into the scenario's workloads

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self) else 0.0

    def scaled(self, rate_scale: float) -> Requests:
        """The same requests arriving `rate_scale` times faster (times divided by the scale)."""
        if not rate_scale > 0:
            raise ValueError("rate_scale must be > 0")
        return Requests(self.arrival_s / rate_scale, self.input_tokens, self.output_tokens,
                        self.workload)

    def window(self, start_s: float, end_s: float) -> Requests:
        """Requests arriving in [start_s, end_s), re-timed to start at 0."""
        keep = (self.arrival_s >= start_s) & (self.arrival_s < end_s)
        return Requests(self.arrival_s[keep] - start_s, self.input_tokens[keep],
                        self.output_tokens[keep], self.workload[keep])


def merge(streams: Sequence[Requests]) -> Requests:
    """Merge several streams into one sorted by arrival (stable: ties keep the stream order)."""
    if not streams:
        empty_f, empty_i = np.zeros(0), np.zeros(0, dtype=np.int64)
        return Requests(empty_f, empty_i, empty_i, empty_i)
    arrival = np.concatenate([s.arrival_s for s in streams])
    order = np.argsort(arrival, kind="stable")
    return Requests(
        arrival[order],
        np.concatenate([s.input_tokens for s in streams])[order],
        np.concatenate([s.output_tokens for s in streams])[order],
        np.concatenate([s.workload for s in streams])[order],
    )


def _from_columns(arrival: list[float], inputs: list[int], outputs: list[int],
                  workload: int) -> Requests:
    a = np.asarray(arrival, dtype=np.float64)
    if a.size:
        a = a - a.min()
    order = np.argsort(a, kind="stable")
    # A zero-length prompt or output cannot be served; the simulator treats both as 1 token.
    i = np.maximum(np.asarray(inputs, dtype=np.int64), 1)[order]
    o = np.maximum(np.asarray(outputs, dtype=np.int64), 1)[order]
    return Requests(a[order], i, o, np.full(a.shape, workload, dtype=np.int64))


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as e:
        raise TraceError(f"{path}: cannot read file: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None


def _int_field(path: Path, line: int, field: str, value: object) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TraceError(f"{path}: line {line}: {field}: not a number ({value!r})") from None
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise TraceError(
            f"{path}: line {line}: {field}: expected a whole number >= 0, got {value!r}"
        )
    return int(number)


def _float_field(path: Path, line: int, field: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TraceError(f"{path}: line {line}: {field}: not a number ({value!r})") from None
    if not math.isfinite(number) or number < 0:
        raise TraceError(f"{path}: line {line}: {field}: expected a number >= 0, got {value!r}")
    return number


def _csv_rows(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    lines = _read_lines(path)
    reader = csv.DictReader(lines)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in columns if c not in header]
    if missing:
        raise TraceError(f"{path}: line 1: missing column(s) {', '.join(missing)} "
                         f"(expected {','.join(columns)})")
    reader.fieldnames = header
    rows = [(k + 2, row) for k, row in enumerate(reader)]
    if not rows:
        raise TraceError(f"{path}: no requests in the file")
    return rows


def read_azure_csv(path: str | Path, workload: int = 0) -> Requests:
    """Azure LLM inference trace: `TIMESTAMP,ContextTokens,GeneratedTokens`, wall-clock times."""
    path = Path(path)
    arrival, inputs, outputs = [], [], []
    for line, row in _csv_rows(path, ("TIMESTAMP", "ContextTokens", "GeneratedTokens")):
        try:
            t = datetime.fromisoformat(row["TIMESTAMP"].strip())
        except (ValueError, AttributeError):
            raise TraceError(f"{path}: line {line}: TIMESTAMP: not a date-time "
                             f"({row['TIMESTAMP']!r})") from None
        arrival.append(t.timestamp())
        inputs.append(_int_field(path, line, "ContextTokens", row["ContextTokens"]))
        outputs.append(_int_field(path, line, "GeneratedTokens", row["GeneratedTokens"]))
    return _from_columns(arrival, inputs, outputs, workload)


def read_mooncake_jsonl(path: str | Path, workload: int = 0) -> Requests:
    """Mooncake trace: JSON lines with `timestamp` (ms), `input_length`, `output_length`."""
    path = Path(path)
    arrival, inputs, outputs = [], [], []
    for k, text in enumerate(_read_lines(path)):
        if not text.strip():
            continue
        line = k + 1
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise TraceError(f"{path}: line {line}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise TraceError(f"{path}: line {line}: expected a JSON object")
        for field in ("timestamp", "input_length", "output_length"):
            if field not in record:
                raise TraceError(f"{path}: line {line}: {field}: missing")
        arrival.append(_float_field(path, line, "timestamp", record["timestamp"]) / 1e3)
        inputs.append(_int_field(path, line, "input_length", record["input_length"]))
        outputs.append(_int_field(path, line, "output_length", record["output_length"]))
    if not arrival:
        raise TraceError(f"{path}: no requests in the file")
    return _from_columns(arrival, inputs, outputs, workload)


def read_simple_csv(path: str | Path, workload: int = 0) -> Requests:
    """pdopt's own trace format: CSV with header `arrival_s,input_tokens,output_tokens`."""
    path = Path(path)
    arrival, inputs, outputs = [], [], []
    for line, row in _csv_rows(path, CSV_COLUMNS):
        arrival.append(_float_field(path, line, "arrival_s", row["arrival_s"]))
        inputs.append(_int_field(path, line, "input_tokens", row["input_tokens"]))
        outputs.append(_int_field(path, line, "output_tokens", row["output_tokens"]))
    return _from_columns(arrival, inputs, outputs, workload)


READERS = {"azure": read_azure_csv, "mooncake": read_mooncake_jsonl, "csv": read_simple_csv}


def read_trace(path: str | Path, fmt: TraceFormat, workload: int = 0) -> Requests:
    """Read a trace file in one of TRACE_FORMATS; every request is mapped to `workload`."""
    if fmt not in READERS:
        raise TraceError(f"unknown trace format '{fmt}' (one of {', '.join(TRACE_FORMATS)})")
    return READERS[fmt](path, workload)


def write_simple_csv(path: str | Path, requests: Requests) -> None:
    """Write a stream in pdopt's own CSV trace format (arrival_s,input_tokens,output_tokens)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for a, i, o in zip(requests.arrival_s, requests.input_tokens, requests.output_tokens,
                           strict=True):
            writer.writerow((f"{a:.6f}", int(i), int(o)))


def read_length_pairs(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """An empirical length file: CSV with columns `input_tokens,output_tokens` (or the Vidur /
    Sarathi-Serve names `num_prefill_tokens,num_decode_tokens`)."""
    path = Path(path)
    lines = _read_lines(path)
    header = [h.strip() for h in (lines[0].split(",") if lines else [])]
    columns = LENGTH_COLUMN_ALIASES if set(LENGTH_COLUMN_ALIASES) <= set(header) else LENGTH_COLUMNS
    inputs, outputs = [], []
    for line, row in _csv_rows(path, columns):
        inputs.append(_int_field(path, line, columns[0], row[columns[0]]))
        outputs.append(_int_field(path, line, columns[1], row[columns[1]]))
    return np.asarray(inputs, dtype=np.float64), np.asarray(outputs, dtype=np.float64)


def lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of a lognormal with this mean and coefficient of variation (Eq. S1):
    sigma^2 = ln(1 + cv^2), mu = ln(mean) - sigma^2 / 2."""
    sigma2 = math.log1p(cv * cv)
    return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)


def _round_tokens(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.rint(x), 1).astype(np.int64)


def sample_lengths(workload: Workload, n: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Input and output lengths of n requests of a workload, from its length_distribution
    (absent or fixed: the means)."""
    dist = workload.length_distribution
    li, lo = float(workload.input_tokens), float(workload.output_tokens)
    if isinstance(dist, LognormalLengths):
        out = []
        for mean, cv in ((li, dist.input_cv), (lo, dist.output_cv)):
            if cv == 0:
                out.append(np.full(n, mean))
            else:
                mu, sigma = lognormal_params(mean, cv)
                out.append(rng.lognormal(mu, sigma, n))
        return _round_tokens(out[0]), _round_tokens(out[1])
    if isinstance(dist, EmpiricalLengths):
        # absolute once prepared (pdopt.scenario.prepare); else from the working directory
        inputs, outputs = read_length_pairs(dist.file)
        pick = rng.integers(0, inputs.size, n)
        i, o = inputs[pick], outputs[pick]
        if dist.scale_to_means:
            i = i * (li / max(inputs.mean(), 1e-9))
            o = o * (lo / max(outputs.mean(), 1e-9))
        return _round_tokens(i), _round_tokens(o)
    return np.full(n, int(li), dtype=np.int64), np.full(n, int(lo), dtype=np.int64)


def poisson_requests(workload: Workload, workload_index: int, rate_per_s: float,
                     duration_s: float, rng: np.random.Generator) -> Requests:
    """Poisson arrivals at `rate_per_s` over [0, duration_s) with lengths from the workload."""
    if rate_per_s <= 0 or duration_s <= 0:
        return merge([])
    # Draw exponential gaps in blocks until the horizon is passed.
    expected = rate_per_s * duration_s
    times: list[np.ndarray] = []
    t = 0.0
    while t < duration_s:
        block = int(expected + 6 * math.sqrt(expected) + 16)
        gaps = rng.exponential(1.0 / rate_per_s, block)
        arr = t + np.cumsum(gaps)
        times.append(arr)
        t = float(arr[-1])
    arrival = np.concatenate(times)
    arrival = arrival[arrival < duration_s]
    inputs, outputs = sample_lengths(workload, arrival.size, rng)
    return Requests(arrival, inputs, outputs,
                    np.full(arrival.shape, workload_index, dtype=np.int64))
