"""With Kafka unreachable the ingress answers 200 from the spool, reports `degraded`, and only
when the spool is full answers 503 (with Retry-After) and `/readyz` says so."""

from __future__ import annotations

from pathlib import Path

import orjson

from runtime.settings import IngressSettings
from tests.support.ingress import in_process_ingress, message
from wecom_stream.localkafka import free_port

TOKEN = "TOKEN-full-1"


async def test_spool_then_503_when_full_and_kafka_down(tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there: Kafka is unreachable
    config = IngressSettings(
        kafka_bootstrap_servers=nowhere,
        tenants=f"acme={TOKEN}",  # type: ignore[arg-type]
        spool_dir=tmp_path / "spool",
        spool_max_bytes=20_000,
    )
    async with in_process_ingress(config, nowhere, wait_kafka=False) as client:
        statuses: list[int] = []
        for n in range(100):
            async with client.post("/notice", data=orjson.dumps(message(n, "c", TOKEN))) as r:
                statuses.append(r.status)
                if r.status == 503:
                    assert r.headers["Retry-After"] == "30"
                    assert "spool is full" in (await r.json())["error"]
                    break
        assert statuses[-1] == 503
        assert set(statuses[:-1]) == {200}
        assert len(statuses) > 5
        async with client.get("/readyz") as r:
            assert r.status == 503
            doc = await r.json()
        assert doc["status"] == "unavailable"
        assert doc["kafka"] == "down"
        assert doc["spool_depth"] == len(statuses) - 1
    spooled = sum(p.stat().st_size for p in (tmp_path / "spool" / "worker-0").glob("seg-*"))
    assert 0 < spooled <= 20_000
