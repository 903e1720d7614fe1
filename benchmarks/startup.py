"""Start-up: the paper's scenario end to end (`pdopt solve`, process start to exit) beside an empty
interpreter (`python -c pass`), median of N runs each, interleaved so both see the same load.

    python benchmarks/startup.py [--runs 15]

Target (issue 15): the paper's scenario <= 0.5 s on an idle 2-core machine. On a loaded machine
the ratio to `python -c pass` and the CPU time (user + system) are the steadier numbers.

Python compiles every module it imports unless a bytecode cache (`__pycache__`) holds it; an
installed pdopt has one, but a shell with PYTHONDONTWRITEBYTECODE=1 never writes it and compiles
pdopt's ~60 modules on every run. Both are measured: "as this shell" (its environment) and
"bytecode cached" (PYTHONPYCACHEPREFIX in a temporary folder, written by a first run not timed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "scenarios" / "paper-deepseek-v31-h200.yaml"


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of `command`."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) \
        + (after.children_system - before.children_system)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    solve = [sys.executable, "-m", "pdopt", "solve", str(PAPER)]
    cache = tempfile.mkdtemp(prefix="pdopt-pycache-")
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = cache
    subprocess.run(solve, check=True, capture_output=True, env=cached)  # writes the cache
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "pdopt solve paper": (solve, None),
        "... bytecode cached": (solve, cached),
    }
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    load_before = os.getloadavg()[0]
    for _ in range(args.runs):
        for name, (command, env) in commands.items():
            wall, cpu = timed(command, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    base = statistics.median(walls["python -c pass"])
    print(f"{'command':>20}  {'median wall s':>13}  {'min wall s':>10}  {'median cpu s':>12}  "
          f"{'wall / pass':>11}")
    for name in commands:
        med = statistics.median(walls[name])
        print(f"{name:>20}  {med:13.3f}  {min(walls[name]):10.3f}  "
              f"{statistics.median(cpus[name]):12.3f}  {med / base:11.1f}")
    writes = "off" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on"
    print(f"({args.runs} interleaved runs each; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; this shell's bytecode writing: {writes}; "
          "target: pdopt solve paper <= 0.5 s wall on an idle 2-core machine)")


if __name__ == "__main__":
    main()
