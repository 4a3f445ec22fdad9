"""The first-run fetch of the broker jars: Maven's output read into progress, log lines off a
terminal, a spinner on one; a fake `mvn` on PATH stands in for Maven (no network)."""

from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path

import pytest
from rich.console import Console

from wecom_stream.localkafka import (
    KAFKA_VERSION,
    FetchState,
    LocalKafkaError,
    RichReporter,
    ensure_distribution,
)

DOWNLOADING = (
    "[INFO] Downloading from central: https://repo.maven.apache.org/maven2/org/apache/kafka/"
    "kafka-clients/4.4.0/kafka-clients-4.4.0.jar"
)
DOWNLOADED = DOWNLOADING.replace("Downloading", "Downloaded") + " (18 MB at 6.1 MB/s)"
COPYING = "[INFO] Copying kafka-clients-4.4.0.jar to /x/libs.partial/kafka-clients-4.4.0.jar"


def test_fetch_state_reads_mavens_lines() -> None:
    state = FetchState()
    assert not state.feed("[INFO] Scanning for projects...")
    assert state.feed(DOWNLOADING)
    assert not state.feed(DOWNLOADED)
    assert not state.feed(DOWNLOADED.replace("(18 MB", "(1,024 kB"))
    assert state.feed(COPYING)
    assert (state.files, state.jars) == (2, 1)
    assert state.describe() == "copying jars: 2 files, 19.0 MB downloaded, 1 jar copied"


FAKE_MVN = """#!{python}
import sys, pathlib
out = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("-DoutputDirectory="))
print("\\x1b[0m[INFO] Scanning for projects...")
if {fail}:
    print("[ERROR] Failed to execute goal: could not resolve kafka_2.13")
    sys.exit(1)
print({downloading!r})
print({downloaded!r})
pathlib.Path(out).mkdir(parents=True)
for jar in ("kafka_2.13-4.4.0.jar", "kafka-clients-4.4.0.jar"):
    print(f"[INFO] Copying {{jar}} to {{out}}/{{jar}}")
    (pathlib.Path(out) / jar).write_bytes(b"PK")
print("[INFO] BUILD SUCCESS")
"""


def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, fail: bool) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "mvn"
    script.write_text(
        FAKE_MVN.format(
            python=sys.executable, fail=fail, downloading=DOWNLOADING, downloaded=DOWNLOADED
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("KAFKA_HOME", raising=False)


def test_off_a_terminal_the_fetch_logs_plain_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_mvn(tmp_path, monkeypatch, fail=False)
    libs = ensure_distribution(tmp_path / "kafka")
    assert sorted(p.name for p in libs.iterdir()) == [
        "kafka-clients-4.4.0.jar",
        "kafka_2.13-4.4.0.jar",
    ]
    lines = capsys.readouterr().err.splitlines()
    what = f"Apache Kafka {KAFKA_VERSION}"
    assert lines[0].startswith(f"fetching {what} from Maven Central into {libs}")
    assert lines[1] == f"{what}: resolving with Maven"
    assert lines[2].startswith(f"{what}: downloading from Maven Central (")
    assert lines[3].startswith(f"{what}: copying jars: 1 file, 18.0 MB downloaded, 1 jar copied (")
    assert lines[-1].startswith(f"{what} ready: 1 file, 18.0 MB downloaded, 2 jars copied (")
    assert not any("\x1b" in line for line in lines)
    assert ensure_distribution(tmp_path / "kafka") == libs  # cached: nothing more
    assert capsys.readouterr().err == ""


def test_a_failed_fetch_names_mavens_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_mvn(tmp_path, monkeypatch, fail=True)
    with pytest.raises(LocalKafkaError, match=r"could not resolve kafka_2\.13"):
        ensure_distribution(tmp_path / "kafka")
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith(f"Apache Kafka {KAFKA_VERSION} failed while resolving with Maven (")
    )
    assert not (tmp_path / "kafka" / "libs").exists()


def test_on_a_terminal_a_spinner_then_one_summary_line() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    reporter = RichReporter("Apache Kafka 4.4.0", console)
    state = FetchState()
    for line in (DOWNLOADING, DOWNLOADED, COPYING):
        reporter.update(state, state.feed(line))
    reporter.close(state, ok=True)
    assert "✓ Apache Kafka 4.4.0 ready: 1 file, 18.0 MB downloaded, 1 jar copied (" in (
        screen.getvalue()
    )
