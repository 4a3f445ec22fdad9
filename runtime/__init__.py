"""Process plumbing every wecom-stream process shares: settings, logging, tracing, Kafka
client config and topics, the supervisor, and the local broker launcher (for the CLI). It
imports nothing above it (`ingress`, `processors`, `wecom_stream`); the CLI is
`wecom_stream.cli`."""

__all__: list[str] = []  # a namespace: import the submodules (runtime.settings, …)
