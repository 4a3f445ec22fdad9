"""`wecom-stream backfill chat-records`: history from 语聚's chat-record query API into
`raw.yuju.chat-record.v1`, which the normalizer turns into `ChatMessage`s (origin
`chat_record`), exactly once over a fixed window.

`api` (the client: body, pacing, retries, errors, redaction), `records` (window, customers,
the records of an answer), `run` (concurrency, publishing, outcome), `progress` (bar or log
lines); the command line is `wecom_stream.commands.backfill`. docs/backfill.md is the
user's guide.
"""

__all__: list[str] = []  # a namespace: import the submodules (wecom_stream.backfill.api, …)
