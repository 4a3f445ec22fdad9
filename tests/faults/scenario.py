"""One network-fault scenario under load, its checks, and the suite's summary table.

`run_scenario` starts the ingress and the three processors (subprocesses, bootstrapping
through the proxies), posts the mixed load at `RATE` callbacks/s, lets it run `BASELINE_S`
(what "normal" is: `tests.support.progress`), runs the fault to its end, waits until the
pipeline is back to normal (reported, never asserted: this machine is shared), keeps the load
on `AFTER_S` more, stops it, and checks: every callback answered 200 within Insight's 5 s,
every one of them on its raw topic exactly once, every output exact (read_committed), no
process exited, and the fault reached the pipeline (callbacks spooled or answered late: a
fault the processes never felt proves nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.load import SteadyLoad
from tests.support.pipeline import Pipeline, check_exact, expected_of, mixed_callbacks
from tests.support.processes import CliProcesses
from tests.support.progress import Progress

__all__ = ["RATE", "Fault", "Runner", "run_scenario", "summary_table"]

RATE = 100.0
"""Callbacks per second, all kinds together (the rate of the issue's first trial)."""
BASELINE_S = 10.0
AFTER_S = 5.0
RECOVERY_TIMEOUT_S = 150.0
MAX_LOAD_S = 600.0
"""Callbacks are generated for this long; a scenario stops its load well before."""
ANSWER_DEADLINE_S = 5.0
"""Insight's timeout: a callback answered later counts as failed by the platform."""
FELT_S = 0.4
"""An answer this slow, or a spooled record, shows the fault reached the pipeline."""

Fault = Callable[[], Awaitable[dict[str, Any]]]
"""Runs the fault to its end; returns what to report about it, and `healed_at` (monotonic)
when it went on after healing (waiting for replicas to be in sync, say)."""

Runner = Callable[[str, int, Fault], Awaitable[dict[str, Any]]]
"""`run_scenario` bound to one test's fixtures (the `run_fault` fixture): name, seed, fault."""

_ROWS: list[dict[str, Any]] = []


async def run_scenario(
    name: str,
    seed: int,
    procs: CliProcesses,
    tmp_path: Path,
    bootstrap: str,
    prefix: str,
    fault: Fault,
) -> dict[str, Any]:
    """See the module docstring; returns the scenario's row of the summary table."""
    row: dict[str, Any] = {"scenario": name, "logs": str(tmp_path)}
    _ROWS.append(row)
    pipeline = Pipeline(procs, tmp_path)
    await pipeline.start()
    load = SteadyLoad(pipeline.base_url, mixed_callbacks(seed, int(RATE * MAX_LOAD_S)), RATE)
    progress = Progress(bootstrap, prefix, load)
    load.start()
    await progress.start()
    timeline = asyncio.create_task(_ingress_timeline(pipeline, started := time.monotonic()))
    try:
        await asyncio.sleep(BASELINE_S)
        began = time.monotonic()
        row.update(await fault())
        healed = row.pop("healed_at", time.monotonic())
        row["fault_s"] = round(healed - began, 1)
        level = progress.normal_level(began - BASELINE_S / 2, began, floor=int(RATE))
        row["back_to_normal_s"] = await progress.back_to_normal(healed, level, RECOVERY_TIMEOUT_S)
        await asyncio.sleep(AFTER_S)
    finally:
        load.stop()
        result = await load.wait()
        await progress.stop()
        timeline.cancel()
        _write_timeline(tmp_path / "timeline.json", started, progress, await timeline)
    summary = result.summary()
    if progress.stalls:
        row["probe_stalls"] = progress.stalls
    row.update(
        callbacks=summary["callbacks"],
        answered_200=load.ok,
        p50_s=summary["p50_s"],
        p99_s=summary["p99_s"],
        max_s=summary["max_s"],
        slowest_posted_at_s=summary["slowest_posted_at_s"],
        statuses=summary["statuses"],
    )
    pipeline.alive()
    row.update(await pipeline.ingress_counts())
    outputs = await check_exact(
        bootstrap, prefix, expected_of(load.posted()), pipeline, load.accepted(), figures=row
    )
    row.update(outputs)
    print(row)
    assert set(result.statuses) == {200}, summary
    assert max(result.latencies) < ANSWER_DEADLINE_S, summary
    assert row["spooled"] > 0 or max(result.latencies) >= FELT_S, "the fault was not felt"
    return row


async def _ingress_timeline(pipeline: Pipeline, started: float) -> list[dict[str, Any]]:
    """The ingress's counters every second until cancelled (for `timeline.json`)."""
    samples: list[dict[str, Any]] = []
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                counts = await pipeline.ingress_counts()
                samples.append({"t_s": round(time.monotonic() - started, 1), **counts})
            await asyncio.sleep(1.0)
    return samples


def _write_timeline(
    path: Path, started: float, progress: Progress, ingress: list[dict[str, Any]]
) -> None:
    """What happened second by second (beside the processes' logs): how far behind the
    pipeline was, and the ingress's spool."""
    behind = [
        {"t_s": round(s.t - started, 1), "backlog": s.backlog, **s.lags} for s in progress.samples
    ]
    path.write_text(json.dumps({"behind": behind, "ingress": ingress}, indent=0))


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value * 1000:.0f} ms" if unit == "ms" else f"{value:.1f}{unit}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def summary_table() -> str:
    """The scenarios run so far as a Markdown table (a failed one shows what it reached)."""
    if not _ROWS:
        return ""
    lines = [
        "| scenario | callbacks | answered 200 | p50 | p99 | max | lost | duplicated "
        "| spooled | back to normal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in _ROWS:
        cells = [
            r["scenario"],
            _fmt(r.get("callbacks")),
            _fmt(r.get("answered_200")),
            _fmt(r.get("p50_s"), "ms"),
            _fmt(r.get("p99_s"), "ms"),
            _fmt(r.get("max_s"), "ms"),
            _fmt(r.get("lost")),
            _fmt(r.get("duplicated")),
            _fmt(r.get("spooled")),
            _fmt(r.get("back_to_normal_s"), " s"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
