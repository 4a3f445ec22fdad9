"""Process plumbing every wecom-stream process shares: settings, logging, Kafka client config,
the local broker launcher and the `wecom-stream` CLI."""

__all__: list[str] = []  # a namespace: import the submodules (runtime.settings, …)
