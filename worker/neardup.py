"""Near-duplicate articles: the same wire story on two sites or under two URLs.

Each article's text gets a 64-bit SimHash over word 3-shingles; texts that differ in a few words (a changed
headline, a credit line, an extra sentence) land within a few bits of each other. The hash is split into
4 bands of 16 bits kept in Redis sets, so candidates are found in O(1) (any two hashes within 3 bits share at
least one band exactly) and then checked by Hamming distance. The earlier article wins: a later one carries
`duplicate_of` with its id.
"""

from __future__ import annotations

import hashlib
import re

import redis

MIN_WORDS = 60  # shorter texts are too alike by chance (briefs, photo captions) to call duplicates
MAX_DISTANCE = 3
BANDS = 4
_WORD = re.compile(r"\w+")


def simhash(text: str) -> int | None:
    """64-bit SimHash of the text's word 3-shingles, or None for a text too short to judge."""
    words = _WORD.findall(text.lower())
    if len(words) < MIN_WORDS:
        return None
    weights = [0] * 64
    for i in range(len(words) - 2):
        h = int.from_bytes(hashlib.blake2b(" ".join(words[i:i + 3]).encode(), digest_size=8).digest(), "big")
        for bit in range(64):
            weights[bit] += 1 if h >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if weights[bit] > 0)


def _band_keys(prefix: str, h: int) -> list[str]:
    return [f"{prefix}simhash:{b}:{h >> (16 * b) & 0xFFFF:04x}" for b in range(BANDS)]


def find_near_duplicate(client: redis.Redis, prefix: str, article_id: str, h: int) -> str | None:
    """The id of an earlier article whose text is within MAX_DISTANCE bits, if any."""
    pipe = client.pipeline(transaction=False)
    for key in _band_keys(prefix, h):
        pipe.smembers(key)
    best: tuple[int, str] | None = None
    for members in pipe.execute():
        for member in members:
            other_id, _, other_hash = member.partition(":")
            if other_id == article_id:
                continue
            distance = (int(other_hash, 16) ^ h).bit_count()
            if distance <= MAX_DISTANCE and (best is None or distance < best[0]):
                best = (distance, other_id)
    return best[1] if best else None


def remember(client: redis.Redis, prefix: str, article_id: str, h: int, ttl_seconds: int) -> None:
    pipe = client.pipeline(transaction=False)
    for key in _band_keys(prefix, h):
        pipe.sadd(key, f"{article_id}:{h:016x}")
        pipe.expire(key, ttl_seconds)
    pipe.execute()
