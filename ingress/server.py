"""`wecom-stream ingress`: run the ingress as one process or as N worker processes.

With `--workers N > 1` the parent starts N processes (spawned, so each has a fresh event loop)
that each bind the port with `SO_REUSEPORT` (the kernel spreads connections), each with its
own spool `spool_dir/worker-<i>` (one writer per spool) and drainer. Worker `i` also adopts
the spools `worker-<j>` of a previous run with more workers (`j >= N`, `j % N == i`) and
drains them before its own. The parent restarts a worker that dies and forwards SIGTERM /
SIGINT for a graceful stop (in-flight requests finish, the producer flushes, the spool stays).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
from collections.abc import Callable

from aiohttp import web

from ingress._files import private_dir
from ingress.app import IngressApp
from runtime.errors import ConfigError
from runtime.eventloop import new_event_loop, tune_gc
from runtime.logs import bind_context, configure_logging, get_logger
from runtime.memory import fixed_mmap_threshold
from runtime.settings import IngressSettings
from runtime.supervisor import Child, ProcessChild, Restart, stop_on_signals, supervise
from runtime.tracing import configure_tracing

__all__ = ["serve", "serve_http"]

log = get_logger(__name__)
_SHUTDOWN_TIMEOUT_S = 10.0


def _announce_auth(settings: IngressSettings) -> None:
    """Say at start which platforms are open (loudly: a warning), or closed (info)."""
    platforms = (
        ("语聚", bool(settings.tenant_tokens()), "WECOM_STREAM_TENANTS"),
        ("Insight", bool(settings.insight_key), "WECOM_STREAM_INSIGHT_KEY"),
    )
    unset = [(name, variable) for name, configured, variable in platforms if not configured]
    if settings.auth == "open" and unset:
        log.warning(
            "ingress_open_mode",
            detail=f"WECOM_STREAM_AUTH=open: {' and '.join(n for n, _ in unset)} callbacks are "
            "accepted WITHOUT a credential check. Local development only: set "
            f"{' and '.join(v for _, v in unset)} and drop WECOM_STREAM_AUTH before exposing "
            "this ingress.",
        )
        return
    for name, variable in unset:
        log.info(
            "ingress_platform_closed",
            platform=name,
            detail=f"{variable} is unset: {name} callbacks are refused with 401",
        )


def _worker_main(settings: IngressSettings, bootstrap: str, index: int, workers: int) -> None:
    configure_logging(settings.log_level, settings.log_format)
    bind_context(worker=index)
    configure_tracing("wecom-stream-ingress")  # span export only if OTEL_* asks for it
    tune_gc()
    fixed_mmap_threshold()
    app = IngressApp(settings, bootstrap=bootstrap, worker_index=index, workers=workers)
    loop = new_event_loop()
    try:
        loop.run_until_complete(_run_worker(app, settings.http_host, settings.http_port, workers))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _run_worker(app: IngressApp, host: str, port: int, workers: int) -> None:
    """Serve until SIGTERM / SIGINT, then stop gracefully (`serve_http`), then flush the
    producer and close the spools."""
    with stop_on_signals() as stop:
        await app.start()
        try:
            await serve_http(
                app.server(access_log=None), host, port, stop, reuse_port=workers > 1 or None
            )
        finally:
            await app.stop()
            # what is left (none of ours should be) is cancelled, as aiohttp's run_app does
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def serve_http(
    server: web.Server,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    reuse_port: bool | None = None,
) -> None:
    """Serve aiohttp's low-level `server` on host:port until `stop` is set, then stop
    listening and let the requests in flight finish (at most `_SHUTDOWN_TIMEOUT_S`). The
    ingress worker's loop, and the bare baseline's in `bench/ingress.py`."""
    runner = web.ServerRunner(server, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(settings: IngressSettings, bootstrap: str, workers: int = 1) -> int:
    """Run the ingress against Kafka at `bootstrap` (resolved by the CLI) in the foreground
    until SIGTERM / SIGINT; the exit status."""
    if workers < 1:
        raise ConfigError("--workers must be 1 or more")
    _announce_auth(settings)
    if workers == 1:
        _worker_main(settings, bootstrap, 0, 1)
        return 0
    return _supervise(settings, bootstrap, workers)


def _supervise(settings: IngressSettings, bootstrap: str, workers: int) -> int:
    """N workers on one port (SO_REUSEPORT), restarted with backoff when one dies
    (`runtime.supervisor`); their metrics merged through prometheus_client's multiprocess
    mode."""
    metrics_dir = settings.spool_dir / ".metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    private_dir(metrics_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    from prometheus_client import multiprocess

    ctx = multiprocessing.get_context("spawn")

    def starter(index: int) -> Callable[[], Child]:
        def start() -> Child:
            proc = ctx.Process(
                target=_worker_main,
                args=(settings, bootstrap, index, workers),
                name=f"ingress-worker-{index}",
            )
            proc.start()
            return ProcessChild(proc)

        return start

    def exited(child: Child) -> None:
        if child.pid is not None:
            multiprocess.mark_process_dead(child.pid)  # type: ignore[no-untyped-call]

    return supervise(
        {f"ingress-worker-{i}": starter(i) for i in range(workers)},
        Restart(),
        grace_s=_SHUTDOWN_TIMEOUT_S + 5,
        on_exit=exited,
    )
