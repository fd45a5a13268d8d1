# Shared by build-stand-in-base.sh and build.sh (sourced, not run).
#
# Images live in a store of their own (vfs driver: plain directories, no overlay mounts, no fuse,
# works as root on any filesystem), so these scripts never touch the machine's default
# containers-storage. Override with MINDX_IMAGE_STORE; the debootstrap cache with MINDX_IMAGE_CACHE.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

fail() {
  # A user error: one line naming the cause and the fix, status 2.
  echo "$(basename "$0"): $*" >&2
  exit 2
}

if [[ $(id -u) -eq 0 ]]; then
  MINDX_IMAGE_CACHE="${MINDX_IMAGE_CACHE:-/var/cache/mindx-image}"
else
  MINDX_IMAGE_CACHE="${MINDX_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mindx-image}"
fi
MINDX_IMAGE_STORE="${MINDX_IMAGE_STORE:-$MINDX_IMAGE_CACHE/storage}"

BUILDAH=(buildah --storage-driver vfs --root "$MINDX_IMAGE_STORE/root" --runroot "$MINDX_IMAGE_STORE/run")
bh() {
  "${BUILDAH[@]}" "$@"
}

# One build at a time per cache (several checkouts of the project may build at once): the first
# script to take the lock holds it for the scripts it runs.
lock_cache() {
  if [[ -z ${MINDX_IMAGE_LOCK_HELD:-} ]]; then
    mkdir -p "$MINDX_IMAGE_CACHE"
    exec 9>"$MINDX_IMAGE_CACHE/lock"
    flock 9
    export MINDX_IMAGE_LOCK_HELD=1
  fi
}

# The final stage's base image, exactly as the Dockerfile names it (the last FROM line).
dockerfile_base() {
  awk 'toupper($1) == "FROM" { base = $2 } END { print base }' "$REPO_ROOT/Dockerfile"
}

# The name a registry-less store knows an unqualified Docker Hub name by.
qualified() {
  local first="${1%%/*}"
  if [[ $1 == */* && ($first == *.* || $first == *:* || $first == localhost) ]]; then
    echo "$1"
  elif [[ $1 == */* ]]; then
    echo "docker.io/$1"
  else
    echo "docker.io/library/$1"
  fi
}
