"""Session fixtures of the image tests: the image of deploy/docker/Dockerfile built from this
checkout (`make image` with podman on the cached Debian base of `make image-base`), and per
test the containers it runs (removed at the end, also when the test failed).

The tests skip, saying why, where podman, runc or debootstrap is missing or the user is not
root (`make test-image` refuses to start there instead). Each session tags its own image
(sessions of other checkouts may build at the same time) and removes it at the end; the
layer cache (the dependencies, ~110 MB) stays in podman's storage for the next build
(`podman image prune` would drop it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.image.podman import Containers, build_image, local_base, missing_tools, podman

_REPORT: list[str] = []


@pytest.fixture(scope="session")
def image() -> Iterator[str]:
    """The image's tag, built now (cached layers reused), removed after the session."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: apt-get install -y podman runc debootstrap")
    if os.geteuid() != 0:
        pytest.skip("the image tests run podman and debootstrap as root")
    tag = f"localhost/wecom-stream:test-{uuid.uuid4().hex[:8]}"
    base = local_base()
    seconds = build_image(base, tag)
    try:
        size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)
        _REPORT.append(f"image built in {seconds:.1f} s on {base}: {size / 2**20:.0f} MiB")
        yield tag
    finally:
        podman("rmi", tag, check=False)


@pytest.fixture
def containers() -> Iterator[Containers]:
    running = Containers()
    try:
        yield running
    finally:
        running.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _REPORT:
        terminalreporter.write_line(line)
