"""Stream processors (normalizer, membership, feedback) and the engine they run on."""

__all__: list[str] = []  # a namespace: import the submodules (processors.normalizer, …)
