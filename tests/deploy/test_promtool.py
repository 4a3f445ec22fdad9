"""`make deploy-check`: promtool v0.316.0 checks the rules (the plain file and each rendered
PrometheusRule's groups) and runs the alert unit tests of tests/deploy/alerts_test.yaml.

promtool is built once with Go into the user cache (`make promtool`, ~3 min cold; this module
builds it too when Go is on PATH); without Go the promtool tests skip, saying so. That every
alert has a firing and a silent case is checked without promtool.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import Objects
from tests.deploy.tools import PROMTOOL_VERSION, promtool
from tests.support.monitoring import RULES

ALERT_TESTS = Path(__file__).with_name("alerts_test.yaml")


@pytest.fixture(scope="session")
def promtool_bin() -> Path:
    binary = promtool(install=True)
    if binary is None:
        pytest.skip(
            f"promtool {PROMTOOL_VERSION} is not built and Go is not on PATH "
            "(`make promtool` builds it into ~/.cache/wecom-stream/tools)"
        )
    return binary


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)


def test_promtool_is_the_pinned_version(promtool_bin: Path) -> None:
    # `go install` leaves `promtool --version` empty; the build info names the module.
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not on PATH: the build info of promtool cannot be read")
    out = _run(go, "version", "-m", promtool_bin)
    module = f"github.com/prometheus/prometheus\t{PROMTOOL_VERSION}"
    assert module in out.stdout, out.stdout[:2000]


def test_promtool_checks_the_rules(
    promtool_bin: Path, builds: dict[str, Objects], tmp_path: Path
) -> None:
    files = [RULES]
    for name, objects in builds.items():
        for obj in objects:
            if obj["kind"] == "PrometheusRule":
                path = tmp_path / f"{name.replace('/', '_')}.rules.yaml"
                path.write_text(yaml.safe_dump(obj["spec"]))
                files.append(path)
    assert len(files) > 1
    out = _run(promtool_bin, "check", "rules", "--lint=all", "--lint-fatal", *files)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_alert_unit_tests_pass(promtool_bin: Path) -> None:
    out = _run(promtool_bin, "test", "rules", ALERT_TESTS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    alerts = {
        r["alert"]
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    firing: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", ()):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - silent == set(), "alerts never tested silent"
    assert (firing | silent) <= alerts, "tests of unknown alerts"
