"""A worker process of `pdopt.optimize.decompose.solve_parts`: reads pickled arguments on stdin,
solves its models one after another, writes the pickled parts on stdout."""

from __future__ import annotations

import pickle
import sys

from pdopt.optimize.decompose import solve_in_turn


def main() -> None:
    scenario, names, objective, time_limit_s, mip_gap = pickle.loads(sys.stdin.buffer.read())
    parts = solve_in_turn(scenario, names, objective, time_limit_s, mip_gap)
    sys.stdout.buffer.write(pickle.dumps(parts))


if __name__ == "__main__":
    main()
