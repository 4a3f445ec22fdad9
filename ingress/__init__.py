"""The HTTP ingress: authenticates platform callbacks and durably publishes them to Kafka."""
