# syntax=docker/dockerfile:1
# One image for the scheduler, the workers and Flower: `ingest <command>`, default `ingest worker`.

# Builder: wheels for the locked dependency set (requirements.lock, `make lock`) and for the project itself
# (sdist-only dependencies such as sgmllib3k get built here).
FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/pip pip wheel --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY config/ config/
COPY worker/ worker/
COPY tasks/ tasks/
COPY demo/ demo/
COPY examples/ examples/
RUN --mount=type=cache,target=/root/.cache/pip pip wheel --no-deps --wheel-dir /wheels .

# Runtime: the installed wheels only, no compilers and no source tree.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# redis-server only for `ingest demo`, which starts a private one; compose runs its own Redis service.
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
# --no-index: only the builder's wheels, so exactly the locked versions are installed.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels news-ingest
RUN groupadd --system --gid 10001 ingest \
    && useradd --system --uid 10001 --gid ingest --home-dir /app --no-create-home ingest
WORKDIR /app
# config/ for INGEST_FEEDS_FILE=config/feeds.yaml (mount your own over it); the site is the demo's data.
COPY config/ config/
COPY tests/data/site/ tests/data/site/
# The installed demo looks for its site next to its package (demo/site.py DEMO_SITE): point that at /app's copy.
RUN site="$(python -c 'from demo.site import DEMO_SITE; print(DEMO_SITE)')" \
    && mkdir -p "$(dirname "$site")" && ln -s /app/tests/data/site "$site" \
    && mkdir -p /app/var /data && chown ingest:ingest /app/var /data
USER 10001:10001
STOPSIGNAL SIGTERM
# Healthy while Redis answers at the URL the settings resolve (INGEST_REDIS_URL, else REDIS_URL).
# The image's default: Redis reachable. The compose file gives scheduler and workers their own checks.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["ingest", "health", "--component", "redis"]
ENTRYPOINT ["ingest"]
CMD ["worker"]
