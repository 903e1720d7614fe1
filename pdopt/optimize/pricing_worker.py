"""A worker process of `pdopt.optimize.lagrange.ProcessPricer`: builds the pricing programs of
its models once, then answers one pricing round per request (framed pickles on stdin/stdout).

Usage: `python -m pdopt.optimize.pricing_worker PARENT_PID`. Requests: ("init", scenario, names,
objective, deadline), then ("lp",), ("plans", values) and ("price", prices, deadline, mip_gap,
repairs, least) any number of times (`least`: see `lagrange.price_in_turn`); the answer to "lp" is
the list of its programs as LPs (`whole_lp.BlockLP`, O24), to "plans" the list of `Priced` plans of
its models at their columns' values (the rounded whole LP's, O25), to each "price" the pair of
lists of `Priced`: its models priced at `prices` (none when `prices` is None) and those of
`repairs` (model name: caps) within their caps (O23). It dies with the process that started it
(pdopt.children) and leaves Ctrl-C to that process, which stops it."""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from typing import Any


def _read(stream: Any) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    size = struct.unpack("<Q", head)[0]
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    return pickle.loads(body)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C is the parent's to handle
    from pdopt.children import die_with_parent

    die_with_parent(int(sys.argv[1]) if len(sys.argv) > 1 else None)
    from pdopt.optimize.lagrange import LocalPricer, _send

    try:
        _, scenario, names, objective, deadline = _read(sys.stdin.buffer)
        pricer = LocalPricer(scenario, names, objective, deadline)
        while True:
            request = _read(sys.stdin.buffer)
            if request[0] == "lp":
                _send(sys.stdout.buffer, pricer.lps(deadline))
                continue
            if request[0] == "plans":
                _send(sys.stdout.buffer, pricer.plans(request[1], deadline))
                continue
            _, prices, deadline, mip_gap, repairs, least = request
            _send(sys.stdout.buffer, pricer.price(prices, deadline, mip_gap, repairs, least))
    except (EOFError, pickle.UnpicklingError, BrokenPipeError):  # the parent stopped: done
        os._exit(0)


if __name__ == "__main__":
    main()
