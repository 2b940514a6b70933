"""Near-duplicate articles: the same wire story on two sites or under two URLs.

Each article's text gets a 64-bit SimHash over word 3-shingles; texts that differ in a few words (a changed
headline, a credit line, an extra sentence) land within a few bits of each other. The hash is split into
4 bands of 16 bits kept in Redis sets, so candidates are found in O(1) (any two hashes within 3 bits share at
least one band exactly) and then checked by Hamming distance. The earlier article wins: a later one carries
`duplicate_of` with its id. A band holds at most BAND_CAP articles, so a story seen thousands of times costs each
lookup a bounded read.
"""

from __future__ import annotations

import re

import redis
import xxhash

MIN_WORDS = 60  # shorter texts are too alike by chance (briefs, photo captions) to call duplicates
MAX_DISTANCE = 3
BANDS = 4
BAND_CAP = 100  # members per band: the same story seen 10,000 times must not make each lookup read 10,000
_WORD = re.compile(r"\w+")
# KEYS: the band sets, then other sets to read in the same round trip. ARGV: member (id:hash), ttl, cap, number of
# bands. Returns each band's members as they were, then each other set's members; adds the member to the bands
# that hold fewer than `cap` (a full band already holds enough earlier texts to match against).
_FIND_AND_REMEMBER = """
local found, cap, bands = {}, tonumber(ARGV[3]), tonumber(ARGV[4])
for i, key in ipairs(KEYS) do
  if i > bands then
    found[i] = redis.call('SMEMBERS', key)
  else
    found[i] = redis.call('SRANDMEMBER', key, cap)
    if #found[i] < cap then redis.call('SADD', key, ARGV[1]) end
    redis.call('EXPIRE', key, ARGV[2])
  end
end
return found
"""


def simhash(text: str) -> int | None:
    """64-bit SimHash of the text's word 3-shingles, or None for a text too short to judge.

    Bit b is set when more than half of the shingles' xxh64 hashes have it set. The bits are counted by numpy over
    the packed big-endian digests: column j of the unpacked bits is bit 63 - j of every hash (a seventh of the
    time of 64 passes of translate + count, and a third of the whole hash: 0.4 ms a page here, not 0.6)."""
    import numpy as np  # only extraction processes hash texts; loaded there already (py3langid)

    words = _WORD.findall(text.lower())
    if len(words) < MIN_WORDS:
        return None
    digest = xxhash.xxh64_digest
    digests = b"".join([digest(f"{a} {b} {c}".encode()) for a, b, c in zip(words, words[1:], words[2:], strict=False)])
    counts = np.unpackbits(np.frombuffer(digests, np.uint8)).reshape(-1, 64).sum(axis=0, dtype=np.uint32)
    return int.from_bytes(np.packbits(counts > len(digests) // 16).tobytes(), "big")


def _band_keys(prefix: str, h: int) -> list[str]:
    return [f"{prefix}simhash:{b}:{h >> (16 * b) & 0xFFFF:04x}" for b in range(BANDS)]


def find_and_remember(client: redis.Redis, prefix: str, article_id: str, h: int, ttl_seconds: int) -> str | None:
    """The id of an earlier article whose text is within MAX_DISTANCE bits, if any; and remember this one's
    hash. One round trip: each band's members are read before this article is added to it."""
    return nearest(client.eval(*find_and_remember_args(prefix, article_id, h, ttl_seconds)), article_id, h)


def find_and_remember_args(prefix: str, article_id: str, h: int, ttl_seconds: int,
                           also_read: tuple[str, ...] = ()) -> tuple[str | int, ...]:
    """The EVAL arguments of `find_and_remember`, which also reads the members of the sets `also_read` (one round
    trip for a caller that needs them too). Its answer: the bands' members (`nearest` reads them, the first
    BANDS items), then each of those sets' members."""
    return (_FIND_AND_REMEMBER, BANDS + len(also_read), *_band_keys(prefix, h), *also_read,
            f"{article_id}:{h:016x}", ttl_seconds, BAND_CAP, BANDS)


def nearest(bands: list[list[str | bytes]], article_id: str, h: int) -> str | None:
    """The closest earlier article within MAX_DISTANCE bits among the bands' members, if any."""
    best: tuple[int, str] | None = None
    for members in bands:
        for other in members:
            other_id, _, other_hash = (other if isinstance(other, str) else other.decode()).partition(":")
            if other_id == article_id:
                continue
            distance = (int(other_hash, 16) ^ h).bit_count()
            if distance <= MAX_DISTANCE and (best is None or distance < best[0]):
                best = (distance, other_id)
    return best[1] if best else None
