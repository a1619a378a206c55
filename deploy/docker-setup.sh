#!/usr/bin/env bash
# Make this machine ready to run docker-compose.yml without a container registry: install the Docker
# engine, Compose and debootstrap from Debian's packages if missing, start dockerd if it is not
# running (no systemd needed), build the Debian base image (deploy/base-image.sh) and the rayredis
# image from this checkout. Idempotent: each step is skipped when already done, and the image build
# reuses Docker's layer cache (a few seconds when only the sources changed). .ci/run calls it first.
#
#   deploy/docker-setup.sh            # as root on a Debian machine
#   deploy/docker-setup.sh --images   # only the two images (Docker and debootstrap already there)
#
# Environment: RAYREDIS_IMAGE (default rayredis:local), RAYREDIS_BASE_IMAGE (default
# rayredis-base:bookworm; a registry image such as python:3.11-slim is pulled instead of built),
# RAYREDIS_DOCKERD_LOG (default /var/log/rayredis-dockerd.log).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${RAYREDIS_IMAGE:-rayredis:local}
BASE=${RAYREDIS_BASE_IMAGE:-rayredis-base:bookworm}
DOCKERD_LOG=${RAYREDIS_DOCKERD_LOG:-/var/log/rayredis-dockerd.log}
only_images=false
[ "${1:-}" = "--images" ] && only_images=true

log() { echo "docker-setup: $*" >&2; }
step() {  # step NAME COMMAND...: run it and say how long it took
  local name=$1 start=$SECONDS
  shift
  "$@"
  log "$name: $((SECONDS - start)) s"
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ ${#missing[@]} -eq 0 ]; then
    log "docker.io, docker-compose and debootstrap are installed"
    return
  fi
  log "installing ${missing[*]}"
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]; then
    nice -n 10 apt-get update -q
  fi
  DEBIAN_FRONTEND=noninteractive nice -n 10 apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || { nice -n 10 apt-get update -q \
         && DEBIAN_FRONTEND=noninteractive nice -n 10 apt-get install -y -q --no-install-recommends "${missing[@]}"; }
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then
    log "the Docker engine is running"
    return
  fi
  log "starting dockerd (log: $DOCKERD_LOG)"
  # Its own session, so it outlives this script and the CI stage that ran it.
  setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "dockerd did not answer within 60 s; the end of $DOCKERD_LOG:"
      tail -n 30 "$DOCKERD_LOG" >&2
      exit 1
    fi
    sleep 0.5
  done
}

prune_stale_tests() {
  # Compose projects of tests/integration/test_docker_compose.py (rrtest*) that an interrupted run
  # left behind: removed only when none of their containers is running.
  local p
  for p in $(docker ps -a --format '{{.Label "com.docker.compose.project"}}' | grep '^rrtest' | sort -u); do
    [ -z "$(docker ps -q --filter "label=com.docker.compose.project=$p" --filter status=running)" ] || continue
    log "removing the stale test project $p"
    docker ps -aq --filter "label=com.docker.compose.project=$p" | xargs -r docker rm -f -v >/dev/null
    docker network ls -q --filter "label=com.docker.compose.project=$p" | xargs -r docker network rm >/dev/null
    docker rmi "rayredis:test-$p" >/dev/null 2>&1 || true
  done
}

build_images() {
  if [ "${BASE%%:*}" = rayredis-base ]; then  # built here; any other base is pulled by the build
    nice -n 10 deploy/base-image.sh "$BASE"
  fi
  log "building $IMAGE on $BASE"
  # The legacy builder and BuildKit both take this Dockerfile; the output is kept for failures only.
  local out
  out=$(mktemp)
  if ! nice -n 10 docker build --network host --build-arg "BASE_IMAGE=$BASE" -f deploy/Dockerfile -t "$IMAGE" . \
      >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    rm -f "$out"
    exit 1
  fi
  rm -f "$out"
}

if ! $only_images; then
  step install install_packages
  step dockerd start_dockerd
  prune_stale_tests
fi
step images build_images
log "ready: $(docker version --format 'engine {{.Server.Version}}'), $IMAGE"
