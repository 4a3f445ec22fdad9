"""The HTTP ingress: authenticates platform callbacks and durably publishes them to Kafka.

`serve` runs it (CLI `wecom-stream ingress`), `create_app` is the aiohttp app factory
(tests), `new_event_loop` the loop it runs on (uvloop when installed), `Spool` the disk
spool.
"""

from ingress.app import create_app
from ingress.publisher import Outcome, Publisher
from ingress.server import new_event_loop, serve
from ingress.spool import Spool, SpoolFullError, SpoolRecord

__all__ = [
    "Outcome",
    "Publisher",
    "Spool",
    "SpoolFullError",
    "SpoolRecord",
    "create_app",
    "new_event_loop",
    "serve",
]
