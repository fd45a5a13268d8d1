#!/usr/bin/env bash
# Make a stand-in for the Dockerfile's base image (python:3.X-slim-<debian suite>) without an image
# registry, and commit it under the base image's exact name so the Dockerfile builds unchanged:
#
#   1. `debootstrap --variant=minbase` a root filesystem of that Debian suite from the mirror the
#      machine's own apt uses (read from /etc/apt/sources.list{,.d/*} at run time; override with
#      MINDX_DEBIAN_MIRROR), with Debian's python3, python3-venv (the Dockerfile runs
#      `python3 -m venv`), python3-pip and ca-certificates;
#   2. make it look like the official image where the Dockerfile (or a user of the base) could
#      notice: python3, python and pip in /usr/local/bin (symlinks to Debian's), no
#      EXTERNALLY-MANAGED marker (the official image has none), PATH, LANG and CMD as the official
#      image sets them; trim apt lists, package caches, man pages and docs as slim images do;
#   3. commit it with buildah (`from scratch` + `add` of the root filesystem tarball).
#
# It refuses to stand in when it would lie about the Python minor version: Debian's python3 of that
# suite must be the tag's 3.X (bookworm ships 3.11).
#
# Reruns are fast: the root filesystem tarball is cached under $MINDX_IMAGE_CACHE (default
# /var/cache/mindx-image as root) and the commit is skipped when the store already holds the image
# made by this same script. Needs root (debootstrap), buildah and debootstrap.
#
# Usage: deploy/image/build-stand-in-base.sh        prints the committed image name
set -euo pipefail
source "$(dirname "$0")/common.sh"

command -v buildah >/dev/null || fail "buildah not found: install it (apt-get install buildah)"
command -v debootstrap >/dev/null || fail "debootstrap not found: install it (apt-get install debootstrap)"

lock_cache
base="$(dockerfile_base)"
[[ $base != *@* ]] || fail "the Dockerfile pins its base by digest ($base); a stand-in cannot have that digest: build with the real base image (docker build)"
if [[ ! $base =~ ^python:(3\.[0-9]+)(\.[0-9]+)?-slim-([a-z]+)$ ]]; then
  fail "the Dockerfile's base $base is not python:3.X-slim-<debian suite>: name the Debian suite in its tag so a stand-in can be built"
fi
want_python="${BASH_REMATCH[1]}"
suite="${BASH_REMATCH[3]}"
image="$(qualified "$base")"

# What makes the root filesystem: this script and the base name. A change to either rebuilds.
recipe="$(cat "$0" "$(dirname "$0")/common.sh" <(echo "$base") | sha256sum | cut -c1-16)"
label=org.mindx-fault-exporter.stand-in.recipe
if [[ $(bh inspect --type image --format "{{index .OCIv1.Config.Labels \"$label\"}}" "$image" 2>/dev/null) == "$recipe" ]]; then
  echo "$image"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || fail "debootstrap needs root: run this script as root (or with sudo)"

mirror() {
  # The first apt source for $suite, in one-line (`deb [opts] URI SUITE ...`) or deb822 format.
  local files=()
  [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
  shopt -s nullglob
  files+=(/etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
  shopt -u nullglob
  ((${#files[@]})) || return 0
  awk -v suite="$suite" '
    function flush() {
      if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "" && !found) {
        split(uris, u, " "); print u[1]; found = 1
      }
      types = ""; uris = ""; suites = ""
    }
    FNR == 1 { flush() }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    $1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite && !found) { print $i; found = 1 }
      next
    }
    tolower($1) == "types:" { $1 = ""; types = $0 }
    tolower($1) == "uris:" { $1 = ""; uris = $0 }
    tolower($1) == "suites:" { $1 = ""; suites = $0 }
    END { flush() }
  ' "${files[@]}"
}

mkdir -p "$MINDX_IMAGE_CACHE"
tarball="$MINDX_IMAGE_CACHE/rootfs-$suite-$recipe.tar"
if [[ ! -s $tarball ]]; then
  source_uri="${MINDX_DEBIAN_MIRROR:-$(mirror)}"
  [[ -n $source_uri ]] || fail "no apt source for Debian $suite in /etc/apt/sources.list{,.d}: set MINDX_DEBIAN_MIRROR to a Debian mirror URL"
  rootfs="$(mktemp -d "$MINDX_IMAGE_CACHE/rootfs.XXXXXX")"
  cleanup() {
    # debootstrap mounts /proc and /sys inside the target while it configures packages.
    for m in proc sys; do mountpoint -q "$rootfs/$m" && umount -l "$rootfs/$m"; done
    rm -rf "$rootfs"
  }
  trap cleanup EXIT
  echo "debootstrap $suite from $source_uri (a few minutes; cached in $MINDX_IMAGE_CACHE)" >&2
  debootstrap --variant=minbase --include=ca-certificates,python3,python3-venv,python3-pip \
    "$suite" "$rootfs" "$source_uri" >"$MINDX_IMAGE_CACHE/debootstrap.log" 2>&1 \
    || fail "debootstrap failed (log: $MINDX_IMAGE_CACHE/debootstrap.log): check that $source_uri serves $suite"
  [[ $(readlink -f "$rootfs/usr/bin/python3") == */python$want_python ]] \
    || fail "Debian $suite's python3 is $(basename "$(readlink -f "$rootfs/usr/bin/python3")"), not python$want_python: the stand-in would lie about the Dockerfile's Python; base the Dockerfile on the suite's Python or build with the real base (docker build)"

  # Where the official image keeps its interpreter and pip.
  for name in python3 python; do ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/$name"; done
  for name in pip3 pip; do ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/$name"; done
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  # Slim: no package lists or caches, logs, man pages or docs (copyright files stay), as the
  # official slim images; device nodes come from the container runtime, not the image.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/dev/* "$rootfs"/proc/* "$rootfs"/sys/*
  find "$rootfs"/var/log -type f -delete
  find "$rootfs"/usr/share/doc -type f ! -name copyright -delete
  find "$rootfs"/usr/share/doc -depth -type d -empty -delete

  rm -f "$MINDX_IMAGE_CACHE"/rootfs-*.tar
  tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  cleanup
  trap - EXIT
fi

python_version="$(tar -xOf "$tarball" ./var/lib/dpkg/status \
  | sed -n "/^Package: python$want_python\$/,/^\$/s/^Version: //p")"
ctr="$(bh from --quiet scratch)"
trap 'bh rm "$ctr" >/dev/null' EXIT
bh add --quiet "$ctr" "$tarball" /
bh config \
  --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 \
  --env "PYTHON_VERSION=${python_version%%-*}" \
  --cmd python3 \
  --label "$label=$recipe" \
  --label "org.opencontainers.image.description=Stand-in for $base: Debian $suite minbase with Debian's python$want_python (mindx-fault-exporter deploy/image/build-stand-in-base.sh), not the official image" \
  "$ctr"
bh commit --quiet --rm "$ctr" "$image" >/dev/null
trap - EXIT
echo "$image"
