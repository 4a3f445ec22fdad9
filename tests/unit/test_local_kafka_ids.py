"""The local broker's generated KRaft cluster ids are always accepted by the storage tool."""

from __future__ import annotations

import base64
import uuid

import pytest

from wecom_stream import localkafka


def test_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first UUID encodes to an id starting with "-" (0xf8 -> "-" in URL-safe base64).
    dash_first = uuid.UUID(bytes=b"\xf8" + b"\x00" * 15)
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    fresh = iter([dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(fresh))  # the module localkafka uses
    cluster_id = localkafka.cluster_id()
    assert not cluster_id.startswith("-")
    assert len(cluster_id) == 22
