"""Where the tests find the platforms' sample bodies.

`tests/samples/` is a copy of the project's `../shared/samples/` (bodies taken from the
platforms' API pages), kept in the repository so that a clone alone runs the tests;
`SHARED_SAMPLES` is the original, and `tests/unit/test_inbound_samples.py` checks that the
copy equals it whenever it is beside the clone.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLES", "SHARED_SAMPLES"]

_REPO = Path(__file__).resolve().parents[2]
SAMPLES = _REPO / "tests" / "samples"
SHARED_SAMPLES = _REPO.parent / "shared" / "samples"
