"""Logging for every process: one format for people (`key=value` after the message) or JSON lines
(`INGEST_LOG_FORMAT=json`), each JSON line with the same keys so log pipelines can rely on them.

Call sites pass their decision fields as `extra={"feed": ..., "url": ..., "status": ..., "reason": ...}`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# Every JSON line carries exactly these keys (null when a record has no value for one).
KEYS = ("time", "level", "logger", "message", "task", "task_id", "feed", "url", "stage", "status", "reason")
_FIELDS = KEYS[6:]
_HANDLER = "news-ingest"


def _task() -> tuple[str | None, str | None]:
    try:
        from celery._state import get_current_task
    except ImportError:  # pragma: no cover - celery is a dependency
        return None, None
    task = get_current_task()
    if task is None or task.request.id is None:
        return None, None
    return task.name, task.request.id


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        name, task_id = _task()
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage() + (f"\n{self.formatException(record.exc_info)}" if record.exc_info else ""),
            "task": name,
            "task_id": task_id,
        }
        for key in _FIELDS:
            value = getattr(record, key, None)
            line[key] = value if value is None or isinstance(value, (int, float, bool)) else str(value)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        pairs = " ".join(f"{k}={getattr(record, k)}" for k in _FIELDS if getattr(record, k, None) is not None)
        if not pairs:
            return text
        head, sep, tail = text.partition("\n")  # keep a traceback below the key=value pairs
        return f"{head} {pairs}{sep}{tail}"


def configure_logging(level: str | int = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name(_HANDLER)
    root = logging.getLogger()
    # Replace only our own handler: others (a test runner's capture, an embedding app's) stay.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _HANDLER] + [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
