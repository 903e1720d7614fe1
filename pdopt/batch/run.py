"""`run_batch`: entries -> plans and summaries in an output folder, resumable and interruptible."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pdopt.batch.executors import (
    Executor,
    Outcome,
    SolveFn,
    Task,
    plan_error,
    serial_executor,
)
from pdopt.batch.inputs import Entry, check_entry_ids, content_hash
from pdopt.batch.store import (
    FAILED_STATUSES,
    finish_writes_first,
    forget_plan,
    load_saved_plan,
    output_errors,
    output_lock,
    remove_stale_temporaries,
    save_plan,
    summary_row,
    write_summaries,
)


class ProgressSink(Protocol):
    """What run_batch reports progress to (the CLI's display; pdopt.cli.batch.BatchProgress)."""

    def advance(self, failed: bool, resumed: bool = False) -> None: ...

    def finish(self) -> None: ...


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
              progress: ProgressSink | None = None) -> BatchResult:
    """Solve every entry, write plans as they arrive and the summaries at the end.

    On KeyboardInterrupt (Ctrl-C; the CLI turns SIGTERM into one) the summaries are written for
    the finished variants (every file complete) and the result comes back with
    `interrupted=True`; `--resume` then skips what is done. Raises BatchSetupError for an unsafe
    or repeated id and OutputError when the folder cannot be written or another batch holds it.
    """
    check_entry_ids(entries)
    output = Path(output_dir)
    with output_errors(output):
        output.mkdir(parents=True, exist_ok=True)
        with output_lock(output):
            remove_stale_temporaries(output)
            return _run(entries, solve, output, executor, resume, time_limit_s, mip_gap,
                        progress)


def _run(entries: list[Entry], solve: SolveFn, output: Path, executor: Executor, resume: bool,
         time_limit_s: float | None, mip_gap: float | None,
         progress: ProgressSink | None) -> BatchResult:
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
                              plan_error(saved["status"], saved.get("diagnosis", [])), 0.0)
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
                    save_plan(output, entries[k].id, outcome.plan, digests[k])
                else:
                    forget_plan(output, entries[k].id)
            done[k] = summary_row(entries[k], outcome, digests[k])
            if progress:
                progress.advance(failed=outcome.status in FAILED_STATUSES)
    except KeyboardInterrupt:
        interrupted = True
    rows = [done[k] for k in sorted(done)]
    try:
        with finish_writes_first():
            write_summaries(output, rows)
    except KeyboardInterrupt:  # a second Ctrl-C during the summaries: they are complete now
        interrupted = True
    if progress:
        progress.finish()
    return BatchResult(rows, len(entries), resumed, interrupted)
