"""`schemas/json/asyncapi.json` passes the AsyncAPI reference parser (@asyncapi/parser 3.x,
installed by `make asyncapi-parser` into tests/asyncapi/node_modules) with no error, and the
parser sees every channel, message and operation; a broken copy is refused, so the check is
real. Without Node and npm the test skips, saying so."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from schemas.asyncapi import document
from schemas.export import JSON_DIR
from tests.support.npm import ASYNCAPI_PARSER, node_script


def parse(path: Path) -> dict[str, Any]:
    command = node_script(ASYNCAPI_PARSER, "check.mjs", install=True)
    if command is None:
        pytest.skip("Node and npm are needed for the AsyncAPI parser (make asyncapi-parser)")
    done = subprocess.run(
        [*command, str(path)], capture_output=True, text=True, check=False, timeout=240
    )
    assert done.stdout.strip(), done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    result["exit"] = done.returncode
    return result


def test_the_document_passes_the_asyncapi_parser(tmp_path: Path) -> None:
    doc = document()
    result = parse(JSON_DIR / "asyncapi.json")
    assert result["errors"] == []
    assert result["exit"] == 0
    assert result["channels"] == len(doc["channels"]) == 15
    assert result["operations"] == len(doc["operations"])
    assert result["messages"] == len(doc["components"]["messages"])

    broken = copy.deepcopy(doc)
    broken["operations"]["normalizer.send.chat.message.v2"]["channel"]["$ref"] = "#/channels/x"
    broken["channels"]["chat.message.v2"]["bindings"]["kafka"]["partitions"] = "six"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    refused = parse(tmp_path / "broken.json")
    assert refused["exit"] == 1
    shown = "\n".join(refused["errors"])
    assert "/operations/normalizer.send.chat.message.v2/channel" in shown, shown
    assert "partitions" in shown, shown
