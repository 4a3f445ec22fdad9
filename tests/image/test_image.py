"""The image of deploy/docker/Dockerfile, built from this checkout (conftest.py), run the way
the Kubernetes base runs it (manifests.py: the pod's user and fsGroup, a read-only root, no
capabilities, no privilege escalation, the memory limit, each claim as a volume the fsGroup
owns, /tmp a tmpfs of the emptyDir's size, the ConfigMap's and the container's env, the args)
against the session's real broker:

- `--help` answers, and the image's own user is the manifests' (not root);
- `topics create` makes every registry topic;
- the ingress (`ingress --workers 2`, tenant tokens and the Insight key set) takes one callback
  of each kind and the three processors, from the same image, put each one's outputs on
  their topics exactly once, read committed;
- every process of every container runs as the manifests' user; the spool and the state
  volumes hold what the workers and the stores wrote, owned by that user;
- SIGTERM, SIGKILL after the manifests' grace (as the kubelet stops a pod), stops each
  container gracefully: exit 0, not 137; each processor logs `processor_stopped`;
- no error-level log line, no traceback and no credential in any container's output.

What differs from the manifests, forced by the test bed: the broker address and a topic
prefix (the session's broker), replication factor 1 (one broker), and the HTTP and metrics
ports (free ports on loopback: the containers share the host's network, where the broker
listens); the credentials are the test's (a Secret in Kubernetes).

Without the fix this suite failed: the image had never been built (`FROM python:3.11-slim`
needs Docker Hub; pip refuses Debian's system Python); a process that ignores SIGTERM as
PID 1 exits 137 here after the grace; a root USER or a write outside the volumes fails the
checks below."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from runtime.kafka import admin_client
from schemas.registry import PROCESSOR_NAMES, REGISTRY
from tests.image.manifests import Workload, base_workloads
from tests.image.podman import Container, Containers, podman
from tests.support.every_kind import check_outputs, every_kind, post_each
from tests.support.ingress import ready
from tests.support.processes import json_lines, wait_for
from wecom_stream.localkafka import free_port

# The first test builds the image: on a new machine also the Debian base (1-3 min) and the
# dependencies' layer (1-3 min) before its own few seconds.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(1200)]

DEADLINE_S = 60.0
"""A callback's outputs must be on their topics this long after it was posted (the first
waits for the processors' containers to join their groups)."""
QUIET_S = 3.0
"""The final reads wait this long for duplicates (as tests/integration/test_run_smoke.py)."""
TOKEN = "image-test-token"
INSIGHT_KEY = "image-test-insight-key"


@pytest.fixture(scope="module")
def workloads() -> dict[str, Workload]:
    return base_workloads()


def _env(workload: Workload, bootstrap: str, prefix: str, **extra: str) -> dict[str, str]:
    """The workload's env from the manifests with the test bed's overrides."""
    return {
        **workload.env,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "WECOM_STREAM_TOPIC_PREFIX": prefix,
        "WECOM_STREAM_REPLICATION_FACTOR": "1",
        **extra,
    }


def test_help_answers_as_the_manifests_user(image: str, workloads: dict[str, Workload]) -> None:
    once = ("run", "--rm", "--pull=never", "--network=none")
    done = podman(*once, "--read-only", image, "--help")
    for command in ("ingress", "process", "topics"):
        assert command in done.stdout
    uid = podman(*once, "--entrypoint=id", image, "-u").stdout.strip()
    assert {uid} == {str(w.user) for w in workloads.values()}
    assert uid != "0"


async def test_the_image_runs_the_pipeline_as_the_manifests_run_it(
    image: str,
    workloads: dict[str, Workload],
    containers: Containers,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    ingress = workloads["wecom-stream-ingress"]

    topics = containers.run(
        image,
        "topics",
        ["topics", "create"],
        ingress.flags,
        _env(ingress, kafka_bootstrap, prefix),
    )
    assert topics.wait(timeout_s=120) == 0, topics.logs()[-3000:]
    admin = admin_client(kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {prefix + spec.name for spec in REGISTRY} <= existing

    volumes: dict[str, dict[str, Path]] = {}
    running: dict[str, tuple[Workload, Container]] = {}
    for name in PROCESSOR_NAMES:
        workload = workloads[f"wecom-stream-{name}"]
        volumes[name] = {claim: tmp_path / f"{name}-{claim}" for claim in workload.claims}
        env = _env(
            workload,
            kafka_bootstrap,
            prefix,
            WECOM_STREAM_METRICS_HOST="127.0.0.1",
            WECOM_STREAM_METRICS_PORT="0",
        )
        flags = workload.run_flags(volumes[name])
        running[name] = (workload, containers.run(image, name, workload.args, flags, env))
    http_port = free_port()
    volumes["ingress"] = {claim: tmp_path / f"ingress-{claim}" for claim in ingress.claims}
    env = _env(
        ingress,
        kafka_bootstrap,
        prefix,
        WECOM_STREAM_HTTP_HOST="127.0.0.1",
        WECOM_STREAM_HTTP_PORT=str(http_port),
        WECOM_STREAM_TENANTS=f"acme={TOKEN}",
        WECOM_STREAM_INSIGHT_KEY=INSIGHT_KEY,
    )
    flags = ingress.run_flags(volumes["ingress"])
    running["ingress"] = (ingress, containers.run(image, "ingress", ingress.args, flags, env))
    base_url = f"http://127.0.0.1:{http_port}"

    async def listening() -> bool:
        for name, (_, container) in running.items():
            assert container.running(), f"{name} exited: {container.logs()[-3000:]}"
        return await ready(base_url) is not None

    await wait_for(listening, timeout_s=60, interval_s=0.5, what="the ingress to listen")

    tag = uuid.uuid4().hex[:8]
    callbacks = every_kind(tag, token=TOKEN, insight_key=INSIGHT_KEY)
    latency = await post_each(
        base_url, callbacks, kafka_bootstrap, prefix=prefix, deadline_s=DEADLINE_S
    )
    print(f"callback -> output seconds: {latency}")
    await check_outputs(kafka_bootstrap, tag, prefix=prefix, quiet_s=QUIET_S, timeout_s=DEADLINE_S)

    for name, (workload, container) in running.items():
        users = container.users()
        assert users, name
        assert {uid for uid, _ in users} == {str(workload.user)}, (name, users)

    stopped: dict[str, float] = {}
    for name, (workload, container) in running.items():
        code, stopped[name] = container.stop(workload.grace_s)
        assert code == 0, f"{name} exited {code}: {container.logs()[-3000:]}"
    print(f"seconds from SIGTERM to exit: { {k: round(v, 1) for k, v in stopped.items()} }")

    for name in PROCESSOR_NAMES:
        events = {line.get("event") for line in json_lines(running[name][1].logs())}
        assert "processor_stopped" in events, name
    spool = volumes["ingress"]["spool"]
    assert {p.name for p in spool.iterdir() if p.name.startswith("worker-")} == {
        "worker-0",
        "worker-1",
    }
    for name, claims in volumes.items():
        for claim, path in claims.items():
            written = [p for p in path.rglob("*") if p.is_file()]
            assert written, f"{name}: nothing written to its {claim} volume"
            owners = {p.stat().st_uid for p in written}
            assert owners == {running[name][0].user}, (name, claim, owners)

    for container in [topics, *(c for _, c in running.values())]:
        logs = container.logs()
        errors = [line for line in json_lines(logs) if line.get("level") in ("error", "critical")]
        assert errors == [], (container.name, errors[:5])
        assert "Traceback" not in logs, (container.name, logs[-3000:])
        assert TOKEN not in logs, container.name
        assert INSIGHT_KEY not in logs, container.name
