"""`make bench`: how fast and how lean filepipe is, each figure measured beside its baseline in the same run.

One module per group of figures (`throughput`, `coldstart`, `api`, `pipeline`), a runner (`python -m bench`)
that prints a table and writes `bench-results/<timestamp>.json`, and `picture` for `docs/bench.png`. What each
figure means is in docs/benchmarks.md.
"""
