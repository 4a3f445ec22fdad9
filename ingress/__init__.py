"""The HTTP ingress: authenticates platform callbacks and durably publishes them to Kafka.

`serve` runs it (CLI `wecom-stream ingress`; on `runtime.eventloop`'s loop), `IngressApp`
is one worker's handler and lifecycle (tests serve it in-process), `Spool` the disk spool.
"""

from ingress.app import IngressApp
from ingress.publisher import Outcome, Publisher
from ingress.server import serve
from ingress.spool import Spool, SpoolDiskError, SpoolFullError, SpoolRecord

__all__ = [
    "IngressApp",
    "Outcome",
    "Publisher",
    "Spool",
    "SpoolDiskError",
    "SpoolFullError",
    "SpoolRecord",
    "serve",
]
