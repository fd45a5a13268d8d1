#!/usr/bin/env bash
# buildah on the store that build.sh builds into (see common.sh), e.g.
#   deploy/image/buildah.sh images
#   deploy/image/buildah.sh from --pull=never localhost/mindx-fault-exporter:0.1.0
#   deploy/image/buildah.sh run --isolation chroot CONTAINER -- mindx-fault-exporter --version
set -euo pipefail
source "$(dirname "$0")/common.sh"
exec "${BUILDAH[@]}" "$@"
