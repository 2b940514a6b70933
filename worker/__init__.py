"""The ingestion pipeline, free of Celery: feeds, fetching, extraction, articles, and the Redis stream.

Stages are plain functions; those that do I/O take their client as an argument.
"""
