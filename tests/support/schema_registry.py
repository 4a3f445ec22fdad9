"""A real schema registry for the tests: Apicurio Registry 3.0.9 (Java 17, in-memory
storage), whose Confluent-compatible API is what `wecom-stream schemas publish` talks to.

The distribution (`io.apicurio:apicurio-registry-app:3.0.9:tar.gz:all`, ~109 MB) is fetched
once from Maven Central with Maven (`make schema-registry`, or the first test that needs
it) and unpacked into `<user cache>/wecom-stream/apicurio-registry-3.0.9/`, like the Kafka
jars. `running_registry` starts it on a free loopback port, waits until the API answers
and stops it (SIGTERM, then SIGKILL) at the end. Newer Apicurio (3.3.x) needs Java 21.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from runtime.settings import default_cache_dir
from wecom_stream.localkafka import check_java, free_port, reporter_for, run_maven, stop_pids

__all__ = [
    "APICURIO_VERSION",
    "RegistryLaunchError",
    "RunningRegistry",
    "ensure_apicurio",
    "running_registry",
]

APICURIO_VERSION = "3.0.9"
_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
_RUNNER = f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"
_CCOMPAT = "/apis/ccompat/v7"


class RegistryLaunchError(RuntimeError):
    """Apicurio Registry could not be fetched or started (the message says why)."""


def ensure_apicurio() -> Path:
    """The runner jar of the cached distribution, fetched and unpacked first if absent
    (a lock file serializes parallel callers)."""
    home = default_cache_dir() / f"apicurio-registry-{APICURIO_VERSION}"
    jar = home / "dist" / _RUNNER
    if jar.is_file():
        return jar
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RegistryLaunchError("Maven is not on PATH: install it to fetch Apicurio Registry")
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jar.is_file():
            return jar
        staging = home / "dist.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        code, explain = run_maven(
            [
                mvn,
                "-B",
                "-Dstyle.color=never",
                "dependency:copy",
                f"-Dartifact={_ARTIFACT}",
                f"-DoutputDirectory={staging}",
            ],
            reporter_for(f"Apicurio Registry {APICURIO_VERSION}"),
        )
        archives = list(staging.glob("*.tar.gz"))
        if code != 0 or not archives:
            raise RegistryLaunchError(f"Maven could not fetch {_ARTIFACT}: " + " | ".join(explain))
        with tarfile.open(archives[0]) as tar:
            tar.extractall(staging, filter="data")
        archives[0].unlink()
        if not (staging / _RUNNER).is_file():
            raise RegistryLaunchError(f"{_ARTIFACT} holds no {_RUNNER}")
        staging.rename(jar.parent)
    return jar


@dataclass(frozen=True)
class RunningRegistry:
    """A started registry: its Confluent-compatible API URL and its log."""

    url: str
    log: Path
    started_in_s: float

    def client(self) -> SchemaRegistryClient:
        """A client of its ccompat API (close it: `with registry.client() as c`)."""
        return SchemaRegistryClient({"url": self.url})


def _answers(url: str) -> bool:
    try:
        with SchemaRegistryClient({"url": url, "max.retries": 0, "timeout": 2}) as client:
            client.get_subjects()
    except SchemaRegistryError:
        return True  # an HTTP answer: the API is up
    except Exception:  # noqa: BLE001 - the HTTP library's transport errors: not up yet
        return False
    return True


@contextmanager
def running_registry(workdir: Path, timeout_s: float = 300.0) -> Iterator[RunningRegistry]:
    """Apicurio Registry on a free port of 127.0.0.1 for the block's duration."""
    java = check_java()
    jar = ensure_apicurio()
    port = free_port()
    log = workdir / "apicurio.log"
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                java,
                "-Xmx256m",
                f"-Dquarkus.http.port={port}",
                "-Dquarkus.http.host=127.0.0.1",
                "-jar",
                str(jar),
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}{_CCOMPAT}"
    try:
        deadline = started + timeout_s
        while not _answers(url):
            if proc.poll() is not None:
                raise RegistryLaunchError(
                    f"Apicurio Registry exited ({proc.returncode}); see {log}"
                )
            if time.monotonic() > deadline:
                raise RegistryLaunchError(
                    f"Apicurio Registry did not answer in {timeout_s} s: {log}"
                )
            time.sleep(0.2)
        yield RunningRegistry(url, log, time.monotonic() - started)
    finally:
        stop_pids([proc.pid], timeout_s=20)
        proc.wait()
