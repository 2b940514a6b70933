"""A stand-in for `worker.extract.extract_page` that can be told to hang, for the extraction deadline's tests.

It lives in an importable module because the extraction pool's processes are not forks of the test process (a
fork server's children, or spawned): a function handed to the pool travels by name, so a test monkeypatches
`worker.extract.extract_page` with this one.
"""

from __future__ import annotations

import os
import time

from worker.extract import extract_page as _extract_page
from worker.models import Extracted

HANG = b"hang:"  # a body `hang:<seconds>\n<page>` sleeps that long, then extracts the page
CRASH = b"crash\n"  # a body `crash\n<page>` ends its process at once, as a segfault in lxml would


def extract_page(body: bytes, content_type: str | None, url: str, drop: tuple[str, ...] = ()) -> Extracted:
    if body.startswith(CRASH):
        os._exit(70)
    if body.startswith(HANG):
        head, _, body = body.partition(b"\n")
        time.sleep(float(head[len(HANG):]))
    return _extract_page(body, content_type, url, drop)
