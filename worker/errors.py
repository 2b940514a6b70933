"""The one error tree of the pipeline. Every failure carries a short machine `reason`.

    IngestError
    ├── TemporaryError   retry later: timeouts, connection errors, 5xx, 429 (`retry_after` seconds)
    ├── PermanentError   give up, record a failure: 4xx, not HTML, too large, blocked address, bad URL
    └── NotAnArticle     a drop: the page holds no article (empty extraction, a home page)

Feed problems use the same tree; a feed that parses to nothing is a `PermanentError("feed_malformed")`.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error the pipeline raises on purpose."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Errors cross process boundaries (the extraction pool); keep their fields.
        return (self.__class__, (self.reason, self.detail), self.__dict__)


class TemporaryError(IngestError):
    def __init__(self, reason: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(reason, detail)
        self.retry_after = retry_after


class PermanentError(IngestError):
    pass


class NotAnArticle(IngestError):
    pass
