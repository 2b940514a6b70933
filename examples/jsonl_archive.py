"""Example consumer: archive every article to JSON Lines files, one file per day (UTC, by fetch time).

    python -m examples.jsonl_archive --dir archive/ --group archive

Each message is written and flushed before it is acked, so a crash can repeat a line but never lose one;
updates (`article.updated`) are appended too, with their `revision`.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import redis

from config import load_settings
from worker.consumer import Message, subscribe


class DailyFiles:
    """Append-only writer that opens `<dir>/articles-YYYY-MM-DD.jsonl` for each day it sees."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._day: str | None = None
        self._file: IO[str] | None = None

    def write(self, day: str, line: str) -> None:
        if day != self._day:
            self.close()
            self._file = (self.directory / f"articles-{day}.jsonl").open("a", encoding="utf-8")
            self._day = day
        assert self._file is not None
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def archive(messages: Iterable[Message], directory: Path, max_count: int | None = None) -> int:
    files = DailyFiles(directory)
    count = 0
    try:
        for msg in messages:
            files.write(msg.article.fetched_at.date().isoformat(), msg.article.to_json())
            msg.ack()
            count += 1
            if max_count is not None and count >= max_count:
                break
    finally:
        files.close()
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("archive"))
    ap.add_argument("--group", default="jsonl-archive")
    ap.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
    ap.add_argument("--timeout", type=float, default=None, help="stop after this many idle seconds")
    args = ap.parse_args()
    settings = load_settings()
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    messages = subscribe(client, settings.stream, args.group, args.consumer, from_start=True,
                         idle_timeout=args.timeout)
    print(f"archived {archive(messages, args.dir)} articles to {args.dir}")


if __name__ == "__main__":
    main()
