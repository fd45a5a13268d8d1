#!/usr/bin/env bash
# Build the project's Dockerfile, unchanged, with buildah where no image registry is reachable:
# the base image is the stand-in from build-stand-in-base.sh (made first if missing), the build
# never pulls, and RUN steps use chroot isolation (no OCI runtime, no user namespaces needed).
#
# pip inside the build sees the host's CA bundle (a proxy's CA, if the machine has one, is in it)
# and the host's http(s) package indexes, if pip on the host is configured with any: both are
# bind-mounted for the RUN steps only, so nothing of the host ends up in the image.
#
# Usage: deploy/image/build.sh [--sizes] [--iidfile PATH]
#   prints the image name (localhost/mindx-fault-exporter:<version>) on its last line; --sizes
#   also prints the image's and the base's size, unpacked and as pushed (gzip layers); --iidfile
#   writes the image ID to PATH (the name may be retagged by a later build, the ID stays).
# The image lives in the store of common.sh: run it with
#   buildah --storage-driver vfs --root "$MINDX_IMAGE_STORE/root" --runroot "$MINDX_IMAGE_STORE/run" ...
set -euo pipefail
source "$(dirname "$0")/common.sh"

sizes=false
iidfile=""
while (($#)); do
  case "$1" in
    --sizes) sizes=true ;;
    --iidfile)
      [[ $# -ge 2 ]] || fail "--iidfile needs a file name: --iidfile PATH"
      iidfile="$2"
      shift
      ;;
    *) fail "unknown argument $1: the options are --sizes and --iidfile PATH" ;;
  esac
  shift
done
command -v buildah >/dev/null || fail "buildah not found: install it (apt-get install buildah)"
lock_cache

base="$("$(dirname "$0")/build-stand-in-base.sh")"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_ROOT/pyproject.toml" | head -1)"
[[ -n $version ]] || fail "no version = \"...\" in pyproject.toml: restore the [project] version"
image="localhost/mindx-fault-exporter:$version"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
{
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  # The host's indexes as pip reports them (files, PIP_* variables); file:// ones are not visible
  # inside the build and are dropped.
  python3 -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.\(index-url\|extra-index-url\|trusted-host\)='\(.*\)'$/\1 \2/p" \
    | while read -r key values; do
      kept=()
      for value in $values; do
        [[ $key == trusted-host || $value == http://* || $value == https://* ]] && kept+=("$value")
      done
      if ((${#kept[@]})); then echo "$key = ${kept[*]}"; fi
    done
} | awk -F' = ' '!seen[$1]++' >"$work/pip.conf"
mounts=(--volume "$work/pip.conf:/etc/pip.conf:ro")
host_ca=/etc/ssl/certs/ca-certificates.crt
if [[ -s $host_ca ]]; then mounts+=(--volume "$host_ca:/etc/ssl/certs/ca-certificates.crt:ro"); fi

iid=()
if [[ -n $iidfile ]]; then iid=(--iidfile "$iidfile"); fi
echo "building $image on $base" >&2
bh bud --quiet --isolation chroot --pull=never "${mounts[@]}" \
  "${iid[@]}" --build-arg "VERSION=$version" --tag "$image" --file "$REPO_ROOT/Dockerfile" "$REPO_ROOT" >/dev/null
bh rmi --prune >/dev/null 2>&1 || true # the previous build's image, untagged by this one

if $sizes; then
  for name in "$image" "$base"; do
    unpacked="$(bh images --json "$name" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["size"])')"
    rm -rf "$work/oci"
    bh push --quiet --compression-format gzip "$name" "oci:$work/oci" >/dev/null
    pushed="$(du -sb "$work/oci/blobs" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
    echo "$name: $unpacked unpacked, $pushed pushed (gzip layers)" >&2
  done
fi
echo "$image"
