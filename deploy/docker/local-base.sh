#!/usr/bin/env bash
# A local stand-in for python:3.11-slim, made from Debian's packages, for hosts that reach no
# image registry (make test-image; make image BASE_IMAGE=...): Debian bookworm (Python 3.11)
# by debootstrap from the mirror apt already uses, imported into podman as $BASE_TAG.
#
# Cached: the root filesystem tarball under ~/.cache/wecom-stream/image-base (~45 s to make
# the first time), and the imported image in podman's storage (~5 s to import again). Prints
# the image name. Needs root (debootstrap), podman and debootstrap
# (`apt-get install -y podman runc debootstrap`).
#
# Change PACKAGES or SUITE and bump BASE_VERSION: the cache is keyed by it.
set -euo pipefail

SUITE=bookworm  # Python 3.11, as the project runs it (trixie has 3.13)
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
BASE_VERSION=1
BASE_TAG=${BASE_TAG:-localhost/wecom-stream-base:$SUITE-py311-v$BASE_VERSION}
CACHE=${WECOM_STREAM_IMAGE_CACHE:-$HOME/.cache/wecom-stream/image-base}
TARBALL=$CACHE/debian-$SUITE-py311-v$BASE_VERSION.tar

log() { echo "local-base: $*" >&2; }

if podman image exists "$BASE_TAG"; then
    echo "$BASE_TAG"
    exit 0
fi

if [[ ! -s $TARBALL ]]; then
    for tool in debootstrap podman; do
        command -v "$tool" >/dev/null || {
            log "$tool is missing: apt-get install -y podman runc debootstrap"
            exit 1
        }
    done
    # The mirror apt uses for $SUITE (deb822 or one-line sources alike); DEBIAN_MIRROR overrides.
    mirror=${DEBIAN_MIRROR:-$(apt-cache policy 2>/dev/null |
        awk -v s="$SUITE/main" '$3 == s && /Packages/ {print $2; exit}')}
    mirror=${mirror:-http://deb.debian.org/debian}
    mkdir -p "$CACHE"
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs" "$TARBALL.part"' EXIT
    log "debootstrap $SUITE from $mirror (about a minute, once)"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" >&2
    tar -C "$rootfs" --exclude=./var/cache/apt --exclude=./var/lib/apt/lists \
        --numeric-owner -cf "$TARBALL.part" .
    mv "$TARBALL.part" "$TARBALL"
fi

log "importing $TARBALL as $BASE_TAG"
podman import --quiet --change 'CMD ["python3"]' "$TARBALL" "$BASE_TAG" >/dev/null
echo "$BASE_TAG"
