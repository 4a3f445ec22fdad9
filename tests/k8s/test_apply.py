"""Each kustomization (the base and every overlay, found at run time) against the real API
server: a server-side dry run (strict field decoding, defaulting, admission, CRD schemas)
that must pass before anything is stored, then the real server-side apply of every object,
then every Deployment/StatefulSet/DaemonSet rolled out (pods scheduled onto kwok's node,
claims bound to static volumes, pods Ready)."""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.k8s.deploy import Deployer
from tests.k8s.manifests import Rendering, discover, workloads


@pytest.mark.parametrize("rendering", discover(), ids=lambda r: r.name)
def test_applies_and_rolls_out(deployer: Deployer, rendering: Rendering) -> None:
    applied = deployer.apply(rendering)

    count = len(applied.objects)
    assert applied.dry_run.count("serverside-applied (server dry run)") == count, applied.dry_run
    assert applied.applied.count("serverside-applied") == count, applied.applied
    assert workloads(applied.objects), f"{rendering.name} renders no workload"
    lines = deployer.rollout(applied)
    assert len(lines) == len(workloads(applied.objects))


def test_the_dry_run_refuses_unknown_fields(deployer: Deployer) -> None:
    """The dry run is a real check: a StatefulSet and a KEDA ScaledObject of the base, each
    with a field their schema lacks, are refused (strict decoding; the CRD's schema)."""
    applied = deployer.apply(discover()[0])
    for kind in ("StatefulSet", "ScaledObject"):
        broken = copy.deepcopy(next(o for o in applied.objects if o["kind"] == kind))
        broken["spec"]["replicaz"] = 2
        done = deployer.kube.kubectl(
            "apply",
            "--server-side",
            "--dry-run=server",
            "-n",
            applied.namespace,
            "-f",
            "-",
            stdin=yaml.safe_dump(broken),
            check=False,
        )
        assert done.returncode != 0, f"{kind} with .spec.replicaz accepted: {done.stdout}"
        assert "replicaz" in done.stderr, done.stderr
