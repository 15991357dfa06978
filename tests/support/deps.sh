#!/usr/bin/env bash
# Installs what mysync's build, tests and demo need and the machine lacks (Debian/Ubuntu).
# Sourced by tests/run.sh and deploy/demo.sh; safe to run again (installs only what is missing).
set -euo pipefail

MS_APT_PACKAGES=(
  gcc pkg-config meson ninja-build
  libmariadb-dev libmongoc-dev libbson-dev libmicrohttpd-dev libyaml-dev libzstd-dev zlib1g-dev
  libcmocka-dev libssl-dev            # libssl-dev: libcrypto (HMAC-SHA256)
  libcurl4-openssl-dev              # it_http: real HTTP requests (test-only)
  python3 python3-prometheus-client # it_http: /metrics checked by the Prometheus client's parser
  mariadb-server mariadb-client
  openjdk-17-jdk-headless maven     # mongo-java-server (test rig)
  valgrind
  clang libclang-rt-14-dev          # libFuzzer harnesses (tests/fuzz/run.sh); Debian 12's clang 14
                                    # only recommends its runtime, which holds libFuzzer
  libsystemd-dev                    # sd_notify (meson feature 'systemd'): CI builds with it
  scdoc groff-base man-db           # mysync(1): built by scdoc, checked by groff -ww and man -l
  systemd prometheus python3-yaml   # deploy suite: systemd-analyze verify, promtool, YAML checks
)

ms_install_deps() {
  local missing=() p
  for p in "${MS_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # The JDK may come from elsewhere (a JAVA_HOME install): accept any javac 17+ and mvn.
  if command -v javac >/dev/null && command -v mvn >/dev/null; then
    local filtered=()
    for p in "${missing[@]}"; do
      case "$p" in openjdk-17-jdk-headless|maven) ;; *) filtered+=("$p") ;; esac
    done
    missing=("${filtered[@]}")
  fi
  # Go builds the FerretDB test server; Debian's golang-go is the fallback when none is on PATH.
  if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
    missing+=(golang-go)
  fi
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "deps: installing ${missing[*]}" >&2
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# Go may live outside PATH (/usr/local/go): make it visible to the rig's build scripts.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
