"""Stream processors (normalizer, membership, feedback) and the engine they run on."""
