"""A local news site for the demo, tests and benchmarks: real pages and section feeds served on 127.0.0.1."""
