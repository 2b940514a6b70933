"""The article stream: the one module that writes it (`XADD`), exactly once per article version.

Each entry has flat fields for cheap filtering (`event`, `id`, `url`, `site`, `section`, `published_at`,
`revision`) and `article`, the full `article/v1` JSON. A Lua script reads the `published:<id>` marker (a hash:
stream entry, content hash, revision) and decides in one atomic step:

- no marker: add `article.created` (revision 1);
- marker with the same content hash: add nothing (a task that ran twice, a redelivery, an unchanged re-fetch);
- marker with another content hash: add `article.updated` with the next revision.

Retention is bounded: by count (`MAXLEN ~ n`) or, when a maximum age is set, by age (`MINID ~ now-age`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis

from worker.models import Article

EVENT_CREATED = "article.created"
EVENT_UPDATED = "article.updated"
_JSON_END = ',"revision":1}'  # how an Article's JSON ends when its revision is 1: the model's last field

# KEYS: marker, stream. ARGV: trim kind (MAXLEN|MINID), trim value, marker ttl, content hash, then field pairs
# in which the values of `event` and `revision` are placeholders the script fills in, and `article` is the JSON
# cut just before the value of `"revision":` (the model's last field), which the script appends with the closing
# brace. (A `string.gsub` over the whole JSON took Redis ~85 us an article, half its time in this script.)
_PUBLISH = """
local old_hash = redis.call('HGET', KEYS[1], 'hash')
if old_hash == ARGV[4] then return {0, redis.call('HGET', KEYS[1], 'entry'), 0} end
local revision = 1
local event = 'article.created'
if old_hash then
  revision = tonumber(redis.call('HGET', KEYS[1], 'revision') or '1') + 1
  event = 'article.updated'
end
local fields = {}
for i = 5, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  if name == 'event' then value = event
  elseif name == 'revision' then value = tostring(revision)
  elseif name == 'article' then value = value .. revision .. '}'
  end
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
local id = redis.call('XADD', KEYS[2], ARGV[1], '~', ARGV[2], '*', unpack(fields))
redis.call('HSET', KEYS[1], 'entry', id, 'hash', ARGV[4], 'revision', revision)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, id, revision}
"""


@dataclass(frozen=True)
class Published:
    entry_id: str
    new: bool  # False: this version was already on the stream, nothing was written
    revision: int = 1


@dataclass(frozen=True)
class Retention:
    maxlen: int
    max_age_seconds: float = 0.0  # when set, trim by age instead of count

    def trim_args(self, now: float | None = None) -> tuple[str, str]:
        if self.max_age_seconds:
            cutoff_ms = int(((time.time() if now is None else now) - self.max_age_seconds) * 1000)
            return "MINID", f"{max(cutoff_ms, 0)}-0"
        return "MAXLEN", str(self.maxlen)


def published_key(prefix: str, article_id: str) -> str:
    return f"{prefix}published:{article_id}"


def is_published(client: redis.Redis, prefix: str, article_id: str) -> bool:
    return bool(client.exists(published_key(prefix, article_id)))


def content_hash(article: Article) -> str:
    """What counts as a material change: the title or the text, whitespace aside."""
    return text_hash(article.title, article.text)


def text_hash(title: str, text: str) -> str:
    """`content_hash` of an article with this title and text (extraction processes compute it beside SimHash,
    where the text was just made, rather than the worker's threads, which wait for the GIL among dozens)."""
    material = " ".join(f"{title}\n{text}".split())
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def stream_fields(article: Article, event: str = EVENT_CREATED) -> dict[str, str]:
    return {
        "event": event,
        "id": article.id,
        "url": article.url,
        "site": article.site.domain,
        "section": article.section or "",
        "published_at": article.published_at.isoformat() if article.published_at else "",
        "revision": str(article.revision),
        "article": article.to_json(),
    }


def publish_article(
    client: redis.Redis, stream: str, prefix: str, article: Article, *, retention: Retention, marker_ttl: int,
    known_hash: str | None = None,
) -> Published:
    """Add the article unless this version is already on the stream. Safe to call any number of times.
    `known_hash`: its `content_hash`, when the caller has it already."""
    fields = stream_fields(article.model_copy(update={"revision": 1}))
    if not fields["article"].endswith(_JSON_END):
        raise ValueError(f"an article's JSON must end with {_JSON_END!r} (worker.models.Article)")
    fields["article"] = fields["article"].removesuffix("1}")  # the script appends the revision and "}"
    kind, value = retention.trim_args()
    argv: list[str | int] = [kind, value, marker_ttl, known_hash or content_hash(article)]
    for name, field_value in fields.items():
        argv.extend((name, field_value))
    new, entry_id, revision = client.eval(_PUBLISH, 2, published_key(prefix, article.id), stream, *argv)
    entry = entry_id if isinstance(entry_id, str) else entry_id.decode()
    return Published(entry_id=entry, new=bool(new), revision=int(revision) or 1)
