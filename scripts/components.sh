# shellcheck shell=bash
# Real components the test suite talks to, installed and started when missing.
# Sourced by scripts/test; adapted from the tested recipes in ../shared/docs/components.md.
#
#   ensure_docker [IMAGE]   Docker engine (dockerd without systemd) + a tiny local busybox image
#   ensure_components       everything the suite needs
#
# With CI=true a component that cannot be set up fails the run. Outside CI a failure is
# reported and the tests that need the component skip with a visible message.

AURELIA_TEST_IMAGE="${AURELIA_TEST_IMAGE:-aurelia-test/busybox:latest}"
export AURELIA_TEST_IMAGE

_apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "components: apt-get is not available to install $*" >&2
    return 1
  fi
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq || return 1
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" >/dev/null || return 1
}

# ensure_docker [IMAGE_TAG] -- idempotent; never stops a dockerd it did not start.
ensure_docker() {
  local img="${1:-$AURELIA_TEST_IMAGE}"
  local state="${AURELIA_DOCKER_STATE:-/tmp/aurelia-docker}"
  mkdir -p "$state" || return 1
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1 || [ ! -x /bin/busybox ]; then
    _apt_install docker.io busybox-static || return 1
  fi
  if ! timeout 10 docker info >/dev/null 2>&1; then
    local hostarg=() pid i
    case "${DOCKER_HOST:-}" in unix://*) hostarg=(-H "$DOCKER_HOST") ;; esac
    # shellcheck disable=SC2086
    nohup dockerd "${hostarg[@]}" ${AURELIA_DOCKERD_ARGS:-} >"$state/dockerd.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$state/dockerd.pid"
    for i in $(seq 1 600); do
      timeout 5 docker info >/dev/null 2>&1 && break
      if ! kill -0 "$pid" 2>/dev/null; then
        timeout 5 docker info >/dev/null 2>&1 && break
        echo "ensure_docker: dockerd exited; log follows" >&2
        tail -n 30 "$state/dockerd.log" >&2
        rm -f "$state/dockerd.pid"
        return 1
      fi
      sleep 0.1
    done
    timeout 10 docker info >/dev/null 2>&1 || {
      echo "ensure_docker: engine not ready after 60 s" >&2
      tail -n 30 "$state/dockerd.log" >&2
      return 1
    }
  fi
  # (re)import the image when missing or made by something else
  if [ "$(docker image inspect -f '{{index .Config.Labels "aurelia.test.rootfs"}}' "$img" 2>/dev/null)" != "busybox-v1" ]; then
    local root
    root=$(mktemp -d) || return 1
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/www"
    cp /bin/busybox "$root/bin/busybox"
    local a
    for a in sh ls cat echo sleep httpd nc wget ps kill; do ln -s busybox "$root/bin/$a"; done
    echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
    echo 'aurelia-test ok' >"$root/www/index.html"
    chmod 1777 "$root/tmp"
    tar -C "$root" -c . | docker import --change 'LABEL aurelia.test.rootfs=busybox-v1' \
      --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$img" >/dev/null
    local rc=$?
    rm -rf "$root"
    [ $rc -eq 0 ] || return 1
  fi
}

ensure_components() {
  if ensure_docker; then
    echo "components: Docker engine ready ($(docker version -f '{{.Server.Version}}' 2>/dev/null)), image $AURELIA_TEST_IMAGE"
  else
    if [ "${CI:-}" = "true" ]; then
      echo "components: the Docker engine could not be set up, and CI requires it" >&2
      return 1
    fi
    echo "components: no Docker engine; container tests will skip (set CI=true to make this fatal)" >&2
  fi
}
