"""Batch runs: many scenario variants solved in parallel, results written atomically.

docs/batch.md describes the files and options. The steps, each usable alone:
- `pdopt.batch.inputs`: `collect_entries(paths)`: scenario files and folders -> one `Entry` per
  variant with a safe id, in a stable order (a file that cannot be expanded becomes one failed
  entry; it never stops the others); `content_hash` for resume;
- `pdopt.batch.executors`: an executor (`serial_executor`, `process_executor`, `dask_executor`)
  runs `run_variant` on each task and yields outcomes as they complete, in any order;
- `pdopt.batch.store`: plan files, summaries, resume, the output folder's lock;
- `pdopt.batch.run`: `run_batch(...)` ties them together: resume by content hash, plan files
  written as results arrive, summary.csv / summary.jsonl in entry order at the end (or on Ctrl-C
  or SIGTERM, for what is done).

The solve function is a parameter (`pdopt.optimize.solve` in the CLI), so this package never
loads Pyomo itself and tests can inject a fake. Progress display is the CLI's (pdopt.cli.batch).
"""

from __future__ import annotations

from pdopt.batch.executors import (
    DASK_CONNECT_TIMEOUT_S,
    Executor,
    Outcome,
    SolveFn,
    Task,
    check_dask_scheduler,
    dask_executor,
    make_executor,
    process_executor,
    run_variant,
    serial_executor,
)
from pdopt.batch.inputs import (
    MAX_ID_BYTES,
    BatchSetupError,
    Entry,
    check_id,
    collect_entries,
    content_hash,
    safe_stem,
    scenario_files,
)
from pdopt.batch.run import BatchResult, ProgressSink, run_batch
from pdopt.batch.store import (
    FAILED_STATUSES,
    OutputError,
    finish_writes_first,
    load_saved_plan,
    output_lock,
    plan_path,
    remove_stale_temporaries,
    summary_csv,
    summary_jsonl,
    write_summaries,
)

__all__ = [
    "DASK_CONNECT_TIMEOUT_S", "FAILED_STATUSES", "MAX_ID_BYTES", "BatchResult", "BatchSetupError",
    "Entry", "Executor", "Outcome", "OutputError", "ProgressSink", "SolveFn", "Task",
    "check_dask_scheduler", "check_id", "collect_entries", "content_hash", "dask_executor",
    "finish_writes_first", "load_saved_plan", "make_executor", "output_lock", "plan_path",
    "process_executor", "remove_stale_temporaries", "run_batch", "run_variant", "safe_stem",
    "scenario_files", "serial_executor", "summary_csv", "summary_jsonl", "write_summaries",
]
