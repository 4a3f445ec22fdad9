"""A throwaway control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (a fake kubelet for the Node objects the tests create), each a child
process in its own session with its log in the work dir, started in order and stopped in
reverse by `LocalKube.stop` (SIGTERM, then SIGKILL), which the session fixture always calls.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.k8s.tools import Tools, wait_until

__all__ = ["LocalKube"]

_TOKEN = "wecom-stream-test-k8s-admin"  # the only credential: group system:masters
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Child:
    """One started binary; stdout and stderr go to `<work>/<name>.log`."""

    def __init__(self, name: str, argv: Sequence[str], work: Path) -> None:
        self.name = name
        self.log_path = work / f"{name}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=work,
            )

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL after `_STOP_TIMEOUT_S`, and reap it."""
        if self.exited():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class LocalKube:
    """The control plane and its clients' settings (kubeconfig, token, CA) under `work`."""

    def __init__(self, tools: Tools, work: Path) -> None:
        self.tools = tools
        self.work = work
        self.kubeconfig = work / "kubeconfig"
        self.token = _TOKEN
        self.ca_file = work / "certs" / "apiserver.crt"  # self-signed, written at start
        self.server = ""
        self._children: list[_Child] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start every component and return once the API server answers /readyz, the
        controller-manager has created the default ServiceAccount and kwok runs."""
        etcd_url = self._start_etcd()
        self._start_apiserver(etcd_url)
        for name in ("kube-controller-manager", "kube-scheduler"):
            self._spawn(name, self._component_flags(name))
        wait_until(
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            timeout_s=_START_TIMEOUT_S,
            what="default ServiceAccount from kube-controller-manager",
            detail=lambda: self._children[-2].tail(),
        )
        stages = [f"--config={path}" for path in self.tools.stages()]
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--server-address=127.0.0.1:{_free_port()}",
                "--node-ip=127.0.0.1",
                *stages,
            ],
        )

    def stop(self) -> None:
        """Stop every started component, last started first; safe to call more than once."""
        for child in reversed(self._children):
            child.stop()

    def exited(self) -> list[str]:
        """Names of started components that are no longer running (a crash, or stopped)."""
        return [child.name for child in self._children if child.exited()]

    def running(self) -> list[str]:
        """Names of started components still running."""
        return [child.name for child in self._children if not child.exited()]

    # ------------------------------------------------------------------ clients
    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout_s: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (its discovery cache in the work dir); with
        `check`, a failure raises AssertionError carrying kubectl's own error."""
        argv = [
            str(self.tools.binary("kubectl")),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.work / 'kube-cache'}",
            *args,
        ]
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stderr}{done.stdout}"
            )
        return done

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply_objects(self, objects: Sequence[dict[str, Any]], *extra: str) -> str:
        """Server-side apply of `objects` (one YAML stream); returns kubectl's output."""
        stream = yaml.safe_dump_all(objects, sort_keys=False)
        return self.kubectl(
            "apply", "--server-side", "--field-manager=test-k8s", *extra, "-f", "-", stdin=stream
        ).stdout

    # ------------------------------------------------------------------ components
    def _spawn(self, name: str, flags: Sequence[str]) -> _Child:
        child = _Child(name, [str(self.tools.binary(name)), *flags], self.work)
        self._children.append(child)
        return child

    def _start_etcd(self) -> str:
        client, peer = _free_port(), _free_port()
        url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        child = self._spawn(
            "etcd",
            [
                "--name=test-k8s",
                f"--data-dir={self.work / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=test-k8s={peer_url}",
                "--unsafe-no-fsync",  # a throwaway store: durability is not under test
                "--log-level=warn",
            ],
        )
        wait_until(
            lambda: b'"health":"true"' in (_http_get(f"{url}/health") or b""),
            timeout_s=_START_TIMEOUT_S,
            what="healthy etcd",
            detail=child.tail,
        )
        return url

    def _start_apiserver(self, etcd_url: str) -> None:
        (self.work / "certs").mkdir()
        key, pub = self.work / "sa.key", self.work / "sa.pub"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
        )
        subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
            check=True,
            capture_output=True,
        )
        tokens = self.work / "tokens.csv"
        tokens.write_text(f'{self.token},admin,admin,"system:masters"\n')
        port = _free_port()
        self.server = f"https://127.0.0.1:{port}"
        child = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                # The default reconciler refuses a loopback advertise address.
                "--endpoint-reconciler-type=none",
                f"--cert-dir={self.work / 'certs'}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={pub}",
                f"--service-account-signing-key-file={key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                # Cluster IPs are only allocated, never routed: kwok's pods send nothing.
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
            ],
        )
        self._write_kubeconfig()
        wait_until(
            lambda: _http_get(f"{self.server}/readyz", self.token, self.ca_file) == b"ok",
            timeout_s=_START_TIMEOUT_S,
            what="kube-apiserver /readyz ok",
            detail=child.tail,
        )

    def _component_flags(self, name: str) -> list[str]:
        flags = [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",  # no health endpoint to serve: the tests watch their effects
        ]
        if name == "kube-controller-manager":
            flags += [
                f"--service-account-private-key-file={self.work / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                "--use-service-account-credentials=false",
            ]
        return flags

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test-k8s",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.ca_file),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "test-k8s", "context": {"cluster": "test-k8s", "user": "admin"}}],
            "current-context": "test-k8s",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))


def _http_get(url: str, token: str | None = None, ca_file: Path | None = None) -> bytes | None:
    """The body of a GET, or None while the server is not up (or its cert not yet written)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
        request = urllib.request.Request(url, headers=headers)  # noqa: S310  # our loopback URL
        with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
            body: bytes = response.read()
            return body
    except (OSError, ssl.SSLError, urllib.error.URLError):
        return None
