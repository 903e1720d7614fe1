"""A worker process of `pdopt.optimize.decompose.solve_parts`: reads pickled arguments on stdin,
solves its models one after another, writes the pickled parts on stdout.

Usage: `python -m pdopt.optimize.part_worker PARENT_PID`. It dies with the process that started
it (pdopt.children) and leaves Ctrl-C to that process (which kills it), so no worker outlives
pdopt or writes to a pipe nobody reads."""

from __future__ import annotations

import os
import pickle
import signal
import sys


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C is the parent's to handle
    from pdopt.children import die_with_parent

    die_with_parent(int(sys.argv[1]) if len(sys.argv) > 1 else None)
    from pdopt.optimize.decompose import solve_in_turn

    try:
        scenario, names, objective, deadline, mip_gap = pickle.loads(sys.stdin.buffer.read())
    except (EOFError, pickle.UnpicklingError):  # the parent stopped while sending: it is gone
        os._exit(1)
    parts = solve_in_turn(scenario, names, objective, deadline, mip_gap)
    try:
        sys.stdout.buffer.write(pickle.dumps(parts))
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # the parent stopped reading: nothing to report to anyone
        os._exit(1)


if __name__ == "__main__":
    main()
