"""The soak (`make soak`; 30 min by default, `SOAK_MINUTES=5 make soak` for a short one): the
ingress and the three processors on the one-node broker behind Toxiproxy, under ~150 mixed
callbacks/s, with a fault every few minutes (`tests.faults.soak.SCHEDULE`: processor SIGKILLs,
broker restarts — a short full outage the spool rides out — and the network faults).

Sampled throughout (`tests.faults.soak.Resources`): RSS, open fds and CPU of every process,
spool, state and broker bytes, ingress backlog and group lags. Pass: every callback answered
200 within 5 s, none lost or duplicated on its raw topic, every output exact (read_committed),
no process exited, the pipeline back to normal after each fault before the next one, and RSS
and fd drift under 10 % for every process of ours measured long enough. The samples are
written as JSON (`bench.soak_plot` draws them) and the figures printed as tables.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.soak import DRIFT_LIMIT, Resources, SoakSettings, drift, report_table
from tests.support.load import SteadyLoad
from tests.support.pipeline import (
    PROCESSORS,
    Pipeline,
    check_exact,
    expected_of,
    mixed_callbacks,
)
from tests.support.processes import CliProcesses
from tests.support.progress import Progress
from tests.support.proxied import CLIENT_FAULTS, ProxiedKafka, proxied_kafka

SETTINGS = SoakSettings.from_env()
ANSWER_DEADLINE_S = 5.0

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.soak,
    pytest.mark.timeout(SETTINGS.duration_s + 1800),
    # As in test_network.py: observers' admin clients, not the processes under test.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(scope="module")
def network(toxiproxy: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedKafka]:
    with proxied_kafka(tmp_path_factory.mktemp("soak"), toxiproxy, nodes=1) as net:
        yield net


async def inject(kind: str, pipeline: Pipeline, net: ProxiedKafka) -> None:
    """One fault of `SCHEDULE`, to its end."""
    if kind.startswith("kill "):
        name = kind.removeprefix("kill ")
        (proc,) = pipeline.instances[name]
        await asyncio.to_thread(proc.kill)
        pipeline.instances[name].remove(proc)
        await pipeline.wait_assigned(pipeline.add(name), timeout_s=180)
    elif kind == "broker restart":
        (node,) = net.node_ids
        await asyncio.to_thread(net.cluster.stop_node, node)
        await asyncio.to_thread(net.cluster.start_node, node)
    else:
        await CLIENT_FAULTS[kind](net)


def distinct_ids(callbacks: list[Any]) -> dict[str, int]:
    """What each processor's state keeps an entry for: message ids, (room, member) pairs,
    (bot, reply) pairs."""
    messages: set[str] = set()
    members: set[tuple[str, str]] = set()
    replies: set[tuple[str, str]] = set()
    for cb in callbacks:
        if cb.kind == "message":
            messages.add(cb.body["data"]["messageId"])
        elif cb.kind == "room":
            for key in ("joinMember", "joinMembers", "members", "leftMember", "leftMembers"):
                members.update(
                    (cb.body["imRoomId"], m["imContactId"]) for m in cb.body.get(key, [])
                )
        else:
            replies.add((cb.body["botId"], cb.body["execId"]))
    return {"normalizer": len(messages), "membership": len(members), "feedback": len(replies)}


async def test_soak(
    network: ProxiedKafka,
    cli_processes: CliProcesses,
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    s = SETTINGS
    print(f"\nsoak: {s.duration_s / 60:.0f} min, process logs in {tmp_path}")
    pipeline = Pipeline(cli_processes, tmp_path)
    await pipeline.start()
    callbacks = mixed_callbacks(33, int(s.rate * (s.duration_s + 300)))
    load = SteadyLoad(pipeline.base_url, callbacks, s.rate)
    progress = Progress(kafka_bootstrap, topic_prefix, load, interval_s=1.0)

    def pids() -> dict[str, int | None]:
        assert pipeline.ingress is not None
        found: dict[str, int | None] = {"ingress": pipeline.ingress.pid}
        found.update({n: pipeline.instances[n][-1].pid for n in PROCESSORS})
        found["kafka"] = network.cluster.pid(network.node_ids[0])
        found["toxiproxy"] = network.toxiproxy_pid
        return found

    dirs = {"spool": tmp_path / "spool", "kafka": network.cluster.data_dir}
    dirs.update({f"state {n}": tmp_path / "state" / f"{n}-0" for n in PROCESSORS})
    resources = Resources(pids, dirs, progress, s.sample_s)
    load.start()
    await progress.start()
    resources.start()
    started = time.monotonic()
    faults: list[dict[str, Any]] = []
    level: int | None = None
    try:
        for at, kind in s.fault_times():
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            pipeline.alive()
            began = time.monotonic()
            if level is None:  # "normal": the 30 s before the first fault, for every fault
                level = progress.normal_level(began - 30, began, floor=int(s.rate))
            await inject(kind, pipeline, network)
            ended = time.monotonic()
            window = started + at + s.fault_every_s - 5 - time.monotonic()
            back = await progress.back_to_normal(ended, level, max(60.0, window))
            after = [x.behind for x in progress.samples if x.t >= began]
            faults.append(
                {
                    "kind": kind,
                    "at_s": round(began - started, 1),
                    "took_s": round(ended - began, 1),
                    "back_to_normal_s": back,
                    "normal_level": level,
                    "max_behind_after": max(after, default=0),
                }
            )
            print(faults[-1])
        await asyncio.sleep(max(0.0, started + s.duration_s - time.monotonic()))
    finally:
        load.stop()
        result = await load.wait()
        await progress.stop()
        await resources.stop()
    pipeline.alive()

    summary = result.summary()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "minutes": s.duration_s / 60,
        "rate": s.rate,
        "sample_s": s.sample_s,
        "callbacks": summary["callbacks"],
        "answered_200": load.ok,
        "statuses": {str(k): v for k, v in result.statuses.items()},
        "p50_s": summary["p50_s"],
        "p99_s": summary["p99_s"],
        "max_s": summary["max_s"],
        "slowest_posted_at_s": summary["slowest_posted_at_s"],
        "faults": faults,
        "samples": resources.samples,
        "behind": [
            [round(x.t - started, 1), x.backlog, *(x.lags.values())] for x in progress.samples
        ],
    }
    samples = resources.samples
    report["drift"] = {
        role: drift(samples, role, s.warmup_s, s.duration_s / 3)
        for role in ("ingress", *PROCESSORS, "kafka", "toxiproxy")
    }
    report["cpu_mean_pct"] = {
        role: round(statistics.mean(cpus), 1) if cpus else None
        for role in report["drift"]
        for cpus in [
            [x["processes"][role]["cpu_pct"] for x in samples
             if role in x["processes"] and x["processes"][role]["cpu_pct"] is not None]
        ]
    }  # fmt: skip
    warm = next((x for x in samples if x["t_s"] >= s.warmup_s), samples[0])
    ids_end = distinct_ids(callbacks[: samples[-1]["answered"]])
    ids_warm = distinct_ids(callbacks[: warm["answered"]])
    report["disk"] = {}
    for name in dirs:
        sizes = [x["bytes"][name] for x in samples]
        entry: dict[str, Any] = {"max": max(sizes), "end": sizes[-1]}
        owner = name.removeprefix("state ")
        if owner in ids_end and ids_end[owner] > ids_warm[owner]:
            added = ids_end[owner] - ids_warm[owner]
            entry.update(
                ids=ids_end[owner],
                ids_added=added,
                bytes_per_million_ids=(sizes[-1] - warm["bytes"][name]) / added * 1e6,
            )
        report["disk"][name] = entry
    try:
        report.update(await pipeline.ingress_counts())
        outputs = await check_exact(
            kafka_bootstrap,
            topic_prefix,
            expected_of(load.posted()),
            pipeline,
            load.accepted(),
            figures=report,
        )
        report["outputs"] = outputs
    finally:
        s.results.parent.mkdir(parents=True, exist_ok=True)
        s.results.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        print(f"\nwrote {s.results}\n\n{report_table(report)}\n")

    assert set(result.statuses) == {200}, summary
    assert max(result.latencies) < ANSWER_DEADLINE_S, summary
    slow = [f["kind"] for f in faults if f["back_to_normal_s"] is None]
    assert not slow, f"not back to normal before the next fault: {slow}"
    for role in ("ingress", *PROCESSORS):
        d = report["drift"][role]
        if d["measured"]:
            assert d["rss_mib_drift"] < DRIFT_LIMIT, (role, d)
            assert d["fds_drift"] < DRIFT_LIMIT, (role, d)
    assert report["drift"]["ingress"]["measured"], "the ingress was not measured long enough"
