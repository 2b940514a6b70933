"""The worker's extraction processes, each fed through its own pipe by the thread that fetched the page.

trafilatura is CPU-bound and not thread-safe, so pages are extracted in processes while fetches run on the
worker's threads. `concurrent.futures.ProcessPoolExecutor` did this before, at a price measured in the throughput
benchmark: a page crossed two extra threads of the worker (the executor's manager and its queue feeder) each way,
every crossing a wake-up and a wait for the GIL among dozens of fetching threads; and a process sat idle from its
answer until the next page reached it. Here the thread that needs a page extracted writes it straight into a
process's pipe and reads the answer from it; each process has a line of `depth` pages (one running, the next
already in its pipe), so it never waits for the worker's threads.

Deadlines and failures: a page has `timeout` seconds from when it reaches the head of its process's line (waiting
behind another page does not count). Past that, the process is killed (a running extraction cannot be stopped
otherwise) and the page fails as `PermanentError("extract_timeout")`; a process that dies under a page fails it as
`TemporaryError("extractor_crashed")` (retried). The pages behind it in that line never began: they go to another
process. A process is replaced when it died, when its resident memory after a page passes `max_rss` bytes, or
after `max_tasks` pages; a new one runs `initializer` (the warm-up) before its first page.

Starting a process. Where there is a fork server (Linux), the processes are forked from it, and it has imported
the `preload` modules once (the worker's: the extraction stack, warmed): a new process is ready in tens of
milliseconds, and shares those pages with the others until it writes to them. Elsewhere a process is spawned: a
fresh interpreter, its imports and warm-up, about a second of CPU. Never a fork of the threaded worker itself.

Memory. A process's resident memory grows over its first few hundred pages to the high-water mark of the largest
ones, then stays there (real pages: 145 MiB warm, 203 MiB after 500 pages, the same after 4,000); one-off caches
can add to it (trafilatura's jusText fallback, on a page of no known language, keeps every language's stopwords:
about 34 MiB). Replacing a process every few hundred pages "to bound its memory" cost more than a tenth of the
extraction's CPU when a start cost a second; it is replaced on its measured memory instead. Allocations of 128 KiB
and more (a page's text and buffers) get their own mapping, returned to the system when freed, rather than glibc's
default threshold, which rises after such frees and leaves them in the heap: 195 MiB instead of 203, at the same
speed.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from worker.errors import PermanentError, TemporaryError

JOIN_SECONDS = 5.0  # for a retired process to exit after its pipe is closed, before it is killed
MMAP_THRESHOLD = 128 * 1024  # bytes; see the module's docstring
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _serve(conn: Connection, initializer: Callable[[], object] | None) -> None:
    """An extraction process: run `(fn, args)` jobs from the pipe, answer `(True, result, rss)` or `(False, error,
    rss)` (`rss`: its resident memory in bytes after the job, 0 if unknown), until the pipe closes."""
    fix_mmap_threshold()
    if initializer is not None:
        initializer()
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[bool, Any, int] = (True, fn(*args), _rss())
        except Exception as exc:
            answer = (False, exc, _rss())
        try:
            conn.send(answer)
        except Exception as exc:  # an answer that cannot be pickled
            conn.send((False, RuntimeError(f"unpicklable answer: {type(exc).__name__}: {exc}"[:300]), answer[2]))


def fix_mmap_threshold() -> None:
    # The process's own symbols include the C library's: no `ctypes.util.find_library`, which runs `ldconfig -p`
    # (12 ms at every start).
    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError, TypeError):  # not glibc (no mallopt): its own allocator's defaults
        pass


def _context(preload: Sequence[str]) -> Any:
    """Processes forked from a fork server that imported `preload` (where there is one: Linux), else spawned: never
    a fork of the threaded worker itself. The fork server is one per process and imports its preload when it
    starts: that of the last pool made in this process before then."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    return ctx


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: no limit applies
        return 0


class _Ticket:
    """One page in a process's line. `turn` is set when it reaches the head (`since`: when) or when the process
    is gone before it began (`resend`)."""

    __slots__ = ("resend", "since", "turn")

    def __init__(self) -> None:
        self.turn, self.since, self.resend = threading.Event(), 0.0, False

    def head(self) -> None:
        self.since = time.monotonic()
        self.turn.set()


class _Extractor:
    """One process, its pipe and its line of tickets (the head's page is running; the others wait in the pipe)."""

    def __init__(self, ctx: Any, initializer: Callable[[], object] | None) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, initializer), daemon=True, name="extraction")
        self.process.start()
        child.close()
        self.line: deque[_Ticket] = deque()
        self.sent = 0
        self.full = False  # its memory passed the pool's max_rss: it takes no new page
        self.open = True  # takes new pages; False once it is retiring, killed or dead
        self.lock = threading.Lock()  # the line
        self.send_lock = threading.Lock()  # a page joins the line and enters the pipe in one order

    def stop(self, kill: bool = False) -> None:
        """End the process: kill it, or close its pipe and let it finish (killed if it has not after a while)."""
        self.open = False
        with contextlib.suppress(OSError):
            self.conn.close()
        if not kill:
            self.process.join(JOIN_SECONDS)
        if self.process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self.process.kill()
            self.process.join(JOIN_SECONDS)


class ExtractorPool:
    """`processes` extraction processes (started on first use); `run(fn, *args)` runs `fn` in one of them."""

    def __init__(self, processes: int, timeout: float, max_tasks: int, *, depth: int = 2,
                 initializer: Callable[[], object] | None = None, max_rss: int | None = None,
                 preload: Sequence[str] = ()) -> None:
        self.processes, self.timeout, self.max_tasks, self.depth = processes, timeout, max_tasks, depth
        self.max_rss = max_rss
        self.initializer = initializer
        self._ctx = _context(preload)
        self._slots: list[_Extractor | None] = [None] * processes
        self._room = threading.Condition()
        self._closed = False

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        while True:
            extractor, ticket = self._enter(fn, args)
            try:
                return self._answer(extractor, ticket)
            except _Resend:
                continue

    def warm_up(self) -> None:
        """Start every process and wait until each has run the initializer."""
        with self._room:
            extractors = [e for e in map(self._slot, range(self.processes)) if e.open]
        for extractor in extractors:
            self._answer(extractor, self._send(extractor, int, ()))

    def pids(self) -> list[int]:
        return [e.process.pid for e in self._slots if e is not None and e.process.pid is not None]

    def close(self) -> None:
        """Take no new page, let the lines empty (each page has its deadline), then end the processes."""
        with self._room:
            self._closed = True
            self._room.notify_all()
            deadline = time.monotonic() + self.timeout * self.depth
            while any(e is not None and e.line for e in self._slots) and time.monotonic() < deadline:
                self._room.wait(deadline - time.monotonic())
            extractors, self._slots = [e for e in self._slots if e is not None], [None] * self.processes
        for extractor in extractors:
            extractor.stop(kill=bool(extractor.line))

    # --- inside -----------------------------------------------------------------------------------------------

    def _slot(self, i: int) -> _Extractor:
        """The process in slot `i`, started if there is none (call with `_room` held)."""
        extractor = self._slots[i]
        if extractor is None:
            extractor = self._slots[i] = _Extractor(self._ctx, self.initializer)
        return extractor

    def _enter(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[_Extractor, _Ticket]:
        """Put the page in the shortest line with room (waiting for room), and in that process's pipe."""
        ticket = _Ticket()
        with self._room:
            while True:
                if self._closed:
                    raise TemporaryError("extractor_crashed", "the extraction pool is closed")
                lines = [e for e in map(self._slot, range(self.processes))
                         if e.open and len(e.line) < self.depth and not self._spent(e)]
                if lines:
                    best = min(lines, key=lambda e: len(e.line))
                    with best.lock:  # counted in its line now, so no other thread overfills it
                        if best.open:  # not broken meanwhile by a thread that holds only its lock
                            best.line.append(ticket)
                            best.sent += 1
                            break
                    continue
                self._room.wait()
        return best, self._send(best, fn, args, ticket)

    def _send(self, extractor: _Extractor, fn: Callable[..., Any], args: tuple[Any, ...],
              ticket: _Ticket | None = None) -> _Ticket:
        if ticket is None:  # warm_up's probe: joins the line here
            ticket = _Ticket()
            with extractor.lock:
                extractor.line.append(ticket)
        with extractor.send_lock:
            with extractor.lock:
                if extractor.line and extractor.line[0] is ticket:
                    ticket.head()
            try:
                extractor.conn.send((fn, args))
            except (OSError, ValueError, TypeError):  # the process is gone, or its pipe was closed mid-send (the
                pass  # handle becomes None): the head's thread finds out and this ticket is sent elsewhere
        return ticket

    def _answer(self, extractor: _Extractor, ticket: _Ticket) -> Any:
        """Wait for the ticket's turn and its answer; then hand the head to the next ticket."""
        if not ticket.turn.wait(self.timeout * (self.depth + 1)) or ticket.resend:
            self._leave(extractor, ticket, broken=not ticket.turn.is_set())
            raise _Resend
        try:
            if not extractor.conn.poll(max(0.0, ticket.since + self.timeout - time.monotonic())):
                self._leave(extractor, ticket, broken=True, kill=True)
                raise PermanentError("extract_timeout", f"no result after {self.timeout:g} s")
            ok, value, rss = extractor.conn.recv()
        except (EOFError, OSError, TypeError):  # TypeError: its pipe closed mid-read (the handle becomes None)
            self._leave(extractor, ticket, broken=True)
            raise TemporaryError("extractor_crashed", "an extraction process died") from None
        if self.max_rss and rss > self.max_rss:
            extractor.full = True  # the pages already in its line still run there
        self._leave(extractor, ticket)
        if not ok:
            raise value
        return value

    def _leave(self, extractor: _Extractor, ticket: _Ticket, broken: bool = False, kill: bool = False) -> None:
        """Take the ticket off the line. A broken process is killed and replaced, and the tickets behind are sent
        elsewhere; a process that has had its pages retires when its line is empty."""
        with extractor.lock:
            with contextlib.suppress(ValueError):
                extractor.line.remove(ticket)
            behind = list(extractor.line)
            if broken:
                extractor.open, extractor.line = False, deque()
                for other in behind:
                    other.resend = True
                    other.turn.set()
            elif behind and not behind[0].turn.is_set():
                behind[0].head()
            done = not extractor.line and (broken or self._spent(extractor))
        if done:
            with self._room:
                self._slots = [None if e is extractor else e for e in self._slots]
            extractor.stop(kill=kill or broken)
        with self._room:  # room in one line; or a whole new process's, or close() waiting
            if done or self._closed:
                self._room.notify_all()
            else:
                self._room.notify()

    def _spent(self, extractor: _Extractor) -> bool:
        """It takes no new page: it has had its `max_tasks` pages, or its memory passed `max_rss`."""
        return extractor.full or extractor.sent >= self.max_tasks


class _Resend(Exception):
    """The ticket's process went away before its page began: enter another line."""
