"""Toxiproxy between our processes and Kafka: the Go server (`github.com/Shopify/toxiproxy/v2`
at v2.12.0, built once from the Go module proxy by `make toxiproxy`), started on a free port,
and driven through its HTTP API (`Toxiproxy`, aiohttp; no third-party client).

A proxy listens on one port and forwards each connection to its upstream. Toxics change the
data on the way: `latency` (delay, ± jitter), `timeout` (with 0: every byte dropped, the
connection held open), `reset_peer` (connections reset), `bandwidth` (KB/s); a proxy that is
disabled closes its connections and refuses new ones. `POST /reset` enables every proxy and
removes every toxic. Toxics apply to the connections already open as well as to new ones.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiohttp

from tests.support.gotools import go_tool
from wecom_stream.localkafka import free_port

__all__ = [
    "TOXIPROXY_VERSION",
    "Toxiproxy",
    "ToxiproxyServer",
    "toxiproxy_binary",
]

TOXIPROXY_VERSION = "v2.12.0"
_START_TIMEOUT_S = 20.0
Stream = Literal["upstream", "downstream"]


def toxiproxy_binary(*, install: bool) -> Path | None:
    """The Toxiproxy server (`make toxiproxy`): `$WECOM_STREAM_TOXIPROXY`, else the cached
    build; built with Go first (~1 min cold) when `install` and Go is on PATH."""
    return go_tool(
        "toxiproxy",
        "github.com/Shopify/toxiproxy/v2/cmd/server",
        TOXIPROXY_VERSION,
        "WECOM_STREAM_TOXIPROXY",
        install=install,
        built_as="server",
    )


class ToxiproxyServer:
    """One `toxiproxy` process on a free loopback port, its log in `log_path`."""

    def __init__(self, binary: Path, log_path: Path) -> None:
        self.binary = binary
        self.log_path = log_path
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Toxiproxy:
        self.port = free_port()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.binary), "-host", "127.0.0.1", "-port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=os.environ | {"LOG_LEVEL": "warn"},  # not one line per connection
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"toxiproxy exited with {self._proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/version", timeout=2):  # noqa: S310
                    return Toxiproxy(self.url)
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"toxiproxy did not answer at {self.url}") from None
                time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> Toxiproxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Toxiproxy:
    """The server's HTTP API (a short-lived session per call: usable from any event loop)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.request(method, self.url + path, json=body) as resp,
        ):
            text = await resp.text()
            if resp.status >= 300:
                raise RuntimeError(f"toxiproxy {method} {path}: {resp.status} {text}")
            return await resp.json(content_type=None) if text else None

    async def create(self, name: str, upstream_port: int, listen: str = "127.0.0.1:0") -> int:
        """A proxy to 127.0.0.1:`upstream_port` (which need not be listening yet: each
        connection dials the upstream when it is accepted), listening at `listen` (port 0:
        one Toxiproxy picks, with no window in which another process could take it);
        returns the port it listens on."""
        created = await self._call(
            "POST",
            "/proxies",
            {
                "name": name,
                "listen": listen,
                "upstream": f"127.0.0.1:{upstream_port}",
                "enabled": True,
            },
        )
        return int(str(created["listen"]).rpartition(":")[2])

    async def add_toxic(
        self, proxy: str, kind: str, stream: Stream = "downstream", **attributes: int
    ) -> str:
        """Add a toxic of `kind` on one direction of `proxy` (downstream: towards the client);
        returns its name."""
        name = f"{kind}_{stream}"
        await self._call(
            "POST",
            f"/proxies/{proxy}/toxics",
            {"name": name, "type": kind, "stream": stream, "toxicity": 1.0,
             "attributes": attributes},
        )  # fmt: skip
        return name

    async def add_both_ways(self, proxy: str, kind: str, **attributes: int) -> None:
        streams: tuple[Stream, ...] = ("upstream", "downstream")
        for stream in streams:
            await self.add_toxic(proxy, kind, stream, **attributes)

    async def remove_toxics(self, proxy: str) -> None:
        """Every toxic of `proxy` removed. A removal can take a while: Toxiproxy interrupts
        each link's toxic and waits for the data it holds to move on (a DELETE of a latency
        toxic on a busy inter-broker link once took over 10 s), so a removal that times out
        is asked again until the toxic is gone."""
        for _ in range(6):
            toxics = await self._call("GET", f"/proxies/{proxy}/toxics")
            if not toxics:
                return
            for toxic in toxics:
                with contextlib.suppress(TimeoutError, RuntimeError):  # RuntimeError: 404, gone
                    await self._call("DELETE", f"/proxies/{proxy}/toxics/{toxic['name']}")
        raise RuntimeError(f"toxiproxy: the toxics of {proxy} could not be removed")

    async def set_enabled(self, proxy: str, enabled: bool) -> None:
        """Disabled: its connections are closed and new ones refused."""
        await self._call("POST", f"/proxies/{proxy}", {"enabled": enabled})

    async def reset(self) -> None:
        """Every proxy enabled, every toxic removed."""
        await self._call("POST", "/reset")

    async def proxies(self) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", "/proxies")
        return found
