"""The front door: the `wecom-stream` command line (`wecom_stream.cli`, also
`python -m wecom_stream`) and the commands that compose the parts above `ingress` and
`processors`.

`backfill` (history from the 语聚 chat-record API) and `replay` (dead letters and unrouted
records back into the pipeline) live here because they use both sides: the ingress's routing
rules and the processors' topics. Nothing in `schemas`, `runtime`, `ingress` or `processors`
imports this package.
"""

__all__: list[str] = []  # a namespace: wecom_stream.backfill, wecom_stream.replay
