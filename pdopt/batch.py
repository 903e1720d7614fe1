"""Batch runs: many scenario variants solved in parallel, results written atomically.

docs/batch.md describes the files and options. The steps, each usable alone:
- `collect_entries(paths)`: scenario files and folders -> one `Entry` per variant, in a stable
  order (a file that cannot be expanded becomes one failed entry; it never stops the others);
- an executor (`serial_executor`, `process_executor`, `dask_executor`) runs `run_variant` on each
  task and yields outcomes as they complete, in any order;
- `run_batch(...)` ties them together: resume by content hash, plan files written as results
  arrive, summary.csv / summary.jsonl in entry order at the end (or on Ctrl-C, for what is done).

The solve function is a parameter (`pdopt.optimize.solve` in the CLI), so this module never loads
Pyomo itself and tests can inject a fake.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

from pdopt.errors import PdoptError
from pdopt.fileio import write_atomic
from pdopt.plan import Plan
from pdopt.report import _clean_floats, to_json
from pdopt.scenario.loading import SCENARIO_SUFFIXES, scenario_from_data
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.variants import expand_file

SolveFn = Callable[..., Plan]
# Outcomes that count as failures for the exit code (1 when any row has one).
FAILED_STATUSES = frozenset({"infeasible", "no_solution", "invalid", "error"})
# plans/<id>.sha256 must fit the 255-byte file name limit of common file systems.
MAX_ID_BYTES = 240


class BatchSetupError(PdoptError):
    """The batch cannot start: no files match a PATH, two variants share an id, no Dask, ..."""


# --- inputs -------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One row of the batch: a variant to solve, or a file that failed before it had variants."""

    id: str
    source: str
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None  # plain scenario data; None when `error` says why
    error: str | None = None


def _is_hidden_or_base(rel: Path) -> bool:
    return any(part.startswith((".", "_")) for part in rel.parts)


def scenario_files(paths: Iterable[str], exclude: Path | None = None) -> list[tuple[Path, str]]:
    """PATH arguments -> (file, id stem), in argument order, each folder sorted by path.

    A folder gives every *.yaml|*.yml|*.json|*.toml under it, recursively, except names beginning
    with `.` or `_` (keep shared bases as `_base.yaml`) and anything under `exclude` (the output
    folder); the id stem is the path relative to the folder, without suffix (`eu/fleet`). A glob
    (expanded here, skipping the same names) or a file named explicitly (always taken) gives its
    own name without suffix. A file given twice is taken once.
    """
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    skip = exclude.resolve() if exclude is not None else None

    def add(file: Path, stem: str) -> None:
        real = file.resolve()
        if real in seen or (skip is not None and real.is_relative_to(skip)):
            return
        seen.add(real)
        out.append((file, stem))

    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found = sorted(
                (p for p in path.rglob("*") if p.suffix.lower() in SCENARIO_SUFFIXES
                 and p.is_file() and not _is_hidden_or_base(p.relative_to(path))),
                key=lambda p: p.relative_to(path).as_posix(),
            )
            if not found:
                raise BatchSetupError(f"{arg}: no scenario files (*.yaml, *.yml, *.json, *.toml)")
            for p in found:
                add(p, p.relative_to(path).with_suffix("").as_posix())
        elif path.is_file():
            add(path, path.stem)
        elif glob.has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True)
                             if Path(m).is_file() and Path(m).suffix.lower() in SCENARIO_SUFFIXES
                             and not _is_hidden_or_base(Path(Path(m).name)))
            if not matches:
                raise BatchSetupError(f"{arg}: no scenario files match")
            for p in matches:
                add(p, p.stem)
        else:
            raise BatchSetupError(f"{arg}: no such file or folder")
    return out


def collect_entries(paths: Iterable[str], exclude: Path | None = None) -> list[Entry]:
    """Every variant of every scenario file, in a stable order. Raises BatchSetupError for usage
    problems (missing PATH, two variants with one id); a bad file is an entry with an error."""
    entries: list[Entry] = []
    for file, stem in scenario_files(paths, exclude):
        try:
            variants = expand_file(file, stem)
        except ScenarioError as e:
            entries.append(Entry(stem, str(file), error="; ".join(e.lines())))
            continue
        entries += [Entry(v.id, v.source, v.params, v.data) for v in variants]
    owner: dict[str, str] = {}
    for e in entries:
        if len(Path(e.id).name.encode()) > MAX_ID_BYTES:
            raise BatchSetupError(f"{e.source}: the id '{e.id}' is too long for a file name; "
                                  "give the sweep axes shorter labels (label: ...)")
        other = owner.setdefault(e.id, e.source)
        if other != e.source:
            raise BatchSetupError(f"two scenarios have the id '{e.id}' ({other} and {e.source}); "
                                  "rename one or give their folder instead")
    return entries


@cache
def _pdopt_version() -> str:
    try:
        return version("pdopt")
    except PackageNotFoundError:
        return "unknown"


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    return obj


def content_hash(data: dict[str, Any], time_limit_s: float | None, mip_gap: float | None) -> str:
    """SHA-256 of what decides a variant's plan: its data, the solver settings, pdopt's version."""
    payload = {"scenario": _canonical(data), "time_limit_s": time_limit_s, "mip_gap": mip_gap,
               "pdopt": _pdopt_version()}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --- one variant (runs in a worker) -------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    id: str
    source: str
    data: dict[str, Any]
    time_limit_s: float | None
    mip_gap: float | None


@dataclass
class Outcome:
    id: str
    status: str  # a Plan status, or `invalid` (bad scenario) / `error` (a bug or a dead worker)
    plan: dict[str, Any] | None  # Plan.to_dict()
    error: str | None
    seconds: float  # wall time in the worker: validation, model build, solve, plan extraction


def run_variant(task: Task, solve: SolveFn) -> Outcome:
    """Validate and solve one variant; every failure becomes an Outcome, never an exception."""
    start = time.perf_counter()

    def failed(status: str, message: str) -> Outcome:
        return Outcome(task.id, status, None, message, time.perf_counter() - start)

    try:
        scenario = scenario_from_data(task.data, task.source)
        plan = solve(scenario, time_limit_s=task.time_limit_s, mip_gap=task.mip_gap)
    except ScenarioError as e:
        return failed("invalid", "; ".join(str(p) for p in e.problems))
    except PdoptError as e:
        return failed("invalid", str(e))
    except Exception as e:  # a bug in one variant must not cost the others their results
        return failed("error", f"{type(e).__name__}: {e}")
    return Outcome(task.id, plan.status, plan.to_dict(), _plan_error(plan.status, plan.diagnosis),
                   time.perf_counter() - start)


def _plan_error(status: str, diagnosis: list[str]) -> str | None:
    if status == "infeasible":
        return "; ".join(diagnosis) or "infeasible"
    if status == "no_solution":
        return "; ".join(diagnosis) or "the time limit hit before any plan was found"
    return None


# --- executors ----------------------------------------------------------------------------------

Executor = Callable[[list[Task], SolveFn], Iterator[tuple[int, Outcome]]]


def serial_executor(tasks: list[Task], solve: SolveFn) -> Iterator[tuple[int, Outcome]]:
    """One after the other in this process (--jobs 1)."""
    for k, task in enumerate(tasks):
        yield k, run_variant(task, solve)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers start from a fork server, not by forking this process, so they never inherit the
    solver's threads or state from a process that has already solved in-process (a benchmark run
    forked that way stalled once; not reproduced in isolation). The server imports the solver
    once; each worker forks from it, so startup stays cheap. Python 3.14 makes this the default."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")  # Windows
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pdopt.batch", "pdopt.optimize"])
    return context


def process_executor(jobs: int) -> Executor:
    """`jobs` local worker processes (--jobs N); at most 2 x jobs tasks in flight."""

    def execute(tasks: list[Task], solve: SolveFn) -> Iterator[tuple[int, Outcome]]:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=_worker_context(),
                                   initializer=_ignore_sigint)
        pending: dict[Future[Outcome], int] = {}
        queue = iter(enumerate(tasks))
        finished = False
        try:
            while True:
                for k, task in queue:
                    pending[pool.submit(run_variant, task, solve)] = k
                    if len(pending) >= 2 * jobs:
                        break
                if not pending:
                    finished = True
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=pending.__getitem__):
                    k = pending.pop(future)
                    try:
                        yield k, future.result()
                    except Exception as e:  # the worker process died (killed, out of memory)
                        yield k, Outcome(tasks[k].id, "error", None,
                                         f"worker process failed: {type(e).__name__}: {e}", 0.0)
        finally:
            workers = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            if not finished:  # Ctrl-C: a solve still running would hold up the exit until done
                for process in workers:
                    process.terminate()

    return execute


def dask_executor(address: str, connect_timeout_s: float = 10.0) -> Executor:
    """Tasks on an existing Dask distributed cluster (optional extra `pdopt[dask]`). The workers
    need pdopt installed; results come back to this process, which writes every file."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise BatchSetupError("--dask-scheduler needs Dask distributed: "
                              "pip install 'pdopt[dask]'") from None

    def execute(tasks: list[Task], solve: SolveFn) -> Iterator[tuple[int, Outcome]]:
        try:
            client = Client(address, timeout=connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise BatchSetupError(f"cannot reach the Dask scheduler at {address}: {e}") from None
        futures = []
        try:
            futures = [client.submit(run_variant, task, solve, pure=False) for task in tasks]
            index = {f.key: k for k, f in enumerate(futures)}
            for future, result in as_completed(futures, loop=client.loop, with_results=True,
                                               raise_errors=False):
                k = index[future.key]
                if isinstance(result, Outcome):
                    yield k, result
                else:  # the worker died or the task could not be run
                    yield k, Outcome(tasks[k].id, "error", None,
                                     f"dask task failed: {type(result).__name__}: {result}", 0.0)
        finally:
            client.cancel([f for f in futures if not f.done()])
            client.close()

    return execute


def make_executor(jobs: int | None = None, dask_scheduler: str | None = None) -> Executor:
    """--dask-scheduler ADDRESS, else --jobs N processes (1: in this process; default: cores)."""
    if dask_scheduler:
        return dask_executor(dask_scheduler)
    jobs = jobs or os.cpu_count() or 1
    return serial_executor if jobs == 1 else process_executor(jobs)


# --- progress -----------------------------------------------------------------------------------


class Progress:
    """Variants done / total, failures, rate and ETA on a stream (stderr): a redrawn bar on a
    terminal, a plain line every `interval_s` otherwise, and a last line at the end."""

    def __init__(self, total: int, stream: TextIO | None = None, *, tty: bool | None = None,
                 interval_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval_s = 0.1 if self.tty else interval_s
        self.clock = clock
        self.start = clock()
        self.last = self.start
        self.done = self.failed = self.resumed = 0

    def advance(self, failed: bool, resumed: bool = False) -> None:
        self.done += 1
        self.failed += failed
        self.resumed += resumed
        now = self.clock()
        if now - self.last >= self.interval_s:
            self.last = now
            self._show(now)

    def finish(self) -> None:
        self._show(self.clock(), final=True)

    def line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        ran = self.done - self.resumed
        rate = ran / elapsed
        left = self.total - self.done
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        resumed = f" ({self.resumed} resumed)" if self.resumed else ""
        return (f"{self.done}/{self.total} done{resumed}, {self.failed} failed, "
                f"{rate:.1f} variants/s, ETA {eta}")

    def _show(self, now: float, final: bool = False) -> None:
        text = self.line(now)
        if self.tty:
            width = 24
            filled = int(width * self.done / self.total) if self.total else width
            self.stream.write(f"\r[{'#' * filled}{'-' * (width - filled)}] {text}\x1b[K")
            if final:
                self.stream.write("\n")
        else:
            self.stream.write(f"batch: {text}\n")
        self.stream.flush()


# --- results ------------------------------------------------------------------------------------


def plan_path(output_dir: Path, variant_id: str) -> Path:
    return output_dir / "plans" / f"{variant_id}.json"


def _hash_path(output_dir: Path, variant_id: str) -> Path:
    return output_dir / "plans" / f"{variant_id}.sha256"


@contextmanager
def finish_writes_first() -> Iterator[None]:
    """A Ctrl-C during the block takes effect after it, so a file write (temporary file, rename)
    is never cut in half. Only in the main thread (elsewhere signals do not arrive anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def remove_stale_temporaries(output_dir: Path) -> None:
    """Temporary files a killed run (kill -9, power loss) left behind: `.NAME.XXXX.tmp`."""
    for path in output_dir.rglob(".*.tmp"):
        path.unlink(missing_ok=True)


def save_plan(output_dir: Path, variant_id: str, plan: dict[str, Any], digest: str) -> None:
    """plans/<id>.json (the JSON of `pdopt solve`), then plans/<id>.sha256: a plan counts for
    --resume only once both are complete."""
    write_atomic(plan_path(output_dir, variant_id), to_json(plan) + "\n")
    write_atomic(_hash_path(output_dir, variant_id), digest + "\n")


def forget_plan(output_dir: Path, variant_id: str) -> None:
    """Remove a stale plan of an earlier run for a variant that has none now."""
    _hash_path(output_dir, variant_id).unlink(missing_ok=True)
    plan_path(output_dir, variant_id).unlink(missing_ok=True)


def load_saved_plan(output_dir: Path, variant_id: str, digest: str) -> dict[str, Any] | None:
    """The saved plan when its hash file says `digest` and it reads back as a Plan; else None."""
    try:
        if _hash_path(output_dir, variant_id).read_text().strip() != digest:
            return None
        plan = json.loads(plan_path(output_dir, variant_id).read_text(encoding="utf-8"))
        Plan.from_dict(plan)
    except (OSError, ValueError, TypeError):
        return None
    return plan


def summary_row(entry: Entry, outcome: Outcome, digest: str | None) -> dict[str, Any]:
    """One summary row (summary.jsonl as is; summary.csv flattens the mappings)."""
    plan = outcome.plan or {}
    return {
        "id": entry.id,
        "source": entry.source,
        "params": entry.params,
        "status": outcome.status,
        "cost_per_hour": plan.get("cost_per_hour"),
        "total_gpus": plan.get("total_gpus"),
        "gpus_by_type": plan.get("gpus_by_type", {}),
        "instances_by_role": plan.get("instances_by_role", {}),
        "mip_gap": plan.get("mip_gap"),
        "solve_seconds": plan.get("solve_seconds"),
        "build_seconds": plan.get("build_seconds"),
        "error": outcome.error,
        "content_hash": digest,
    }


def _union(rows: list[dict[str, Any]], key: str) -> list[str]:
    names: list[str] = []
    for row in rows:
        names += [k for k in row[key] if k not in names]
    return names


def summary_csv(rows: list[dict[str, Any]]) -> str:
    """Flat columns: params.<label>, gpus.<type>, instances.<role> (unions over all rows)."""
    params, gpus, roles = _union(rows, "params"), sorted(_union(rows, "gpus_by_type")), sorted(
        _union(rows, "instances_by_role"))
    head = ["id", "source", *(f"params.{p}" for p in params), "status", "cost_per_hour",
            "total_gpus", *(f"gpus.{g}" for g in gpus), *(f"instances.{r}" for r in roles),
            "mip_gap", "solve_seconds", "build_seconds", "error", "content_hash"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)
    for r in rows:
        has_plan = r["total_gpus"] is not None
        counts = [r["gpus_by_type"].get(g, 0 if has_plan else None) for g in gpus]
        counts += [r["instances_by_role"].get(x, 0 if has_plan else None) for x in roles]
        cells = [r["id"], r["source"], *(r["params"].get(p) for p in params), r["status"],
                 r["cost_per_hour"], r["total_gpus"], *counts, r["mip_gap"], r["solve_seconds"],
                 r["build_seconds"], r["error"], r["content_hash"]]
        writer.writerow(["" if c is None else c for c in _clean_floats(cells)])
    return buf.getvalue()


def summary_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(_clean_floats(r), allow_nan=False) + "\n" for r in rows)


def write_summaries(output_dir: Path, rows: list[dict[str, Any]]) -> None:
    write_atomic(output_dir / "summary.csv", summary_csv(rows))
    write_atomic(output_dir / "summary.jsonl", summary_jsonl(rows))


# --- the run ------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    rows: list[dict[str, Any]]  # in entry order; on interruption only the finished ones
    total: int
    resumed: int = 0
    interrupted: bool = False

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] in FAILED_STATUSES]


def run_batch(entries: list[Entry], solve: SolveFn, output_dir: str | Path, *,
              executor: Executor = serial_executor, resume: bool = False,
              time_limit_s: float | None = None, mip_gap: float | None = None,
              progress: Progress | None = None) -> BatchResult:
    """Solve every entry, write plans as they arrive and the summaries at the end.

    On KeyboardInterrupt the summaries are written for the finished variants (every file complete)
    and the result comes back with `interrupted=True`; `--resume` then skips what is done.
    """
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output)
    done: dict[int, dict[str, Any]] = {}
    digests: dict[int, str] = {}
    tasks: list[Task] = []
    task_entry: list[int] = []
    resumed = 0
    for k, entry in enumerate(entries):
        if entry.data is None:
            forget_plan(output, entry.id)
            done[k] = summary_row(entry, Outcome(entry.id, "invalid", None, entry.error, 0.0), None)
            if progress:
                progress.advance(failed=True)
            continue
        digest = digests[k] = content_hash(entry.data, time_limit_s, mip_gap)
        saved = load_saved_plan(output, entry.id, digest) if resume else None
        if saved is not None:
            resumed += 1
            outcome = Outcome(entry.id, saved["status"], saved,
                              _plan_error(saved["status"], saved.get("diagnosis", [])), 0.0)
            done[k] = summary_row(entry, outcome, digest)
            if progress:
                progress.advance(failed=outcome.status in FAILED_STATUSES, resumed=True)
            continue
        tasks.append(Task(entry.id, entry.source, entry.data, time_limit_s, mip_gap))
        task_entry.append(k)

    interrupted = False
    try:
        for t, outcome in executor(tasks, solve):
            k = task_entry[t]
            with finish_writes_first():
                if outcome.plan is not None:
                    save_plan(output, outcome.id, outcome.plan, digests[k])
                else:
                    forget_plan(output, outcome.id)
            done[k] = summary_row(entries[k], outcome, digests[k])
            if progress:
                progress.advance(failed=outcome.status in FAILED_STATUSES)
    except KeyboardInterrupt:
        interrupted = True
    rows = [done[k] for k in sorted(done)]
    with finish_writes_first():
        write_summaries(output, rows)
    if progress:
        progress.finish()
    return BatchResult(rows, len(entries), resumed, interrupted)
