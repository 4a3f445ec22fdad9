"""Each kustomization (the base and every overlay, found at run time) against the real API
server: a server-side dry run (strict field decoding, defaulting, admission, CRD schemas)
that must pass before anything is stored, then the real server-side apply of every object,
then every Deployment/StatefulSet/DaemonSet rolled out (pods scheduled onto kwok's node,
claims bound to static volumes, pods Ready)."""

from __future__ import annotations

import pytest

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
