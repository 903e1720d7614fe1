"""Bounded reads in every reader of a user-named file (issue 10, section 4): benchmark results,
model configs, measured runs, report inputs, GPU label files, batch summaries and saved plans, the
estimate cache and empirical length files. A named pipe (FIFO) is refused without blocking and an
oversize (sparse) file from its size: one line naming the file, exit 2, no traceback.

Each command runs under a timer: a blocking open would raise TimeoutError instead of hanging."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from pdopt.batch import store
from pdopt.cli import main
from pdopt.inputfiles import FileTooLargeError, InputFileError
from pdopt.profiles import calibration, resolve
from pdopt.profiles.architecture import MAX_CONFIG_BYTES
from pdopt.profiles.importers import MAX_RESULT_BYTES
from pdopt.profiles.silicon import MAX_SILICON_BYTES

GIB = 1024**3
FIFO_SAYS = "cannot read file: is a named pipe (FIFO), not a regular file"
KINDS = ["fifo", "huge"]


@contextmanager
def deadline(seconds: float = 20.0) -> Iterator[None]:
    """TimeoutError if the block takes longer (an open() blocked on a FIFO is interrupted)."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s (blocked on a FIFO?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def make(tmp_path: Path, name: str, kind: str) -> Path:
    """A FIFO, or a sparse file of 1 GiB (no disk space), at tmp_path / name."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        with open(path, "wb") as fh:
            fh.truncate(GIB)
    return path


def run(*args: str) -> Result:
    with deadline():
        return CliRunner().invoke(main, list(args))


def one_line(result: Result) -> str:
    """The single stderr line of a clean exit 2."""
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def too_large(path: Path, limit: int, what: str) -> str:
    return f"{path}: file is {GIB} bytes; {what} are limited to {limit} bytes"


@pytest.mark.parametrize("kind", KINDS)
def test_profile_import_result_file(tmp_path: Path, kind: str) -> None:
    path = make(tmp_path, "run.json", kind)
    line = one_line(run("profile", "import", "vllm", str(path), "--model", "m", "--gpu", "H100",
                        "--gpus-per-instance", "1", "--role", "decode"))
    assert line == (f"error: {path}: {FIFO_SAYS}" if kind == "fifo" else
                    "error: " + too_large(path, MAX_RESULT_BYTES, "benchmark results"))


@pytest.mark.parametrize("kind", KINDS)
def test_model_config_file(tmp_path: Path, kind: str) -> None:
    path = make(tmp_path, "m/config.json", kind)
    line = one_line(run("profile", "estimate", "--model", str(path), "--gpu", "H100",
                        "--lengths", "1000:100"))
    assert line == (f"{path}: cannot read model config: is a named pipe (FIFO), not a regular "
                    "file" if kind == "fifo" else too_large(path, MAX_CONFIG_BYTES,
                                                            "model configs"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", ["auto", "silicon", "csv"])
def test_measured_runs_file(tmp_path: Path, kind: str, fmt: str) -> None:
    path = make(tmp_path, "runs.csv", kind)
    line = one_line(run("profile", "validate", str(path), "--input-format", fmt,
                        "--model", "llama-3.1-8b", "--gpu", "H100"))
    if kind == "fifo":
        assert line.startswith(f"{path}: cannot read") and "named pipe (FIFO)" in line
    elif fmt == "silicon":
        assert line == too_large(path, MAX_SILICON_BYTES, "silicon CSVs")
    else:
        assert line == too_large(path, MAX_RESULT_BYTES, "benchmark results")


@pytest.mark.parametrize("kind", KINDS)
def test_report_of_a_plan_file(tmp_path: Path, kind: str) -> None:
    path = make(tmp_path, "plan.json", kind)
    line = one_line(run("report", str(path), "-o", str(tmp_path / "r.html")))
    assert line == (f"error: {path}: {FIFO_SAYS}" if kind == "fifo" else
                    "error: " + too_large(path, 64 * 1024 * 1024, "plan and simulation files"))
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_report_of_a_batch_summary(tmp_path: Path, kind: str) -> None:
    path = make(tmp_path, "batch/summary.jsonl", kind)
    line = one_line(run("report", str(path.parent), "-o", str(tmp_path / "r.html")))
    if kind == "fifo":
        assert line.startswith(f"error: {path}: {FIFO_SAYS}")
    else:
        assert line == "error: " + too_large(path, 256 * 1024 * 1024, "batch summaries")


@pytest.mark.parametrize("kind", KINDS)
def test_export_gpu_labels_file(tmp_path: Path, kind: str) -> None:
    path = make(tmp_path, "labels.yaml", kind)
    line = one_line(run("export", str(tmp_path / "plan.json"), "--to", "kubernetes",
                        "--gpu-labels", str(path)))
    assert line == (f"error: {path}: {FIFO_SAYS}" if kind == "fifo" else
                    "error: " + too_large(path, 1024 * 1024, "GPU label files"))


@pytest.mark.parametrize("kind", KINDS)
def test_trtllm_overview_csv(tmp_path: Path, kind: str) -> None:
    path = make(tmp_path, "overview.csv", kind)
    error = InputFileError if kind == "fifo" else FileTooLargeError
    with deadline(), pytest.raises(error):
        calibration.read_trtllm_rows(path)


@pytest.mark.parametrize("kind", KINDS)
def test_a_saved_batch_plan_is_solved_again(tmp_path: Path, kind: str) -> None:
    """--resume: a FIFO or a huge file where a saved plan was counts as no plan."""
    store.hash_path(tmp_path, "v").parent.mkdir(parents=True, exist_ok=True)
    store.hash_path(tmp_path, "v").write_text("abc\n")
    plan = store.plan_path(tmp_path, "v")
    make(plan.parent, plan.name, kind)
    with deadline():
        assert store.load_saved_plan(tmp_path, "v", "abc") is None
    hashed = store.hash_path(tmp_path, "v")
    hashed.unlink()
    make(hashed.parent, hashed.name, kind)
    with deadline():
        assert store.load_saved_plan(tmp_path, "v", "abc") is None


def test_an_oversize_cache_entry_is_recomputed(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(resolve.CACHE_ENV, str(tmp_path))
    key = {"k": 1}
    assert resolve._cached(key, lambda: {"x": 1}, True) == {"x": 1}
    (entry,) = tmp_path.glob("*.json")
    with open(entry, "wb") as fh:
        fh.truncate(resolve.MAX_CACHE_ENTRY_BYTES + 1)
    with deadline():
        assert resolve._cached(key, lambda: {"x": 2}, True) == {"x": 2}


@pytest.mark.parametrize("kind", ["fifo", "huge", "missing"])
def test_an_unreadable_empirical_length_file_while_sizing(tmp_path: Path, kind: str,
                                                          paper_data: dict[str, Any]) -> None:
    """`pdopt solve`: one line naming the scenario, the field and the file (was a ValueError
    traceback from prefill_service_moments)."""
    pairs = tmp_path / "pairs.csv"
    if kind != "missing":
        make(tmp_path, "pairs.csv", kind)
    paper_data["workloads"][0]["length_distribution"] = {"kind": "empirical",
                                                         "file": "pairs.csv"}
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(paper_data), encoding="utf-8")
    line = one_line(run("solve", str(scenario)))
    says = {"fifo": "cannot read file: is a named pipe (FIFO), not a regular file",
            "huge": "line 1: longer than 1048576 bytes; not a trace or length file",
            "missing": "cannot read file: No such file or directory"}[kind]
    assert line == f"{scenario}: workloads[0].length_distribution.file: {pairs}: {says}"


def test_an_oversize_demand_curve_file(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    """Refused from its size (was: a 1 GiB file without line breaks read whole by the CSV
    reader, 20 s and a 1 GiB line in memory)."""
    from pdopt.scenario.demand import MAX_CURVE_BYTES

    curve = make(tmp_path, "load.csv", "huge")
    paper_data["periods"] = {"count": 2, "length_h": 6}
    paper_data["workloads"][0]["demand"] = {"curve": {"file": "load.csv", "column": "rate"}}
    scenario = tmp_path / "day.yaml"
    scenario.write_text(yaml.safe_dump(paper_data), encoding="utf-8")
    line = one_line(run("solve", str(scenario)))
    assert line == (f"{scenario}: workloads[0].demand.curve.file: {curve}: file is {GIB} bytes; "
                    f"demand curves are limited to {MAX_CURVE_BYTES} bytes")
