"""Example consumers of the article stream, each under 100 lines."""
