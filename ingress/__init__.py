"""The HTTP ingress: authenticates platform callbacks and durably publishes them to Kafka.

`serve` runs it (CLI `wecom-stream ingress`; on `runtime.eventloop`'s loop), `create_app`
is the aiohttp app factory (tests), `Spool` the disk spool.
"""

from ingress.app import create_app
from ingress.publisher import Outcome, Publisher
from ingress.server import serve
from ingress.spool import Spool, SpoolFullError, SpoolRecord

__all__ = [
    "Outcome",
    "Publisher",
    "Spool",
    "SpoolFullError",
    "SpoolRecord",
    "create_app",
    "serve",
]
