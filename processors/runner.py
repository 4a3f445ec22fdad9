"""`wecom-stream process NAME [--instances N]`: find the processor declaration by name and
run it on the engine, as one process or as N supervised child processes (group members).

A processor is registered once, as an entry point of group `wecom_stream.processors`
(`schemas.registry.processor_entry_points`): `name = "module:declare"`, where
`declare(settings: ProcessorSettings) -> Processor` (docs/design.md, "Add a processor").
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

from processors.engine import Processor, run_engine
from runtime import eventloop
from runtime.errors import ConfigError
from runtime.logs import configure_logging, get_logger
from runtime.settings import ProcessorSettings
from runtime.supervisor import Child, ProcessChild, Restart, stop_on_signals, supervise
from runtime.tracing import configure_tracing
from schemas.registry import PROCESSOR_GROUP, processor_entry_points

__all__ = ["load_processor", "run_processor"]

_log = get_logger(__name__)
_CHILD_STOP_TIMEOUT_S = 60.0


def load_processor(name: str, settings: ProcessorSettings) -> Processor:
    """The declaration of the registered processor `name`, for `settings`."""
    try:
        entries = {ep.name: ep for ep in processor_entry_points()}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if name not in entries:
        raise ConfigError(
            f"no processor {name!r} is registered (entry point group {PROCESSOR_GROUP}; "
            f"registered: {', '.join(entries) or 'none'}): add it to pyproject.toml and run "
            "`pip install -e .` again"
        )
    target = entries[name].value
    try:
        declare = entries[name].load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"processor {name!r}: cannot load {target} ({exc})") from None
    declared = declare(settings) if callable(declare) else None
    if not isinstance(declared, Processor):
        raise ConfigError(f"processor {name!r}: {target} must be declare(settings) -> Processor")
    if declared.name != name:
        raise ConfigError(
            f"processor {name!r}: {target} declares a processor named {declared.name!r}"
        )
    return declared


async def _serve(
    processor: Processor, settings: ProcessorSettings, bootstrap: str, instance: int, port: int
) -> None:
    with stop_on_signals() as stop:
        await run_engine(processor, settings, bootstrap, stop, instance=instance, metrics_port=port)


def _instance_port(settings: ProcessorSettings, instance: int) -> int:
    return 0 if settings.metrics_port == 0 else settings.metrics_port + instance


def _child(name: str, settings: ProcessorSettings, bootstrap: str, instance: int) -> None:
    configure_logging(settings.log_level, settings.log_format)
    configure_tracing(f"wecom-stream-{name}")
    processor = load_processor(name, settings)
    eventloop.run(
        _serve(processor, settings, bootstrap, instance, _instance_port(settings, instance))
    )


def run_processor(
    name: str, settings: ProcessorSettings, bootstrap: str, instances: int = 1
) -> int:
    """Run processor `name` against Kafka at `bootstrap` (resolved by the CLI) until
    SIGTERM/SIGINT; `instances` group members. The exit status."""
    if instances < 1:
        raise ConfigError("--instances must be at least 1")
    processor = load_processor(name, settings)
    if instances == 1:
        configure_tracing(f"wecom-stream-{name}")  # span export only if OTEL_* asks for it
        eventloop.run(_serve(processor, settings, bootstrap, 0, _instance_port(settings, 0)))
        return 0
    return _supervise(name, settings, bootstrap, instances)


def _supervise(name: str, settings: ProcessorSettings, bootstrap: str, instances: int) -> int:
    """N members as child processes (`runtime.supervisor`: restarted with backoff when one
    dies; SIGTERM lets each finish its batch, commit and leave the group)."""
    ctx = multiprocessing.get_context("spawn")

    def starter(i: int) -> Callable[[], Child]:
        def start() -> Child:
            proc = ctx.Process(
                target=_child, args=(name, settings, bootstrap, i), name=f"{name}-{i}"
            )
            proc.start()
            return ProcessChild(proc)

        return start

    _log.info("members_starting", processor=name, instances=instances)
    return supervise(
        {f"{name}-{i}": starter(i) for i in range(instances)},
        Restart(),
        grace_s=_CHILD_STOP_TIMEOUT_S,
    )
