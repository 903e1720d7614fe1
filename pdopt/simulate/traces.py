"""Request streams for the simulator: Poisson arrivals with lengths from the scenario, and readers
for the public trace formats (docs/simulation.md, section "Traces").

A stream is a `Requests` object: arrival times (s, from 0, sorted), input and output lengths
(tokens) and the index of the workload each request belongs to. No Pyomo here.
"""

from __future__ import annotations

import csv
import json
import math
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from pdopt.errors import PdoptError
from pdopt.inputfiles import InputFileError, open_regular
from pdopt.scenario.ranges import MAX_TOKENS
from pdopt.scenario.schema import EmpiricalLengths, LognormalLengths, Workload
from pdopt.simulate import limits

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


class _Rows:
    """Columns of a trace or length file, gathered row by row into typed arrays (8 bytes a value,
    not a Python object per number), refused past `limit` rows."""

    def __init__(self, path: Path, typecodes: str, limit: int, what: str):
        self.path, self.limit, self.what = path, limit, what
        self.columns: list[array[Any]] = [array(code) for code in typecodes]

    def __len__(self) -> int:
        return len(self.columns[0])

    def too_many(self) -> TraceError:
        return TraceError(f"{self.path}: more than {self.limit} rows; {self.what} are limited to "
                          f"{self.limit} rows (docs/simulation.md, \"Limits\"): cut the file into "
                          "parts")

    def add(self, *values: float) -> None:
        if len(self.columns[0]) >= self.limit:
            raise self.too_many()
        for column, value in zip(self.columns, values, strict=True):
            column.append(value)

    def array(self, k: int, dtype: type) -> np.ndarray:
        return np.frombuffer(self.columns[k], dtype=dtype) if len(self) else np.zeros(0, dtype)


def _from_columns(rows: _Rows, workload: int) -> Requests:
    """Arrival times (re-timed to start at 0) and lengths of `rows` (columns d, q, q)."""
    a = rows.array(0, np.float64)
    if a.size:
        a = a - a.min()
    order = np.argsort(a, kind="stable")
    # A zero-length prompt or output cannot be served; the simulator treats both as 1 token.
    i = np.maximum(rows.array(1, np.int64), 1)[order]
    o = np.maximum(rows.array(2, np.int64), 1)[order]
    return Requests(a[order], i, o, np.full(a.shape, workload, dtype=np.int64))


def _line_breaks(fh: BinaryIO) -> int:
    """The number of line breaks of a binary file, counted in 1 MiB chunks (~1 GB/s), then back
    to its start."""
    count = 0
    while chunk := fh.read(1 << 20):
        count += chunk.count(b"\n")
    fh.seek(0)
    return count


def _lines(path: Path, rows: _Rows | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text without the line break) of a UTF-8 text file, streamed: a regular file
    only (not a FIFO or a device), lines of at most MAX_LINE_BYTES. With `rows`, a file with more
    lines than its row limit (plus a header) is refused before any line is parsed."""
    try:
        fh, _size = open_regular(path)
    except InputFileError as e:
        raise TraceError(f"{path}: cannot read file: {e}") from None
    def too_long(number: int) -> TraceError:
        return TraceError(f"{path}: line {number}: longer than {limits.MAX_LINE_BYTES} bytes; "
                          "not a trace or length file")

    with fh:
        if rows is not None:
            # a file without line breaks (a sparse or binary file) is refused from its first
            # line, before the line count reads it all
            if len(fh.readline(limits.MAX_LINE_BYTES + 1)) > limits.MAX_LINE_BYTES:
                raise too_long(1)
            fh.seek(0)
            if _line_breaks(fh) > rows.limit + 1:
                raise rows.too_many()
        number = offset = 0
        while True:
            raw = fh.readline(limits.MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            if len(raw) > limits.MAX_LINE_BYTES:
                raise too_long(number)
            start = 3 if number == 1 and raw.startswith(b"\xef\xbb\xbf") else 0
            try:
                text = raw[start:].decode("utf-8")
            except UnicodeDecodeError as e:
                raise TraceError(f"{path}: not UTF-8 text (bad byte at offset "
                                 f"{offset + start + e.start})") from None
            offset += len(raw)
            yield number, text.rstrip("\r\n")


def _int_field(path: Path, line: int, field: str, value: object) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise TraceError(f"{path}: line {line}: {field}: not a number ({_show(value)})") from None
    if not math.isfinite(number) or number < 0 or number != int(number) \
            or number > MAX_TOKENS:
        raise TraceError(f"{path}: line {line}: {field}: expected a whole number from 0 to "
                         f"{MAX_TOKENS}, got {_show(value)}")
    return int(number)


def _float_field(path: Path, line: int, field: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise TraceError(f"{path}: line {line}: {field}: not a number ({_show(value)})") from None
    if not math.isfinite(number) or number < 0:
        raise TraceError(f"{path}: line {line}: {field}: expected a number >= 0, "
                         f"got {_show(value)}")
    return number


def _show(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 64:  # repr() of a huge int is refused
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _csv_rows(path: Path, rows: _Rows, *choices: Sequence[str]
              ) -> tuple[Sequence[str], Iterator[tuple[int, list[str]]]]:
    """The columns read and an iterator of (line number, their values) over the rows of a CSV
    file, streamed (at most `rows.limit` of them). The columns are the first of `choices` whose
    names the header holds."""
    lines = _lines(path, rows)
    numbers: list[int] = [0]

    def texts() -> Iterator[str]:
        for number, text in lines:
            numbers[0] = number
            yield text

    reader = csv.reader(texts())
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as e:
        raise TraceError(f"{path}: line {numbers[0]}: not valid CSV ({e})") from None
    columns = next((c for c in choices if set(c) <= set(header)), choices[-1])
    missing = [c for c in columns if c not in header]
    if missing:
        raise TraceError(f"{path}: line 1: missing column(s) {', '.join(missing)} "
                         f"(expected {','.join(columns)})")
    index = [header.index(c) for c in columns]

    def values() -> Iterator[tuple[int, list[str]]]:
        count = 0
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) <= max(index):
                    gone = [c for c, k in zip(columns, index, strict=True) if k >= len(row)]
                    raise TraceError(f"{path}: line {numbers[0]}: {gone[0]}: missing")
                count += 1
                yield numbers[0], [row[k] for k in index]
        except csv.Error as e:
            raise TraceError(f"{path}: line {numbers[0]}: not valid CSV ({e})") from None
        if not count:
            raise TraceError(f"{path}: no requests in the file")

    return columns, values()


def read_azure_csv(path: str | Path, workload: int = 0) -> Requests:
    """Azure LLM inference trace: `TIMESTAMP,ContextTokens,GeneratedTokens`, wall-clock times."""
    path = Path(path)
    rows = _Rows(path, "dqq", limits.MAX_TRACE_ROWS, "traces")
    _, lines = _csv_rows(path, rows, ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))
    for line, (stamp, context, generated) in lines:
        try:
            t = datetime.fromisoformat(stamp.strip())
        except ValueError:
            raise TraceError(f"{path}: line {line}: TIMESTAMP: not a date-time "
                             f"({_show(stamp)})") from None
        rows.add(t.timestamp(), _int_field(path, line, "ContextTokens", context),
                 _int_field(path, line, "GeneratedTokens", generated))
    return _from_columns(rows, workload)


def read_mooncake_jsonl(path: str | Path, workload: int = 0) -> Requests:
    """Mooncake trace: JSON lines with `timestamp` (ms), `input_length`, `output_length`."""
    path = Path(path)
    rows = _Rows(path, "dqq", limits.MAX_TRACE_ROWS, "traces")
    for line, text in _lines(path, rows):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise TraceError(f"{path}: line {line}: not valid JSON ({e.msg})") from None
        except ValueError as e:  # an integer of more digits than Python converts
            raise TraceError(f"{path}: line {line}: not valid JSON ({e})") from None
        if not isinstance(record, dict):
            raise TraceError(f"{path}: line {line}: expected a JSON object")
        for field in ("timestamp", "input_length", "output_length"):
            if field not in record:
                raise TraceError(f"{path}: line {line}: {field}: missing")
        rows.add(_float_field(path, line, "timestamp", record["timestamp"]) / 1e3,
                 _int_field(path, line, "input_length", record["input_length"]),
                 _int_field(path, line, "output_length", record["output_length"]))
    if not len(rows):
        raise TraceError(f"{path}: no requests in the file")
    return _from_columns(rows, workload)


def read_simple_csv(path: str | Path, workload: int = 0) -> Requests:
    """pdopt's own trace format: CSV with header `arrival_s,input_tokens,output_tokens`."""
    path = Path(path)
    rows = _Rows(path, "dqq", limits.MAX_TRACE_ROWS, "traces")
    _, lines = _csv_rows(path, rows, CSV_COLUMNS)
    for line, (arrival, inputs, outputs) in lines:
        rows.add(_float_field(path, line, "arrival_s", arrival),
                 _int_field(path, line, "input_tokens", inputs),
                 _int_field(path, line, "output_tokens", outputs))
    return _from_columns(rows, workload)


def read_mooncake_blocks(path: str | Path) -> Iterator[tuple[int, int, list[int]]]:
    """(line, input_length, hash_ids) of every request of a Mooncake trace, in the file's order,
    streamed (at most MAX_TRACE_ROWS requests; a line of at most MAX_LINE_BYTES)."""
    path = Path(path)
    count = 0
    for line, text in _lines(path):
        if not text.strip():
            continue
        count += 1
        if count > limits.MAX_TRACE_ROWS:
            raise _Rows(path, "q", limits.MAX_TRACE_ROWS, "traces").too_many()
        try:
            record = json.loads(text)
        except ValueError as e:  # JSONDecodeError, or an integer of too many digits
            raise TraceError(f"{path}: line {line}: not valid JSON "
                             f"({getattr(e, 'msg', None) or e})") from None
        if not isinstance(record, dict):
            raise TraceError(f"{path}: line {line}: expected a JSON object")
        for field in ("input_length", "hash_ids"):
            if field not in record:
                raise TraceError(f"{path}: line {line}: {field}: missing")
        hashes = record["hash_ids"]
        if not isinstance(hashes, list) or not all(
                isinstance(h, int) and not isinstance(h, bool) for h in hashes):
            raise TraceError(f"{path}: line {line}: hash_ids: expected a list of integers, got "
                             f"{_show(hashes)}")
        yield line, _int_field(path, line, "input_length", record["input_length"]), hashes
    if not count:
        raise TraceError(f"{path}: no requests in the file")


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
    Sarathi-Serve names `num_prefill_tokens,num_decode_tokens`), streamed, at most
    MAX_LENGTH_ROWS rows."""
    path = Path(path)
    rows = _Rows(path, "qq", limits.MAX_LENGTH_ROWS, "length files")
    columns, lines = _csv_rows(path, rows, LENGTH_COLUMN_ALIASES, LENGTH_COLUMNS)
    for line, (inputs, outputs) in lines:
        rows.add(_int_field(path, line, columns[0], inputs),
                 _int_field(path, line, columns[1], outputs))
    return rows.array(0, np.int64).astype(np.float64), rows.array(1, np.int64).astype(np.float64)


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
