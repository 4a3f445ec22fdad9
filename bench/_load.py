"""The ingress benchmark's load generators: `wrk` (closed loop, a Lua script sending
distinct message callbacks) and `vegeta` (open loop at a fixed rate), each installed or built
when missing, and the parsing of their reports into the figures `bench/ingress.py` records.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.procstats import group_cpu_seconds

__all__ = [
    "CONNECTIONS",
    "TOKEN",
    "WRK_LUA",
    "ensure_vegeta",
    "ensure_wrk",
    "message_template",
    "run_rate",
    "run_wrk",
    "warm_up",
    "write_targets",
]

TOKEN = "bench-token-0001"  # noqa: S105 - a benchmark tenant, not a secret
CONNECTIONS = 64

WRK_LUA = r"""
local counter = 0
local thread_id = 0
local template = [[__TEMPLATE__]]
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  thread_id = tid or 0
  -- a seed per run: unseeded, every wrk run repeats the same ids (warm-up and measured run)
  math.randomseed(os.time() * 100 + thread_id)
end
request = function()
  counter = counter + 1
  local id = string.format("bench-%d-%d-%d", thread_id, counter, math.random(1, 1000000000))
  local chat = string.format("chat-%d", counter % 500)
  local body = template:gsub("__MSGID__", id):gsub("__CHATID__", chat)
  return wrk.format("POST", "/notice", {["Content-Type"] = "application/json"}, body)
end
"""


def message_template() -> str:
    """The sample message callback as a realistic text message, with id placeholders."""
    from tests.support.samples import SAMPLES

    sample = json.loads((SAMPLES / "yuju-message.json").read_text())
    data = sample["data"]
    data.update(
        messageId="__MSGID__",
        chatId="__CHATID__",
        token=TOKEN,
        type=7,
        payload={"text": "你好，请问这个产品的价格是多少？能不能再便宜一点", "mention": []},
        timestamp=str(int(time.time() * 1000)),
        contactName="张三",
        roomTopic="客户服务群",
        botId="bot-0001",
        contactId="7881300000000001",
        roomId="R:10800000000001",
    )
    return json.dumps(sample, ensure_ascii=False)


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    print("wrk not found: installing it with apt-get (Debian package)", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("could not install wrk; install it (apt-get install wrk) and rerun")
    return found


VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0"


def ensure_vegeta() -> str:
    """`vegeta` from PATH, else built from the Go module proxy into the venv's bin."""
    found = shutil.which("vegeta") or shutil.which("vegeta", path=str(Path(sys.executable).parent))
    if found:
        return found
    go = shutil.which("go")
    if not go:
        raise SystemExit("vegeta not found and no Go toolchain to build it: install Go or vegeta")
    print(f"vegeta not found: building {VEGETA_MODULE} with go install", flush=True)
    env = {**os.environ, "GOBIN": str(Path(sys.executable).parent), "GOFLAGS": "-mod=mod"}
    subprocess.run([go, "install", VEGETA_MODULE], check=True, env=env, cwd=tempfile.gettempdir())
    built = shutil.which("vegeta", path=env["GOBIN"])
    if not built:
        raise SystemExit("go install of vegeta did not produce a binary")
    return built


def write_targets(path: Path, url: str, count: int, tag: str = "rate") -> None:
    """`count` distinct message callbacks (ids `<tag>-<i>`, 500 conversations) as vegeta JSON
    targets (one request per line)."""
    template = message_template()
    with path.open("w") as out:
        for i in range(count):
            body = template.replace("__MSGID__", f"{tag}-{i}").replace(
                "__CHATID__", f"chat-{i % 500}"
            )
            target = {
                "method": "POST",
                "url": url,
                "body": base64.b64encode(body.encode()).decode(),
                "header": {"Content-Type": ["application/json"]},
            }
            out.write(json.dumps(target) + "\n")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def warm_up(wrk: str, url: str, script: Path, seconds: float) -> None:
    """`wrk` at the maximum rate for `seconds`, measuring nothing (a new broker's JIT)."""
    warm = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds:.0f}s", "-s", str(script), url]
    subprocess.run(warm, check=True, capture_output=True)


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    duration: float,
    pgid: int | None = None,
    broker_pgid: int | None = None,
) -> dict[str, Any]:
    # a short warm-up so connections, JIT-less caches and the producer's metadata are hot
    subprocess.run(
        [wrk, "-t1", f"-c{CONNECTIONS}", "-d2s", "-s", str(script), url],
        check=True,
        capture_output=True,
    )
    cpu_before = group_cpu_seconds(pgid) if pgid else 0.0
    broker_before = group_cpu_seconds(broker_pgid) if broker_pgid else 0.0
    busy_before, total_before = machine_busy_s()
    out = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{duration:.0f}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    cpu = group_cpu_seconds(pgid) - cpu_before if pgid else 0.0
    broker_cpu = group_cpu_seconds(broker_pgid) - broker_before if broker_pgid else 0.0
    busy_after, total_after = machine_busy_s()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    pct = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s|m))\s*$", out, re.MULTILINE))
    return {
        "requests_per_s": round(rps, 1),
        "requests": total,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else None,
        "p50_ms": round(_ms(pct["50"]), 2),
        "p99_ms": round(_ms(pct["99"]), 2),
        "connections": CONNECTIONS,
        "duration_s": duration,
        "server_cpu_us_per_request": round(cpu / total * 1e6, 1) if pgid else None,
        "broker_cpu_us_per_request": round(broker_cpu / total * 1e6, 1) if broker_pgid else None,
        "machine_busy_percent": round(
            100 * (busy_after - busy_before) / max(1e-9, total_after - total_before), 1
        ),
    }


def run_rate(vegeta: str, targets: Path, rate: float, duration: float) -> dict[str, Any]:
    """Open loop at `rate` requests/s for `duration` s; vegeta's latencies (from each
    request's start, which in open loop is its tick) and status codes."""
    attack = subprocess.run(
        [
            vegeta,
            "attack",
            "-format=json",
            f"-targets={targets}",
            f"-rate={rate:.0f}/s",
            f"-duration={duration:.0f}s",
            "-timeout=10s",
        ],
        check=True,
        capture_output=True,
    ).stdout
    report = json.loads(
        subprocess.run(
            [vegeta, "report", "-type=json"], input=attack, check=True, capture_output=True
        ).stdout
    )
    latencies = report["latencies"]  # nanoseconds
    return {
        "target_rate": round(rate, 1),
        "achieved_rate": round(report["rate"], 1),
        "requests": report["requests"],
        "statuses": report["status_codes"],
        "errors": report["errors"][:5],
        "p50_ms": round(latencies["50th"] / 1e6, 2),
        "p99_ms": round(latencies["99th"] / 1e6, 2),
        "max_ms": round(latencies["max"] / 1e6, 2),
    }
