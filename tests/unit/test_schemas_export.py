"""The committed JSON Schemas and AsyncAPI document match the models."""

from __future__ import annotations

from schemas.export import main


def test_generated_schemas_have_not_drifted() -> None:
    assert main(["--check"]) == 0, "run `make schemas` and commit schemas/json/"
