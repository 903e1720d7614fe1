"""Child processes that never outlive pdopt.

A worker process (a batch worker, a `part_worker` solving one model of a fleet) calls
`die_with_parent()` first thing. On Linux the kernel then kills it the moment the process that
started it exits, however that exits (kill -9 included: `prctl(PR_SET_PDEATHSIG)`); everywhere, a
watch thread also ends it within `poll_s` of its parent (or the pdopt process `owner_pid`, for
workers started by a fork server) going away.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_SECONDS = 0.5


def _alive(pid: int) -> bool:
    """Is `pid` running? A zombie (dead, not yet reaped by its parent) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def parent_death_signal() -> None:
    """Linux: the kernel sends SIGKILL to this process when the thread that started it exits.
    Cleared in forked children (each sets its own); nothing elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl (musl builds without it): the thread stays
        pass


def die_with_parent(parent_pid: int | None = None, owner_pid: int | None = None,
                    poll_s: float = POLL_SECONDS) -> None:
    """End this process (exit status 1, no cleanup) when its parent or `owner_pid` exits.

    `parent_pid` is the pid the parent gave its child (say on the command line): with it, a
    parent that died before this call is noticed too (the child has been re-parented by then)."""
    parent = parent_pid if parent_pid is not None else os.getppid()
    parent_death_signal()

    def orphaned() -> bool:
        return os.getppid() != parent or (owner_pid is not None and not _alive(owner_pid))

    if orphaned():  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if orphaned():
                os._exit(1)

    threading.Thread(target=watch, name="pdopt-parent-watch", daemon=True).start()
