"""Benchmarks: each module is a command (`python -m bench.ingress`, `make bench-*`) that
measures ours beside a baseline or a peer in the same run and writes `bench/results/*.json`.
Modules starting with `_` are their shared parts; `docs/benchmarks.md` keeps the history.

bench/ sits above everything it measures: it imports the product and `tests.support` (the
shared sample builders and fakes); nothing imports bench/.
"""
