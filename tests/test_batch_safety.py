"""pdopt batch against hostile inputs and faults: ids that try to leave --output, absurd sweeps,
unwritable or busy output folders, file modes, unreachable or non-Dask schedulers."""

from __future__ import annotations

import errno
import os
import socket
import stat
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from test_batch import fake_solve

from pdopt.batch import (
    MAX_ID_BYTES,
    BatchSetupError,
    Entry,
    OutputError,
    check_dask_scheduler,
    check_id,
    collect_entries,
    output_lock,
    run_batch,
)
from pdopt.cli import main
from pdopt.fileio import NAME_MAX, TEMP_NAME_EXTRA, write_atomic
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.variants import MAX_VARIANTS_PER_FILE, parse_sweep


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["batch", *args])


# --- ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [
    ["../../../../x", ".._.._.._.._x"],  # equal once '/' is replaced: used to fall back to repr
    ["a\x00b", "a/b", "a\\b", ".hidden", "..", "."],
    ["x" * 300, "x" * 299 + "y"],  # over-long, and alike in the first 55 characters
])
def test_swept_strings_never_leave_the_output_folder(tmp_path: Path, paper_data: dict[str, Any],
                                                      values: list[str]) -> None:
    box = tmp_path / "box"
    inputs, out = box / "in", box / "deep" / "er" / "out"
    write(inputs / "_base.yaml", paper_data)
    write(inputs / "s.yaml", {"extends": "_base.yaml", "sweep": {"description": values}})
    # a plan left by an earlier run beside the output folder must not be unlinked either
    bait = box / "deep" / "x.json"
    out.parent.mkdir(parents=True)
    bait.write_text("{}")
    before = tree(tmp_path)
    entries = collect_entries([str(inputs)])
    assert len({e.id for e in entries}) == len(values)
    for e in entries:
        check_id(e.id)
        name = e.id.rsplit("/", 1)[-1]
        assert len(name.encode()) + len(".sha256") + TEMP_NAME_EXTRA <= NAME_MAX
    result = run_batch(entries, fake_solve, out)
    assert [r["status"] for r in result.rows] == ["optimal"] * len(values)
    assert bait.read_text() == "{}"
    new = tree(tmp_path) - before
    assert new and all(p.resolve().is_relative_to(out.resolve()) for p in new)
    assert len(list((out / "plans").glob("*.json"))) == len(values)


def test_invalid_variants_with_hostile_ids_unlink_nothing_outside(
        tmp_path: Path, paper_data: dict[str, Any]) -> None:
    paper_data["workloads"] = []  # every variant invalid: run_batch forgets their old plans
    write(tmp_path / "in" / "base.yaml", paper_data)
    write(tmp_path / "in" / "s.yaml", {"extends": "base.yaml",
                                       "sweep": {"description": ["../../victim", "..\\victim"]}})
    victim = tmp_path / "victim.json"
    victim.write_text("keep")
    out = tmp_path / "out"
    result = run_batch(collect_entries([str(tmp_path / "in" / "s.yaml")]), fake_solve, out)
    assert [r["status"] for r in result.rows] == ["invalid", "invalid"]
    assert victim.read_text() == "keep"


def test_unsafe_ids_given_through_the_api_are_refused_before_writing(
        tmp_path: Path, paper_data: dict[str, Any]) -> None:
    for bad in ("../x", "a/../../x", "/etc/x", ".hidden", "a\x00b", "a//b", "", "x" * 250):
        with pytest.raises(BatchSetupError):
            run_batch([Entry(bad, "a.yaml", data=paper_data)], fake_solve, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_file_stems_are_made_safe_and_kept_apart(tmp_path: Path,
                                                 paper_data: dict[str, Any]) -> None:
    write(tmp_path / "in" / "a b.yaml", paper_data)
    write(tmp_path / "in" / "a_b.yaml", paper_data)
    write(tmp_path / "in" / "c$.yaml", paper_data)
    explicit = write(tmp_path / ".dot.yaml", paper_data)
    ids = [e.id for e in collect_entries([str(tmp_path / "in"), str(explicit)])]
    assert ids[2:] == ["c_", "_dot"]
    assert ids[0].startswith("a_b-") and ids[1].startswith("a_b-") and ids[0] != ids[1]
    for i in ids:
        check_id(i)


def test_the_id_length_limit_counts_the_suffixes() -> None:
    assert NAME_MAX - len(".sha256") - TEMP_NAME_EXTRA == MAX_ID_BYTES
    check_id("x" * MAX_ID_BYTES)
    with pytest.raises(BatchSetupError, match="too long"):
        check_id("x" * (MAX_ID_BYTES + 1))


def test_longest_id_writes_its_files(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    """An id of MAX_ID_BYTES really fits: plan, hash and their temporary files."""
    vid = "x" * MAX_ID_BYTES
    result = run_batch([Entry(vid, "a.yaml", data=paper_data)], fake_solve, tmp_path)
    assert result.rows[0]["status"] == "optimal"
    assert (tmp_path / "plans" / f"{vid}.sha256").exists()


# --- sweep size ---------------------------------------------------------------------------------


def test_a_huge_range_is_refused_before_its_values_exist(tmp_path: Path,
                                                         paper_data: dict[str, Any]) -> None:
    write(tmp_path / "base.yaml", paper_data)
    sweep = write(tmp_path / "huge.yaml", {"extends": "base.yaml", "sweep": {
        "options.mip_gap": {"start": 0.001, "stop": 0.1, "num": 1_000_000_000}}})
    tracemalloc.start()
    start = time.monotonic()
    try:
        result = run_cli(str(sweep), "--dry-run")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 10
    assert peak < 50 * 2**20  # numpy would need 7.45 GiB for the points
    assert result.exit_code == 1
    assert result.stderr == (f"huge: {sweep}: sweep: 1000000000 variants; at most "
                             f"{MAX_VARIANTS_PER_FILE} per file (split the sweep over several "
                             "files)\n")


def test_the_grid_size_is_the_product_of_the_axes() -> None:
    axes = {"a": {"start": 1, "stop": 2, "num": 1000}, "b": list(range(101))}
    with pytest.raises(ScenarioError, match="101000 variants"):
        parse_sweep(axes)
    assert len(parse_sweep({"a": {"start": 1, "stop": 2, "num": 1000}, "b": [1, 2]})) == 2


# --- output folder ------------------------------------------------------------------------------


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path: Path,
                                                          paper_scenario_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli(str(paper_scenario_path), "-o", str(blocker / "out"), "--jobs", "1")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.stderr.splitlines()) == 1 and str(blocker) in result.stderr


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "the disk is full"),
                                         (errno.EROFS, "read-only file system"),
                                         (errno.EACCES, "Permission denied")])
def test_write_failures_are_one_line(tmp_path: Path, paper_scenario_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, code: int,
                                     words: str) -> None:
    import tempfile

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code), str(tmp_path / "out" / "plans" / "x"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    result = run_cli(str(paper_scenario_path), "-o", str(tmp_path / "out"), "--jobs", "1")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("error: cannot write ") and words in result.stderr


def test_a_second_batch_on_a_busy_folder_refuses_and_deletes_nothing(
        tmp_path: Path, paper_scenario_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    temporary = out / "plans" / ".x.json.abcd1234.tmp"  # the first run's file being written
    temporary.parent.mkdir()
    temporary.write_text("{")
    with output_lock(out):
        result = run_cli(str(paper_scenario_path), "-o", str(out), "--jobs", "1")
        assert result.exit_code == 2
        assert "another pdopt batch is writing to this folder" in result.stderr
        assert f"(pid {os.getpid()})" in result.stderr
        assert temporary.exists()
    result = run_cli(str(paper_scenario_path), "-o", str(out), "--jobs", "1")
    assert result.exit_code == 0 and not temporary.exists()


def test_output_lock_is_exclusive_between_open_files(tmp_path: Path) -> None:
    with output_lock(tmp_path), pytest.raises(OutputError), output_lock(tmp_path):
        pass
    with output_lock(tmp_path):  # released
        pass


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_get_the_umask_not_0600(tmp_path: Path, paper_data: dict[str, Any],
                                      umask_027: None) -> None:
    run_batch([Entry("a", "a.yaml", data=paper_data)], fake_solve, tmp_path / "out")
    for name in ("summary.csv", "summary.jsonl", "plans/a.json", "plans/a.sha256"):
        assert mode(tmp_path / "out" / name) == 0o640, name


def test_write_atomic_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path,
                                                             umask_027: None) -> None:
    target = tmp_path / "scenario.yaml"
    target.write_text("a: 1\r\n")
    target.chmod(0o664)
    write_atomic(target, "a: 1\r\nb: 2\r\n")
    assert mode(target) == 0o664
    assert target.read_bytes() == b"a: 1\r\nb: 2\r\n"  # written as given
    fresh = tmp_path / "new.txt"
    write_atomic(fresh, "x")
    assert mode(fresh) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --- Dask addresses -----------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP service on loopback that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def test_a_service_that_never_answers_times_out(silent_server: str) -> None:
    pytest.importorskip("distributed")
    start = time.monotonic()
    with pytest.raises(BatchSetupError, match="no answer as a Dask scheduler within 1 s"):
        check_dask_scheduler(silent_server, timeout_s=1)
    assert time.monotonic() - start < 5


def test_cli_non_dask_service_and_closed_port_are_one_line_exit_2(
        silent_server: str, paper_scenario_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    for address in (silent_server, f"tcp://127.0.0.1:{closed_port()}"):
        start = time.monotonic()
        result = run_cli(str(paper_scenario_path), "-o", str(tmp_path / "out"),
                         "--dask-scheduler", address, "--dask-timeout", "1")
        assert time.monotonic() - start < 8
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"error: cannot reach the Dask scheduler at {address}: ")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_dask_timeout_must_be_positive(paper_scenario_path: Path, tmp_path: Path) -> None:
    result = run_cli(str(paper_scenario_path), "-o", str(tmp_path / "out"),
                     "--dask-scheduler", "tcp://127.0.0.1:1", "--dask-timeout", "0")
    assert result.exit_code == 2 and "--dask-timeout" in result.stderr


def test_a_file_system_without_locks_runs_unlocked(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with output_lock(tmp_path):
        assert (tmp_path / ".pdopt-batch.lock").read_text() == f"{os.getpid()}\n"


def test_default_labels_from_names_with_unsafe_characters_are_made_safe() -> None:
    axes = parse_sweep({"gpus[../H100 x].cost_per_hour": [1, 2], "gpus[H200].cost_per_hour": [3]})
    assert [a.label for a in axes] == ["___H100_x.cost_per_hour", "H200.cost_per_hour"]
