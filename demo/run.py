"""`ingest demo`: the whole pipeline against the bundled site, with a private Redis; no internet needed."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import click
import yaml

from config import load_settings
from demo.site import LocalSite, load_manifest, serve_news_site
from tasks.stack import PrivateRedis, Stack, free_port


def demo_env(redis_url: str, feeds_file: Path, var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "REDIS_URL": redis_url,
        "INGEST_FEEDS_FILE": str(feeds_file),
        "INGEST_VAR_DIR": str(var_dir),
        "INGEST_ALLOW_PRIVATE_NETWORKS": "true",
        "INGEST_TICK_SECONDS": "1",
        "INGEST_LOG_LEVEL": "WARNING",
    })
    return env


def run_demo(timeout: float = 120.0) -> int:
    from worker.consumer import subscribe
    from worker.failures import list_failures

    _name, _sections, articles = load_manifest()
    with tempfile.TemporaryDirectory(prefix="ingest-demo-") as tmp, LocalSite() as site:
        tmpdir = Path(tmp)
        feeds = serve_news_site(site)
        feeds_file = tmpdir / "feeds.yaml"
        feeds_file.write_text(yaml.safe_dump(
            {"feeds": [{"url": u, "section": s} for u, s in feeds.items()],
             # Every page of the local site is on one host: let the demo go faster than 1 request/s.
             "sites": {"127.0.0.1": {"name": "Báo Demo", "timezone": "Asia/Ho_Chi_Minh", "language": "vi",
                                     "rate_limit": 50, "max_concurrency": 16}}},
            allow_unicode=True))
        redis = PrivateRedis(tmpdir / "redis", free_port()).start()
        click.echo(f"demo: site {site.base} with {len(feeds)} section feeds, redis {redis.url}", err=True)
        log_path = tmpdir / "stack.log"
        log_file = log_path.open("wb")
        stack = Stack(demo_env(redis.url, feeds_file, tmpdir), stdout=log_file.fileno()).start()
        settings = load_settings(demo_env(redis.url, feeds_file, tmpdir))
        from tasks.app import configure

        rt = configure(settings)
        got = failed = 0
        deadline = time.monotonic() + timeout
        try:
            while got + failed < len(articles) and time.monotonic() < deadline and not stack.any_exited():
                for msg in subscribe(rt.redis, settings.stream, "demo", "demo-1", from_start=True, idle_timeout=1.0):
                    a = msg.article
                    click.echo(a.to_json())
                    click.echo(f"-- {a.section} | {a.title} | {', '.join(a.authors) or '-'} | "
                               f"{a.published_at} | {len(a.text)} chars", err=True)
                    msg.ack()
                    got += 1
                failed = len(list_failures(rt.redis, settings.key_prefix))
        finally:
            stack.stop()
            redis.stop()
            log_file.close()
        if got < len(articles):
            click.echo(f"demo: scheduler and worker log follows\n{log_path.read_text(errors='replace')[-4000:]}", err=True)
        click.echo(f"demo: {got} of {len(articles)} articles ingested, {failed} failures", err=True)
        return 0 if got == len(articles) else 1
