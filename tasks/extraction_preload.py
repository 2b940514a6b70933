"""Imported by the fork server of the worker's extraction processes (`tasks.extractors`), once: the extraction stack
loaded and warmed there, so that every extraction process, forked from it, starts ready in milliseconds instead of
about a second of CPU (a fresh interpreter, trafilatura's imports, the language and date models), and shares those
pages with the others until it writes to them."""

from tasks.extractors import fix_mmap_threshold
from worker.extract import warm

fix_mmap_threshold()  # before the warm-up's allocations, which the processes inherit
warm()
