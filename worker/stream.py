"""The article stream: the one module that writes it (`XADD`), exactly once per article id.

Each entry has flat fields for cheap filtering (`event`, `id`, `url`, `site`, `section`, `published_at`) and
`article`, the full `article/v1` JSON. A Lua script checks the `published:<id>` marker and adds the entry in
one atomic step, so a task that runs twice (redelivery, retry, a worker killed before its ack) publishes once.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.models import Article

EVENT_CREATED = "article.created"

_PUBLISH_ONCE = """
local done = redis.call('GET', KEYS[1])
if done then return {0, done} end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[1], id, 'EX', ARGV[2])
return {1, id}
"""


@dataclass(frozen=True)
class Published:
    entry_id: str
    new: bool  # False: it was already on the stream, nothing was written


def published_key(prefix: str, article_id: str) -> str:
    return f"{prefix}published:{article_id}"


def is_published(client: redis.Redis, prefix: str, article_id: str) -> bool:
    return bool(client.exists(published_key(prefix, article_id)))


def stream_fields(article: Article, event: str = EVENT_CREATED) -> dict[str, str]:
    return {
        "event": event,
        "id": article.id,
        "url": article.url,
        "site": article.site.domain,
        "section": article.section or "",
        "published_at": article.published_at.isoformat() if article.published_at else "",
        "article": article.to_json(),
    }


def publish_article(
    client: redis.Redis, stream: str, prefix: str, article: Article, *, maxlen: int, marker_ttl: int
) -> Published:
    fields = stream_fields(article)
    argv: list[str | int] = [maxlen, marker_ttl]
    for name, value in fields.items():
        argv.extend((name, value))
    new, entry_id = client.eval(_PUBLISH_ONCE, 2, published_key(prefix, article.id), stream, *argv)
    return Published(entry_id=entry_id if isinstance(entry_id, str) else entry_id.decode(), new=bool(new))
