"""Imported by the fork server of the batch's worker processes (and only there: it is in the
server's preload list, pdopt.batch.executors._worker_context), so that the server dies with pdopt
(kill -9 included), and with it the workers it forked, which die with the server.

Without it, a pdopt killed while its parent has not yet reaped it (a zombie) keeps the server
and its workers running: the server waits for its pipe from pdopt to close, the workers for
pdopt to disappear."""

from __future__ import annotations

from pdopt.children import parent_death_signal

parent_death_signal()
