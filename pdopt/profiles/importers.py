"""Reading benchmark result files into `Run`s: vLLM, SGLang and a generic CSV (docs/profiles.md).

Each reader checks that a file is what it claims to be, and turns every benchmark run in it into a
`Run` with the few facts the profile needs (lengths, load, measured input throughput, TPOT
statistics, request counts). Where each engine's field names come from (repository, file, commit)
is listed in docs/profiles.md, section "Where the formats come from".

No I/O beyond reading the files; no click.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pdopt.errors import PdoptError
from pdopt.inputfiles import FileTooLargeError, InputFileError, read_limited

Engine = Literal["vllm", "sglang", "csv"]
ENGINES: tuple[str, ...] = ("vllm", "sglang", "csv")
MAX_RESULT_BYTES = 256 * 1024 * 1024  # detailed vLLM results (--save-detailed) can be large

# A TPOT statistic as the engines name it in their result keys: mean, median, or pNN (p99, p99.9).
STATISTIC_RE = re.compile(r"^(mean|median|p\d+(?:\.\d+)?)$")


class ProfileImportError(PdoptError):
    """A benchmark file cannot be used; carries one `FILE: problem` line per thing wrong."""

    def __init__(self, lines: list[str]):
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


@dataclass(frozen=True)
class Run:
    """One benchmark run (one result object, one JSON line or one CSV row)."""

    where: str  # "FILE", "FILE, line N" or "FILE, row N": names the run in messages
    file: str
    engine: Engine
    model: str | None  # model id the benchmark recorded (None: not recorded)
    engine_version: str | None
    date: str | None  # as the file records it
    request_rate: float  # offered requests/s; math.inf: all requests at once
    max_concurrency: int | None  # client-side cap on requests in flight (None: no cap)
    input_tokens: float  # mean prompt length of the completed requests, tokens
    output_tokens: float  # mean output length of the completed requests, tokens
    input_tokens_per_s: float  # total input tokens / run duration
    tpot_ms: dict[str, float] = field(default_factory=dict)  # statistic name -> ms
    completed: int = 0
    failed: int | None = None  # None: the file does not say
    requests: int | None = None  # requests sent (num_prompts); None: the file does not say
    achieved_concurrency: float | None = None  # SGLang's measured mean concurrency
    backend: str | None = None

    @property
    def load_key(self) -> tuple[float, float]:
        """Orders runs by offered load: request rate first (inf last), then the concurrency cap
        (no cap last)."""
        cap = math.inf if self.max_concurrency is None else float(self.max_concurrency)
        return (self.request_rate, cap)

    def describe_load(self) -> str:
        rate = "inf" if math.isinf(self.request_rate) else f"{self.request_rate:g}"
        cap = "" if self.max_concurrency is None else f", concurrency {self.max_concurrency}"
        return f"rate {rate}{cap}"


# --------------------------------------------------------------------------- shared helpers


def _read_text(path: Path) -> str:
    try:  # a regular file within MAX_RESULT_BYTES: a FIFO cannot block, /dev/zero is refused
        raw = read_limited(path, MAX_RESULT_BYTES, "benchmark results")
    except FileTooLargeError as e:
        raise ProfileImportError([f"{path}: {e}"]) from None
    except InputFileError as e:
        raise ProfileImportError([f"{path}: cannot read file: {e}"]) from None
    if b"\x00" in raw:
        raise ProfileImportError([f"{path}: binary file (contains NUL bytes), not a benchmark "
                                  "result"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProfileImportError(
            [f"{path}: not UTF-8 text (bad byte at offset {e.start})"]
        ) from None
    if not text.strip():
        raise ProfileImportError([f"{path}: empty file"])
    return text


def _json_records(
    path: Path, text: str, engine: str
) -> Iterator[tuple[int | None, dict[str, Any]]]:
    """The result objects of a JSON file (one object) or a JSON-lines file (one per line).

    vLLM writes one object (`--save-result`) or one per line (`--append-result`); SGLang appends
    one line per run. Yields (line number or None, object)."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        yield None, whole
        return
    if isinstance(whole, list) and whole and all(isinstance(x, dict) and "benchmark" in x
                                                 for x in whole):
        raise ProfileImportError([f"{path}: this is the PyTorch-benchmark-format copy that vLLM "
                                  "writes beside a result (*.pytorch.json); pass the result file "
                                  "itself"])
    if whole is not None:
        raise ProfileImportError([f"{path}: expected {engine} benchmark results (JSON objects), "
                                  f"got a JSON {type(whole).__name__}"])
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ProfileImportError(
                [f"{path}, line {number}: not JSON ({e.msg}); expected {engine} benchmark results"]
            ) from None
        if not isinstance(obj, dict):
            raise ProfileImportError([f"{path}, line {number}: expected a JSON object, got "
                                      f"{type(obj).__name__}"])
        yield number, obj


def _where(path: Path, line: int | None, multi: bool) -> str:
    return f"{path}, line {line}" if multi and line is not None else str(path)


def _number(obj: dict[str, Any], key: str, where: str, *, required: bool = True,
            allow_inf: bool = False) -> float | None:
    """A numeric field; "inf"/Infinity only where allowed. Raises naming the field."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ProfileImportError([f"{where}: field '{key}' is missing"])
        return None
    if isinstance(value, str) and allow_inf and value.strip().lower() in ("inf", "infinity"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileImportError([f"{where}: field '{key}' must be a number, got {value!r}"])
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ProfileImportError([f"{where}: field '{key}' must be a finite number, got {value}"])
    if value < 0:
        raise ProfileImportError([f"{where}: field '{key}' must be >= 0, got {value:g}"])
    return value


def _tpot_statistics(obj: dict[str, Any]) -> dict[str, float]:
    """Every TPOT statistic the result carries: {'mean': .., 'median': .., 'p99': ..}."""
    out: dict[str, float] = {}
    for key, value in obj.items():
        m = re.fullmatch(r"(mean|median|p\d+(?:\.\d+)?)_tpot_ms", key)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if m and number and math.isfinite(value) and value > 0:
            out[m.group(1)] = float(value)
    return out


def _failed_from_errors(obj: dict[str, Any]) -> int | None:
    errors = obj.get("errors")
    if isinstance(errors, list):
        return sum(1 for e in errors if e)
    return None


def _duration_and_lengths(obj: dict[str, Any], completed: int, where: str
                          ) -> tuple[float, float, float]:
    """A run's duration and mean input/output lengths; no completed request is an error."""
    if completed == 0:
        raise ProfileImportError([f"{where}: no request completed (completed: 0)"])
    duration = _number(obj, "duration", where)
    assert duration is not None
    if duration <= 0:
        raise ProfileImportError([f"{where}: field 'duration' must be > 0"])
    mean_in, mean_out = _lengths(obj, completed, where)
    return duration, mean_in, mean_out


def _lengths(obj: dict[str, Any], completed: int, where: str) -> tuple[float, float]:
    total_in = _number(obj, "total_input_tokens", where)
    total_out = _number(obj, "total_output_tokens", where)
    assert total_in is not None and total_out is not None
    return total_in / completed, total_out / completed


def _looks_like(obj: dict[str, Any]) -> str | None:
    """Which engine's result an object looks like, from fields only one of them writes."""
    if "model_id" in obj and "date" in obj:
        return "vllm"
    if "dataset_name" in obj and ("random_input_len" in obj or "server_info" in obj):
        return "sglang"
    return None


# --------------------------------------------------------------------------- vLLM

# Fields every vLLM serving-benchmark result has had since `--save-result` exists.
VLLM_REQUIRED = ("date", "model_id", "num_prompts", "request_rate", "duration", "completed",
                 "total_input_tokens", "total_output_tokens")


def _vllm_run(obj: dict[str, Any], path: Path, where: str) -> Run:
    seems = _looks_like(obj)
    missing = [k for k in VLLM_REQUIRED if k not in obj]
    if missing:
        hint = " (it looks like SGLang bench_serving output: use 'sglang')" if seems == "sglang" \
            else ""
        raise ProfileImportError([f"{where}: not a vLLM serving benchmark result: missing "
                                  f"{', '.join(missing)}{hint}"])
    if obj.get("ramp_up_strategy") is not None:
        raise ProfileImportError([f"{where}: a ramp-up run (ramp_up_strategy: "
                                  f"{obj['ramp_up_strategy']}) has no fixed load; profile runs "
                                  "need one request rate or concurrency each"])
    completed = int(_number(obj, "completed", where) or 0)
    num_prompts = _number(obj, "num_prompts", where, required=False)
    failed: int | None = None
    if isinstance(obj.get("failed"), int):  # vllm bench serve (2025+) writes the count
        failed = obj["failed"]
    elif num_prompts is not None:
        failed = max(0, int(num_prompts) - completed)
    from_errors = _failed_from_errors(obj)
    if from_errors is not None:
        failed = max(failed or 0, from_errors)
    duration, mean_in, mean_out = _duration_and_lengths(obj, completed, where)
    rate = _number(obj, "request_rate", where, allow_inf=True)
    assert rate is not None
    cap = obj.get("max_concurrency")
    version = next((str(obj[k]) for k in ("vllm_version", "engine_version", "version")
                    if obj.get(k) not in (None, "", "N/A")), None)
    return Run(
        where=where, file=str(path), engine="vllm", model=str(obj["model_id"]),
        engine_version=version, date=str(obj["date"]), request_rate=rate,
        max_concurrency=_cap(cap, where),
        input_tokens=mean_in, output_tokens=mean_out,
        input_tokens_per_s=(mean_in * completed) / duration,
        tpot_ms=_tpot_statistics(obj),
        completed=completed, failed=failed, backend=_str_or_none(obj.get("backend")),
        requests=None if num_prompts is None else int(num_prompts),
    )


def _cap(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ProfileImportError([f"{where}: field 'max_concurrency' must be a positive integer "
                                  f"or null, got {value!r}"])
    return value


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def read_vllm(path: str | Path) -> list[Run]:
    """Runs of a vLLM serving-benchmark result file (`vllm bench serve --save-result` or
    `benchmarks/benchmark_serving.py --save-result`; one object, or JSON lines from
    `--append-result`)."""
    path = Path(path)
    text = _read_text(path)
    if not text.lstrip().startswith(("{", "[")):
        raise ProfileImportError([f"{path}: not a vLLM benchmark result (expected a JSON object; "
                                  "is this a CSV? use 'csv')"])
    records = list(_json_records(path, text, "vLLM"))
    multi = len(records) > 1
    return [_vllm_run(obj, path, _where(path, line, multi)) for line, obj in records]


# --------------------------------------------------------------------------- SGLang

SGLANG_REQUIRED = ("backend", "dataset_name", "request_rate", "duration", "completed",
                   "total_input_tokens", "total_output_tokens")


def _server_info(obj: dict[str, Any]) -> dict[str, Any]:
    """SGLang's /get_server_info as bench_serving stores it (newer versions): server args plus
    `version`; in P/D mode it may hold per-role lists."""
    info = obj.get("server_info")
    if not isinstance(info, dict):
        return {}
    for role in ("decode", "prefill"):
        if isinstance(info.get(role), list) and info[role] and isinstance(info[role][0], dict):
            return info[role][0]
    return info


def _sglang_run(obj: dict[str, Any], path: Path, where: str) -> Run:
    missing = [k for k in SGLANG_REQUIRED if k not in obj]
    if missing:
        hint = " (it looks like a vLLM result: use 'vllm')" if _looks_like(obj) == "vllm" else ""
        raise ProfileImportError([f"{where}: not an SGLang bench_serving result: missing "
                                  f"{', '.join(missing)}{hint}"])
    if _looks_like(obj) == "vllm":
        raise ProfileImportError([f"{where}: this is a vLLM benchmark result (it has model_id "
                                  "and date): use 'vllm'"])
    completed = int(_number(obj, "completed", where) or 0)
    duration, mean_in, mean_out = _duration_and_lengths(obj, completed, where)
    if obj.get("request_rate") == "trace":
        raise ProfileImportError([f"{where}: a trace-timed run (request_rate: trace) has no "
                                  "fixed load; profile runs need a rate or a concurrency"])
    rate = _number(obj, "request_rate", where, allow_inf=True)
    assert rate is not None
    info = _server_info(obj)
    failed = _failed_from_errors(obj)  # only with --output-details
    input_lens = obj.get("input_lens")
    requests = None
    if isinstance(input_lens, list) and input_lens:
        requests = len(input_lens)  # one entry per request sent (--output-details)
        failed = max(failed or 0, requests - completed)
    achieved = _number(obj, "concurrency", where, required=False)
    return Run(
        where=where, file=str(path), engine="sglang",
        model=_str_or_none(info.get("model_path")),
        engine_version=_str_or_none(info.get("version")), date=None, request_rate=rate,
        max_concurrency=_cap(obj.get("max_concurrency"), where),
        input_tokens=mean_in, output_tokens=mean_out,
        input_tokens_per_s=(mean_in * completed) / duration,
        tpot_ms=_tpot_statistics(obj),
        completed=completed, failed=failed, achieved_concurrency=achieved, requests=requests,
        backend=_str_or_none(obj.get("backend")),
    )


def read_sglang(path: str | Path) -> list[Run]:
    """Runs of an SGLang `bench_serving` result file (JSON lines, one run per line)."""
    path = Path(path)
    text = _read_text(path)
    if not text.lstrip().startswith("{"):
        raise ProfileImportError([f"{path}: not an SGLang bench_serving result (expected JSON "
                                  "lines; is this a CSV? use 'csv')"])
    records = list(_json_records(path, text, "SGLang"))
    multi = len(records) > 1
    return [_sglang_run(obj, path, _where(path, line, multi)) for line, obj in records]


# --------------------------------------------------------------------------- generic CSV

CSV_COLUMNS: dict[str, str] = {
    "role": "prefill or decode (rows of the other role are skipped)",
    "input_tokens": "mean prompt length of the run, tokens",
    "output_tokens": "mean output length of the run, tokens",
    "concurrency": "requests in flight (decode: the batch); empty for a rate-driven run",
    "request_rate": "offered requests/s; 'inf' or empty for all at once",
    "prefill_tokens_per_s": "prefill rows: measured input tokens/s over the run",
    "tpot_ms": "decode rows: mean time per output token, ms",
    "model": "optional: the model benchmarked",
    "num_prompts": "optional: requests sent",
    "completed": "optional: requests completed",
    "failed": "optional: requests failed",
    "date": "optional: when the run was made",
    "engine": "optional: serving engine",
    "engine_version": "optional: its version",
}
CSV_REQUIRED = ("role", "input_tokens", "output_tokens")


def _csv_float(
    row: dict[str, str], key: str, where: str, *, allow_inf: bool = False
) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    if allow_inf and text.lower() in ("inf", "infinity"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise ProfileImportError([f"{where}: column '{key}': '{text}' is not a number"]) from None
    if not math.isfinite(value) or value < 0:
        raise ProfileImportError([f"{where}: column '{key}': must be a finite number >= 0, "
                                  f"got '{text}'"])
    return value


def _csv_int(row: dict[str, str], key: str, where: str) -> int | None:
    value = _csv_float(row, key, where)
    if value is None:
        return None
    if value != int(value):
        raise ProfileImportError(
            [f"{where}: column '{key}': must be a whole number, got {value:g}"]
        )
    return int(value)


def _csv_run(row: dict[str, str], path: Path, where: str) -> Run:
    get: Callable[[str], float | None] = lambda k: _csv_float(row, k, where)  # noqa: E731
    input_tokens, output_tokens = get("input_tokens"), get("output_tokens")
    if not input_tokens or output_tokens is None:
        raise ProfileImportError([f"{where}: input_tokens and output_tokens are required "
                                  "(input_tokens > 0)"])
    rate = _csv_float(row, "request_rate", where, allow_inf=True)
    concurrency = _csv_int(row, "concurrency", where)
    if concurrency == 0:
        raise ProfileImportError([f"{where}: column 'concurrency' must be > 0"])
    role = (row.get("role") or "").strip().lower()
    tpot: dict[str, float] = {}
    for key, value in row.items():
        if key is None:
            continue
        m = re.fullmatch(r"(?:(mean|median|p\d+(?:\.\d+)?)_)?tpot_ms", key.strip())
        if m and (value or "").strip():
            v = _csv_float(row, key, where)
            if v is not None and v > 0:
                tpot[m.group(1) or "mean"] = v
    tps = get("prefill_tokens_per_s")
    if role == "prefill" and not tps:
        raise ProfileImportError([f"{where}: a prefill row needs prefill_tokens_per_s > 0"])
    if role == "decode" and not tpot:
        raise ProfileImportError([f"{where}: a decode row needs tpot_ms > 0"])
    completed = _csv_int(row, "completed", where)
    num_prompts = _csv_int(row, "num_prompts", where)
    failed = _csv_int(row, "failed", where)
    if failed is None and num_prompts is not None and completed is not None:
        failed = max(0, num_prompts - completed)
    if completed == 0:
        raise ProfileImportError([f"{where}: no request completed (completed: 0)"])
    return Run(
        where=where, file=str(path), engine="csv",
        model=(row.get("model") or "").strip() or None,
        engine_version=(row.get("engine_version") or "").strip() or None,
        date=(row.get("date") or "").strip() or None,
        request_rate=math.inf if rate is None else rate, max_concurrency=concurrency,
        input_tokens=input_tokens, output_tokens=output_tokens,
        input_tokens_per_s=tps or 0.0, tpot_ms=tpot,
        completed=completed or 0, failed=failed, requests=num_prompts,
        backend=(row.get("engine") or "").strip() or None,
    )


def read_csv(path: str | Path, role: str) -> tuple[list[Run], int]:
    """Rows of a generic profile CSV (columns in `CSV_COLUMNS`) with the given role, and how many
    rows of the other role were skipped."""
    path = Path(path)
    text = _read_text(path)
    if text.lstrip().startswith(("{", "[")):
        raise ProfileImportError([f"{path}: not a CSV file (it is JSON: use 'vllm' or 'sglang')"])
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise ProfileImportError([f"{path}: not a pdopt profile CSV: header lacks "
                                  f"{', '.join(missing)} (columns: docs/profiles.md)"])
    reader.fieldnames = header
    runs: list[Run] = []
    skipped = 0
    for number, row in enumerate(reader, start=2):
        where = f"{path}, row {number}"
        if None in row:
            raise ProfileImportError([f"{where}: more cells than header columns"])
        if not any((v or "").strip() for v in row.values()):
            continue
        row_role = (row.get("role") or "").strip().lower()
        if row_role not in ("prefill", "decode"):
            raise ProfileImportError([f"{where}: column 'role' must be prefill or decode, got "
                                      f"'{row.get('role')}'"])
        if row_role != role:
            skipped += 1
            continue
        runs.append(_csv_run(row, path, where))
    return runs, skipped


def read_runs(engine: str, paths: list[str], role: str) -> tuple[list[Run], list[str]]:
    """Every run of the given files in the claimed format; returns (runs, notes). Problems of all
    files are collected and raised together."""
    runs: list[Run] = []
    notes: list[str] = []
    problems: list[str] = []
    for p in paths:
        try:
            if engine == "vllm":
                runs += read_vllm(p)
            elif engine == "sglang":
                runs += read_sglang(p)
            elif engine == "csv":
                got, skipped = read_csv(p, role)
                runs += got
                if skipped:
                    other = "decode" if role == "prefill" else "prefill"
                    notes.append(f"{p}: skipped {skipped} {other} row(s)")
                if not got:
                    problems.append(f"{p}: no {role} rows")
            else:
                raise ValueError(f"unknown format {engine!r}")
        except ProfileImportError as e:
            problems += e.lines
    if problems:
        raise ProfileImportError(problems)
    return runs, notes
