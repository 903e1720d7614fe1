"""Bounded reads (issue 10, section 4): a device, a named pipe, a directory or a huge file given
as a scenario, an `extends:` target, a trace or a length file is refused from `stat` with one line,
quickly and without reading it; traces are streamed with a row cap."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from pdopt.cli import main
from pdopt.scenario.loading import read_document
from pdopt.scenario.problems import ScenarioError
from pdopt.scenario.variants import read_with_extends
from pdopt.simulate import limits, traces
from pdopt.simulate.traces import TraceError, read_length_pairs, read_trace

GIB = 1024**3


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def errors(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        read_with_extends(path)
    return info.value.lines()


def sparse(path: Path, size: int = GIB) -> Path:
    """A file of `size` bytes that takes no disk space (a hole)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def pdopt_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The real command in a child process (a FIFO must not hang it; memory is its own)."""
    return subprocess.run([sys.executable, "-m", "pdopt", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_dev_zero_is_refused_without_reading_it() -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    started = time.perf_counter()
    done = pdopt_cli("check", "/dev/zero")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == "/dev/zero: cannot read file: is a character device, not a regular " \
        "file\n"
    assert time.perf_counter() - started < 20


def test_a_fifo_is_refused_and_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    done = pdopt_cli("check", str(fifo), timeout=20)  # would hang forever if opened blocking
    assert done.returncode == 2
    assert done.stderr == f"{fifo}: cannot read file: is a named pipe (FIFO), not a regular file\n"
    with pytest.raises(ScenarioError, match="named pipe"):
        read_document(fifo)


def test_a_sparse_gigabyte_scenario_is_refused_from_its_size(tmp_path: Path) -> None:
    big = sparse(tmp_path / "big.yaml")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert errors(big) == [f"{big}: file is {GIB} bytes; scenario files are limited to "
                           f"{16 * 1024 * 1024} bytes"]
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024  # not read: far less than the file (ru_maxrss is in KiB)


def test_extends_to_a_huge_file_a_directory_or_a_fifo(tmp_path: Path) -> None:
    big = sparse(tmp_path / "base.yaml")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\n", encoding="utf-8")
    assert errors(child) == [f"{big}: file is {GIB} bytes; scenario files are limited to "
                             f"{16 * 1024 * 1024} bytes"]
    (tmp_path / "folder").mkdir()
    child.write_text("extends: folder\nname: child\n", encoding="utf-8")
    assert errors(child) == [f"{child}: extends: {tmp_path / 'folder'}: is a directory, not a "
                             "scenario file"]
    os.mkfifo(tmp_path / "pipe.yaml")
    child.write_text("extends: pipe.yaml\nname: child\n", encoding="utf-8")
    assert errors(child) == [f"{child}: extends: {tmp_path / 'pipe.yaml'}: is a named pipe "
                             "(FIFO), not a scenario file"]
    child.write_text("extends: nowhere.yaml\nname: child\n", encoding="utf-8")
    assert errors(child) == [f"{child}: extends: base file not found: {tmp_path / 'nowhere.yaml'}"]


def test_extends_to_a_huge_file_through_the_cli(tmp_path: Path) -> None:
    sparse(tmp_path / "base.yaml")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\n", encoding="utf-8")
    result = run("check", str(child))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "scenario files are limited to" in result.output


def test_a_directory_as_the_scenario(tmp_path: Path) -> None:
    result = run("check", str(tmp_path))
    assert result.exit_code == 2
    # click refuses a directory for this argument itself, or pdopt does: one line either way
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- traces


def write_csv(path: Path, rows: int) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("arrival_s,input_tokens,output_tokens\n")
        for k in range(rows):
            fh.write(f"{k * 0.5},{100 + k % 7},{20 + k % 3}\n")
    return path


def test_traces_are_capped_by_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv(tmp_path / "t.csv", 120)
    assert len(read_trace(path, "csv")) == 120
    monkeypatch.setattr(limits, "MAX_TRACE_ROWS", 100)
    with pytest.raises(TraceError, match=r"t.csv: more than 100 rows; traces are limited to 100 "
                                         r"rows"):
        read_trace(path, "csv")
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("".join(f'{{"timestamp": {k}, "input_length": 10, "output_length": 5}}\n'
                             for k in range(101)), encoding="utf-8")
    with pytest.raises(TraceError, match="more than 100 rows"):
        read_trace(jsonl, "mooncake")
    azure = tmp_path / "azure.csv"
    azure.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
        f"2023-11-16 18:15:{k % 60:02d}.0,100,10\n" for k in range(101)), encoding="utf-8")
    with pytest.raises(TraceError, match="more than 100 rows"):
        read_trace(azure, "azure")
    # counted before parsing: a bad row does not matter when there are too many lines
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_s,input_tokens,output_tokens\n" + "x,y,z\n" * 150, encoding="utf-8")
    with pytest.raises(TraceError, match="more than 100 rows"):
        read_trace(bad, "csv")


def test_length_files_are_capped_by_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("num_prefill_tokens,num_decode_tokens\n" + "10,5\n" * 60, encoding="utf-8")
    inputs, outputs = read_length_pairs(path)
    assert inputs.tolist() == [10.0] * 60 and outputs.tolist() == [5.0] * 60
    monkeypatch.setattr(limits, "MAX_LENGTH_ROWS", 50)
    with pytest.raises(TraceError, match="more than 50 rows; length files are limited to 50"):
        read_length_pairs(path)


def test_a_large_trace_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    """200,000 rows: the arrays hold 24 bytes a row; reading line by line adds no copy of the
    file (the old reader held every line as a Python string and every number as an object)."""
    path = write_csv(tmp_path / "t.csv", 200_000)
    code = (
        "import resource, sys\n"
        "from pdopt.simulate.traces import read_trace\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"r = read_trace({str(path)!r}, 'csv')\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base\n"
        "print(len(r), grown)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    rows, grown_kib = map(int, done.stdout.split())
    assert rows == 200_000
    assert grown_kib < 40 * 1024  # the file is 3.3 MB; the old reader grew by ~60 MB


@pytest.mark.parametrize(("name", "content", "says"), [
    ("nul.csv", "arrival_s,input_tokens,output_tokens\n0,1\x00,2\n", "line 2: input_tokens"),
    ("short.csv", "arrival_s,input_tokens,output_tokens\n0,1\n", "line 2: output_tokens: missing"),
    ("huge.csv", "arrival_s,input_tokens,output_tokens\n0," + "9" * 5000 + ",2\n",
     "line 2: input_tokens: expected a whole number from 0 to 10000000"),
    ("inf.csv", "arrival_s,input_tokens,output_tokens\ninf,1,2\n", "line 2: arrival_s"),
    ("big.jsonl", '{"timestamp": 0, "input_length": ' + "9" * 5000 + ', "output_length": 1}\n',
     "line 1: not valid JSON"),
    ("bigint.jsonl", '{"timestamp": 0, "input_length": ' + "9" * 400 + ', "output_length": 1}\n',
     "line 1: input_length: "),
])
def test_bad_trace_rows_are_one_line(tmp_path: Path, name: str, content: str, says: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TraceError) as info:
        read_trace(path, "mooncake" if name.endswith(".jsonl") else "csv")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message


def test_a_file_without_line_breaks_is_not_read_whole(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    big = sparse(tmp_path / "t.csv", GIB)  # a gigabyte of NUL bytes, no line break
    with pytest.raises(TraceError, match=f"line 1: longer than {limits.MAX_LINE_BYTES} bytes"):
        read_trace(big, "csv")
    monkeypatch.setattr(limits, "MAX_LINE_BYTES", 10)
    path = tmp_path / "t.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 1, "output_length": 1}\n', encoding="utf-8")
    with pytest.raises(TraceError, match="line 1: longer than 10 bytes"):
        read_trace(path, "mooncake")


def test_a_fifo_or_device_as_trace(tmp_path: Path) -> None:
    fifo = tmp_path / "t.csv"
    os.mkfifo(fifo)
    with pytest.raises(TraceError, match=r"cannot read file: is a named pipe \(FIFO\)"):
        read_trace(fifo, "csv")
    if os.path.exists("/dev/zero"):
        with pytest.raises(TraceError, match="is a character device"):
            read_length_pairs("/dev/zero")


@pytest.mark.parametrize("given_format", [True, False])
def test_a_trace_fifo_through_the_cli(tmp_path: Path, paper_scenario_path: Path,
                                      given_format: bool) -> None:
    """Without --trace-format the format is sniffed from the header: a FIFO is not opened for
    that either."""
    fifo = tmp_path / "t.csv"
    os.mkfifo(fifo)
    fmt = ["--trace-format", "csv"] if given_format else []
    done = pdopt_cli("simulate", str(paper_scenario_path), "--trace", str(fifo), *fmt, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == f"error: {fifo}: cannot read file: is a named pipe (FIFO), not a " \
        "regular file\n"


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_a_plan_file_that_is_not_one(tmp_path: Path, paper_scenario_path: Path,
                                     kind: str) -> None:
    if kind == "fifo":
        plan = tmp_path / "plan.json"
        os.mkfifo(plan)
        says = "cannot read file: is a named pipe (FIFO), not a regular file"
    elif kind == "device":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero here")
        plan, says = Path("/dev/zero"), "cannot read file: is a character device"
    else:
        plan = sparse(tmp_path / "plan.json")
        says = f"file is {GIB} bytes; plan files are limited to"
    done = pdopt_cli("simulate", str(paper_scenario_path), "--plan", str(plan), timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {plan}: {says}") and done.stderr.count("\n") == 1


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_an_empirical_length_file_that_is_a_fifo(tmp_path: Path,
                                                 paper_data: dict[str, Any]) -> None:
    plan = tmp_path / "plan.json"
    solved = pdopt_cli("solve", str(write_yaml(tmp_path / "plain.yaml", paper_data)), "--format",
                       "json", "-o", str(plan), timeout=120)
    assert solved.returncode == 0, solved.stderr
    os.mkfifo(tmp_path / "pairs.csv")
    paper_data["workloads"][0]["length_distribution"] = {"kind": "empirical",
                                                         "file": "pairs.csv"}
    path = write_yaml(tmp_path / "s.yaml", paper_data)
    done = pdopt_cli("simulate", str(path), "--plan", str(plan), "--duration", "10", timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "pairs.csv: cannot read file: is a named pipe (FIFO)" in done.stderr


def test_trace_readers_keep_their_results(tmp_path: Path) -> None:
    """The streamed readers give what the old ones gave: sorted, re-timed, lengths >= 1."""
    path = tmp_path / "t.csv"
    path.write_text("\ufeffarrival_s,input_tokens,output_tokens\r\n5,0,3\r\n\r\n2,7,0\r\n",
                    encoding="utf-8")
    r = read_trace(path, "csv", workload=1)
    assert r.arrival_s.tolist() == [0.0, 3.0]
    assert r.input_tokens.tolist() == [7, 1] and r.output_tokens.tolist() == [1, 3]
    assert r.workload.tolist() == [1, 1]
    assert traces.TRACE_FORMATS == ("azure", "mooncake", "csv")


def test_a_demand_curve_file_that_is_a_fifo(tmp_path: Path, paper_data: dict[str, Any]) -> None:
    from pdopt.scenario.demand import period_rates
    from pdopt.scenario.prepare import prepare

    os.mkfifo(tmp_path / "load.csv")
    paper_data["periods"] = {"count": 2, "length_h": 6}
    paper_data["workloads"][0]["demand"] = {"curve": {"file": "load.csv", "column": "rate"}}
    path = write_yaml(tmp_path / "day.yaml", paper_data)
    with pytest.raises(ScenarioError) as info:
        period_rates(prepare(path).scenario)  # would block on the FIFO's open
    assert "workloads[0].demand.curve.file: cannot read " in str(info.value)
    assert "is a named pipe (FIFO), not a regular file" in str(info.value)
    paper_data["workloads"][0]["demand"] = {"curve": {"file": "load.csv", "column": "rate",
                                                      "first_row": 10**12}}
    with pytest.raises(ScenarioError, match=r"first_row: must be < 1000000"):
        prepare(write_yaml(tmp_path / "far.yaml", paper_data))
