"""The front door: the `wecom-stream` command line (`wecom_stream.cli`, also
`python -m wecom_stream`; one module per subcommand in `wecom_stream.commands`) and what only
the command line and the developers use.

`backfill` (history from the 语聚 chat-record API) and `replay` (dead letters and unrouted
records back into the pipeline) live here because they use both sides: the ingress's routing
rules and the processors' topics. `tail` (a topic's records for an operator) and
`localkafka` (the local broker and cluster for `run`, `kafka start`, the tests and the
benchmarks) live here because no production process needs them. Nothing in `schemas`,
`runtime`, `ingress` or `processors` imports this package.
"""

__all__: list[str] = []  # a namespace: wecom_stream.commands, wecom_stream.localkafka, …
