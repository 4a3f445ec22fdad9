"""The ingress benchmark's peer: Benthos v4.27.0 doing the ingress's job for message callbacks,
`http_server` input (POST /notice) → `kafka_franz` output to the raw message topic.

- Binary: built from `bench/benthos/` (main.go importing only the io, kafka, pure and
  prometheus components; `components/all` does not resolve here) with the local Go
  toolchain into `~/.cache/wecom-stream/tools/benthos-v4.27.0/benthos`, once.
- Acknowledgement: without a `sync_response` the `http_server` input answers a request only
  when the output has acknowledged its message (`internal/impl/io/input_http_server.go`:
  the handler waits on the transaction's result channel), with 200 and an empty body; 502
  with the error when the output failed, 408 after `timeout` (5 s) or when the client went
  away (the message may still be written then). Our ingress answers 200 `{}`.
- Output: `acks=all` (franz-go's default), idempotent (`idempotent_write`, the default),
  `compression: none` (the ingress's aiokafka producer does not compress; franz-go would
  prefer snappy), key `data.chatId` (murmur2, as ours), one record per request
  (`batching` off, the default), `max_in_flight` = wrk's connections (Benthos's default of
  10 would let only 10 of the 64 concurrent requests be produced at a time).
- Not done by this config, done by ours: the tenant-token check and its removal from the
  record, CloudEvents headers, routing by path, the spool.
- Checked before the measured run: a 3 s `wrk` run's 2xx answers against the records the
  topic gained (each 2xx must be on the topic; requests still in flight when `wrk` stopped
  may add up to one per connection).
- Metrics: prometheus (Benthos's default when the component is built in), served with
  `/ready` and the input's path on the service-wide HTTP server (`http.address`).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench._load import CONNECTIONS, run_wrk, warm_up
from bench._procs import Proc, free_port, topic_total, wait_http
from tests.support.procstats import pin_group

__all__ = ["BENTHOS_VERSION", "benthos_config", "ensure_benthos", "measure_benthos"]

BENTHOS_VERSION = "v4.27.0"
SOURCE = Path(__file__).resolve().parent / "benthos"
TOOLS = Path.home() / ".cache" / "wecom-stream" / "tools"


def ensure_benthos() -> Path:
    """The Benthos binary in the tools cache, built from `bench/benthos/` when missing."""
    binary = TOOLS / f"benthos-{BENTHOS_VERSION}" / "benthos"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if not go:
        raise SystemExit("benthos not built and no Go toolchain to build it: install Go")
    print(f"benthos not found: building {BENTHOS_VERSION} from {SOURCE} (~1-2 min)", flush=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    partial = binary.with_name("benthos.partial")
    subprocess.run([go, "build", "-o", str(partial), "."], check=True, env=env, cwd=SOURCE)
    partial.rename(binary)  # only a finished build is found by the next run
    return binary


def benthos_config(port: int, bootstrap: str, topic: str, max_in_flight: int) -> str:
    """The stream config (YAML; JSON strings are valid YAML scalars)."""
    brokers = ", ".join(f'"{b.strip()}"' for b in bootstrap.split(",") if b.strip())
    return f"""\
http:
  address: "127.0.0.1:{port}"
input:
  http_server:
    path: /notice
    allowed_verbs: [POST]
    timeout: 5s
output:
  kafka_franz:
    seed_brokers: [{brokers}]
    topic: "{topic}"
    key: '${{! json("data.chatId") }}'
    idempotent_write: true
    compression: none
    max_in_flight: {max_in_flight}
logger:
  level: INFO
  format: logfmt
"""


def _settled_total(bootstrap: str, topic: str) -> int:
    """The topic's records once no more arrive (writes in flight when a load stopped)."""
    total = asyncio.run(topic_total(bootstrap, topic))
    while True:
        time.sleep(0.5)
        again = asyncio.run(topic_total(bootstrap, topic))
        if again == total:
            return total
        total = again


def check_records(wrk: str, url: str, script: Path, bootstrap: str, topic: str) -> dict[str, Any]:
    """A short `wrk` run: its 2xx answers against the records the topic gained."""
    before = _settled_total(bootstrap, topic)
    cmd = [wrk, "-t1", f"-c{CONNECTIONS}", "-d3s", "-s", str(script), url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    answered = total - (int(non2xx.group(1)) if non2xx else 0)
    written = _settled_total(bootstrap, topic) - before
    check = {"responses_2xx": answered, "records_written": written}
    if not answered <= written <= answered + CONNECTIONS:
        raise SystemExit(
            f"benthos: {check} (each 2xx must be on {topic}, at most {CONNECTIONS} more)"
        )
    return check


def measure_benthos(
    wrk: str,
    script: Path,
    work: Path,
    bootstrap: str,
    topic: str,
    *,
    duration: float,
    warmup: float,
    max_in_flight: int,
    pin_cpu: int | None,
    broker_pgid: int | None,
) -> tuple[dict[str, Any], int]:
    """Benthos at the maximum rate, measured as the 1-worker ingress is; and the records it
    wrote over its whole life (warm-ups and check included)."""
    binary = ensure_benthos()
    port = free_port()
    config = work / "benthos.yaml"
    config.write_text(benthos_config(port, bootstrap, topic, max_in_flight))
    before = _settled_total(bootstrap, topic)
    proc = Proc([str(binary), "-c", str(config)], dict(os.environ), work / "benthos.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/ready")
        if pin_cpu is not None:
            pin_group(proc.proc.pid, {pin_cpu})
        if warmup > 0:
            print(f"warming the new broker up for {warmup:.0f}s (through benthos) ...", flush=True)
            warm_up(wrk, f"{url}/notice", script, warmup)
        check = check_records(wrk, f"{url}/notice", script, bootstrap, topic)
        print(f"benthos {BENTHOS_VERSION}, max rate ...", flush=True)
        run = run_wrk(wrk, f"{url}/notice", script, duration, proc.proc.pid, broker_pgid)
    finally:
        proc.stop()
    run["records_check"] = check
    run["benthos"] = {"version": BENTHOS_VERSION, "max_in_flight": max_in_flight}
    return run, _settled_total(bootstrap, topic) - before
