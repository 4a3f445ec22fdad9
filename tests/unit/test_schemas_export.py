"""The committed JSON Schemas and AsyncAPI document match the models."""

from __future__ import annotations

from schemas.export import main


def test_generated_schemas_have_not_drifted() -> None:
    assert main(["--check"]) == 0, "run `make schemas` and commit schemas/json/"


def test_the_processors_write_the_v2_outputs_only() -> None:
    """The `.v1` outputs (keys without tenant) are retired: not created, not written, not in
    the AsyncAPI document; their `.v2` successors are (docs/upgrading.md)."""
    import orjson

    from schemas.contracts import contract
    from schemas.export import JSON_DIR
    from schemas.registry import REGISTRY, RETIRED_OUTPUTS

    names = {spec.name for spec in REGISTRY}
    channels = orjson.loads((JSON_DIR / "asyncapi.json").read_bytes())["channels"]
    for retired in RETIRED_OUTPUTS:
        successor = retired.removesuffix(".v1") + ".v2"
        assert retired not in names
        assert retired not in channels
        assert successor in names
        assert contract(successor).shape == "closed"
        assert "tenant" in channels[successor]["description"]
