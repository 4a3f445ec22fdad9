"""`make test-k8s`: every kustomization of deploy/k8s applied to a real control plane (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler) with kwok's fake nodes, rolled out
and drained. Not part of `make test` (pyproject's testpaths leave this folder out)."""
