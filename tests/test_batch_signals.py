"""Ctrl-C, SIGTERM and kill -9 on real `pdopt` processes: exit 130 with the summaries of what
finished, no HiGHS error recorded, and no process (fork server, resource tracker, batch workers,
part_workers) left behind.

Each test starts pdopt (through HARNESS, which marks the start of each HiGHS run) in a session
of its own, waits until the run is where the
signal should land (a plan written, part_worker processes started), sends the signal (to the
whole process group for a terminal's Ctrl-C) and checks the exit status, the files and the
process tree. The slow scenarios are synthetic fleets from benchmarks/fleetgen.py solved to a
zero gap (tens of seconds), so the signal always arrives mid-solve.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="process groups and signals as on Linux")
ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 90.0  # a loaded 2-core machine can take this long to start and reach a point


def fleet(models: int, seed: int) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("fleetgen", ROOT / "benchmarks" / "fleetgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data: dict[str, Any] = module.fleet(models, 8, 4, 3, seed=seed)
    data["options"] = {"mip_gap": 0.0, "time_limit_s": 300}
    return data


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# `python -m pdopt` that says `solving` on stderr as each HiGHS run starts (so a test can send its
# signal while HiGHS runs, the case HiGHS used to report as an error)
HARNESS = """
import sys
from highspy import Highs
real_run = Highs.run
def run(self, *args, **kwargs):
    print("solving", file=sys.stderr, flush=True)
    return real_run(self, *args, **kwargs)
Highs.run = run
from pdopt.cli import main
main(sys.argv[1:], prog_name="pdopt")
"""


class Run:
    """`pdopt ARGS` in its own session; its process tree and its stderr lines as they come."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HARNESS, *args], cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.seen: dict[int, psutil.Process] = {}
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # ends when every process holding the pipe has exited
            self.lines.append(line)

    def note_descendants(self) -> list[psutil.Process]:
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass
        return list(self.seen.values())

    def wait_until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition():
            self.note_descendants()
            assert self.proc.poll() is None, f"pdopt ended early: {''.join(self.lines)}"
            assert time.monotonic() < deadline, "pdopt did not get there in time"
            time.sleep(0.1)
        self.note_descendants()

    def solving(self) -> bool:
        return "solving\n" in self.lines

    def signal(self, sig: int, group: bool = False) -> None:
        self.note_descendants()
        if group:  # a terminal's Ctrl-C reaches every process of the foreground group
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def finish(self, timeout_s: float = 30.0) -> tuple[int, str]:
        """pdopt's exit status and its stderr after the last `solving` line. Fails when pdopt
        or a process holding its stderr is still running after `timeout_s`."""
        try:
            self.proc.wait(timeout_s)
        finally:
            self.reader.join(timeout_s)
        alive = [" ".join(p.cmdline())[:100] for p in self.seen.values() if _running(p)]
        assert not self.reader.is_alive(), f"processes still hold pdopt's stderr: {alive}"
        after = [line for line in self.lines if line != "solving\n"]
        return self.proc.returncode, "".join(after)

    def leftovers(self, timeout_s: float = 15.0) -> list[psutil.Process]:
        """Descendants ever seen that still run after `timeout_s` (zombies count as gone)."""
        deadline = time.monotonic() + timeout_s
        while True:
            alive = [p for p in self.seen.values() if _running(p)]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.2)

    def kill_all(self) -> None:
        for p in [*self.seen.values()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:  # never leave a stray process behind, even when a test fails
        run.kill_all()


def part_workers(run: Run) -> list[psutil.Process]:
    found = []
    for p in run.note_descendants():
        try:
            command = " ".join(p.cmdline())
            # models alone (O.2) or, with inventories coupling them, pricing programs (O.8)
            if _running(p) and ("pdopt.optimize.part_worker" in command
                                or "pdopt.optimize.pricing_worker" in command):
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture(scope="module")
def slow_one_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("slow") / "slow.yaml", fleet(1, seed=3))


@pytest.fixture
def batch_folder(tmp_path: Path, paper_scenario_path: Path, slow_one_model: Path) -> Path:
    """a-fast (the paper's scenario, milliseconds) then b-slow (tens of seconds)."""
    folder = tmp_path / "in"
    write(folder / "a-fast.yaml", yaml.safe_load(paper_scenario_path.read_text()))
    write(folder / "b-slow.yaml", yaml.safe_load(slow_one_model.read_text()))
    return folder


@pytest.mark.parametrize("sig, group", [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["ctrl-c", "sigterm"])
def test_solve_stops_with_130_not_a_highs_error(slow_one_model: Path, tmp_path: Path,
                                                runs: list[Run], sig: int, group: bool) -> None:
    run = Run("solve", str(slow_one_model), cwd=tmp_path)
    runs.append(run)
    run.wait_until(run.solving)
    time.sleep(1.0)  # well inside HiGHS: the solve takes tens of seconds
    run.signal(sig, group)
    code, err = run.finish()
    assert code == 130, err
    assert err == "interrupted\n"
    assert not run.leftovers()


@pytest.mark.parametrize("jobs, sig, group", [
    ("1", signal.SIGINT, True), ("2", signal.SIGTERM, False),
], ids=["jobs1-ctrl-c", "jobs2-sigterm"])  # each signal reaches both kinds of executor the same
def test_batch_stops_writes_what_finished_and_exits_130(
        batch_folder: Path, tmp_path: Path, runs: list[Run], jobs: str, sig: int,
        group: bool) -> None:
    out = tmp_path / "out"
    run = Run("batch", str(batch_folder), "-o", str(out), "--jobs", jobs, cwd=tmp_path)
    runs.append(run)
    run.wait_until(lambda: (out / "plans" / "a-fast.sha256").exists())
    time.sleep(1.5)  # b-slow is being solved now
    run.signal(sig, group)
    code, err = run.finish()
    assert code == 130, err
    assert "interrupted: 1 of 2 variants done" in err and "Traceback" not in err
    rows = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"]) for r in rows] == [("a-fast", "optimal")]
    assert not (out / "plans" / "b-slow.json").exists()  # not recorded as a HiGHS error
    assert not run.leftovers()


def test_kill_9_of_a_batch_leaves_no_process(batch_folder: Path, tmp_path: Path,
                                            runs: list[Run]) -> None:
    out = tmp_path / "out"
    run = Run("batch", str(batch_folder), "-o", str(out), "--jobs", "2", cwd=tmp_path)
    runs.append(run)
    run.wait_until(lambda: (out / "plans" / "a-fast.sha256").exists())
    time.sleep(1.5)
    assert len(run.note_descendants()) >= 3  # fork server, resource tracker, workers
    run.signal(signal.SIGKILL)
    code, _ = run.finish()
    assert code == -signal.SIGKILL
    assert not run.leftovers()


@pytest.fixture(scope="module")
def slow_fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("fleet") / "fleet.yaml", fleet(6, seed=0))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="models are solved in parallel workers "
                    "only with 2 cores or more")
@pytest.mark.parametrize("sig, group", [(signal.SIGINT, True), (signal.SIGKILL, False)],
                         ids=["ctrl-c", "kill-9"])
def test_part_workers_of_a_fleet_solve_die_with_pdopt(slow_fleet: Path, tmp_path: Path,
                                                      runs: list[Run], sig: int,
                                                      group: bool) -> None:
    run = Run("solve", str(slow_fleet), cwd=tmp_path)
    runs.append(run)
    run.wait_until(lambda: len(part_workers(run)) >= 2)
    time.sleep(1.0)
    run.signal(sig, group)
    code, err = run.finish()
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 130 and err == "interrupted\n"
    assert not run.leftovers()
    time.sleep(1.0)  # a surviving worker would print its BrokenPipe traceback about now
    assert "Traceback" not in err and "BrokenPipe" not in err
