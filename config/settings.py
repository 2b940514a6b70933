"""Typed settings, read once at start-up from defaults plus `INGEST_<NAME>` environment variables.

`load_settings(environ)` is the only place that reads the environment; tests pass a dict.
A bad value fails fast with the variable's name in the message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

ENV_PREFIX = "INGEST_"
CONFIG_DIR = Path(__file__).resolve().parent
PROJECT_VERSION = "0.1.0"


class SettingsError(ValueError):
    """A setting has a bad value; the message names the environment variable."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Without REDIS_URL (or INGEST_REDIS_URL), `ingest run` starts a private redis-server on
    # 127.0.0.1:<private_redis_port> with its data under <var_dir>/redis, and every command uses it.
    redis_url: str = ""
    private_redis_port: int = Field(6390, ge=1, le=65535)
    feeds_file: Path = CONFIG_DIR / "feeds.yaml"
    var_dir: Path = Path("var")
    key_prefix: str = "ingest:"
    stream: str = "articles"
    # Retention: about this many entries are kept (MAXLEN ~); or, when stream_max_age_days > 0, entries
    # older than that are trimmed instead (MINID ~). A consumer group further behind loses what was trimmed.
    stream_maxlen: int = Field(1_000_000, ge=1000)
    stream_max_age_days: float = Field(0.0, ge=0)
    # A message delivered this many times to a consumer group without an ack goes to the dead-letter stream.
    max_deliveries: int = Field(5, ge=1)
    failures_maxlen: int = Field(100_000, ge=100)

    tick_seconds: float = Field(5.0, gt=0)
    default_interval: int = Field(300, ge=1)
    # Entries older than this many seconds are skipped (0: no limit); a feed may set its own.
    max_entry_age: int = Field(0, ge=0)
    seen_ttl_days: float = Field(30.0, gt=0)

    allow_private_networks: bool = False
    # Hosts fetched even when they resolve to private addresses (comma-separated), e.g. an intranet feed.
    allow_hosts: str = ""
    user_agent: str = f"news-ingest/{PROJECT_VERSION} (+https://github.com/news-ingest/news-ingest)"
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(20.0, gt=0)
    total_timeout: float = Field(60.0, gt=0)
    max_redirects: int = Field(5, ge=0)
    max_page_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    max_feed_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # Entries taken from one feed per poll, in feed order; the rest are ignored (and reported on the feed).
    max_feed_entries: int = Field(1000, ge=1)

    # Politeness, shared by all workers through Redis; a site in feeds.yaml may override the first two.
    rate_limit: float = Field(1.0, gt=0)  # requests per second per host
    host_concurrency: int = Field(2, ge=1)  # requests in flight per host
    robots_ttl: int = Field(86400, ge=60)  # seconds a site's robots.txt is cached
    max_defer: float = Field(60.0, gt=0)  # longest single deferral of a task waiting for its host's turn

    fetch_concurrency: int = Field(64, ge=1)
    # New entries of one feed poll sent to the workers in one message (news.ingest_batch); 1: one
    # news.ingest_article message per entry, as versions before the batch task did.
    batch_size: int = Field(10, ge=1)
    extract_processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0)
    # Seconds one page may take in an extraction process; past it the processes are killed and the page dropped
    # as a failure `extract_timeout` (no deadline when extract_processes is 0).
    extract_timeout: float = Field(20.0, gt=0)
    # An extraction process whose resident memory passes this many MiB after a page is replaced by a fresh one
    # (tasks.extractors: they level off near 195 on real pages; a new one is forked ready from a warm fork server
    # on Linux, in tens of milliseconds, spawned elsewhere at about a second of CPU).
    extract_max_memory_mb: int = Field(200, ge=64)
    max_attempts: int = Field(5, ge=1)
    retry_base_delay: float = Field(10.0, gt=0)
    retry_max_delay: float = Field(120.0, gt=0)
    # A task not acked within this many seconds is re-delivered by the broker (Redis visibility timeout).
    redelivery_timeout: int = Field(300, ge=10)

    _private_redis: bool = PrivateAttr(False)

    # Celery task events (sent, received, started, succeeded) from the start, for a monitor such as Flower. Off, the
    # workers send only their heartbeats until a monitor turns task events on (Flower does within seconds of
    # starting, and again every few seconds); the "sent" events come only with this on. They cost the worker
    # about a tenth of its CPU.
    task_events: bool = False

    log_level: str = "INFO"
    log_format: str = Field("text", pattern="^(text|json)$")
    # Prometheus /metrics: `ingest scheduler` serves on this port, `ingest worker` on the next one (0: off);
    # each command's --metrics-port overrides it.
    metrics_port: int = Field(9808, ge=0, le=65535)

    @model_validator(mode="after")
    def _retries_inside_visibility(self) -> Settings:
        # A retried task waits in the worker unacked; past the visibility timeout Redis would hand it out twice.
        if max(self.retry_max_delay, self.max_defer) >= self.redelivery_timeout / 2:
            raise ValueError(
                f"retry_max_delay ({self.retry_max_delay}) and max_defer ({self.max_defer}) must stay below "
                f"half of redelivery_timeout ({self.redelivery_timeout})"
            )
        return self

    @property
    def uses_private_redis(self) -> bool:
        """True when no Redis URL was configured, so `ingest run` owns a private redis-server."""
        return self._private_redis

    @property
    def allowed_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.allow_hosts.split(",") if h.strip())

    @property
    def robots_agent(self) -> str:
        """The product token robots.txt rules are matched against (the User-Agent's first word)."""
        return self.user_agent.split("/", 1)[0].strip() or "*"

    @property
    def dead_letter_stream(self) -> str:
        return self.stream + ":dead"

    @property
    def seen_ttl_seconds(self) -> int:
        return int(self.seen_ttl_days * 86400)

    def key(self, *parts: str) -> str:
        return self.key_prefix + ":".join(parts)


def _env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from `environ` (default: os.environ) and keyword overrides (which win)."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        var = _env_name(name)
        if var in env:
            values[name] = env[var]
    if "redis_url" not in values and env.get("REDIS_URL"):
        values["redis_url"] = env["REDIS_URL"]
    values.update(overrides)
    private = not values.get("redis_url")
    try:
        settings = Settings(**values)
        if private:
            settings = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{settings.private_redis_port}/0"})
            settings._private_redis = True
        return settings
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:
                problems.append(err["msg"])
                continue
            field = str(err["loc"][0])
            var = _env_name(field) if field in Settings.model_fields else field
            problems.append(f"{var}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
