#!/usr/bin/env bash
# Build a local Debian base image (python3, venv, pip, CA certificates) from Debian's packages, for
# machines that reach a Debian mirror but no container registry. deploy/Dockerfile builds on it with
#   docker build --build-arg BASE_IMAGE=rayredis-base:bookworm ...
#
#   deploy/base-image.sh [IMAGE]        # default rayredis-base:bookworm; needs root, debootstrap, docker
#
# Idempotent: exits at once if IMAGE exists (remove it with `docker rmi` to rebuild). The mirror is
# the one this machine's apt uses for the suite (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list
# and *.sources), unless RAYREDIS_DEBIAN_MIRROR names one. The machine's CA bundle replaces the
# image's, so pip inside `docker build` trusts what the host trusts (a TLS-intercepting proxy's CA too).
#
# Environment: RAYREDIS_DEBIAN_SUITE (default bookworm: Python 3.11), RAYREDIS_DEBIAN_MIRROR,
# TMPDIR (where the root filesystem is assembled, default /var/tmp; about 400 MB while it runs).
set -euo pipefail

IMAGE=${1:-rayredis-base:bookworm}
SUITE=${RAYREDIS_DEBIAN_SUITE:-bookworm}
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
HOST_CA=/etc/ssl/certs/ca-certificates.crt

log() { echo "base-image: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE exists; nothing to do"
  exit 0
fi

# The first http(s) URI of an enabled "deb" source whose suites include $1 (one-line or deb822 format).
apt_mirror() {
  local suite=$1 f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }   # skip [ option=value ... ]
        if ($(i + 1) == suite && $i ~ /^https?:\/\//) { print $i; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
      BEGIN { RS = ""; FS = "\n" }          # one deb822 stanza per record
      {
        types = ""; uris = ""; suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^[ \t]*#/) continue
          key = tolower(line); sub(/:.*/, "", key)
          value = line; sub(/^[^:]*:[ \t]*/, "", value)
          if (key == "types") types = value
          else if (key == "uris") uris = value
          else if (key == "suites") suites = value
          else if (key == "enabled") enabled = tolower(value)
        }
        if (enabled == "no" || (" " types " ") !~ / deb /) next
        if ((" " suites " ") !~ (" " suite " ")) next
        n = split(uris, u, /[ \t]+/)
        for (j = 1; j <= n; j++) if (u[j] ~ /^https?:\/\//) { print u[j]; exit }
      }' "$f"
  done
}

MIRROR=${RAYREDIS_DEBIAN_MIRROR:-$(apt_mirror "$SUITE" | head -n 1)}
if [ -z "$MIRROR" ]; then
  log "no Debian mirror for suite '$SUITE' in this machine's apt sources; set RAYREDIS_DEBIAN_MIRROR"
  exit 1
fi
command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }

ROOT=$(mktemp -d "${TMPDIR:-/var/tmp}/rayredis-rootfs.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
log "debootstrap $SUITE from $MIRROR into $ROOT"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || {
  tail -n 30 "$ROOT.log" >&2
  rm -f "$ROOT.log"
  exit 1
}
rm -f "$ROOT.log"
# Smaller image: no downloaded .debs, package lists, docs or translations.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/*
if [ -s "$HOST_CA" ]; then
  cp "$HOST_CA" "$ROOT$HOST_CA"
fi
log "importing $IMAGE"
tar -C "$ROOT" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "debootstrap --variant=minbase --include=$PACKAGES $SUITE" - "$IMAGE" >/dev/null
log "built $IMAGE"
