"""The network-fault suite (`make test-faults`): Toxiproxy on every path to Kafka
(`tests.support.proxied`). Each test module starts its own Kafka behind its own proxies for
its tests (its `network` fixture, module scope): the processes under test bootstrap through
the proxies (`kafka_env`), the oracles and probes bypass them (`kafka_bootstrap`). After each
test every proxy is enabled again and every toxic removed. The figures of every scenario are
printed as a table at the end of the session (`tests.faults.scenario`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.scenario import Fault, Runner, run_scenario, summary_table
from tests.support.processes import CliProcesses
from tests.support.proxied import ProxiedKafka
from tests.support.toxiproxy import toxiproxy_binary


@pytest.fixture(scope="session")
def toxiproxy() -> Path:
    binary = toxiproxy_binary(install=False)
    if binary is None:
        pytest.skip("the Toxiproxy server is not built: `make toxiproxy` builds it (needs Go)")
    return binary


@pytest.fixture(scope="module")
def kafka_bootstrap(network: ProxiedKafka) -> str:
    """Observers (oracles, probes, admin) reach Kafka past the proxies."""
    return network.direct_bootstrap


@pytest.fixture
def kafka_env(network: ProxiedKafka, topic_prefix: str) -> dict[str, str]:
    """The processes under test reach Kafka only through the proxies."""
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=network.bootstrap,
        WECOM_STREAM_TOPIC_PREFIX=topic_prefix,
        WECOM_STREAM_LOG_FORMAT="json",
        WECOM_STREAM_REPLICATION_FACTOR=str(min(3, len(network.node_ids))),
    )
    return env


@pytest.fixture
def run_fault(
    cli_processes: CliProcesses, tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> Runner:
    """`await run_fault(name, seed, fault)`: `tests.faults.scenario.run_scenario` with this
    test's processes, directory, broker and prefix; the scenario's row."""

    async def run(name: str, seed: int, fault: Fault) -> dict[str, Any]:
        return await run_scenario(
            name, seed, cli_processes, tmp_path, kafka_bootstrap, topic_prefix, fault
        )

    return run


@pytest.fixture(autouse=True)
async def healed(network: ProxiedKafka) -> AsyncIterator[None]:
    yield
    await network.toxiproxy.reset()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    table = summary_table()
    if table:
        terminalreporter.write_sep("=", "network faults: figures per scenario")
        terminalreporter.write_line(table)
