"""Process plumbing every production wecom-stream process (the ingress and each processor)
shares: settings, logging, tracing, Kafka client config and topics, the supervisor, retries,
the event loop, memory, errors, the data-dir lock and partitioning. It imports nothing above
it (`ingress`, `processors`, `wecom_stream`). Developer tooling lives with the command line:
the local broker in `wecom_stream.localkafka`, `wecom-stream tail` in `wecom_stream.tail`."""

__all__: list[str] = []  # a namespace: import the submodules (runtime.settings, …)
