"""The one backoff rule of every loop that retries on its own schedule (the supervisor's
restarts, the engine's member restarts, the ingress publisher's connect and spool-drain
loops): exponential with full jitter, as tenacity's
`wait_random_exponential` (which the backfill client uses inside its retry loop) computes
it, for loops that are not a tenacity retry."""

from __future__ import annotations

import random

__all__ = ["full_jitter_s"]


def full_jitter_s(attempt: int, *, initial_s: float, max_s: float) -> float:
    """Seconds to wait before attempt `attempt + 1` (`attempt` ≥ 1 failures so far): uniform
    in [0, min(max_s, initial_s × 2^(attempt − 1))]."""
    ceiling = min(max_s, initial_s * 2 ** max(0, attempt - 1))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret
