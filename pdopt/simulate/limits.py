"""How large a simulation, a trace or a length file may be (docs/simulation.md, "Limits").

A simulated request costs about 400 bytes and 20 µs of one core (the paper's scenario, ~17 decode
steps per request: 2M requests took 860 MB and 37 s); the limits keep a run within ~2 GB and a
few minutes, and are checked before anything is allocated.
"""

from __future__ import annotations

#: Requests one simulation may generate or replay (expected count: rates x rate scale x
#: (warm-up + window + cool-down), plus the trace's requests).
MAX_SIMULATED_REQUESTS = 5_000_000
#: Decode steps one simulation may take (an upper bound: the fewer of the requests' output tokens
#: and each decode instance stepping at its shortest step time for the whole run). A step costs
#: about 1-2 µs: 1e8 steps are a few minutes.
MAX_DECODE_STEPS = 100_000_000
#: Simulated seconds of a window, warm-up or cool-down: 1e6 s is 11.6 days.
MAX_SIMULATED_S = 1e6
#: Multiplier of the workloads' (or a trace's) rates.
MAX_RATE_SCALE = 1e6
#: Rows of a trace file: a trace longer than one simulation can replay is refused while it is
#: read (cut it into windows).
MAX_TRACE_ROWS = MAX_SIMULATED_REQUESTS
#: Rows of an empirical length file (pairs are sampled with replacement; millions add nothing).
MAX_LENGTH_ROWS = MAX_SIMULATED_REQUESTS
#: Bytes of one line of a trace or length file: a row is under 100 bytes (a Mooncake row with the
#: block hashes of a 128k-token prompt, ~2 KB); a file without line breaks is not a trace.
MAX_LINE_BYTES = 1024 * 1024
