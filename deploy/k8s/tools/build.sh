#!/usr/bin/env bash
# Builds, once, the pinned binaries `make test-k8s` runs: kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl (Kubernetes v1.37.2, from the wrapper module beside this script),
# etcd v3.7.3 (./etcd), kwok v0.8.0 (a fake kubelet) with its Stage files, and kustomize v5.8.2.
#
# Output: $K8S_TOOLS_DIR/bin (default ~/.cache/wecom-stream/k8s-tools/bin) and
# $K8S_TOOLS_DIR/kwok-stages. A binary whose stamp (bin/.NAME.version) names the pinned version
# is skipped, so a second run costs nothing; changing a pin below rebuilds just that binary.
# Cold, on 2 cores: kube-apiserver ~5 min, the rest ~4 min together; Go's caches grow by ~10 GB.
set -euo pipefail

KUBE_VERSION=v1.37.2 # k8s.io/kubernetes, pinned in go.mod (staging modules at v0.37.2)
ETCD_VERSION=v3.7.3  # go.etcd.io/etcd/server/v3, pinned in etcd/go.mod
KWOK_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.8.2 # v5.8.3 needs Go 1.27

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${K8S_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wecom-stream/k8s-tools}
bin=$dir/bin
mkdir -p "$bin"

# current NAME VERSION: true when bin/NAME exists and was built at VERSION.
current() { [[ -x $bin/$1 && "$(cat "$bin/.$1.version" 2>/dev/null)" == "$2" ]]; }

# stamp NAME VERSION SECONDS: record what was built and how long it took.
stamp() {
	echo "$2" >"$bin/.$1.version"
	echo "k8s-tools: built $1 $2 in $3 s"
}

kube_ldflags() {
	local v=${KUBE_VERSION#v}
	local p=k8s.io/component-base/version
	echo "-s -w -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=${v%%.*}" \
		"-X $p.gitMinor=$(cut -d. -f2 <<<"$v") -X $p.gitTreeState=clean" \
		"-X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
}

for name in kubectl kube-scheduler kube-controller-manager kube-apiserver; do
	current "$name" "$KUBE_VERSION" && continue
	start=$SECONDS
	(cd "$here" && go build -trimpath -ldflags "$(kube_ldflags)" -o "$bin/$name.tmp" \
		"k8s.io/kubernetes/cmd/$name")
	mv "$bin/$name.tmp" "$bin/$name"
	stamp "$name" "$KUBE_VERSION" $((SECONDS - start))
done

if ! current etcd "$ETCD_VERSION"; then
	start=$SECONDS
	(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
	mv "$bin/etcd.tmp" "$bin/etcd"
	stamp etcd "$ETCD_VERSION" $((SECONDS - start))
fi

if ! current kwok "$KWOK_VERSION"; then
	start=$SECONDS
	GOBIN=$bin/.kwok.tmp go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
	mv "$bin/.kwok.tmp/kwok" "$bin/kwok" && rmdir "$bin/.kwok.tmp"
	# The Stage objects that make kwok's nodes Ready and its pods Running/Ready (and let them
	# be deleted), copied from the same module release so they match the binary.
	src=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	rm -rf "$dir/kwok-stages" && mkdir -p "$dir/kwok-stages"
	for stage in node/fast node/heartbeat pod/fast; do
		for f in "$src/kustomize/stage/$stage"/*.yaml; do
			[[ $(basename "$f") == kustomization.yaml ]] && continue
			cp "$f" "$dir/kwok-stages/${stage//\//-}-$(basename "$f")"
		done
	done
	chmod -R u+w "$dir/kwok-stages"
	stamp kwok "$KWOK_VERSION" $((SECONDS - start))
fi

if ! current kustomize "$KUSTOMIZE_VERSION"; then
	start=$SECONDS
	GOBIN=$bin/.kustomize.tmp go install -trimpath "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
	mv "$bin/.kustomize.tmp/kustomize" "$bin/kustomize" && rmdir "$bin/.kustomize.tmp"
	stamp kustomize "$KUSTOMIZE_VERSION" $((SECONDS - start))
fi

echo "k8s-tools: $bin"
