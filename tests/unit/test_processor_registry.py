"""One registration point for processors (pyproject.toml's entry points
`wecom_stream.processors`, docs/design.md "Add a processor"), and everything derived from it:
each registered processor loads with its settings, has its topics in the registry, its
manifests, its compose service and its README rows; a registration that would clash is
refused; the three processors read the same way."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from processors.runner import load_processor
from runtime.errors import ConfigError
from runtime.settings import ProcessorSettings
from schemas.registry import (
    PROCESSOR_NAMES,
    REGISTRY,
    by_name,
    dlq_topic,
    processor_entry_points,
    processor_names,
)
from tests.conftest import REPO
from tests.support import toy_processor

K8S = REPO / "deploy" / "k8s"
OURS = ("normalizer", "membership", "feedback")


def test_ours_are_registered_in_their_order() -> None:
    # `run` gives the i-th processor metrics port 9100 + i: the order is part of the contract.
    assert processor_names() == PROCESSOR_NAMES == OURS
    assert [ep.value for ep in processor_entry_points()] == [
        f"processors.{name}:declare" for name in OURS
    ]


@pytest.mark.parametrize("name", PROCESSOR_NAMES)
def test_each_processor_loads_with_its_settings(name: str) -> None:
    declared = load_processor(name, ProcessorSettings.defaults())
    assert declared.name == name
    own = [f for f in ProcessorSettings.model_fields if f.startswith(f"{name}_")]
    readme = (REPO / "README.md").read_text()
    for field in own:
        assert f"| `WECOM_STREAM_{field.upper()}` |" in readme, field


@pytest.mark.parametrize("name", PROCESSOR_NAMES)
def test_each_processor_has_its_topics(name: str) -> None:
    declared = load_processor(name, ProcessorSettings.defaults())
    for topic in (*declared.inputs, *declared.outputs):
        assert by_name(topic)
    assert dlq_topic(name) in {spec.name for spec in REGISTRY}
    assert {by_name(t).writer for t in declared.outputs} == {name}


@pytest.mark.parametrize("name", PROCESSOR_NAMES)
def test_each_processor_has_its_manifests_compose_service_and_docs_rows(name: str) -> None:
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert f"{name}.yaml" in base["resources"]
    kinds = {d["kind"] for d in yaml.safe_load_all((K8S / "base" / f"{name}.yaml").read_text())}
    assert kinds == {"Service", "StatefulSet", "PodDisruptionBudget"}
    scaled = yaml.safe_load_all((K8S / "base" / "scaledobjects.yaml").read_text())
    assert f"wecom-stream-{name}" in {d["metadata"]["name"] for d in scaled}
    for overlay in ("dev", "production"):
        patches = (K8S / "overlays" / overlay / "processors.yaml").read_text()
        assert f"name: wecom-stream-{name}\n" in patches, overlay
    monitors = (K8S / "components" / "monitoring" / "monitors.yaml").read_text()
    assert f"wecom-stream-{name}" in monitors
    compose = yaml.safe_load((REPO / "deploy" / "docker" / "compose.yaml").read_text())
    assert compose["services"][name]["command"] == ["process", name]
    assert f"{name}-state" in compose["volumes"]
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"^\| `{name}` \| .*\|$", readme, re.M), "README's processor table"


def test_a_registration_in_another_distribution_comes_after_ours_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(toy_processor.register(tmp_path)))
    toy_processor.register(tmp_path, "alpha", "tests.support.toy_processor:declare")
    assert processor_names() == (*OURS, "alpha", "toy")
    assert load_processor("toy", ProcessorSettings.defaults()).inputs == (toy_processor.INPUT,)


@pytest.mark.parametrize(
    ("name", "target", "error"),
    [
        ("normalizer", "tests.support.toy_processor:declare", "registered twice"),
        ("Toy_1", "tests.support.toy_processor:declare", "lower-case"),
    ],
)
def test_a_clashing_or_badly_named_registration_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, target: str, error: str
) -> None:
    monkeypatch.syspath_prepend(str(toy_processor.register(tmp_path, name, target)))
    with pytest.raises(ValueError, match=error):
        processor_names()
    with pytest.raises(ConfigError, match=error):
        load_processor("membership", ProcessorSettings.defaults())


def test_a_registration_must_name_a_declare_that_declares_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(toy_processor.register(tmp_path, "other")))
    with pytest.raises(ConfigError, match="declares a processor named 'toy'"):
        load_processor("other", ProcessorSettings.defaults())
    monkeypatch.syspath_prepend(str(toy_processor.register(tmp_path / "b", "missing", "no.such:x")))
    with pytest.raises(ConfigError, match=r"cannot load no\.such:x"):
        load_processor("missing", ProcessorSettings.defaults())


def _shape(path: Path) -> tuple[list[str], list[str], set[str]]:
    """(the engine modules it imports, its top-level function names, its names bound at
    module level) of a processor module."""
    tree = ast.parse(path.read_text())
    engine = [
        n.module
        for n in tree.body
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("processors.engine")
    ]
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    bound = {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    return engine, functions, bound


@pytest.mark.parametrize("name", OURS)
def test_the_processors_read_the_same_way(name: str) -> None:
    engine, functions, bound = _shape(REPO / "processors" / f"{name}.py")
    assert engine == ["processors.engine.api"]
    assert functions[-2:] == ["make_handler", "declare"]  # then PROCESSOR at the defaults
    assert "PROCESSOR" in bound
    assert not {"configure", "_declare", "_declaration", "handle"} & {*functions, *bound}
