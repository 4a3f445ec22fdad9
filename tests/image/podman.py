"""podman as the image tests drive it: the engine's configuration for this kind of host
(`deploy/docker/containers.conf` unless CONTAINERS_CONF names another), the image built by
`make image` on the cached local Debian base of `make image-base`, and detached containers
run by name, each removed when its `Containers` closes."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tests.conftest import REPO

__all__ = [
    "Container",
    "Containers",
    "build_image",
    "local_base",
    "missing_tools",
    "podman",
]

DOCKER = REPO / "deploy" / "docker"


def missing_tools() -> list[str]:
    """The commands `make test-image` needs that are not on PATH."""
    return [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(DOCKER / "containers.conf"))
    return env


def podman(
    *args: str, check: bool = True, timeout_s: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """`podman ARGS` (output captured); fails with its stderr when `check` and it failed."""
    done = subprocess.run(
        ["podman", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args[:3])} … exited {done.returncode}: {done.stderr[-3000:]}"
        )
    return done


def make(*args: str, timeout_s: float = 900.0) -> str:
    """`make -s ARGS` in the checkout, as a developer runs it (with `podman`'s environment);
    its output."""
    done = subprocess.run(
        ["make", "-s", "-C", str(REPO), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, f"make {' '.join(args)}: {done.stderr[-3000:]}"
    return done.stdout


def local_base() -> str:
    """`make image-base`: the cached Debian base's image name (made on first use:
    debootstrap, 1-3 min)."""
    return make("image-base").strip().splitlines()[-1]


def build_image(base: str, tag: str) -> float:
    """`make image` with podman on `base`, never pulling; the seconds it took."""
    started = time.monotonic()
    make(
        "image",
        "IMAGE_ENGINE=podman",
        f"IMAGE={tag}",
        f"BASE_IMAGE={base}",
        "IMAGE_BUILD_FLAGS=--pull=never --quiet",
    )
    return time.monotonic() - started


@dataclass(frozen=True)
class Container:
    """A detached container, by name."""

    name: str

    def state(self) -> tuple[str, int]:
        """(status such as "running" or "exited", exit code)."""
        status, code = podman(
            "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", self.name
        ).stdout.split()
        return status, int(code)

    def running(self) -> bool:
        return self.state()[0] == "running"

    def logs(self) -> str:
        """stdout and stderr so far (the JSON log lines)."""
        done = podman("logs", self.name)
        return done.stdout + done.stderr

    def users(self) -> list[tuple[str, str]]:
        """(host uid, command) of every process in the container."""
        lines = podman("top", self.name, "huser", "args").stdout.splitlines()[1:]
        return [(line.split(None, 1)[0], line.split(None, 1)[1].strip()) for line in lines]

    def wait(self, timeout_s: float) -> int:
        """The exit code once the container has exited."""
        return int(podman("wait", self.name, timeout_s=timeout_s).stdout.strip())

    def stop(self, grace_s: int) -> tuple[int, float]:
        """SIGTERM (the image's stop signal), SIGKILL after `grace_s`, as the kubelet does;
        (exit code, seconds to stop)."""
        started = time.monotonic()
        podman("stop", "--time", str(grace_s), self.name, timeout_s=grace_s + 60)
        return self.state()[1], time.monotonic() - started


class Containers:
    """Starts containers named `<prefix>-<name>` and removes them all on `close()`."""

    def __init__(self) -> None:
        self.prefix = f"wecom-test-{uuid.uuid4().hex[:8]}"
        self.started: list[Container] = []

    def run(
        self,
        image: str,
        name: str,
        args: Sequence[str],
        flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Container:
        """`podman run --detach` on the host's network (the local broker listens on
        loopback); never pulls."""
        container = Container(f"{self.prefix}-{name}")
        env_flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
        self.started.append(container)
        podman(
            "run",
            "--detach",
            "--pull=never",
            "--network=host",
            f"--name={container.name}",
            *flags,
            *env_flags,
            image,
            *args,
        )
        return container

    def close(self) -> None:
        for container in self.started:
            podman("rm", "--force", "--time", "0", container.name, check=False)
