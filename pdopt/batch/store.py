"""Batch results on disk: plans, content hashes, summaries, resume, and the output folder's lock.

Every file goes through `write_atomic` (a temporary file and a rename). Paths are built from ids
that `pdopt.batch.inputs.check_id` accepted, and checked again here, so nothing is written or
removed outside the output folder. One batch at a time holds a folder (`output_lock`).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pdopt.batch.executors import Outcome
from pdopt.batch.inputs import BatchSetupError, Entry, check_id
from pdopt.fileio import TEMP_PREFIX, TEMP_SUFFIX, write_atomic
from pdopt.inputfiles import InputFileError, read_limited
from pdopt.plan import Plan, Status
from pdopt.report import _clean_floats, to_json

# Outcomes that count as failures for the exit code (1 when any row has one).
FAILED_STATUSES = frozenset({Status.INFEASIBLE.value, Status.NO_SOLUTION.value, "invalid", "error"})
LOCK_NAME = ".pdopt-batch.lock"
#: A saved plan is the JSON of `pdopt solve`: a few MB for the largest fleets.
MAX_SAVED_PLAN_BYTES = 64 * 1024 * 1024
# The signals a write finishes before it takes effect (the CLI turns SIGTERM into an interrupt).
DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class OutputError(BatchSetupError):
    """The output folder cannot be written: read-only, full, not a folder, taken by another run."""


def describe_os_error(e: OSError, path: str | Path | None = None) -> str:
    """`cannot write PATH: No space left on device`: one line for an OSError."""
    where = path if path is not None else (e.filename or "the output folder")
    reason = (e.strerror or os.strerror(e.errno)) if e.errno else str(e)
    hints = {errno.EROFS: " (read-only file system)", errno.ENOSPC: " (the disk is full)",
             errno.EDQUOT: " (disk quota exceeded)"}
    return f"cannot write {where}: {reason}{hints.get(e.errno or 0, '')}"


@contextmanager
def output_errors(output_dir: Path) -> Iterator[None]:
    """OSErrors while writing results become OutputError (one line, exit 2 in the CLI)."""
    try:
        yield
    except OSError as e:
        raise OutputError(describe_os_error(e, e.filename or output_dir)) from None


@contextmanager
def output_lock(output_dir: Path) -> Iterator[IO[str]]:
    """Hold DIR/.pdopt-batch.lock (an exclusive `flock`) while a batch writes to DIR; a second
    batch on the same folder refuses at once instead of deleting the first one's temporary files.
    The lock goes with the process (kill -9 included): nothing stale is left to remove."""
    path = output_dir / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here, run one batch per folder
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                raise OutputError(f"{output_dir}: another pdopt batch is writing to this folder"
                                  f"{f' (pid {holder})' if holder else ''}; wait for it or "
                                  "choose another --output") from None
            except OSError as e:  # a file system without locks (some NFS setups): run unlocked
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield handle
    finally:
        handle.close()


def plan_path(output_dir: Path, variant_id: str) -> Path:
    check_id(variant_id)
    return output_dir / "plans" / f"{variant_id}.json"


def hash_path(output_dir: Path, variant_id: str) -> Path:
    check_id(variant_id)
    return output_dir / "plans" / f"{variant_id}.sha256"


@contextmanager
def finish_writes_first() -> Iterator[None]:
    """A Ctrl-C (or SIGTERM) during the block takes effect after it, so a file write (temporary
    file, rename) is never cut in half. Only in the main thread (elsewhere signals do not arrive
    anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        handler = previous[signal.Signals(caught[0])]
        if callable(handler):
            handler(caught[0], None)  # as it would have run: raises KeyboardInterrupt
        elif handler != signal.SIG_IGN:
            raise KeyboardInterrupt


def remove_stale_temporaries(output_dir: Path) -> None:
    """Temporary files a killed run (kill -9, power loss) left behind: `.NAME.XXXX.tmp` in the
    folder and under plans/ (call with the folder's lock held: another run's are not stale)."""
    for folder in (output_dir, output_dir / "plans"):
        if not folder.is_dir():
            continue
        pattern = f"{TEMP_PREFIX}*{TEMP_SUFFIX}"
        paths = folder.glob(pattern) if folder == output_dir else folder.rglob(pattern)
        for path in paths:
            if path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)


def save_plan(output_dir: Path, variant_id: str, plan: dict[str, Any], digest: str) -> None:
    """plans/<id>.json (the JSON of `pdopt solve`), then plans/<id>.sha256: a plan counts for
    --resume only once both are complete."""
    write_atomic(plan_path(output_dir, variant_id), to_json(plan) + "\n")
    write_atomic(hash_path(output_dir, variant_id), digest + "\n")


def forget_plan(output_dir: Path, variant_id: str) -> None:
    """Remove a stale plan of an earlier run for a variant that has none now."""
    hash_path(output_dir, variant_id).unlink(missing_ok=True)
    plan_path(output_dir, variant_id).unlink(missing_ok=True)


def load_saved_plan(output_dir: Path, variant_id: str, digest: str) -> dict[str, Any] | None:
    """The saved plan when its hash file says `digest` and it reads back as a Plan; else None.
    Regular files of bounded size only: a FIFO or a huge file in their place counts as no plan
    (the variant is solved again and the file replaced)."""
    try:
        saved = read_limited(hash_path(output_dir, variant_id), 1024, "plan hash files")
        if saved.decode("ascii").strip() != digest:
            return None
        plan = json.loads(read_limited(plan_path(output_dir, variant_id), MAX_SAVED_PLAN_BYTES,
                                       "saved plans"))
        Plan.from_dict(plan)
    except (InputFileError, OSError, ValueError, TypeError):
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
