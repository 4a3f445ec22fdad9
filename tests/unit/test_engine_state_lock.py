"""A processor instance's disk state directory has one live owner: a second `StateManager` on
it (another process in production) is refused with a one-line error until the first closes;
memory stores need no directory and take no lock. The lock is an `flock`, which a second
open file in the same process contends for like another process would."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.engine._state import StateDirInUseError, StateManager
from processors.runner import load_processor
from runtime.settings import ProcessorSettings


def test_a_second_owner_of_a_state_directory_is_refused_until_the_first_closes(
    tmp_path: Path,
) -> None:
    processor = load_processor("membership", ProcessorSettings())
    root = tmp_path / "group" / "instance-0"
    first = StateManager(processor, "disk", root)
    with pytest.raises(StateDirInUseError, match="in use by another process"):
        StateManager(processor, "disk", root)
    StateManager(processor, "disk", tmp_path / "group" / "instance-1").close()  # its own dir
    first.close()
    StateManager(processor, "disk", root).close()  # free again


def test_memory_stores_take_no_lock(tmp_path: Path) -> None:
    processor = load_processor("membership", ProcessorSettings())
    first = StateManager(processor, "memory", tmp_path)
    StateManager(processor, "memory", tmp_path).close()
    first.close()
