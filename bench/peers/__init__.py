"""Peers of the throughput benchmark (issue 9): other tools run on the same local site and the same cores."""
