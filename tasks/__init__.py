"""The Celery layer: one app (`tasks.app`), thin tasks that wire the pipeline in `worker/` to I/O, and the CLI."""
