"""Domain errors and the CLI's exit codes (one enum, documented in docs/cli.md)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of every `pdopt` command."""

    OK = 0
    SOME_FAILED = 1  # batch: at least one variant failed (the summary says which)
    INVALID_INPUT = 2  # bad file, bad flag, unreachable target in `pdopt ratio`
    INFEASIBLE = 3  # the scenario has no plan that meets every requirement
    NO_SOLUTION_IN_TIME = 4  # the time limit hit before any plan was found
    INTERRUPTED = 130  # batch: Ctrl-C; summaries written for what finished (128 + SIGINT)


class PdoptError(Exception):
    """Base class of every error pdopt reports to a user as a clean message."""

    exit_code: ExitCode = ExitCode.INVALID_INPUT


class UnreachableTargetError(PdoptError):
    """An SLO no load at all can meet on an instance type (e.g. TTFT below bare prefill time)."""


class ExtrapolationError(PdoptError):
    """A lookup outside a measured table's range; the scenario did not opt to extrapolate."""

