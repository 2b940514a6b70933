"""The Linux CPU scheduling policy of our processes: I/O bookkeeping yields to extraction.

The worker's fetching threads, the scheduler and the private Redis wake thousands of times a second under load,
each time for a fraction of a millisecond. Under the default policy a thread that wakes preempts the extraction
running on that core, and trafilatura's caches go cold: in the throughput benchmark the extraction processes were
preempted about 12 times per page, and spent 5-15 % more CPU per page than alone. Under `SCHED_BATCH` a thread
that wakes does not preempt: it runs when the current one's time slice ends (a few milliseconds later at most, on
a busy machine only). It keeps its full share of the CPU; it only gives up the right to cut in. Lowering one's
own policy to `SCHED_BATCH` needs no privilege. Where the calls are missing (not Linux), nothing changes.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def yield_to_extraction(pid: int = 0) -> bool:
    """Put a thread under `SCHED_BATCH`: the calling one (`pid` 0), or process `pid`'s main thread. Threads
    started afterwards by that thread inherit it, as do its child processes. False where it cannot be done."""
    return _set(pid, "SCHED_BATCH")


def default_policy() -> bool:
    """Put the calling thread back under the default policy (`SCHED_OTHER`): for extraction processes, started
    by a worker that yields to them."""
    return _set(0, "SCHED_OTHER")


def start_extraction() -> None:
    """An extraction process's initializer: back under the default policy (it inherits the worker's), then the
    extraction stack loaded (`worker.extract.warm`)."""
    from worker.extract import warm

    default_policy()
    warm()


def _set(pid: int, policy: str) -> bool:
    if not hasattr(os, "sched_setscheduler") or not hasattr(os, policy):
        return False
    try:
        os.sched_setscheduler(pid, getattr(os, policy), os.sched_param(0))
    except OSError as exc:  # a process that is gone, or a sandbox that forbids it
        log.debug("scheduling policy %s not set: %s", policy, exc)
        return False
    return True
