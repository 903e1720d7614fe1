"""Batch executors: run `run_variant` on each task and yield outcomes as they complete.

- `serial_executor`: one after the other in this process (--jobs 1);
- `process_executor(jobs)`: local worker processes started from a fork server; they ignore
  Ctrl-C (the parent's to handle), die with pdopt (`pdopt.children`), and are terminated when the
  run stops early (Ctrl-C, SIGTERM, an error);
- `dask_executor(address)`: an existing Dask distributed cluster, reached within a timeout.

Outcomes come back to the calling process, which writes every file (pdopt.batch.store).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from pdopt.batch.inputs import BatchSetupError
from pdopt.children import die_with_parent
from pdopt.errors import PdoptError
from pdopt.plan import Plan, Status
from pdopt.scenario.prepare import prepare
from pdopt.scenario.problems import ScenarioError

SolveFn = Callable[..., Plan]
DASK_CONNECT_TIMEOUT_S = 10.0


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
    """Prepare (validate, resolve profiles) and solve one variant; every failure becomes an
    Outcome, never an exception (KeyboardInterrupt, which stops the batch, excepted)."""
    start = time.perf_counter()

    def failed(status: str, message: str) -> Outcome:
        return Outcome(task.id, status, None, message, time.perf_counter() - start)

    try:
        prepared = prepare(task.data, source_name=task.source)
        plan = solve(prepared, time_limit_s=task.time_limit_s, mip_gap=task.mip_gap)
    except ScenarioError as e:
        return failed("invalid", "; ".join(str(p) for p in e.problems))
    except PdoptError as e:
        return failed("invalid", str(e))
    except Exception as e:  # a bug in one variant must not cost the others their results
        return failed("error", f"{type(e).__name__}: {e}")
    return Outcome(task.id, plan.status.value, plan.to_dict(),
                   plan_error(plan.status, plan.diagnosis), time.perf_counter() - start)


def plan_error(status: str, diagnosis: list[str]) -> str | None:
    if status == Status.INFEASIBLE:
        return "; ".join(diagnosis) or "infeasible"
    if status == Status.NO_SOLUTION:
        return "; ".join(diagnosis) or "the time limit hit before any plan was found"
    return None


Executor = Callable[[list[Task], SolveFn], Iterator[tuple[int, Outcome]]]


def serial_executor(tasks: list[Task], solve: SolveFn) -> Iterator[tuple[int, Outcome]]:
    """One after the other in this process (--jobs 1)."""
    for k, task in enumerate(tasks):
        yield k, run_variant(task, solve)


# --- local processes ----------------------------------------------------------------------------


def _init_worker(owner_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(owner_pid=owner_pid)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers start from a fork server, not by forking this process, so they never inherit the
    solver's threads or state from a process that has already solved in-process (a benchmark run
    forked that way stalled once; not reproduced in isolation). The server imports the solver
    once; each worker forks from it, so startup stays cheap. Python 3.14 makes this the default.
    The server dies with pdopt (pdopt.batch.forkserver_guard), the workers with the server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")  # Windows
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pdopt.batch.forkserver_guard", "pdopt.batch.executors",
                                    "pdopt.optimize"])
    return context


def process_executor(jobs: int) -> Executor:
    """`jobs` local worker processes (--jobs N); at most 2 x jobs tasks in flight."""

    def execute(tasks: list[Task], solve: SolveFn) -> Iterator[tuple[int, Outcome]]:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=_worker_context(),
                                   initializer=_init_worker, initargs=(os.getpid(),))
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
            stop_pool(pool, terminate=not finished)

    return execute


def stop_pool(pool: ProcessPoolExecutor, terminate: bool) -> None:
    """Shut the pool down; with `terminate` (stopped early), end running solves at once and
    reap the workers, so none outlives the run."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    if not terminate:
        return
    for process in workers:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + 5.0
    for process in workers:
        process.join(max(deadline - time.monotonic(), 0.0))
        if process.is_alive():
            process.kill()
            process.join(1.0)


# --- Dask ---------------------------------------------------------------------------------------


def check_dask_scheduler(address: str, timeout_s: float = DASK_CONNECT_TIMEOUT_S) -> None:
    """Raise BatchSetupError within about `timeout_s` unless `address` answers as a Dask
    scheduler: a closed port fails at once; a service that accepts and never answers, or answers
    in another protocol, fails at the timeout (Dask's own connect can wait for minutes)."""
    from distributed.comm import connect, parse_address
    from distributed.comm.addressing import parse_host_port

    deadline = time.monotonic() + timeout_s

    def left() -> float:
        return max(deadline - time.monotonic(), 0.01)

    def fail(reason: str) -> BatchSetupError:
        return BatchSetupError(f"cannot reach the Dask scheduler at {address}: {reason}")

    try:
        scheme, location = parse_address(address if "://" in address else f"tcp://{address}")
        host, port = parse_host_port(location) if scheme in ("tcp", "tls") else (None, None)
    except (ValueError, TypeError) as e:
        raise fail(f"not an address such as tcp://host:8786 ({e})") from None
    if host is not None:
        try:
            with socket.create_connection((host, port), timeout=left()):
                pass
        except OSError as e:
            raise fail(e.strerror or type(e).__name__) from None

    async def identity() -> Any:
        comm = await connect(address, timeout=left())
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(identity(), left()))
    except TimeoutError:
        raise fail(f"no answer as a Dask scheduler within {timeout_s:g} s") from None
    except Exception as e:  # the protocol's and the network's errors alike
        raise fail(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise fail(f"the service there is not a Dask scheduler ({kind})")


def dask_executor(address: str, connect_timeout_s: float = DASK_CONNECT_TIMEOUT_S) -> Executor:
    """Tasks on an existing Dask distributed cluster (optional extra `pdopt[dask]`). The workers
    need pdopt installed; results come back to this process, which writes every file."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise BatchSetupError("--dask-scheduler needs Dask distributed: "
                              "pip install 'pdopt[dask]'") from None

    def execute(tasks: list[Task], solve: SolveFn) -> Iterator[tuple[int, Outcome]]:
        check_dask_scheduler(address, connect_timeout_s)
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


def make_executor(jobs: int | None = None, dask_scheduler: str | None = None,
                  dask_timeout_s: float = DASK_CONNECT_TIMEOUT_S) -> Executor:
    """--dask-scheduler ADDRESS, else --jobs N processes (1: in this process; default: cores)."""
    if dask_scheduler:
        return dask_executor(dask_scheduler, dask_timeout_s)
    jobs = jobs or os.cpu_count() or 1
    return serial_executor if jobs == 1 else process_executor(jobs)
