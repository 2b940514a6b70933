"""Imported by the fork server of the worker's extraction processes (`tasks.extractors`), once: the extraction stack
loaded and warmed there, so that every extraction process, forked from it, starts ready in milliseconds instead of
about a second of CPU (a fresh interpreter, trafilatura's imports, the language and date models), and shares those
pages with the others until it writes to them.

The objects made so far are then frozen out of the garbage collector's reach (`gc.freeze`): a collection in a
forked process would otherwise write to every one of them, and the kernel would copy each page it touched (4-5 ms
more a page over a new process's first hundred pages, measured).
"""

import gc

from tasks.extractors import fix_mmap_threshold
from worker.extract import warm

fix_mmap_threshold()  # before the warm-up's allocations, which the processes inherit
warm()
gc.freeze()
